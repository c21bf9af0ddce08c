"""The terminal is the workload's: it reads the keyboard, and Ctrl-C interrupts it (not boundary)."""

from __future__ import annotations

import os
import select
import time

from tests.e2e.conftest import Jailer
from tests.support.runner import boundary_on_terminal

# Reads one line from the terminal, echoes it, then waits to be interrupted. The whole script is inside the
# `try`: Ctrl-C may arrive the moment the echo is out, before a later `try` would have been entered.
WORKLOAD = r"""
import sys, time
try:
    line = sys.stdin.readline()
    print("got:" + line.strip(), flush=True)
    while True:
        time.sleep(0.1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def _read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} not seen on the terminal; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_workload_reads_the_terminal_and_ctrl_c_reaches_it(jail: Jailer) -> None:
    """Typed input reaches the jailed command; Ctrl-C on the terminal interrupts it and boundary exits 130."""
    command = ["python3", "-c", WORKLOAD]
    with boundary_on_terminal(jail.args(command), rootless=jail.rootless, expose=[jail.workdir]) as run:
        _read_until(run.master, b"boundary: run ")
        time.sleep(1.0)  # let the workload start reading
        os.write(run.master, b"hello jail\n")
        _read_until(run.master, b"got:hello jail")
        os.write(run.master, b"\x03")
        _read_until(run.master, b"interrupted")
        assert run.proc.wait(timeout=30) == 130
