"""`boundary log` on the log of a real `boundary run`: what the proxy wrote reads back as the table."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import Jailer
from tests.support import tools


def test_boundary_log_shows_a_real_runs_allowed_and_denied_requests(jail: Jailer) -> None:
    """One allowed and one denied request through the jail: two rows, in order, and no problem (exit 0)."""
    script = "curl -sS -o /dev/null --max-time 20 https://allowed.test/hello; "
    script += "curl -sS -o /dev/null --max-time 20 https://denied.test/nope"
    run = jail.run(["sh", "-c", script])
    assert run.result.returncode == 0, run.stderr
    shown = subprocess.run(
        [str(tools.venv_python()), "-m", "boundary", "log", "--color", "never", str(jail.audit_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (shown.returncode, shown.stderr) == (0, "")
    header, *rows = shown.stdout.splitlines()
    assert header.split() == ["TIME", "DECISION", "METHOD", "HOST", "PATH", "REASON", "RULE"]
    assert [row.split()[1:6] for row in rows] == [
        ["allow", "GET", "allowed.test", "/hello", "allowed"],
        ["deny", "GET", "denied.test", "/nope", "no-matching-rule"],
    ]
    assert rows[0].split()[6].endswith("policy.yaml:3") and rows[1].split()[6] == "-"
