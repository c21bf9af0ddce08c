#!/usr/bin/env python3
"""The load generator and the upstream of scripts/bench (stdlib only, so it runs inside the jail unchanged).

    bench_client.py serve DIR            # HTTPS upstream on 127.0.0.1; prints `PORT CA_FILE` (cert for bench.test)
    bench_client.py suite --via MODE ... # every client phase, one JSON line per event on stdout

MODE says how a connection reaches the upstream, so the very same client code measures every target:
- `direct`: TCP to 127.0.0.1:PORT, TLS with SNI bench.test (the physical limit);
- `proxy`: TCP to an explicit proxy, `CONNECT 127.0.0.1:PORT`, then TLS with SNI bench.test through the tunnel
  (bare mitmdump; an address, so the proxy never asks the host's resolver for a test name);
- `jail`: TCP to bench.test:443 by name (inside `boundary run`, the jail's DNS and redirect do the rest).

Phases print `{"phase": P, "event": "start"}` before and `{"phase": P, "result": {...}}` after, so the
caller can sample the proxy's memory while a phase runs. HTTP/1.1 only, hand-written: one request per
round trip, Content-Length bodies, which is all the upstream here sends.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
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

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.via == "jail":
            return await asyncio.open_connection(NAME, 443, ssl=self.context, server_hostname=NAME, limit=PIECE)
        if self.via == "direct":
            return await asyncio.open_connection(
                "127.0.0.1", self.port, ssl=self.context, server_hostname=NAME, limit=PIECE
            )
        reader, writer = await asyncio.open_connection("127.0.0.1", self.proxy_port, limit=PIECE)
        writer.write(f"CONNECT 127.0.0.1:{self.port} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        answer = await reader.readuntil(b"\r\n\r\n")
        if not answer.startswith(b"HTTP/1.1 200") and not answer.startswith(b"HTTP/1.0 200"):
            raise ConnectionError(f"proxy refused CONNECT: {answer[:60]!r}")
        await writer.start_tls(self.context, server_hostname=NAME)
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


async def keepalive_latency(route: Route, count: int) -> dict[str, float]:
    reader, writer = await route.open()
    for _ in range(max(20, count // 20)):
        await exchange(reader, writer, "GET", "/hello")
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await exchange(reader, writer, "GET", "/hello")
        samples.append((time.perf_counter() - started) * 1000)
    writer.close()
    return percentiles(samples)


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
    done = 0
    running = True

    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal done
        while running:
            await exchange(reader, writer, "GET", "/hello")
            done += 1

    tasks = [asyncio.create_task(loop(r, w)) for r, w in connections]
    await asyncio.sleep(seconds / 5)  # warm-up
    start_count, started = done, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (done - start_count) / (time.perf_counter() - started)
    running = False
    await asyncio.gather(*tasks)
    for _, writer in connections:
        writer.close()
    return {"requests_per_s": round(rate, 1)}


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


def phases(args: argparse.Namespace) -> list[tuple[str, Callable[[Route], Awaitable[dict[str, float]]]]]:
    return [
        ("keepalive", lambda r: keepalive_latency(r, args.requests)),
        ("new_connection", lambda r: new_connection_latency(r, args.requests // 5)),
        ("rps_20", lambda r: throughput(r, 20, args.seconds)),
        ("rps_200", lambda r: throughput(r, 200, args.seconds)),
        ("download", lambda r: download(r, args.download_mb)),
        ("upload", lambda r: upload(r, args.upload_mb)),
    ]


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def suite(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=args.cafile or os.environ.get("SSL_CERT_FILE"))
    route = Route(args.via, args.port, args.proxy_port, context)
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
