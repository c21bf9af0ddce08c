"""Escape probes against the audit log's place: the jailed command tries to make the path boundary names hold
another file than the one the run wrote (rename the log's directory or one above it and put a forged log where
it was), or plants a link on the path so that the next run, perhaps as root, writes where it should not.

The log itself is a read-only mount in the jail (tests/escape/test_host.py); these are about its path. Every
directory on the way is pinned in the jail (a mount point: renames fail with EBUSY), a link on the way that the
command could have made stops boundary before anything starts, and a place taken by anything else during the
run ends it with exit 125 saying where the run's log went.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Jailer
from tests.escape.conftest import Witnesses
from tests.support import tools
from tests.support.runner import run_boundary, spawn_boundary

REQUEST = "curl -sS --max-time 20 -o /dev/null https://allowed.test/hello"
FORGED = '{"decision": "allow", "forged": true}'

# `try NAME CMD...` prints `NAME=ok` or `NAME=failed: <what the command said>`, one line.
PRELUDE = """\
try() { name=$1; shift; if out=$("$@" 2>&1); then echo "$name=ok"; else echo "$name=failed: $(echo $out)"; fi; }
"""


@dataclass(frozen=True)
class Place:
    """workdir/top/logs/audit.jsonl: `top` and `logs` are the workload's to write (mode 0777)."""

    top: Path

    @property
    def logs(self) -> Path:
        return self.top / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "audit.jsonl"


@pytest.fixture
def place(jail: Jailer) -> Place:
    found = Place(jail.workdir / "top")
    found.logs.mkdir(parents=True)
    for directory in (found.top, found.logs):
        directory.chmod(0o777)
    return found


def with_log(jail: Jailer, log: str | None, command: Sequence[str]) -> list[str]:
    """`jail.args(command)` with `--log LOG`, or without `--log` (the default place) when LOG is None."""
    args = jail.args(command)
    at = args.index("--log")
    return args[:at] + ([] if log is None else ["--log", log]) + args[at + 2 :]


def results(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def assert_the_runs_own_lines(path: Path) -> None:
    """The path holds boundary's lines of one run, the request made after the attack among them; nothing forged."""
    text = path.read_text()
    assert "forged" not in text, text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len({line["run"] for line in lines}) == 1, lines
    assert any(line["host"] == "allowed.test" and line["path"] == "/hello" for line in lines), lines


ATTACKS = {
    # Rename the log's own directory away, make a new one, put a forged log at the path.
    "directory": "try rename mv {logs} {logs}.old\nmkdir -p {logs}\necho '{forged}' > {log}",
    # The same one level up: the log's directory moves along with its parent.
    "parent": "try rename mv {top} {top}.old\nmkdir -p {logs}\necho '{forged}' > {log}",
    # The file itself (a read-only mount already): rename it, or remove it, and write a new one.
    "file": "try rename mv {log} {logs}/moved.jsonl\ntry remove rm -f {log}\necho '{forged}' > {log}",
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_logs_path_cannot_be_given_to_another_file_from_inside(
    jail: Jailer, witnesses: Witnesses, place: Place, attack: str
) -> None:
    """Attack: with `--log DIR/audit.jsonl` in a directory the workload may write, rename DIR (or its parent, or
    the file) away and write a forged log where the run's was, so that after the run the path boundary named
    holds only the forgery. Every directory on the way is a mount point in the jail: the rename fails (EBUSY),
    the run's lines stay at the path, and a request made afterwards is logged there too."""
    script = PRELUDE + ATTACKS[attack].format(top=place.top, logs=place.logs, log=place.log, forged=FORGED)
    result = run_boundary(
        with_log(jail, str(place.log), ["sh", "-c", f"{script}\n{REQUEST}"]),
        rootless=jail.rootless,
        expose=[jail.workdir],
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    assert results(stdout)["rename"].startswith("failed"), stdout
    assert_the_runs_own_lines(place.log)
    assert not place.top.with_name("top.old").exists() and not place.logs.with_name("logs.old").exists()
    witnesses.assert_nothing_escaped()


def test_a_nested_user_namespace_cannot_unpin_the_logs_directory(
    jail: Jailer, witnesses: Witnesses, place: Place
) -> None:
    """Attack: in a user and mount namespace of its own (rootless, the workload then has every capability
    there), unmount what keeps the log's directory in place and rename it. The jail's mounts come into that
    namespace locked together: the unmount fails and so does the rename. (Root's workload cannot even map uid 0
    in a nested user namespace; the attempt then fails earlier.)"""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    nested = (
        f"umount -l {place.log} 2>/dev/null; umount -l {place.logs} 2>/dev/null; umount -l {place.top} 2>/dev/null;"
        f" mv {place.logs} {place.logs}.old && mkdir {place.logs} && echo '{FORGED}' > {place.log}"
    )
    script = PRELUDE + f"try rename unshare -Urm sh -c {shlex.quote(nested)}\n{REQUEST}"
    result = run_boundary(
        with_log(jail, str(place.log), ["sh", "-c", script]), rootless=jail.rootless, expose=[jail.workdir]
    )
    stdout = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert results(stdout)["rename"].startswith("failed"), stdout
    if jail.rootless:
        assert "Device or resource busy" in results(stdout)["rename"], stdout
    assert_the_runs_own_lines(place.log)
    witnesses.assert_nothing_escaped()


def test_a_project_that_holds_its_log_stays_writable_and_keeps_the_log(
    jail: Jailer, witnesses: Witnesses, place: Place
) -> None:
    """`cd DIR && boundary run --log audit.jsonl`: the log's directory is the working directory. The project
    stays the workload's to write (nothing became read-only but the log), and renaming the project away to
    leave a forged log at the path fails."""
    script = PRELUDE + (
        "echo work > made.txt\n"
        f"try rename mv {place.logs} {place.logs}.old\n"
        f"mkdir -p {place.logs}\necho '{FORGED}' > {place.log}\n{REQUEST}"
    )
    result = run_boundary(
        with_log(jail, "audit.jsonl", ["sh", "-c", script]),
        rootless=jail.rootless,
        cwd=place.logs,
        expose=[jail.workdir],
    )
    stdout = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert (place.logs / "made.txt").read_text() == "work\n"
    assert results(stdout)["rename"].startswith("failed"), stdout
    assert_the_runs_own_lines(place.log)
    witnesses.assert_nothing_escaped()


def test_the_default_places_directories_cannot_be_renamed_from_inside(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: without `--log` the log is $XDG_STATE_HOME/boundary/runs/<run>.jsonl, and `runs` is a read-only
    mount, but `boundary` above it is the invoker's: rename it away, make a new `runs` with a forged log under
    the name boundary prints at the end. The directories on the way are pinned: the rename fails."""
    state = jail.workdir / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)
    runs = state / "boundary" / "runs"
    script = PRELUDE + (
        f"log=$(ls {runs}/*.jsonl)\n"
        f"try rename mv {state}/boundary {state}/boundary.old\n"
        f"mkdir -p {runs}\necho '{FORGED}' > \"$log\"\n{REQUEST}"
    )
    result = run_boundary(
        with_log(jail, None, ["sh", "-c", script]),
        rootless=jail.rootless,
        env={"XDG_STATE_HOME": str(state)},
        expose=[jail.workdir],
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr
    assert results(stdout)["rename"].startswith("failed"), stdout
    [log] = runs.glob("*.jsonl")
    assert f"boundary: audit log: {log}" in stderr
    assert_the_runs_own_lines(log)
    witnesses.assert_nothing_escaped()


@pytest.fixture
def hidden_target(rootless: bool) -> Iterator[Path]:
    """A directory only the user boundary runs as may write, where no workload can: mode 0700, in /tmp (which
    the jail covers). As root that is a root-only directory."""
    path = Path(tempfile.mkdtemp(prefix="boundary-escape-target-", dir="/tmp"))
    path.chmod(0o700)
    if rootless and tools.is_root():
        os.chown(path, *tools.rootless_identity())
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_link_planted_on_the_logs_path_stops_the_next_run(
    jail: Jailer, witnesses: Witnesses, place: Place, hidden_target: Path
) -> None:
    """Attack: one run's workload replaces the log's directory with a symlink to a directory it cannot reach
    (root's own, as root), so that the next run with the same `--log` has boundary create and append its files
    there. The next run refuses to start: a clear error quoting the path and the link, exit 125, the command
    never runs, and nothing is written through the link."""
    plant = PRELUDE + f"rm -rf {place.logs}\ntry plant ln -s {hidden_target} {place.logs}"
    first = run_boundary(
        with_log(jail, str(jail.workdir / "first.jsonl"), ["sh", "-c", plant]),
        rootless=jail.rootless,
        expose=[jail.workdir],
    )
    assert results(first.stdout.decode())["plant"] == "ok", first.stderr.decode()
    assert place.logs.is_symlink()

    ran = jail.workdir / "ran"
    second = run_boundary(
        with_log(jail, str(place.log), ["sh", "-c", f"touch {ran}"]), rootless=jail.rootless, expose=[jail.workdir]
    )
    stderr = second.stderr.decode()
    assert second.returncode == 125, stderr
    assert stderr.startswith(f"boundary: cannot open audit log '{place.log}': '{place.logs}' is a symbolic link "), (
        stderr
    )
    assert not ran.exists()
    assert list(hidden_target.iterdir()) == []
    witnesses.assert_nothing_escaped()


def test_a_log_replaced_from_outside_during_the_run_ends_it_loudly(
    jail: Jailer, witnesses: Witnesses, place: Place
) -> None:
    """What the jail cannot stop (a process on the host renames the log's directory and leaves a forged log at
    the path while the run goes on) is caught at the end: the path no longer leads to the file the run wrote, so
    boundary says so and where that file is now, and exits 125 instead of the command's 0."""
    ready, go = jail.workdir / "ready", jail.workdir / "go"
    script = f"touch {ready}; i=0; while [ ! -e {go} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; {REQUEST}"
    proc = spawn_boundary(
        with_log(jail, str(place.log), ["sh", "-c", script]), rootless=jail.rootless, expose=[jail.workdir]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=10)
        moved = place.logs.with_name("logs.old")
        place.logs.rename(moved)
        place.logs.mkdir()
        place.log.write_text(FORGED + "\n")
        go.touch()
        _stdout, stderr_bytes = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    stderr = stderr_bytes.decode()
    assert proc.returncode == 125, stderr
    assert (
        f"boundary: audit log '{place.log}' was replaced during the run; the run's log is not at that path:"
        f" the file it wrote is now '{moved.resolve() / 'audit.jsonl'}'"
    ) in stderr
    assert "(the command exited with 0)" in stderr
    assert_the_runs_own_lines(moved / "audit.jsonl")
    witnesses.assert_nothing_escaped()
