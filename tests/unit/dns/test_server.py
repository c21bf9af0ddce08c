"""Specification of the DNS server shell: real sockets on 127.0.0.1, bound by the test like the jail helper.

Queries are built by hand; nothing here goes near the host's resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from boundary.dns.fakedns import FakeDnsTable, is_synthetic
from boundary.dns.server import DnsServer

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
TIMEOUT = 5.0  # a guard against hangs, not a measurement


def build_query(name: str, qid: int = 0x1234, qtype: int = 1) -> bytes:
    wire = b"".join(bytes((len(label),)) + label.encode() for label in name.split(".")) + b"\x00"
    return struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", qtype, 1)


def a_record(reply: bytes) -> ipaddress.IPv4Address:
    """The address in a one-answer A reply (its last four octets)."""
    assert struct.unpack_from("!H", reply, 6) == (1,), "expected exactly one answer"
    return ipaddress.IPv4Address(reply[-4:])


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(size)


def bound_sockets() -> tuple[socket.socket, socket.socket]:
    """UDP and listening TCP sockets on ephemeral loopback ports, made the way the jail helper makes them."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    return udp, tcp


@dataclass
class Running:
    server: DnsServer
    table: FakeDnsTable
    udp: socket.socket
    tcp: socket.socket

    @property
    def udp_address(self) -> tuple[str, int]:
        host, port = self.udp.getsockname()
        return host, port

    @property
    def tcp_address(self) -> tuple[str, int]:
        host, port = self.tcp.getsockname()
        return host, port

    async def ask_udp(self, query: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            await loop.sock_sendto(client, query, self.udp_address)
            async with asyncio.timeout(TIMEOUT):
                return await loop.sock_recv(client, 4096)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Streams]:
        async with client(self.tcp_address) as streams:
            yield streams


@asynccontextmanager
async def client(address: tuple[str, int]) -> AsyncIterator[Streams]:
    """A TCP client connection, closed on exit."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class BuggyTable(FakeDnsTable):
    """A table with a bug: `boom.example` raises something `answer` does not expect."""

    def address_for(self, name: str) -> ipaddress.IPv4Address:
        if name == "boom.example":
            raise RuntimeError("bug")
        return super().address_for(name)


@asynccontextmanager
async def serving(
    idle_timeout: float = 10.0, max_tcp_message: int = 4096, table: FakeDnsTable | None = None
) -> AsyncIterator[Running]:
    udp, tcp = bound_sockets()
    table = table if table is not None else FakeDnsTable()
    server = DnsServer(table, idle_timeout=idle_timeout, max_tcp_message=max_tcp_message)
    await server.start(udp, tcp)
    try:
        yield Running(server, table, udp, tcp)
    finally:
        await server.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def guarded() -> None:
        async with asyncio.timeout(TIMEOUT * 2):
            await test()

    asyncio.run(guarded())


async def assert_closed_by_server(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""


def test_udp_query_is_answered() -> None:
    """An A query over UDP gets the table's synthetic address."""

    async def scenario() -> None:
        async with serving() as dns:
            reply = await dns.ask_udp(build_query("example.com"))
            address = a_record(reply)
            assert is_synthetic(address)
            assert dns.table.name_for(address) == "example.com"

    run(scenario)


def test_tcp_serves_several_queries_on_one_connection() -> None:
    """Two framed queries on one TCP connection get two framed replies, in order, from the same table."""

    async def scenario() -> None:
        async with serving() as dns:
            async with dns.connect() as (reader, writer):
                writer.write(frame(build_query("a.example", qid=1)) + frame(build_query("b.example", qid=2)))
                first, second = await read_frame(reader), await read_frame(reader)
            assert (first[:2], second[:2]) == (b"\x00\x01", b"\x00\x02")
            assert dns.table.name_for(a_record(first)) == "a.example"
            assert dns.table.name_for(a_record(second)) == "b.example"

    run(scenario)


def test_udp_and_tcp_share_the_table() -> None:
    """A name asked over UDP and then over TCP gets the same address."""

    async def scenario() -> None:
        async with serving() as dns:
            over_udp = a_record(await dns.ask_udp(build_query("example.com")))
            async with dns.connect() as (reader, writer):
                writer.write(frame(build_query("example.com")))
                assert a_record(await read_frame(reader)) == over_udp

    run(scenario)


def test_udp_garbage_is_ignored_and_service_continues() -> None:
    """Datagrams that are no query (too short, or replies) get no answer and do not stop the UDP service."""

    async def scenario() -> None:
        async with serving() as dns:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.setblocking(False)
                for garbage in (b"", b"\xff" * 5, b"\x80" * 12 + b"\x00" * 20):
                    await loop.sock_sendto(client, garbage, dns.udp_address)
                await loop.sock_sendto(client, build_query("example.com", qid=7), dns.udp_address)
                async with asyncio.timeout(TIMEOUT):
                    reply = await loop.sock_recv(client, 4096)
            assert reply[:2] == b"\x00\x07"  # the first datagram back answers the real query

    run(scenario)


def test_udp_survives_a_bug_in_answer() -> None:
    """If answering raises, that query is dropped and the UDP service goes on (asyncio would close it)."""

    async def scenario() -> None:
        async with serving(table=BuggyTable()) as dns:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.setblocking(False)
                await loop.sock_sendto(client, build_query("boom.example", qid=1), dns.udp_address)
                await loop.sock_sendto(client, build_query("example.com", qid=2), dns.udp_address)
                async with asyncio.timeout(TIMEOUT):
                    reply = await loop.sock_recv(client, 4096)
            assert reply[:2] == b"\x00\x02"

    run(scenario)


def test_tcp_bug_in_answer_closes_only_that_connection() -> None:
    """If answering raises, the TCP connection is closed and new connections are still served."""

    async def scenario() -> None:
        async with serving(table=BuggyTable()) as dns:
            async with dns.connect() as (reader, writer):
                writer.write(frame(build_query("boom.example")))
                await assert_closed_by_server(reader)
            async with dns.connect() as (reader, writer):
                writer.write(frame(build_query("example.com")))
                assert is_synthetic(a_record(await read_frame(reader)))

    run(scenario)


def test_tcp_half_close_gets_replies_then_end_of_stream() -> None:
    """A client that sends its queries and half-closes gets every reply, then the server closes too."""

    async def scenario() -> None:
        async with serving() as dns, dns.connect() as (reader, writer):
            writer.write(frame(build_query("a.example", qid=1)) + frame(build_query("b.example", qid=2)))
            writer.write_eof()
            assert (await read_frame(reader))[:2] == b"\x00\x01"
            assert (await read_frame(reader))[:2] == b"\x00\x02"
            await assert_closed_by_server(reader)

    run(scenario)


def test_tcp_message_that_gets_no_answer_closes_the_connection() -> None:
    """A framed message `answer` drops (here 5 bytes, shorter than a header) closes the connection; the server
    keeps serving new ones."""

    async def scenario() -> None:
        async with serving() as dns:
            async with dns.connect() as (reader, writer):
                writer.write(frame(b"junk!"))
                await assert_closed_by_server(reader)
            async with dns.connect() as (reader, writer):
                writer.write(frame(build_query("example.com")))
                assert is_synthetic(a_record(await read_frame(reader)))

    run(scenario)


def test_tcp_oversized_frame_closes_the_connection() -> None:
    """A frame announcing more than the size limit closes the connection without waiting for the body."""

    async def scenario() -> None:
        async with serving(max_tcp_message=512) as dns, dns.connect() as (reader, writer):
            writer.write((513).to_bytes(2, "big"))
            await assert_closed_by_server(reader)

    run(scenario)


def test_tcp_truncated_frame_does_not_hurt_the_server() -> None:
    """A client that hangs up mid-frame just loses its connection; the next one is served."""

    async def scenario() -> None:
        async with serving() as dns:
            async with dns.connect() as (_, writer):
                writer.write(frame(build_query("example.com"))[:9])
            async with dns.connect() as (reader, writer):
                writer.write(frame(build_query("example.com")))
                assert is_synthetic(a_record(await read_frame(reader)))

    run(scenario)


def test_tcp_idle_connection_is_closed() -> None:
    """A connection that sends nothing is closed after the idle timeout."""

    async def scenario() -> None:
        async with serving(idle_timeout=0.2) as dns, dns.connect() as (reader, _):
            await assert_closed_by_server(reader)

    run(scenario)


def test_tcp_slow_frame_is_closed() -> None:
    """A client that sends the length but dribbles the body past the idle timeout is cut off."""

    async def scenario() -> None:
        async with serving(idle_timeout=0.2) as dns, dns.connect() as (reader, writer):
            writer.write(frame(build_query("example.com"))[:5])
            await assert_closed_by_server(reader)

    run(scenario)


def test_close_ends_open_connections_and_closes_the_sockets() -> None:
    """`close()` returns promptly with a client still connected, which then sees end of stream; the handed-in
    sockets are closed."""

    async def scenario() -> None:
        udp, tcp = bound_sockets()
        server = DnsServer(FakeDnsTable())
        await server.start(udp, tcp)
        async with client(tcp.getsockname()) as (reader, writer):
            writer.write(frame(build_query("example.com")))
            await read_frame(reader)  # the connection is being served
            await server.close()
            await assert_closed_by_server(reader)
        assert (udp.fileno(), tcp.fileno()) == (-1, -1)

    run(scenario)


def test_close_is_idempotent_and_safe_before_start() -> None:
    """`close()` may be called before `start()` and more than once."""

    async def scenario() -> None:
        server = DnsServer(FakeDnsTable())
        await server.close()
        udp, tcp = bound_sockets()
        await server.start(udp, tcp)
        await server.close()
        await server.close()

    run(scenario)
