"""The unix canary (tests/support/unixcanary.py) counts what reaches it, by path and by abstract name."""

from __future__ import annotations

import os
import secrets
import socket
import stat
from pathlib import Path

import pytest

from tests.support.unixcanary import UnixCanary


def _connect(address: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(address)
        return sock.makefile("rb").readline()


def test_a_filesystem_canary_counts_connections_and_removes_its_socket(tmp_path: Path) -> None:
    """Each connection is counted and answered; the socket is open to every uid and gone after close."""
    path = str(tmp_path / "s")
    with UnixCanary(path=path) as canary:
        assert canary.hits == 0
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o777
        assert _connect(path) == b"canary\n"
        assert _connect(path) == b"canary\n"
        assert canary.hits == 2
    assert not os.path.lexists(path)


def test_an_abstract_canary_listens_on_its_name() -> None:
    name = f"boundary-test-{secrets.token_hex(4)}"
    with UnixCanary(abstract=name) as canary:
        assert _connect("\0" + name) == b"canary\n"
        assert canary.hits == 1


def test_exactly_one_address_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        UnixCanary()
