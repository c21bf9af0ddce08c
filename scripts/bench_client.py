#!/usr/bin/env python3
"""The load generator and the upstream of scripts/bench (stdlib and h2, which mitmproxy brings into the venv, so
it runs inside the jail unchanged).

    bench_client.py serve DIR            # HTTPS upstream on 127.0.0.1; prints `PORT CA_FILE` (cert for bench.test)
    bench_client.py suite --via MODE ... # every client phase, one JSON line per event on stdout

MODE says how a connection reaches the upstream, so the very same client code measures every target:
- `direct`: TCP to 127.0.0.1:PORT, TLS with SNI bench.test (the physical limit);
- `proxy`: TCP to an explicit proxy, `CONNECT 127.0.0.1:PORT`, then TLS with SNI bench.test through the tunnel
  (bare mitmdump; an address, so the proxy never asks the host's resolver for a test name);
- `jail`: TCP to bench.test:443 by name (inside `boundary run`, the jail's DNS and redirect do the rest).

Phases print `{"phase": P, "event": "start"}` before and `{"phase": P, "result": {...}}` after, so the
caller can sample the proxy's memory while a phase runs. HTTP/1.1 is hand-written: one request per round
trip, Content-Length bodies (and one close-delimited event stream). HTTP/2 (ALPN h2) uses the h2 library on
both ends: GET /hello on streams of one connection. The event stream (`/events`) carries each event's send
time (CLOCK_MONOTONIC, one clock for every process on the machine, jailed or not), so the client measures
each event's delay from the upstream's write to its own read.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import ssl
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

NAME = "bench.test"
PIECE = 256 * 1024
ZEROS = bytes(PIECE)

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def steady_allocator() -> bool:
    """Keep this load generator's own cost the same in every phase and target: by default glibc maps buffers
    over 128 KiB fresh from the kernel (page faults on every read of a large body) until a phase happens to
    raise its dynamic threshold, so one 1 GiB direct download measured 250 MiB/s alone and 600 MiB/s after the
    200-connection phase. False where the C library has no mallopt (not glibc)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 16 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 256 << 20))


# ----------------------------------------------------------------------------------------------- upstream


def _query(target: str, name: str, default: int) -> int:
    for pair in target.partition("?")[2].split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return int(value)
    return default


async def _serve_events(writer: asyncio.StreamWriter, target: str) -> None:
    """`/events?n=N&gap_ms=G`: N server-sent events G ms apart, each `data: <send time ns>`, then close."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    gap = _query(target, "gap_ms", 5) / 1000
    for _ in range(_query(target, "n", 100)):
        writer.write(b"data: %d\n\n" % time.monotonic_ns())
        await writer.drain()
        await asyncio.sleep(gap)


async def _serve_h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/2: every request stream gets `hello`."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, RequestReceived

    conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    while data := await reader.read(PIECE):
        for event in conn.receive_data(data):
            if isinstance(event, RequestReceived) and event.stream_id is not None:
                conn.send_headers(event.stream_id, [(b":status", b"200"), (b"content-length", b"6")])
                conn.send_data(event.stream_id, b"hello\n", end_stream=True)
            elif isinstance(event, DataReceived) and event.stream_id is not None:
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        writer.write(conn.data_to_send())
        await writer.drain()


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        if writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2":
            await _serve_h2(reader, writer)
            return
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            length = int(headers.get("content-length", "0"))
            while length:
                length -= len(await reader.read(min(length, PIECE)))
            if target.startswith("/big"):
                total = int(target.partition("mb=")[2] or "1") << 20
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
                while total:
                    piece = ZEROS if total >= PIECE else ZEROS[:total]
                    writer.write(piece)
                    total -= len(piece)
                    await writer.drain()
            elif target.startswith("/events"):
                await _serve_events(writer, target)
                return
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nhello\n")
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(directory: Path) -> None:
    from scripts.demo_upstream import make_certs_for  # the demo's throwaway CA, for bench.test

    ca_file, cert_file, key_file = make_certs_for(directory, [NAME])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["h2", "http/1.1"])

    async def main() -> None:
        server = await asyncio.start_server(_serve_connection, "127.0.0.1", 0, ssl=context, backlog=1024)
        print(server.sockets[0].getsockname()[1], ca_file, flush=True)
        await server.serve_forever()

    asyncio.run(main())


# ------------------------------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Route:
    via: str  # direct | proxy | jail
    port: int  # upstream port (direct, proxy)
    proxy_port: int  # proxy (proxy)
    context: ssl.SSLContext
    h2_context: ssl.SSLContext  # the same trust, offering ALPN h2

    async def open(self, h2: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = self.h2_context if h2 else self.context
        if self.via == "jail":
            return await asyncio.open_connection(NAME, 443, ssl=context, server_hostname=NAME, limit=PIECE)
        if self.via == "direct":
            return await asyncio.open_connection("127.0.0.1", self.port, ssl=context, server_hostname=NAME, limit=PIECE)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.proxy_port, limit=PIECE)
        writer.write(f"CONNECT 127.0.0.1:{self.port} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        answer = await reader.readuntil(b"\r\n\r\n")
        if not answer.startswith(b"HTTP/1.1 200") and not answer.startswith(b"HTTP/1.0 200"):
            raise ConnectionError(f"proxy refused CONNECT: {answer[:60]!r}")
        await writer.start_tls(context, server_hostname=NAME)
        return reader, writer


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body_mb: int = 0
) -> int:
    """One request, its whole response read; returns the body length."""
    length = body_mb << 20
    head = f"{method} {path} HTTP/1.1\r\nHost: {NAME}\r\nContent-Length: {length}\r\n\r\n" if length else None
    writer.write((head or f"{method} {path} HTTP/1.1\r\nHost: {NAME}\r\n\r\n").encode())
    while length:
        piece = ZEROS if length >= PIECE else ZEROS[:length]
        writer.write(piece)
        length -= len(piece)
        await writer.drain()
    status_and_headers = await reader.readuntil(b"\r\n\r\n")
    if not status_and_headers.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"{method} {path}: {status_and_headers.splitlines()[0]!r}")
    size = 0
    for line in status_and_headers.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            size = int(line.split(b":", 1)[1])
    left = size
    while left:
        data = await reader.read(min(left, PIECE))
        if not data:
            raise ConnectionError("body cut short")
        left -= len(data)
    return size


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p95 of `samples` (ms)."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 3),
    }


async def latency_of(request: Callable[[], Awaitable[object]], count: int) -> dict[str, float]:
    """p50/p95 (ms) of `count` calls of `request`, one after another, after a warm-up."""
    for _ in range(max(20, count // 20)):
        await request()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await request()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


async def rate_of(requesters: Sequence[Callable[[], Awaitable[object]]], seconds: float) -> dict[str, float]:
    """Requests/s of every requester looping at once (counted after a warm-up of a fifth of `seconds`)."""
    done = 0
    running = True

    async def loop(request: Callable[[], Awaitable[object]]) -> None:
        nonlocal done
        while running:
            await request()
            done += 1

    tasks = [asyncio.create_task(loop(request)) for request in requesters]
    await asyncio.sleep(seconds / 5)
    start_count, started = done, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (done - start_count) / (time.perf_counter() - started)
    running = False
    await asyncio.gather(*tasks)
    return {"requests_per_s": round(rate, 1)}


async def keepalive_latency(route: Route, count: int) -> dict[str, float]:
    reader, writer = await route.open()
    result = await latency_of(lambda: exchange(reader, writer, "GET", "/hello"), count)
    writer.close()
    return result


async def new_connection_latency(route: Route, count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        reader, writer = await route.open()
        await exchange(reader, writer, "GET", "/hello")
        samples.append((time.perf_counter() - started) * 1000)
        writer.close()
    return percentiles(samples)


async def throughput(route: Route, concurrency: int, seconds: float) -> dict[str, float]:
    """Requests/s of `concurrency` keep-alive connections looping GET /hello (counted after all connected)."""
    connections = await asyncio.gather(*(route.open() for _ in range(concurrency)))
    result = await rate_of(
        [partial(exchange, reader, writer, "GET", "/hello") for reader, writer in connections], seconds
    )
    for _, writer in connections:
        writer.close()
    return result


async def download(route: Route, mb: int) -> dict[str, float]:
    reader, writer = await route.open()
    started = time.perf_counter()
    size = await exchange(reader, writer, "GET", f"/big?mb={mb}")
    elapsed = time.perf_counter() - started
    writer.close()
    return {"mb_per_s": round(size / (1 << 20) / elapsed, 1)}


async def upload(route: Route, mb: int) -> dict[str, float]:
    reader, writer = await route.open()
    started = time.perf_counter()
    await exchange(reader, writer, "POST", "/upload", body_mb=mb)
    elapsed = time.perf_counter() - started
    writer.close()
    return {"mb_per_s": round(mb / elapsed, 1)}


class H2Client:
    """One HTTP/2 connection; `get()` sends GET /hello on a new stream and waits for the stream's end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from h2.config import H2Configuration
        from h2.connection import H2Connection

        self._reader, self._writer = reader, writer
        self._conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self._conn.initiate_connection()
        self._writer.write(self._conn.data_to_send())
        self._ended: dict[int, asyncio.Future[None]] = {}
        self._pump = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from h2.events import DataReceived, StreamEnded, StreamReset

        while data := await self._reader.read(PIECE):
            for event in self._conn.receive_data(data):
                if isinstance(event, DataReceived) and event.stream_id is not None:
                    self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, StreamEnded | StreamReset) and event.stream_id in self._ended:
                    ended = self._ended.pop(event.stream_id)
                    if isinstance(event, StreamReset):
                        ended.set_exception(ConnectionError(f"stream {event.stream_id} reset: {event.error_code}"))
                    else:
                        ended.set_result(None)
            self._writer.write(self._conn.data_to_send())
        for ended in self._ended.values():
            ended.set_exception(ConnectionError("HTTP/2 connection closed"))

    async def get(self) -> None:
        stream_id = self._conn.get_next_available_stream_id()
        ended = self._ended[stream_id] = asyncio.get_running_loop().create_future()
        headers = [(b":method", b"GET"), (b":path", b"/hello"), (b":scheme", b"https"), (b":authority", NAME.encode())]
        self._conn.send_headers(stream_id, headers, end_stream=True)
        self._writer.write(self._conn.data_to_send())
        await ended

    def close(self) -> None:
        self._pump.cancel()
        self._writer.close()


async def h2_latency(route: Route, count: int) -> dict[str, float]:
    """p50/p95 of GET /hello, one stream after another on one HTTP/2 connection."""
    client = H2Client(*await route.open(h2=True))
    result = await latency_of(client.get, count)
    client.close()
    return result


async def h2_throughput(route: Route, streams: int, seconds: float) -> dict[str, float]:
    """Requests/s of `streams` concurrent streams looping GET /hello on one HTTP/2 connection."""
    client = H2Client(*await route.open(h2=True))
    result = await rate_of([client.get] * streams, seconds)
    client.close()
    return result


async def event_delay(route: Route, count: int) -> dict[str, float]:
    """p50/p95 delay of server-sent events (5 ms apart), from the upstream's write to the client's read: a proxy
    that held a streamed body back would show here."""
    reader, writer = await route.open()
    writer.write(
        f"GET /events?n={count}&gap_ms=5 HTTP/1.1\r\nHost: {NAME}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"GET /events: {head.splitlines()[0]!r}")
    samples = []
    for _ in range(count):
        event = await reader.readuntil(b"\n\n")
        samples.append((time.monotonic_ns() - int(event.removeprefix(b"data: "))) / 1e6)
    writer.close()
    return percentiles(samples)


def phases(args: argparse.Namespace) -> list[tuple[str, Callable[[Route], Awaitable[dict[str, float]]]]]:
    return [
        ("keepalive", lambda r: keepalive_latency(r, args.requests)),
        ("new_connection", lambda r: new_connection_latency(r, args.requests // 5)),
        ("rps_20", lambda r: throughput(r, 20, args.seconds)),
        ("rps_200", lambda r: throughput(r, 200, args.seconds)),
        ("h2_latency", lambda r: h2_latency(r, args.requests)),
        ("h2_rps", lambda r: h2_throughput(r, 20, args.seconds)),
        ("sse", lambda r: event_delay(r, max(20, args.requests // 10))),
        ("download", lambda r: download(r, args.download_mb)),
        ("upload", lambda r: upload(r, args.upload_mb)),
    ]


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def suite(args: argparse.Namespace) -> None:
    cafile = args.cafile or os.environ.get("SSL_CERT_FILE")
    context, h2_context = ssl.create_default_context(cafile=cafile), ssl.create_default_context(cafile=cafile)
    h2_context.set_alpn_protocols(["h2"])
    route = Route(args.via, args.port, args.proxy_port, context, h2_context)
    selected = set(args.only.split(",")) if args.only else None
    for name, run in phases(args):
        if selected is not None and name not in selected:
            continue
        emit(phase=name, event="start")
        emit(phase=name, result=await run(route))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("directory", type=Path)
    suite_parser = sub.add_parser("suite")
    suite_parser.add_argument("--via", choices=["direct", "proxy", "jail"], required=True)
    suite_parser.add_argument("--port", type=int, default=0, help="upstream port (direct, proxy)")
    suite_parser.add_argument("--proxy-port", type=int, default=0)
    suite_parser.add_argument("--cafile", help="CA to trust (default: $SSL_CERT_FILE)")
    suite_parser.add_argument("--requests", type=int, default=1000)
    suite_parser.add_argument("--seconds", type=float, default=5.0)
    suite_parser.add_argument("--download-mb", type=int, default=1024)
    suite_parser.add_argument("--upload-mb", type=int, default=256)
    suite_parser.add_argument("--only", help="comma-separated phase names")
    args = parser.parse_args(argv)
    if not steady_allocator():
        print("bench_client: no glibc mallopt here; large-body figures may vary with phase order", file=sys.stderr)
    if args.command == "serve":
        serve(args.directory)
    else:
        asyncio.run(suite(args))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
