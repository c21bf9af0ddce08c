"""Fixtures of the cli tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.test_cli import POLICY


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """A valid policy file."""
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    return path
