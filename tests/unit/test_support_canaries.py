"""The UDP and unix canaries hear what is sent to them, and only that; the unix canary answers each connection
(real sockets, loopback only)."""

from __future__ import annotations

import os
import socket
import stat
import time
import uuid
from pathlib import Path

import pytest

from tests.support.canaries import UdpCanary, UnixCanary, received_so_far


def _wait_for(predicate: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_canary_records_each_datagram_with_its_sender(host: str) -> None:
    with (
        UdpCanary(host) as canary,
        socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s,
    ):
        assert canary.heard == []
        s.sendto(b"one", (host, canary.port))
        s.sendto(b"two", (host, canary.port))
        _wait_for(lambda: len(canary.heard) == 2)
        assert [(h.peer, h.data) for h in canary.heard] == [(host, b"one"), (host, b"two")]


def _exchange(address: str, send: bytes = b"") -> bytes:
    """Connect, send ``send`` if any, read the canary's one line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        s.sendall(send)
        return s.makefile("rb").readline()


def test_unix_canary_on_a_path_is_connectable_by_anyone_and_removed_on_close(tmp_path: Path) -> None:
    """Each connection is recorded with what the client sent, then answered; the socket is open to every uid and
    gone after close."""
    path = tmp_path / "canary.sock"
    with UnixCanary(str(path)) as canary:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o777
        assert canary.heard == []
        assert _exchange(str(path), b"hello") == b"canary\n"
        assert _exchange(str(path)) == b"canary\n"
        assert [(h.peer, h.data) for h in canary.heard] == [(str(path), b"hello"), (str(path), b"")]
    assert not path.exists()


def test_unix_canary_records_a_connection_before_answering_it(tmp_path: Path) -> None:
    """A client that has read the answer is already in ``heard``: a test may compare ``heard`` at once, without
    waiting, after a control connection."""
    path = str(tmp_path / "s")
    with UnixCanary(path) as canary:
        for count in (1, 2, 3):
            assert _exchange(path) == b"canary\n"
            assert len(canary.heard) == count


def test_unix_canary_in_the_abstract_namespace_hears_connections() -> None:
    name = f"@canary-test-{uuid.uuid4().hex}"
    with UnixCanary(name) as canary:
        assert canary.path == name
        assert _exchange("\0" + name[1:], b"ping") == b"canary\n"
        assert [(h.peer, h.data) for h in canary.heard] == [(name, b"ping")]


def test_unix_canary_survives_a_client_that_leaves_at_once() -> None:
    """A client that connects and closes without a word is recorded (no data); the answer to nobody does not stop
    the canary from hearing the next one."""
    name = f"@canary-test-{uuid.uuid4().hex}"
    with UnixCanary(name) as canary:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect("\0" + name[1:])
        _wait_for(lambda: canary.heard != [])
        assert [h.data for h in canary.heard] == [b""]
        assert _exchange("\0" + name[1:]) == b"canary\n"
        assert len(canary.heard) == 2


def test_a_silent_canary_hears_nothing(tmp_path: Path) -> None:
    with UdpCanary() as udp, UnixCanary(str(tmp_path / "s")) as unix:
        time.sleep(0.3)
        assert udp.heard == [] and unix.heard == []


def test_received_so_far_returns_what_arrived_and_never_waits() -> None:
    """Nothing arrived: b"" at once; then exactly what the peer sent."""
    left, right = socket.socketpair()
    with left, right:
        assert received_so_far(right) == b""
        left.sendall(b"leak")
        assert received_so_far(right) == b"leak"
