"""`boundary run` in CI, end to end, as root and rootless: the exit summary on stderr, `--quiet`,
`--fail-on-deny`'s exit status and the GitHub step summary (`$GITHUB_STEP_SUMMARY`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tests.e2e.conftest import Jailer, JailRun
from tests.support.runner import run_boundary

CURL = "curl -sS -o /dev/null --max-time 20"
# One allowed request and two denied ones (a path the rule does not list, a host no rule names).
THREE_REQUESTS = [
    "sh",
    "-c",
    f"{CURL} https://allowed.test/hello; {CURL} https://allowed.test/secret; {CURL} https://denied.test/x?token=s3",
]

SUMMARY = [
    "boundary: 1 allowed, 2 denied: allowed.test:443 (1), denied.test:443 (1)",
    "boundary: to allow allowed.test:443, add the path to a rule for this host:"
    ' {domain: allowed.test, methods: [GET], paths: ["/secret"]}',
    "boundary: to allow denied.test:443, add to the policy's allow list:"
    ' {domain: denied.test, methods: [GET], paths: ["/x"]}',
]


def run(
    jail: Jailer, command: Sequence[str], extra: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> JailRun:
    jail.audit_path.unlink(missing_ok=True)
    result = run_boundary(jail.args(command, extra=extra), rootless=jail.rootless, expose=[jail.workdir], env=env)
    return JailRun(result, jail.audit())


def boundary_lines(run: JailRun) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("boundary: ")]


def test_the_exit_summary_counts_and_says_how_to_allow(jail: Jailer) -> None:
    """At the end of a run: the counts and the denied hosts, then a ready rule for each, on stderr; the
    command's status is unchanged without `--fail-on-deny`."""
    result = run(jail, THREE_REQUESTS)
    assert result.result.returncode == 0, result.stderr
    assert [a["decision"] for a in result.audit] == ["allow", "deny", "deny"]
    assert boundary_lines(result)[-3:] == SUMMARY


def test_quiet_prints_no_summary(jail: Jailer) -> None:
    """`--quiet`: none of boundary's own lines (start, summary); the run is the same."""
    result = run(jail, THREE_REQUESTS, extra=["--quiet"])
    assert result.result.returncode == 0, result.stderr
    assert boundary_lines(result) == []
    assert len(result.audit) == 3


def test_fail_on_deny_fails_a_command_that_succeeded(jail: Jailer) -> None:
    """`--fail-on-deny`: the command exited 0 but requests were denied: exit 3, and a line saying why."""
    result = run(jail, THREE_REQUESTS, extra=["--fail-on-deny"])
    assert result.result.returncode == 3, result.stderr
    assert boundary_lines(result)[-4:] == [
        *SUMMARY,
        "boundary: --fail-on-deny: the command succeeded, but 2 requests were denied: exit 3",
    ]


def test_fail_on_deny_leaves_the_commands_own_failure(jail: Jailer) -> None:
    """The command's own non-zero status wins over `--fail-on-deny`."""
    command = ["sh", "-c", f"{CURL} https://denied.test/; exit 7"]
    result = run(jail, command, extra=["--fail-on-deny"])
    assert result.result.returncode == 7, result.stderr
    assert "--fail-on-deny" not in result.stderr


def test_fail_on_deny_without_denials_is_the_commands_status(jail: Jailer) -> None:
    """Nothing denied: `--fail-on-deny` changes nothing."""
    result = run(jail, ["sh", "-c", f"{CURL} https://allowed.test/hello"], extra=["--fail-on-deny"])
    assert result.result.returncode == 0, result.stderr
    assert boundary_lines(result)[-1] == "boundary: 1 allowed, 0 denied"


def test_the_step_summary_gets_the_markdown(jail: Jailer) -> None:
    """With `$GITHUB_STEP_SUMMARY` set, the run appends its section to what the file held: the counts and a
    table of the denied requests, each with a rule (the query dropped)."""
    step = jail.workdir / "step_summary.md"
    step.write_text("# earlier step\n")
    step.chmod(0o666)
    result = run(jail, THREE_REQUESTS, env={"GITHUB_STEP_SUMMARY": str(step)})
    assert result.result.returncode == 0, result.stderr
    text = step.read_text()
    assert text.startswith("# earlier step\n\n### boundary `run ")
    assert "\n1 allowed, 2 denied.\n" in text
    rows = [row for row in text.splitlines() if row.startswith("| deny |")]
    assert rows == [
        "| deny | `GET` | `allowed.test:443` | `/secret` | `path-not-allowed` | 1 | `add the path to a rule for"
        ' this host: {domain: allowed.test, methods: [GET], paths: ["/secret"]}` |',
        "| deny | `GET` | `denied.test:443` | `/x` | `no-matching-rule` | 1 | `add to the policy's allow list:"
        ' {domain: denied.test, methods: [GET], paths: ["/x"]}` |',
    ]
    assert "s3" not in text


def test_a_step_summary_that_cannot_be_written_does_not_fail_the_run(jail: Jailer) -> None:
    """A `$GITHUB_STEP_SUMMARY` that cannot be opened: one line on stderr, the run's status unchanged."""
    missing = jail.workdir / "no-such-dir" / "summary.md"
    result = run(jail, THREE_REQUESTS, env={"GITHUB_STEP_SUMMARY": str(missing)})
    assert result.result.returncode == 0, result.stderr
    assert result.stderr.count("cannot write the step summary") == 1
    assert f"boundary: cannot write the step summary '{missing}' ($GITHUB_STEP_SUMMARY)" in result.stderr
    assert boundary_lines(result)[-4:-1] == SUMMARY
