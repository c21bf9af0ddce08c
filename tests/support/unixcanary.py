"""A unix socket listener (filesystem path or abstract name) that counts the connections it accepts.

Escape tests make one on the host and assert that a jailed workload's attempt left its count at 0; a control
connection from outside the jail first proves the listener works. Each accepted connection gets one line,
``canary``, and is closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from types import TracebackType


class UnixCanary:
    """Listens on ``path`` (a filesystem socket, mode 0777 so any uid could connect) or ``abstract`` (the
    abstract socket ``@abstract``, in the creating process's network namespace)."""

    def __init__(self, *, path: str | None = None, abstract: str | None = None) -> None:
        if (path is None) == (abstract is None):
            raise ValueError("give exactly one of path and abstract")
        self.path = path
        self.address = path if path is not None else "\0" + str(abstract)
        self._lock = threading.Lock()
        self._hits = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.address)
        if path is not None:
            os.chmod(path, 0o777)
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._serve, name="unix canary", daemon=True)
        self._thread.start()

    @property
    def hits(self) -> int:
        with self._lock:
            return self._hits

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                self._hits += 1
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"canary\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> UnixCanary:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
