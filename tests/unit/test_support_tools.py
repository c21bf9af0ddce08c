"""tests/support/tools.py: paths, identities and the CI skip policy's pure parts."""

from __future__ import annotations

import os

import pytest

from tests.support import tools


def test_repo_root_is_the_checkout() -> None:
    root = tools.repo_root()
    assert (root / "pyproject.toml").is_file()
    assert (root / "tests" / "support" / "tools.py").is_file()


def test_venv_dir_honours_the_same_override_as_scripts_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNDARY_VENV", "/somewhere/venv")
    assert str(tools.venv_python()) == "/somewhere/venv/bin/python"
    monkeypatch.delenv("BOUNDARY_VENV")
    assert tools.venv_dir() == tools.repo_root() / ".venv"


def test_setpriv_drops_groups_and_capabilities() -> None:
    argv = tools.setpriv_argv(65534, 65534)
    assert argv == ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"]


def test_rootless_identity_is_never_root() -> None:
    uid, _gid = tools.rootless_identity()
    assert uid != 0 or os.geteuid() != 0
    if os.geteuid() != 0:
        assert (uid, _gid) == (os.getuid(), os.getgid())


def test_require_tool_finds_sbin_tools_and_skips_missing_ones() -> None:
    assert tools.require_tool("sh").is_absolute()
    with pytest.raises(pytest.skip.Exception, match="needs 'no-such-tool-here'"):
        tools.require_tool("no-such-tool-here")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("", False), ("false", False), ("0", False)],
)
def test_ci_enabled(value: str, expected: bool) -> None:
    assert tools.ci_enabled({"CI": value}) is expected


def test_ci_is_off_without_the_variable() -> None:
    assert tools.ci_enabled({}) is False


def test_skip_reason_unpacks_pytests_skip_tuple() -> None:
    assert tools.skip_reason(("/x/test_a.py", 3, "Skipped: needs root")) == "needs root"
    assert tools.skip_reason("plain") == "plain"
