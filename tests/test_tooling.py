"""Strict tooling is part of the suite, so pytest (scripts/test, .ci/run) is the one entry point.

Each check runs the tool as a subprocess from the repo root and fails with the tool's own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import repo_root, require_tool


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, cwd=repo_root(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def _shell_scripts() -> list[Path]:
    root = repo_root()
    candidates = [p for folder in ("scripts", ".ci") for p in sorted((root / folder).glob("*")) if p.is_file()]
    scripts = []
    for path in candidates:
        with path.open("rb") as f:
            first = f.readline()
        if first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh")):
            scripts.append(path)
    return scripts


def test_ruff_check() -> None:
    """ruff's lint rules (pyproject's selection) pass on the package and the tests."""
    _run([sys.executable, "-m", "ruff", "check", "boundary", "tests", "scripts"])


def test_ruff_format() -> None:
    """The package and the tests are ruff-formatted."""
    _run([sys.executable, "-m", "ruff", "format", "--check", "boundary", "tests", "scripts"])


def test_mypy_strict_on_the_package() -> None:
    """mypy with pyproject's configuration (strict, on the boundary package)."""
    _run([sys.executable, "-m", "mypy"])


def test_mypy_strict_on_the_test_support_code() -> None:
    """The shared test machinery is held to the same standard as the package."""
    _run([sys.executable, "-m", "mypy", "--strict", "tests/support", "tests/conftest.py"])


def test_there_are_shell_scripts_to_check() -> None:
    names = {p.name for p in _shell_scripts()}
    assert {"setup", "test", "run"} <= names


@pytest.mark.parametrize("script", _shell_scripts(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shell_script_parses(script: Path) -> None:
    _run(["bash", "-n", str(script)])


@pytest.mark.parametrize("script", _shell_scripts(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shellcheck(script: Path) -> None:
    """shellcheck (installed by scripts/setup --with-test-tools) finds nothing."""
    _run([str(require_tool("shellcheck")), str(script)])
