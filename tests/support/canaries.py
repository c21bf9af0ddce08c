"""Host-side listeners that only record: escape tests assert they heard nothing.

:class:`~tests.support.upstreams.Canary` covers TCP. This module adds the other ways a jailed workload could
reach a host service: UDP datagrams (:class:`UdpCanary`) and unix stream sockets, by path or in the abstract
namespace (:class:`UnixCanary`). Each runs one daemon thread with a blocking socket and a short timeout, so
closing it takes at most that long. IP listeners bind the address they are given (the test decides whether a
non-loopback address of the host is fair game). Only the unix canary answers, one line to whoever reached it,
so a control connection from outside the jail can prove it listens.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass

from tests.support.upstreams import ClosesOnExit

__all__ = ["Heard", "UdpCanary", "UnixCanary", "received_so_far"]

_POLL = 0.05  # how long a blocked receive waits before checking whether it should stop (close() waits that long)


def received_so_far(sock: socket.socket) -> bytes:
    """What `sock` has already received (up to 4 KiB), without waiting: b"" if nothing arrived."""
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return b""


@dataclass(frozen=True)
class Heard:
    """One datagram or connection a canary received: who from (as the kernel names it) and its first bytes."""

    peer: str
    data: bytes


class _Listener(ClosesOnExit):
    """The common life cycle: a socket, a thread that records into ``heard``, ``close()`` (or ``with``) to stop."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self._sock = sock
        self._sock.settimeout(_POLL)
        self._lock = threading.Lock()
        self._heard: list[Heard] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def heard(self) -> list[Heard]:
        """A snapshot of everything received so far."""
        with self._lock:
            return list(self._heard)

    def _record(self, peer: object, data: bytes) -> None:
        with self._lock:
            self._heard.append(Heard(str(peer), data))

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self._receive_one()

    def _receive_one(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop listening. Idempotent."""
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class UdpCanary(_Listener):
    """A UDP socket on ``host`` (an ephemeral port unless ``port`` is given) that records every datagram."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, port))
        self.host: str = host
        self.port: int = sock.getsockname()[1]
        super().__init__(sock, f"udp-canary-{host}")

    def _receive_one(self) -> None:
        data, peer = self._sock.recvfrom(65536)
        self._record(peer[0], data)


class UnixCanary(_Listener):
    """A unix stream listener at ``path`` (``@name``: the abstract namespace, in the creating process's network
    namespace) that records every connection with the first bytes the client sent within `_POLL`, then answers
    ``canary`` and a newline: a client that has read the answer has been recorded.

    A file socket is made mode 0777, so any uid that can reach its directory can connect: a canary nobody may
    connect to would prove nothing about the jail. Its file is removed on close.
    """

    def __init__(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path = path
        self._abstract = path.startswith("@")
        if self._abstract:
            sock.bind("\0" + path[1:])
        else:
            sock.bind(path)
            os.chmod(path, 0o777)
        sock.listen(16)
        super().__init__(sock, f"unix-canary-{path}")

    def _receive_one(self) -> None:
        conn, _ = self._sock.accept()
        with conn:
            conn.settimeout(_POLL)
            try:
                data = conn.recv(4096)
            except OSError:  # nothing sent in time, or the client reset: the connection is what counts
                data = b""
            self._record(self.path, data)
            with contextlib.suppress(OSError):  # the client may be gone already
                conn.sendall(b"canary\n")

    def close(self) -> None:
        super().close()
        if not self._abstract:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
