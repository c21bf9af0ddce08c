"""Specification of `boundary doctor`'s command line: one line per check and a verdict, exit 1 when a check
failed (the checks themselves: tests/unit/run/test_doctor.py; the real self-test: tests/e2e/test_doctor.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from boundary.cli import main_group
from boundary.run import doctor as checks
from boundary.run.doctor import Check, Result


@pytest.mark.parametrize(("statuses", "code"), [(("ok", "warn"), 0), (("ok", "FAIL"), 1)])
def test_doctor_prints_every_check_and_exits_by_the_worst(
    monkeypatch: pytest.MonkeyPatch, statuses: tuple[checks.Status, ...], code: int
) -> None:
    table = tuple(
        Check(f"check {index}", lambda status=status: Result(status, "found")) for index, status in enumerate(statuses)
    )
    monkeypatch.setattr(checks, "CHECKS", table)
    result = CliRunner().invoke(main_group, ["doctor"])
    lines = result.output.splitlines()
    assert [line.split(":")[0].split()[-2:] for line in lines[:2]] == [["check", "0"], ["check", "1"]]
    assert lines[-1] == checks.summary([Result(status, "found") for status in statuses])
    assert result.exit_code == code


def test_doctor_help_names_what_it_checks(tmp_path: Path) -> None:
    result = CliRunner().invoke(main_group, ["doctor", "--help"])
    assert result.exit_code == 0 and "self-test jail" in result.output
