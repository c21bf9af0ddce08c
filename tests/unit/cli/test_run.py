"""Specification of `boundary run`'s command line: every bad input is one `boundary: ...` line and exit 125,
before a jail exists (each case names a command that does not exist, so a check that wrongly passed stops at
"command not found" instead of starting a jail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from boundary.cli.run import RUN_EPILOG, run
from boundary.run.summary import EXIT_DENIED
from tests.unit.cli.test_cli import EXIT_BOUNDARY_FAILED, NO_SUCH_COMMAND, boundary

# --- errors: one `boundary: ...` line and exit 125 ----------------------------------------------------------


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    """A policy file that does not exist: one `boundary:` line naming the path, exit 125."""
    missing = tmp_path / "nope.yaml"
    result = boundary("run", "--policy", str(missing), "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr == f"boundary: {missing}: cannot read policy: No such file or directory\n"
    assert result.stdout == ""


def test_invalid_policy_says_file_line_and_key(tmp_path: Path) -> None:
    """A policy error (a BoundaryError) is shown as is: `boundary: FILE:LINE: key: message`, exit 125."""
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nallow:\n  - domain: a.test\n    methods: [GETT]\n")
    result = boundary("run", "--policy", str(path), "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr.startswith(f"boundary: {path}:4: allow[0].methods")
    assert "'GETT'" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resolve", "nonsense"], "boundary: --resolve 'nonsense': expected HOST:PORT:ADDR"),
        (["--resolve", "a.test:443:localhost"], "boundary: --resolve 'a.test:443:localhost': 'localhost' is not"),
        (["--upstream-ca", "/nonexistent/ca.pem"], "boundary: --upstream-ca '/nonexistent/ca.pem': No such file"),
        ([], f"boundary: command not found: '{NO_SUCH_COMMAND}'"),
        (["--bind", "relative/dir"], "boundary: --bind 'relative/dir': the path must be absolute"),
        (["--bind", "/nonexistent/dir:ro"], "boundary: --bind '/nonexistent/dir:ro': no such file or directory"),
        (["--bind", ":ro"], "boundary: --bind ':ro': no path given (use --bind PATH or --bind PATH:ro)"),
    ],
)
def test_bad_option_values_are_quoted(tmp_path: Path, policy: Path, args: list[str], message: str) -> None:
    """A malformed option value or an unknown command: one `boundary:` line quoting it, exit 125."""
    result = boundary("run", "--policy", str(policy), *args, "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--", NO_SUCH_COMMAND], "Error: Missing option '--policy'"),
        (["run", "--policy"], "Error: Option '--policy' requires an argument"),
        (["run", "--policy", "p.yaml"], "Error: Missing argument 'COMMAND...'"),
        (["--bogus", "run"], "Error: No such option '--bogus'"),
        (["frobnicate"], "Error: No such command 'frobnicate'"),
    ],
)
def test_usage_errors_exit_125(tmp_path: Path, args: list[str], message: str) -> None:
    """click's usage errors (missing option or argument, unknown option or command) exit 125, not click's 2."""
    result = boundary(*args, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert message in result.stderr
    assert result.stdout == ""


def test_a_mistyped_run_option_is_refused_naming_the_likely_one(tmp_path: Path, policy: Path) -> None:
    """An option `run` does not know, before the command, is a usage error (exit 125) that suggests the option
    meant; nothing runs."""
    result = boundary("run", "--policy", str(policy), "--lgo", "x", "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert "No such option '--lgo'. Did you mean '--log'?" in result.stderr


def test_options_after_the_command_are_the_commands(tmp_path: Path, policy: Path) -> None:
    """Option parsing stops at the command (as with env or sudo): `--policy` after it is the command's own, so
    boundary reports the command it looked for, not a second policy."""
    result = boundary("run", "--policy", str(policy), NO_SUCH_COMMAND, "--policy", "--lgo", cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr == f"boundary: command not found: '{NO_SUCH_COMMAND}'\n"


# --- the CI options: parsed, and documented -----------------------------------------------------------------


def _parsed(*args: str) -> dict[str, object]:
    """The parameters click gives `run` for `args` (parsed only: nothing runs)."""
    with run.make_context("run", list(args)) as context:
        return dict(context.params)


@pytest.mark.parametrize(
    ("args", "fail_on_deny", "quiet"),
    [
        ([], False, False),
        (["--fail-on-deny"], True, False),
        (["--quiet"], False, True),
        (["-q", "--fail-on-deny"], True, True),
    ],
)
def test_fail_on_deny_and_quiet_are_flags(args: list[str], fail_on_deny: bool, quiet: bool) -> None:
    """`--fail-on-deny` and `--quiet` (`-q`) are flags, off unless given."""
    params = _parsed("--policy", "p.yaml", *args, "--", "agent")
    assert (params["fail_on_deny"], params["quiet"], params["command"]) == (fail_on_deny, quiet, ("agent",))


def test_the_ci_flags_after_the_command_are_the_commands() -> None:
    """After the command, `--quiet` and `--fail-on-deny` are its own arguments, not boundary's."""
    params = _parsed("--policy", "p.yaml", "agent", "--quiet", "--fail-on-deny")
    assert (params["fail_on_deny"], params["quiet"]) == (False, False)
    assert params["command"] == ("agent", "--quiet", "--fail-on-deny")


def test_the_ci_flags_are_accepted_before_a_run_is_refused(tmp_path: Path, policy: Path) -> None:
    """The flags pass the command line; the run's own checks still come first (exit 125, one line)."""
    result = boundary("run", "--quiet", "--fail-on-deny", "--policy", str(policy), "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr == f"boundary: command not found: '{NO_SUCH_COMMAND}'\n"


@pytest.mark.parametrize(
    "documented",
    [
        "--fail-on-deny",
        "-q, --quiet",
        "boundary run --fail-on-deny --policy p.yaml -- npm test",
        "$GITHUB_STEP_SUMMARY",
        "3 with --fail-on-deny, if the command exited 0 but a request was denied",
        "(a command's own non-zero status always wins)",
        "boundary: 1 allowed, 2 denied: denied.test:443 (2)",
    ],
)
def test_run_help_documents_the_ci_options_and_exit_status(tmp_path: Path, documented: str) -> None:
    """`boundary run --help` names the options, the exit status 3, the summary and the step summary, with
    examples."""
    result = boundary("run", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert documented in result.stdout


def test_the_documented_exit_status_is_the_one_given() -> None:
    """The help's 3 is `summary.EXIT_DENIED`."""
    assert f"{EXIT_DENIED} with --fail-on-deny" in RUN_EPILOG
