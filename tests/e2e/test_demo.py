"""scripts/demo, the README's first command, does what it says."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.tools import repo_root


@pytest.mark.root
def test_demo_shows_an_allowed_and_a_denied_request_and_the_audit_lines() -> None:
    """The demo's allowed request gets the upstream's answer, the denied ones get 403, and the audit log
    it prints has an allow line and deny lines."""
    result = subprocess.run(
        [str(repo_root() / "scripts" / "demo")], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "hello from the demo upstream: GET /hello" in out
    assert "x-boundary-reason: path-not-allowed" in out
    assert '"decision": "allow"' in out and '"reason": "method-not-allowed"' in out
    assert '"host": "example.com"' in out and '"reason": "no-matching-rule"' in out
