"""The jail's process choreography (boundary/jail/helper.py), run for real as root and rootless.

The driver calls `start_jail` the way boundary does and exits with the helper's status; the workload is a
shell command whose output the tests read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import pytest

from boundary.jail.plan import HOSTS, RESOLV_CONF
from tests.integration.jail.conftest import DRIVER, JailRunner, probe_argv, split_events
from tests.support import tools
from tests.support.runner import spawn_python


def _expected_ids(rootless: bool) -> tuple[int, int]:
    return tools.rootless_identity() if rootless else (os.getuid(), os.getgid())


@pytest.mark.parametrize(
    ("command", "code"),
    [
        pytest.param(["sh", "-c", "exit 7"], 7, id="exit-7"),
        pytest.param(["sh", "-c", "exit 0"], 0, id="exit-0"),
        pytest.param(["sh", "-c", "kill -9 $$"], 137, id="sigkill-is-137"),
        pytest.param(["sh", "-c", "kill -TERM $$"], 143, id="sigterm-is-143"),
    ],
)
def test_the_workloads_exit_status_passes_through(jail: JailRunner, command: list[str], code: int) -> None:
    """The helper exits with the workload's code, or 128+N when the workload died from signal N."""
    run = jail.run(command)
    assert run.returncode == code, run.describe()
    assert [e["code"] for e in run.events_of("exited")] == [code]


def test_a_command_that_cannot_be_executed_exits_127_with_its_name(jail: JailRunner) -> None:
    """exec failing in the jail gives 127 and one line that names the command. (The reason is execvp's: as
    the rootless user, a PATH entry it may not search makes it EACCES rather than ENOENT.)"""
    run = jail.run(["no-such-command-in-the-jail"])
    assert run.returncode == 127, run.describe()
    assert run.stderr in {
        f"boundary: cannot run 'no-such-command-in-the-jail': {reason}\n"
        for reason in ("No such file or directory", "Permission denied")
    }


def test_a_working_directory_missing_in_the_jail_exits_125_naming_it(jail: JailRunner) -> None:
    """If the workload cannot enter its working directory it does not run: 125 and a message naming the
    directory."""
    run = jail.run(["sh", "-c", "echo ran"], ["--cwd", "/nonexistent-boundary-cwd"])
    assert run.returncode == 125, run.describe()
    assert "ran" not in run.stdout
    assert run.stderr == (
        "boundary: cannot start the workload: jail set-up failed: /nonexistent-boundary-cwd: "
        "No such file or directory\n"
    )


def test_the_workload_is_alone_in_its_pid_namespace_under_the_jails_init(jail: JailRunner) -> None:
    """PID 1 is the jail's init (a fork of the driver), the shell is PID 2, and /proc lists only the jail's
    few processes: nothing of the host, boundary included, is visible."""
    run = jail.shell(
        'echo "pid=$$"\n'
        "echo \"init=$(tr '\\0' ' ' </proc/1/cmdline)\"\n"
        "echo \"pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ')\"\n"
    )
    assert run.value("pid") == "2", run.describe()
    assert str(DRIVER) in run.value("init")
    pids = [int(p) for p in run.value("pids").split()]
    assert 1 in pids and 2 in pids
    assert len(pids) <= 8 and max(pids) < 20, pids  # init, sh and the subshells of this script
    [started] = run.events_of("started")
    assert started["helper_pid"] not in pids and started["init_pid"] not in pids


def test_the_workload_leads_its_own_process_group(jail: JailRunner) -> None:
    """The workload gets a process group of its own (so a terminal's job control treats it as a job)."""
    run = jail.shell('echo "pgrp=$(cut -d \' \' -f 5 /proc/$$/stat)"; echo "pid=$$"')
    assert run.value("pgrp") == run.value("pid"), run.describe()


def test_ids_inside_are_the_invokers_through_an_identity_map(jail: JailRunner, rootless: bool) -> None:
    """`id` inside is the invoker's uid and gid (root: 0, rootless: the unprivileged user), and the user
    namespace maps each id to itself."""
    run = jail.shell(
        'echo "uid=$(id -u)"; echo "gid=$(id -g)"\n'
        'sed "s/^/uid_map: /" /proc/self/uid_map; sed "s/^/gid_map: /" /proc/self/gid_map\n'
    )
    uid, gid = _expected_ids(rootless)
    assert (int(run.value("uid")), int(run.value("gid"))) == (uid, gid), run.describe()
    assert [line.split() for line in run.lines("uid_map: ")] == [[str(uid), str(uid), "1"]]
    assert [line.split() for line in run.lines("gid_map: ")] == [[str(gid), str(gid), "1"]]


def test_resolv_conf_names_only_the_jails_dns(jail: JailRunner) -> None:
    """The generated resolv.conf is bound over /etc/resolv.conf: the only nameserver is 127.0.0.1."""
    run = jail.run(["cat", "/etc/resolv.conf"])
    assert run.stdout == RESOLV_CONF, run.describe()
    assert [line for line in run.stdout.splitlines() if line.startswith("nameserver")] == ["nameserver 127.0.0.1"]


def test_hosts_names_only_localhost(jail: JailRunner) -> None:
    """The generated hosts file is bound over /etc/hosts: only the loopback addresses, only localhost names."""
    run = jail.run(["cat", "/etc/hosts"])
    assert run.stdout == HOSTS, run.describe()
    entries = [line.split() for line in run.stdout.splitlines() if line and not line.startswith("#")]
    assert {entry[0] for entry in entries} == {"127.0.0.1", "::1"}
    assert {name for entry in entries for name in entry[1:]} <= {"localhost", "ip6-localhost", "ip6-loopback"}


def test_a_failed_set_up_raises_jail_error_and_leaves_nothing_running(jail: JailRunner) -> None:
    """A bind whose target does not exist makes start_jail raise JailError with a message naming the source
    and the target; the workload never ran, and the driver has no child left (the helper was reaped)."""
    missing = f"/var/tmp/boundary-missing-{secrets.token_hex(4)}"
    run = jail.run(["sh", "-c", "echo ran"], ["--bind", f"/etc/hosts={missing}"])
    assert run.returncode == 125, run.describe()
    [error] = run.events_of("jail-error")
    assert error["message"] == f"cannot bind '/etc/hosts' on '{missing}' in the jail: No such file or directory"
    assert error["leftovers"] == []
    assert run.events_of("started") == []
    assert "ran" not in run.stdout


def test_signals_sent_to_the_jail_reach_the_workload(jail: JailRunner) -> None:
    """Jail.signal(SIGTERM) goes to the jail's init, which forwards it to the workload (whose trap runs)."""
    ask = shlex.join(probe_argv(["signal", "TERM"]))
    run = jail.shell(f"trap 'echo got-term; exit 42' TERM\n{ask}\nsleep 10 & wait\necho not-signalled\n")
    assert run.returncode == 42, run.describe()
    assert "got-term" in run.stdout
    assert "not-signalled" not in run.stdout
    [reply] = run.probes()
    assert reply["reply"] == "ok"


# --- the jail dies with its parent ------------------------------------------------------------------------


def _read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from a pipe, or b"" at EOF; fails the test if nothing comes before the deadline."""
    fd = stream.fileno()
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no output before the deadline (got {line!r})"
        chunk = os.read(fd, 1)
        if not chunk:
            return line
        line += chunk
    return line


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie waiting for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _processes_with_argv(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv) + "\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_text() == wanted:
                    found.append(int(entry.name))
    return found


def test_killing_the_jails_parent_with_sigkill_kills_everything_in_the_jail(rootless: bool) -> None:
    """When boundary (here the driver) dies by SIGKILL, the helper and init die (PDEATHSIG) and the kernel
    kills every process left in the pid namespace: the workload, its children and orphans reparented to
    init. Nothing survives."""
    sleep = ["sleep", f"{30 + secrets.randbelow(10**6) / 10**6:.6f}"]  # a tag no other process carries
    script = f"({shlex.join(sleep)} &); {shlex.join(sleep)} & echo ready; wait"
    proc = spawn_python([DRIVER, "--", "sh", "-c", script], rootless=rootless)
    started: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        deadline = time.monotonic() + 20
        assert _read_line(proc.stdout, deadline) == b"ready\n"
        _, [started] = split_events(_read_line(proc.stderr, deadline).decode())
        jail_pids = [started["helper_pid"], started["init_pid"]]
        assert all(_alive(pid) for pid in jail_pids)
        while len(_processes_with_argv(sleep)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # "ready" may come before both forks have exec'd sleep
        assert len(_processes_with_argv(sleep)) == 2, "the orphan and the child should both be running"

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while (_processes_with_argv(sleep) or any(_alive(pid) for pid in jail_pids)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _processes_with_argv(sleep) == []
        assert not any(_alive(pid) for pid in jail_pids)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)
        if started is not None:
            shutil.rmtree(started["rundir"], ignore_errors=True)  # the killed driver could not
