"""Process behaviour: signals reach the workload; nothing outlives boundary, even after `kill -9`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import Jailer
from tests.support.runner import spawn_boundary


def _boundary_pid(jail: Jailer) -> int:
    """The boundary process itself: of the processes with this run's argv (boundary, helper, init — forks
    share it), the one whose parent is not among them."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["pgrep", "-f", "--", f"--log {jail.audit_path}"], capture_output=True, text=True
        ).stdout.split()
        pids = {int(p) for p in found}
        if len(pids) >= 3:
            parents = {pid: int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in pids}
            return next(pid for pid, parent in parents.items() if parent not in pids)
        time.sleep(0.05)
    raise AssertionError("boundary did not start")


def _alive(marker: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", "--", marker], capture_output=True, text=True).stdout.split()


def test_sigterm_reaches_the_workload(jail: Jailer) -> None:
    """SIGTERM to boundary is passed to the workload, whose death by it gives 128+15."""
    ready = jail.workdir / "ready"
    proc = spawn_boundary(
        jail.args(["sh", "-c", f"touch {ready}; exec sleep 300"]), rootless=jail.rootless, expose=[jail.workdir]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # let `exec sleep` happen
        os.kill(_boundary_pid(jail), signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_of_boundary_leaves_nothing_behind(jail: Jailer) -> None:
    """`kill -9` of boundary kills the workload and its background children: no process is left."""
    marker = f"sleep 3{os.getpid() % 1000:03d}"
    ready = jail.workdir / "ready"
    command = ["sh", "-c", f"{marker} & {marker} & touch {ready}; wait"]
    proc = spawn_boundary(jail.args(command), rootless=jail.rootless, expose=[jail.workdir])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_alive(marker)) >= 2
        os.kill(_boundary_pid(jail), signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(marker) == []
        assert _alive(f"--log {jail.audit_path}") == []
    finally:
        proc.kill()
        proc.wait()
