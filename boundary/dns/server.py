"""Serves `fakedns.answer` on the jail's DNS sockets, over UDP and TCP.

A thin asyncio shell: all DNS semantics live in `fakedns`. The jail helper binds the sockets inside the jail's
network namespace and hands them over bound (the TCP one listening); this module never binds, and takes
ownership: `close()` closes them.

UDP: one datagram in, at most one datagram out. TCP (RFC 1035 §4.2.2, RFC 7766): each message is prefixed with
its 2-byte length; a connection may carry several queries, answered in order. A connection is closed when it
stays idle (or dribbles a message) past the idle timeout, announces a message over the size limit, or sends
something `answer` drops. Nothing is logged: the workload shares the terminal, and a name only matters once
the workload connects to its address, which the proxy audits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Final

from boundary.dns.fakedns import FakeDnsTable, answer

IDLE_TIMEOUT: Final = 10.0
# Real queries are a few hundred octets even with EDNS padding; the frame length field allows 64 KiB.
MAX_TCP_MESSAGE: Final = 4096


def _answer(query: bytes, table: FakeDnsTable) -> bytes | None:
    """`fakedns.answer`, or None (drop) if it ever raised.

    `answer` is built never to raise; this guard keeps a bug from ending the service: asyncio closes a
    datagram transport whose protocol raised, which would end DNS for the whole run.
    """
    try:
        return answer(query, table)
    except Exception:
        return None


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, table: FakeDnsTable) -> None:
        self._table = table
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        reply = _answer(data, self._table)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from clients that went away; UDP has nobody to tell.
        pass


class DnsServer:
    """The fake DNS over one UDP and one TCP socket."""

    def __init__(
        self,
        table: FakeDnsTable,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_tcp_message: int = MAX_TCP_MESSAGE,
    ) -> None:
        self._table = table
        self._idle_timeout = idle_timeout
        self._max_tcp_message = max_tcp_message
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self, udp_sock: socket.socket, tcp_sock: socket.socket) -> None:
        """Serve both sockets (already bound; the TCP one listening) until `close()`."""
        loop = asyncio.get_running_loop()
        self._closing = False
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self._table), sock=udp_sock)
        self._tcp = await asyncio.start_server(self._serve_connection, sock=tcp_sock)

    async def close(self) -> None:
        """Stop serving, drop open TCP connections and close both sockets. Idempotent."""
        self._closing = True
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            # Server.wait_closed() waits for every connection (Python >= 3.12): end them first. A connection
            # accepted but not yet in the set sees `_closing` when its handler first runs.
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self._closing:
                return
            while (query := await self._read_message(reader)) is not None:
                reply = _answer(query, self._table)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, OSError):
            pass  # idle, truncated or reset: just close
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read_message(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next framed message, or None at a clean end of stream or for an oversized frame."""
        async with asyncio.timeout(self._idle_timeout):
            prefix = await reader.read(1)
            if not prefix:
                return None
            prefix += await reader.readexactly(1)
            size = int.from_bytes(prefix, "big")
            if size > self._max_tcp_message:
                return None
            return await reader.readexactly(size)
