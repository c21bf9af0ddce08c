"""The one exception family: every error boundary reports is a BoundaryError, which only the CLI translates
(`boundary: <message>`; see tests/unit/test_cli.py for the exit codes)."""

from __future__ import annotations

import pytest

from boundary import errors


@pytest.mark.parametrize(
    "kind",
    [errors.PolicyError, errors.CasesError, errors.UsageError, errors.ProxyError, errors.JailError, errors.LogError],
)
def test_every_error_kind_is_a_boundary_error_and_keeps_its_message(kind: type[errors.BoundaryError]) -> None:
    """Catching BoundaryError catches each kind; the message is shown to the user as given."""
    with pytest.raises(errors.BoundaryError) as info:
        raise kind("p.yaml:3: allow[0].ports: port 'x' is not a number")
    assert str(info.value) == "p.yaml:3: allow[0].ports: port 'x' is not a number"


def test_the_family_is_exactly_these_kinds() -> None:
    """A new kind must be added here on purpose (and translated by the CLI like the others)."""
    kinds = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    assert kinds == {"BoundaryError", "PolicyError", "CasesError", "UsageError", "ProxyError", "JailError", "LogError"}
