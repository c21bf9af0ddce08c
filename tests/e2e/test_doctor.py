"""`boundary doctor` on this machine, for real: as root and as an unprivileged user, every check says ok
(this machine runs boundary both ways), the self-test jail included, and the exit status is 0."""

from __future__ import annotations

import pytest

from boundary.run.doctor import CHECKS
from tests.e2e.conftest import MODES
from tests.support.runner import run_boundary


@pytest.mark.parametrize("rootless", MODES)
def test_doctor_says_ready(rootless: bool) -> None:
    """One `ok` line per check in table order, then `ready`, exit 0; nothing on stderr."""
    result = run_boundary(["doctor"], rootless=rootless, timeout=180)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    lines = out.splitlines()
    assert len(lines) == len(CHECKS) + 1, out
    for check, line in zip(CHECKS, lines, strict=False):
        assert line.startswith(f"ok    {check.name}: "), line
    assert lines[-1] == "ready"
    assert result.stderr == b""
