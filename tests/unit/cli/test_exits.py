"""Specification of how a failure leaves the command line (boundary/cli/exits.py): one `boundary: ...` line on
stderr and the exit status of the group it happened in; a bug is one line too, its trace on request."""

from __future__ import annotations

import click
import pytest

from boundary.cli.exits import EXIT_BOUNDARY_FAILED, EXIT_POLICY_ERROR, CommandFailed, ErrorExitGroup, fail
from boundary.errors import PolicyError


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (PolicyError("p.yaml:3: allow[0].domain: invalid host name 'x y'"), "boundary: p.yaml:3: allow[0]"),
        (click.exceptions.Abort(), "boundary: aborted"),
        (KeyError("oops"), "boundary: internal error: KeyError: 'oops' (set BOUNDARY_DEBUG=1 for a trace)"),
    ],
)
def test_a_failure_is_one_line_and_the_exit_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: Exception, said: str
) -> None:
    monkeypatch.delenv("BOUNDARY_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        fail(error, EXIT_BOUNDARY_FAILED)
    assert exited.value.code == EXIT_BOUNDARY_FAILED
    assert capsys.readouterr().err.splitlines()[0].startswith(said)


def test_a_failure_inside_an_error_exit_group_carries_its_status() -> None:
    @click.group(cls=ErrorExitGroup, error_exit=EXIT_POLICY_ERROR)
    def group() -> None:
        pass

    @group.command()
    def broken() -> None:
        raise PolicyError("bad")

    with pytest.raises(CommandFailed) as failed:
        group.main(["broken"], standalone_mode=False)
    assert (failed.value.exit_code, str(failed.value.error)) == (EXIT_POLICY_ERROR, "bad")
