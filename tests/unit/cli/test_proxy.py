"""Specification of `boundary proxy`'s command line: help that says what it is weaker at, bad input as one
`boundary: ...` line and exit 125 before anything listens."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.test_cli import EXIT_BOUNDARY_FAILED, boundary


def test_proxy_help_has_examples_and_says_it_is_weaker_than_run(tmp_path: Path) -> None:
    result = boundary("proxy", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Examples:" in result.stdout and "Weaker than `boundary run`" in result.stdout


def test_a_non_loopback_listen_address_is_refused_before_anything_starts(tmp_path: Path, policy: Path) -> None:
    ca = tmp_path / "ca.pem"
    result = boundary("proxy", "--policy", str(policy), "--listen", "0.0.0.0:8080", "--ca-cert", str(ca), cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr.splitlines() == [
        "boundary: --listen '0.0.0.0:8080': only a loopback address: a proxy others can reach is an open proxy"
        " (--allow-remote with --token-file to mean it)"
    ]
    assert not ca.exists()
