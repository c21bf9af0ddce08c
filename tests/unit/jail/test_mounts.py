"""The host lookup the mount plan is built from (boundary/jail/mounts.py); the mounts themselves are carried
out in real jails by tests/integration/jail/test_mounts.py."""

from __future__ import annotations

import socket
from pathlib import Path

from boundary.jail.mounts import home_sockets, host_path
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


def _socket_at(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


def test_home_sockets_are_found_in_the_known_places_to_their_depth(tmp_path: Path) -> None:
    """Sockets under ~/.ssh, ~/.docker, ... are found (SSH ControlMaster, Docker Desktop); not regular files,
    not sockets deeper than the place's depth, not sockets elsewhere in the home."""
    home = tmp_path / "home"
    found = [
        _socket_at(home / ".ssh" / "cm-git@example.com:22"),
        _socket_at(home / ".docker" / "desktop" / "docker.sock"),
        _socket_at(home / ".gnupg" / "S.gpg-agent"),
    ]
    ignored = [_socket_at(home / ".ssh" / "a" / "b" / "deep.sock"), _socket_at(home / "project" / "app.sock")]
    (home / ".ssh" / "config").write_text("Host *\n")
    try:
        assert sorted(home_sockets(str(home))) == sorted(
            str((home / p).resolve())
            for p in (".ssh/cm-git@example.com:22", ".docker/desktop/docker.sock", ".gnupg/S.gpg-agent")
        )
    finally:
        for sock in found + ignored:
            sock.close()


def test_no_home_no_sockets(tmp_path: Path) -> None:
    """An unset, relative or empty home has nothing to scan."""
    assert home_sockets(None) == home_sockets("") == home_sockets("relative/home") == []
    assert home_sockets(str(tmp_path)) == []
