"""The host lookup the mount plan is built from (boundary/jail/mounts.py); the mounts themselves are carried
out in real jails by tests/integration/jail/test_mounts.py."""

from __future__ import annotations

from pathlib import Path

from boundary.jail.mounts import host_path
from boundary.jail.plan import HostPath


def test_a_directory_and_a_file_are_found_as_such(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert host_path(str(tmp_path)) == HostPath(str(tmp_path.resolve()), "dir")
    assert host_path(str(tmp_path / "f")) == HostPath(str(tmp_path.resolve() / "f"), "file")


def test_a_missing_path_is_missing(tmp_path: Path) -> None:
    assert host_path(str(tmp_path / "none")) == HostPath(str(tmp_path.resolve() / "none"), "missing")


def test_symlinks_are_resolved_to_the_real_place(tmp_path: Path) -> None:
    """Every link on the way is followed, so a tree reached through a link (/var/run -> /run) is one tree."""
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    assert host_path(str(tmp_path / "link" / "sub")) == HostPath(str(real.resolve() / "sub"), "dir")


def test_a_dangling_link_resolves_to_where_it_points(tmp_path: Path) -> None:
    """/etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf with nothing there yet: the plan learns the
    real place (and makes the file there inside the jail's fresh /run)."""
    (tmp_path / "resolv.conf").symlink_to(tmp_path / "run" / "stub.conf")
    found = host_path(str(tmp_path / "resolv.conf"))
    assert found == HostPath(str(tmp_path.resolve() / "run" / "stub.conf"), "missing")
