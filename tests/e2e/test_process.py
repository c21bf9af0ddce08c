"""Process behaviour: signals reach the workload. (That nothing outlives boundary, even after `kill -9`, is an
escape probe: tests/escape/test_process.py.)"""

from __future__ import annotations

import os
import signal
import time

from tests.e2e.conftest import Jailer
from tests.support.runner import boundary_pid, spawn_boundary


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
        os.kill(boundary_pid(f"--log {jail.audit_path}"), signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
