"""Specification of the session's input checks: who the workload runs as, the command, the upstream CAs; and
of a proxy that cannot start.

These run before anything is started, so a bad value stops `boundary run` with a `UsageError` (exit 125). The
checks take the uid, gid and environment as parameters: the root cases run fine without root.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from boundary.audit import LinkTrust, render
from boundary.ca import find_system_bundle, generate_ca
from boundary.errors import UsageError
from boundary.jail.mounts import host_path
from boundary.jail.plan import BindRequest, Identity, mount_plan
from boundary.run.session import (
    STEP_SUMMARY,
    RunOptions,
    StepSummary,
    _check_command,
    _check_command_visible,
    _report,
    _user_binds,
    identities,
    plan,
    read_upstream_cas,
    upstream_trust_pem,
)
from boundary.run.summary import EXIT_DENIED, Summary, Tally

NOBODY = pwd.getpwnam("nobody")
UNKNOWN_USER = "boundary-test-no-such-user"


def usage_error(call: Callable[[], object]) -> str:
    """The message of the UsageError that `call` raises."""
    with pytest.raises(UsageError) as info:
        call()
    return str(info.value)


def unused_uid() -> int:
    """A uid with no passwd entry."""
    uid = 4_200_000
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def invoker(uid: int, gid: int) -> Identity:
    return Identity(uid, gid, tuple(os.getgroups()))


def nobody() -> Identity:
    return Identity(
        NOBODY.pw_uid,
        NOBODY.pw_gid,
        tuple(os.getgrouplist("nobody", NOBODY.pw_gid)),
        NOBODY.pw_dir,
        "nobody",
    )


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


# --- identities ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "env"),
    [
        (None, {}),
        (None, {"SUDO_USER": "nobody"}),  # SUDO_USER means nothing to a non-root invoker
        ("nobody", {}),  # asking for oneself by name
    ],
)
def test_rootless_workload_is_the_invoker(user: str | None, env: dict[str, str]) -> None:
    """Without root the workload always runs as the invoker."""
    assert identities(user, env, NOBODY.pw_uid, NOBODY.pw_gid) == (
        invoker(NOBODY.pw_uid, NOBODY.pw_gid),
        invoker(NOBODY.pw_uid, NOBODY.pw_gid),
    )


@pytest.mark.parametrize("uid", [NOBODY.pw_uid, unused_uid()])
def test_rootless_asking_for_another_user_is_refused(uid: int) -> None:
    """Without root, `--user` naming someone else is a UsageError quoting it (also for a uid without a name)."""
    assert usage_error(lambda: identities("root", {}, uid, uid)) == (
        "--user 'root': only root can run the workload as another user"
    )


@pytest.mark.parametrize(
    ("user", "env"),
    [
        (None, {}),  # plain root: root without capabilities
        ("root", {}),
        (None, {"SUDO_USER": "root"}),
        ("root", {"SUDO_USER": "nobody"}),  # --user wins over SUDO_USER
    ],
)
def test_root_workload_stays_root(user: str | None, env: dict[str, str]) -> None:
    """As root, with no other user named, the workload is the invoker (root)."""
    assert identities(user, env, 0, 0) == (invoker(0, 0), invoker(0, 0))


@pytest.mark.parametrize(
    ("user", "env"),
    [
        ("nobody", {}),
        (None, {"SUDO_USER": "nobody"}),
        ("nobody", {"SUDO_USER": "root"}),  # --user wins over SUDO_USER
    ],
)
def test_root_runs_the_workload_as_the_named_user(user: str | None, env: dict[str, str]) -> None:
    """As root, `--user` (else `SUDO_USER`) picks the workload's uid, gid, groups, home and name."""
    assert identities(user, env, 0, 0) == (invoker(0, 0), nobody())


@pytest.mark.parametrize(("user", "env"), [(UNKNOWN_USER, {}), (None, {"SUDO_USER": UNKNOWN_USER})])
def test_root_with_an_unknown_user_is_refused(user: str | None, env: dict[str, str]) -> None:
    """As root, a user name that does not exist is a UsageError quoting it."""
    assert usage_error(lambda: identities(user, env, 0, 0)) == f"--user '{UNKNOWN_USER}': no such user"


# --- the command --------------------------------------------------------------------------------------------


def test_no_command_is_refused() -> None:
    """An empty command line is a UsageError that shows the expected form."""
    assert usage_error(lambda: _check_command((), {"PATH": os.defpath})) == (
        "no command given: boundary run --policy FILE -- COMMAND [ARGS...]"
    )


def test_command_by_absolute_path(tmp_path: Path) -> None:
    """An absolute path to an executable is accepted whatever PATH says."""
    _check_command((str(executable(tmp_path / "tool")), "--flag"), {"PATH": ""})


def test_command_found_on_path(tmp_path: Path) -> None:
    """A bare name is looked up in the given environment's PATH."""
    executable(tmp_path / "tool")
    _check_command(("tool",), {"PATH": f"/nonexistent:{tmp_path}"})


@pytest.mark.parametrize("where", ["absent", "not-executable", "not-on-path", "missing-absolute"])
def test_command_not_found_is_quoted(tmp_path: Path, where: str) -> None:
    """A command that is not an executable reachable by PATH (or by its path) is a UsageError quoting it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    name = "tool"
    if where == "not-executable":
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o644)
    elif where == "not-on-path":
        executable(tmp_path / name)
    elif where == "missing-absolute":
        name = str(bin_dir / "missing")
    assert usage_error(lambda: _check_command((name,), {"PATH": str(bin_dir)})) == f"command not found: '{name}'"


# --- upstream CAs ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_pem() -> bytes:
    return generate_ca("session-test", datetime.now(UTC)).cert_pem


def test_no_upstream_cas_is_empty() -> None:
    """Without `--upstream-ca` there is nothing extra to trust."""
    assert read_upstream_cas(()) == b""


def test_upstream_cas_are_read_in_order_each_ending_in_a_newline(tmp_path: Path, ca_pem: bytes) -> None:
    """Each file is taken as is, in order; one without a final newline gets one, so PEM blocks stay apart."""
    first, second = tmp_path / "first.pem", tmp_path / "second.pem"
    first.write_bytes(ca_pem.rstrip(b"\n"))
    second.write_bytes(b"# a comment\n" + ca_pem)
    assert read_upstream_cas((str(first), str(second))) == ca_pem + b"# a comment\n" + ca_pem


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "No such file or directory"),
        ("directory", "Is a directory"),
        ("not-pem", "no PEM certificate in the file"),
        ("empty", "no PEM certificate in the file"),
    ],
)
def test_unusable_upstream_ca_is_refused_quoting_the_path(tmp_path: Path, make: str, message: str) -> None:
    """A CA file that cannot be read or holds no PEM certificate is a UsageError quoting its path."""
    path = tmp_path / "ca.pem"
    if make == "directory":
        path.mkdir()
    elif make == "not-pem":
        path.write_bytes(b"\x30\x82\x01\x0a not a PEM certificate\n")
    elif make == "empty":
        path.write_bytes(b"")
    assert usage_error(lambda: read_upstream_cas((str(path),))) == f"--upstream-ca '{path}': {message}"


def test_upstream_trust_is_the_system_store_plus_the_extra_cas(ca_pem: bytes) -> None:
    """The proxy trusts the system CAs (certifi's when there is no system bundle) and then the extra ones."""
    system = find_system_bundle()
    if system is not None:
        base = system.read_bytes()
    else:
        import certifi

        base = Path(certifi.where()).read_bytes()
    trust = upstream_trust_pem(ca_pem)
    assert trust.startswith(base)
    assert trust.endswith(ca_pem)
    assert trust[: -len(ca_pem)].endswith(b"\n")  # the extra CAs start on their own line
    assert upstream_trust_pem(b"").startswith(base)


# --- --bind -----------------------------------------------------------------------------------------------------


def test_binds_are_checked_and_kept_in_order(tmp_path: Path) -> None:
    """Existing absolute paths become bind requests at the same place, `:ro` read-only."""
    (tmp_path / "f").write_text("x")
    binds = _user_binds((str(tmp_path), f"{tmp_path / 'f'}:ro"))
    assert binds == (
        BindRequest(str(tmp_path), str(tmp_path)),
        BindRequest(str(tmp_path / "f"), str(tmp_path / "f"), True),
    )


def test_a_missing_bind_is_refused_quoting_the_value(tmp_path: Path) -> None:
    text = f"{tmp_path / 'gone'}:ro"
    assert usage_error(lambda: _user_binds((text,))) == f"--bind '{text}': no such file or directory"


def test_a_command_under_a_hidden_tree_is_refused_with_the_bind_that_shows_it() -> None:
    """A tool (or a venv's python) under /tmp would fail inside the jail with "No such file": refused before
    anything starts, naming the tree and the --bind that shows the top directory holding it."""
    (Path("/tmp") / f"boundary-unit-{os.getpid()}" / "bin").mkdir(parents=True)
    tool = executable(Path("/tmp") / f"boundary-unit-{os.getpid()}" / "bin" / "tool")
    try:
        actions = mount_plan(host_path, {}, "/", [], nobody())
        message = usage_error(lambda: _check_command_visible(str(tool), {"PATH": "/usr/bin"}, actions))
        assert message == (
            f"command '{tool}' is {tool}, under /tmp, which the jail hides (host sockets live there);"
            f" show it with --bind /tmp/boundary-unit-{os.getpid()}:ro, or run it from elsewhere"
        )
        shown = mount_plan(host_path, {}, "/", [BindRequest(str(tool.parent), str(tool.parent), True)], nobody())
        _check_command_visible(str(tool), {"PATH": "/usr/bin"}, shown)  # shown by a bind: fine
    finally:
        shutil.rmtree(tool.parent.parent)


def test_a_command_reached_through_a_link_in_a_hidden_tree_is_refused() -> None:
    """The jail looks the command up by the path given: a link under /tmp to a visible binary is still hidden."""
    link = Path("/tmp") / f"boundary-unit-link-{os.getpid()}"
    link.symlink_to("/bin/true")
    try:
        actions = mount_plan(host_path, {}, "/", [], nobody())
        assert "under /tmp, which the jail hides" in usage_error(
            lambda: _check_command_visible(str(link), {"PATH": "/usr/bin"}, actions)
        )
        _check_command_visible("true", {"PATH": "/usr/bin:/bin"}, actions)  # a system tool: fine
    finally:
        link.unlink()


# --- the plan: every input checked once ------------------------------------------------------------------


def _policy(tmp_path: Path) -> str:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nallow:\n  - domain: example.test\n")
    return str(path)


def test_a_plan_holds_every_checked_input_and_cannot_change(tmp_path: Path) -> None:
    options = RunOptions(policy=_policy(tmp_path), argv=("true",), resolve=("example.test:443:127.0.0.1",))
    checked = plan(options, {"PATH": os.defpath, "HOME": str(tmp_path)})
    assert checked.overrides == {("example.test", 443): ("127.0.0.1", 443)}
    assert checked.matcher.allows_destination("example.test", 443)
    assert checked.log_path.name.endswith(f"-{checked.run_id}.jsonl")
    assert checked.log_path.is_relative_to(tmp_path / ".local" / "state" / "boundary")
    with pytest.raises(AttributeError):
        checked.run_id = "other"  # type: ignore[misc]  # frozen: what the assignment checks


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resolve": ("nonsense",)}, "--resolve 'nonsense'"),
        ({"argv": ("no-such-command-here",)}, "command not found: 'no-such-command-here'"),
        ({"binds": ("/no/such/path",)}, "--bind '/no/such/path': no such file or directory"),
    ],
)
def test_a_plan_refuses_a_bad_input_quoting_it(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    options = RunOptions(**{"policy": _policy(tmp_path), "argv": ("true",), **change})
    with pytest.raises(UsageError, match=re.escape(message)):
        plan(options, {"PATH": os.defpath})


# --- the end of a run: the exit summary, --fail-on-deny, the step summary -----------------------------------

OWN = LinkTrust(os.getuid())


def _ended(*decisions: tuple[str, str]) -> Summary:
    """The summary of a run whose audit lines had these (decision, host)."""
    tally = Tally()
    for decision, host in decisions:
        reason = "allowed" if decision == "allow" else "no-matching-rule"
        tally.count(
            render(
                ts=datetime.now(UTC),
                run="r1",
                decision=decision,
                rule=None,
                reason=reason,
                method="GET",
                scheme="https",
                host=host,
                port=443,
                path="/",
                status=None,
            )
        )
    return tally.summary()


def _options(tmp_path: Path, flags: dict[str, bool]) -> RunOptions:
    return RunOptions(
        policy=_policy(tmp_path),
        argv=("true",),
        quiet=flags.get("quiet", False),
        fail_on_deny=flags.get("fail_on_deny", False),
    )


@pytest.mark.parametrize(
    ("flags", "code", "denied", "final", "last"),
    [
        ({}, 0, True, 0, "boundary: to allow d.test:443, add to the policy's allow list:"),
        ({"fail_on_deny": True}, 0, True, EXIT_DENIED, "boundary: --fail-on-deny: the command succeeded, but 1"),
        ({"fail_on_deny": True}, 7, True, 7, "boundary: to allow d.test:443"),
        ({"fail_on_deny": True}, 0, False, 0, "boundary: 1 allowed, 0 denied"),
        ({"quiet": True, "fail_on_deny": True}, 0, True, EXIT_DENIED, "boundary: --fail-on-deny:"),
    ],
)
def test_the_end_of_a_run_reports_and_decides_the_exit_status(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: dict[str, bool],
    code: int,
    denied: bool,
    final: int,
    last: str,
) -> None:
    """The exit summary on stderr (not with `--quiet`), then `--fail-on-deny`'s reason when it changes the
    status; the command's own failure is kept."""
    checked = plan(_options(tmp_path, flags), {"PATH": os.defpath, "HOME": str(tmp_path)})
    ended = _ended(("allow", "a.test"), *([("deny", "d.test")] if denied else []))
    assert _report(checked, code, ended, StepSummary.open(None, OWN)) == final
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(last)
    assert any(line.startswith("boundary: 1 allowed") for line in err) is not flags.get("quiet", False)


def test_without_the_variable_there_is_no_step_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`$GITHUB_STEP_SUMMARY` unset or empty: nothing is written, nothing said."""
    for path in (None, ""):
        step = StepSummary.open(path, OWN)
        step.append("text")
        step.close()
    assert capsys.readouterr().err == ""
    assert STEP_SUMMARY == "GITHUB_STEP_SUMMARY"


def test_the_step_summary_is_appended_after_a_blank_line(tmp_path: Path) -> None:
    """What earlier steps wrote stays; the run's section follows a blank line."""
    path = tmp_path / "summary.md"
    path.write_text("# before")
    step = StepSummary.open(str(path), OWN)
    step.append("### boundary\n")
    step.close()
    assert path.read_text() == "# before\n### boundary\n"


def test_the_step_summary_names_a_relative_path_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative `$GITHUB_STEP_SUMMARY` is taken from the working directory (as the runner's own tools do)."""
    monkeypatch.chdir(tmp_path)
    step = StepSummary.open("summary.md", OWN)
    step.append("x\n")
    step.close()
    assert (tmp_path / "summary.md").read_text() == "\nx\n"


def _in_a_missing_directory(directory: Path) -> Path:
    return directory / "missing" / "summary.md"


def _the_directory(directory: Path) -> Path:
    return directory


def _a_link(directory: Path) -> Path:
    (directory / "link").symlink_to(directory / "elsewhere")
    return directory / "link"


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_in_a_missing_directory, "No such file or directory"),
        (_the_directory, "that names a directory, not a file"),
        (_a_link, "Too many levels of symbolic links"),
    ],
    ids=["missing-directory", "a-directory", "a-link"],
)
def test_a_step_summary_that_cannot_be_opened_is_said_once_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], problem: str
) -> None:
    """A file that cannot be opened (never through a link: the workload could have planted one) is one line
    on stderr at the end, naming it and why; nothing raises."""
    path = make(tmp_path)
    shown = str(path) + ("/" if path == tmp_path else "")
    step = StepSummary.open(shown, OWN)
    step.append("text")
    step.close()
    err = capsys.readouterr().err
    assert err == (
        f"boundary: cannot write the step summary '{shown}' ($GITHUB_STEP_SUMMARY): {problem};"
        " the run goes on without it\n"
    )
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_step_summary_that_cannot_be_written_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    """A write the kernel refuses (device full) is said, not raised."""
    step = StepSummary.open("/dev/full", OWN)
    step.append("text")
    step.close()
    assert "'/dev/full' ($GITHUB_STEP_SUMMARY): No space left on device;" in capsys.readouterr().err
