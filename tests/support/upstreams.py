"""Local upstream servers for tests: a test CA, HTTP(S) upstreams and a TCP canary.

Everything here listens on loopback only (127.0.0.1 by default) with an ephemeral port and runs in a
background thread of the test process (one asyncio loop per server), so tests can use blocking clients
(curl, ``http.client``, ``ssl``) against it.

Test names (``allowed.test``, ``api.anthropic.com``...) are never resolved with the host resolver: clients
reach these servers at 127.0.0.1 with the name given as SNI / Host (``curl --resolve NAME:PORT:127.0.0.1``,
``ssl.wrap_socket(server_hostname=NAME)``), or through boundary's ``--resolve NAME:PORT:127.0.0.1``.

Routes served by :func:`default_routes` (used unless a custom handler is given):

- ``GET /hello``: 200 ``hello from <host>\\n``, ``<host>`` being the Host header without its port.
- ``/sse?n=5&interval=0.2``: ``text/event-stream``, ``n`` events, each written and flushed on its own chunk,
  ``interval`` seconds apart. With ``gate=1`` the first event is sent at once and the rest only after the
  test calls :meth:`Upstream.release_sse` (proves streaming with no timing assumption).
- ``/chunked?n=5``: ``n`` chunks ``chunk <i>\\n`` with chunked transfer encoding (``interval`` optional).
- ``/big?mb=N``: ``N`` MiB of zero bytes (Content-Length set), streamed 64 KiB at a time, never held whole.
- ``/pattern?kb=N&framing=F``: the first ``N`` KiB of :func:`pattern` (bytes that differ everywhere, so a lost,
  doubled or reordered piece shows), framed by ``F``: ``length`` (Content-Length, the default), ``chunked``,
  or ``close`` (neither: the body ends when the server closes the connection). With ``sent_kb=M`` only the
  first ``M`` KiB are sent before the connection closes (a body cut short). With ``smuggle=1`` a whole
  second response (:data:`SMUGGLED_RESPONSE`, never asked for) follows the body in the same write.
- ``POST /upload``: reads the body streamed (Content-Length or chunked) and answers
  ``{"length": <bytes>, "sha256": <hex>}``. ``pause_ms=N`` sleeps N ms after each 64 KiB read (a slow
  upstream); ``read_kb=N`` reads N KiB and closes the connection without an answer (an upstream leaving).
- ``GET /ws`` with a WebSocket handshake (RFC 6455): ``101`` with ``Sec-WebSocket-Accept``, then every text or
  binary message (fragments joined) is echoed in one frame, a ping answered with a pong, a close with the same
  close code, and the connection closed. Unmasked client frames get close ``1002``. Received messages are kept
  in :attr:`Upstream.websocket_messages`. Without a valid handshake: ``400``.
- anything else: 200 JSON echo ``{"method", "path", "host", "body_len", "sni"}`` (``path`` is the raw request
  target, ``host`` the raw Host header).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import http
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

import trustme

from tests.support import websocket

__all__ = [
    "MAX_RECORDED_BODY",
    "Canary",
    "CanaryHit",
    "ClosesOnExit",
    "Exchange",
    "FrontedUpstream",
    "Handler",
    "RecordedRequest",
    "TestCA",
    "Upstream",
    "default_routes",
    "start_canary",
    "start_http_upstream",
    "start_https_upstream",
]

#: At most this many body bytes are kept in :attr:`RecordedRequest.body` (``body_len`` is always exact).
MAX_RECORDED_BODY = 1 << 20

_MAX_HEADERS = 200
_BIG_PIECE = bytes(64 * 1024)
_PATTERN_PIECE = 100_000  # not a multiple of a TLS record or a read size
# What /pattern?smuggle=1 sends after the body: a response to a request nobody made (a desync attempt).
SMUGGLED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"


def pattern(size: int) -> bytes:
    """`size` bytes in which every 32-byte block differs: SHA-256 of the block's index."""
    blocks = (hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(-(-size // 32)))
    return b"".join(blocks)[:size]


_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------------- the CA


class TestCA:
    """A throw-away certificate authority (``trustme.CA``) for the local upstreams.

    Usable for a whole test session: leaf certificates are cached per name list.
    """

    __test__ = False  # not a pytest test class, even when imported into a test module

    def __init__(self) -> None:
        self.ca = trustme.CA(organization_name="boundary tests")
        self._leaves: dict[tuple[str, ...], trustme.LeafCert] = {}
        self._lock = threading.Lock()

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM encoded."""
        return self.ca.cert_pem.bytes()

    def write_ca_pem(self, directory: Path, filename: str = "test-ca.pem") -> Path:
        """Write the CA certificate PEM into ``directory`` (created if needed) and return its path.

        The file is made mode 0644 and ``directory`` mode 0755 so that another user (tests run boundary
        as ``nobody`` too) can read it; the directory's parents must be traversable by that user as well
        (pytest's own ``tmp_path`` root is mode 0700: pick a directory outside it for such tests).
        """
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        path = directory / filename
        tmp = path.with_name(f".{filename}.{os.getpid()}.tmp")
        tmp.write_bytes(self.cert_pem)
        tmp.chmod(0o644)
        tmp.replace(path)
        return path

    def issue(self, names: Sequence[str]) -> trustme.LeafCert:
        """A server certificate valid for every name (DNS names or IP literals) in ``names``."""
        if not names:
            raise ValueError("a server certificate needs at least one name")
        key = tuple(names)
        with self._lock:
            leaf = self._leaves.get(key)
            if leaf is None:
                leaf = self.ca.issue_cert(*key)
                self._leaves[key] = leaf
            return leaf

    def server_context(self, names: Sequence[str]) -> ssl.SSLContext:
        """A server-side TLS context presenting a certificate for ``names`` (HTTP/1.1 via ALPN)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.issue(names).configure_cert(ctx)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side TLS context that trusts this CA only."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx


# --------------------------------------------------------------------------------------- the loop thread


class _LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


def _check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test servers bind loopback addresses only, not {host!r}")


def _make_listener(host: str) -> socket.socket:
    _check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only when sock.proto == IPPROTO_TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


class ClosesOnExit:
    """`with server:` closes it on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FrontedUpstream(ClosesOnExit):
    """A test server built on an :class:`Upstream` with its own handler; the common read-outs are the
    upstream's."""

    @property
    def upstream(self) -> Upstream:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return self.upstream.port

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (method, raw target, headers, body...)."""
        return self.upstream.requests

    @property
    def errors(self) -> list[str]:
        """Exceptions raised while answering (should stay empty)."""
        return self.upstream.errors


class _Server(ClosesOnExit):
    """Common life cycle of a background asyncio stream server."""

    def __init__(self, name: str, sock: socket.socket | None, host: str) -> None:
        self._sock = sock if sock is not None else _make_listener(host)
        self._sock.setblocking(False)
        addr = self._sock.getsockname()
        self.host: str = addr[0]
        self.port: int = addr[1]
        self._thread = _LoopThread(name)
        self._server: asyncio.Server | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def _start(self, ssl_ctx: ssl.SSLContext | None) -> None:
        async def start() -> asyncio.Server:
            if ssl_ctx is None:
                return await asyncio.start_server(self._on_connection, sock=self._sock)
            return await asyncio.start_server(
                self._on_connection, sock=self._sock, ssl=ssl_ctx, ssl_handshake_timeout=10
            )

        try:
            self._server = self._thread.run(start())
        except BaseException:
            self._thread.stop()
            self._sock.close()
            raise

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        finally:
            self._conn_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conn_tasks):
            task.cancel()
        if self._conn_tasks:
            await asyncio.wait(list(self._conn_tasks), timeout=5)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def close(self) -> None:
        """Stop serving, drop open connections and stop the background thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._thread.run(self._shutdown(), timeout=15)
        self._thread.stop()
        self._sock.close()


# ----------------------------------------------------------------------------------------------- HTTP/1.1


class _BadRequest(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as an upstream received it.

    It is recorded once its body has been read, before the first response byte is written: a client that
    has seen (the start of) a response can rely on the request being in :attr:`Upstream.requests`.
    """

    method: str
    #: The raw request target as received (``/path?query``, or absolute-form if a client sent that).
    path: str
    #: The Host header value as received (``""`` if absent).
    host: str
    headers: tuple[tuple[str, str], ...]
    #: The first :data:`MAX_RECORDED_BODY` bytes of the (de-chunked) body.
    body: bytes
    body_len: int
    #: The TLS server name the client sent (``None`` for plain HTTP or no SNI).
    sni: str | None
    tls: bool
    #: Sequence number of the TCP connection this request came on (same value: the connection was reused).
    conn_id: int
    http_version: str
    #: ``time.monotonic()`` when the request line arrived.
    received_at: float

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


class Exchange:
    """One request/response on an upstream connection, handed to a :data:`Handler`.

    Read the body with :meth:`read_body` or :meth:`iter_body` (or not at all: it is drained before the
    response starts), then answer with :meth:`respond` / :meth:`respond_json`, or stream with
    :meth:`start_stream`, :meth:`send` and :meth:`end`.
    """

    def __init__(
        self,
        upstream: Upstream,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
        sni: str | None,
        tls: bool,
        conn_id: int,
        received_at: float,
    ) -> None:
        self.upstream = upstream
        self._reader = reader
        self._writer = writer
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.sni = sni
        self.tls = tls
        self.conn_id = conn_id
        self._received_at = received_at
        split = urlsplit(target)
        self.path = split.path or "/"
        self.query: dict[str, str] = dict(parse_qsl(split.query, keep_blank_values=True))
        self.host = self.header("host") or ""
        te = (self.header("transfer-encoding") or "").lower()
        self._chunked_body = "chunked" in te
        cl = self.header("content-length")
        if cl is not None and not self._chunked_body:
            if not cl.strip().isdigit():
                raise _BadRequest(f"bad Content-Length {cl!r}")
            self._body_remaining = int(cl)
        else:
            self._body_remaining = 0
        self._body_done = not self._chunked_body and self._body_remaining == 0
        self._body_prefix = bytearray()
        self._body_len = 0
        self._expect_continue = (self.header("expect") or "").lower() == "100-continue"
        self.keep_alive = self._wants_keep_alive()
        self.recorded: RecordedRequest | None = None
        self.response_started = False
        self._chunked_response = False
        self._finished = False

    # ---------------------------------------------------------------- request side

    def header(self, name: str) -> str | None:
        """The first value of request header ``name`` (case-insensitive), or ``None``."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def hostname(self) -> str:
        """The Host header without its port (falls back to the SNI)."""
        host = self.host
        if host.startswith("["):
            return host[1:].split("]", 1)[0]
        if host.count(":") == 1:
            host = host.rsplit(":", 1)[0]
        return host or (self.sni or "")

    def _wants_keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    async def iter_body(self, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
        """Yield the request body as it arrives (de-chunked)."""
        if self._body_done:
            return
        if self._expect_continue and not self.response_started:
            self._expect_continue = False
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._writer.drain()
        if self._chunked_body:
            while True:
                line = await self._reader.readuntil(b"\r\n")
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError as exc:
                    raise _BadRequest(f"bad chunk size {size_text!r}") from exc
                if size == 0:
                    while (await self._reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                while size:
                    data = await self._reader.read(min(size, piece))
                    if not data:
                        raise asyncio.IncompleteReadError(b"", size)
                    size -= len(data)
                    yield self._note_body(data)
                if await self._reader.readexactly(2) != b"\r\n":
                    raise _BadRequest("chunk not followed by CRLF")
        else:
            while self._body_remaining:
                data = await self._reader.read(min(self._body_remaining, piece))
                if not data:
                    raise asyncio.IncompleteReadError(b"", self._body_remaining)
                self._body_remaining -= len(data)
                yield self._note_body(data)
        self._body_done = True

    def _note_body(self, data: bytes) -> bytes:
        self._body_len += len(data)
        room = MAX_RECORDED_BODY - len(self._body_prefix)
        if room > 0:
            self._body_prefix += data[:room]
        return data

    async def read_body(self) -> bytes:
        """The whole request body (for small bodies; use :meth:`iter_body` for big ones)."""
        parts = [data async for data in self.iter_body()]
        return b"".join(parts)

    async def _finish_request(self) -> None:
        if not self._body_done:
            async for _ in self.iter_body():
                pass
        if self.recorded is None:
            self.recorded = RecordedRequest(
                method=self.method,
                path=self.target,
                host=self.host,
                headers=tuple(self.headers),
                body=bytes(self._body_prefix),
                body_len=self._body_len,
                sni=self.sni,
                tls=self.tls,
                conn_id=self.conn_id,
                http_version=self.version,
                received_at=self._received_at,
            )
            self.upstream._record(self.recorded)

    # --------------------------------------------------------------- response side

    async def start_stream(
        self,
        status: int = 200,
        *,
        content_type: str = "application/octet-stream",
        headers: Iterable[tuple[str, str]] = (),
        content_length: int | None = None,
        close_delimited: bool = False,
    ) -> None:
        """Send the status line and headers; the body follows with :meth:`send` and :meth:`end`.

        Without ``content_length`` the body is sent with chunked transfer encoding, or with ``close_delimited``
        as is, ended by closing the connection.
        """
        if self.response_started:
            raise RuntimeError("response already started")
        await self._finish_request()
        self.response_started = True
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", f"Content-Type: {content_type}"]
        if close_delimited:
            self.keep_alive = False
        elif content_length is None:
            self._chunked_response = True
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {content_length}")
        lines.extend(f"{key}: {value}" for key, value in headers)
        if not self.keep_alive:
            lines.append("Connection: close")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self._writer.drain()

    async def send(self, data: bytes) -> None:
        """Write (and flush) a piece of a streamed body; with chunked encoding it is one chunk."""
        if not data or self.method == "HEAD":
            return
        if self._chunked_response:
            self._writer.write(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self._writer.write(data)
        await self._writer.drain()

    async def end(self) -> None:
        """Finish a streamed body."""
        if self._finished:
            return
        self._finished = True
        if self._chunked_response and self.method != "HEAD":
            self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    async def respond(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send a complete response with a Content-Length."""
        await self.start_stream(status, content_type=content_type, headers=headers, content_length=len(body))
        await self.send(body)
        await self.end()

    async def respond_json(self, obj: object, status: int = 200, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send ``obj`` as a JSON response."""
        body = json.dumps(obj).encode()
        await self.respond(status, body, content_type="application/json", headers=headers)


async def _read_raw_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(2)
    extended = await reader.readexactly(websocket.extended_length_size(head[1]))
    length = int.from_bytes(extended, "big") if extended else head[1] & 0x7F
    return head + extended + await reader.readexactly((4 if head[1] & 0x80 else 0) + length)


async def _websocket_echo(ex: Exchange) -> None:
    """The ``/ws`` route (see the module docstring)."""
    key = ex.header("sec-websocket-key")
    upgrade = (ex.header("upgrade") or "").lower()
    if ex.method != "GET" or upgrade != "websocket" or ex.header("sec-websocket-version") != "13" or not key:
        await ex.respond(400, b"not a websocket handshake\n")
        return
    await ex._finish_request()
    ex.response_started = ex._finished = True
    ex.keep_alive = False
    head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    ex._writer.write(f"{head}Sec-WebSocket-Accept: {websocket.accept_key(key)}\r\n\r\n".encode())
    await ex._writer.drain()
    message = bytearray()
    opcode = websocket.CONTINUATION
    while True:
        try:
            frame = websocket.decode_frame(await _read_raw_frame(ex._reader))
        except asyncio.IncompleteReadError:
            return  # the client went away without a close frame
        if not frame.masked:
            reply = websocket.encode_frame(websocket.CLOSE, websocket.close_payload(1002, "unmasked frame"))
        elif frame.opcode == websocket.PING:
            reply = websocket.encode_frame(websocket.PONG, frame.payload)
        elif frame.opcode == websocket.CLOSE:
            reply = websocket.encode_frame(websocket.CLOSE, frame.payload[:2])
        else:
            opcode = frame.opcode if frame.opcode != websocket.CONTINUATION else opcode
            message += frame.payload
            if not frame.fin:
                continue
            ex.upstream._record_websocket_message(opcode, bytes(message))
            reply = websocket.encode_frame(opcode, bytes(message))
            message.clear()
        ex._writer.write(reply)
        await ex._writer.drain()
        if not frame.masked or frame.opcode == websocket.CLOSE:
            return


#: A request handler: answer the :class:`Exchange` (it may delegate to :func:`default_routes`).
Handler = Callable[[Exchange], Awaitable[None]]


async def default_routes(ex: Exchange) -> None:
    """The standard test routes (see the module docstring)."""
    q = ex.query
    if ex.path == "/hello" and ex.method in ("GET", "HEAD"):
        await ex.respond(200, f"hello from {ex.hostname}\n".encode())
    elif ex.path == "/sse":
        n = int(q.get("n", "5"))
        interval = float(q.get("interval", "0.2"))
        gated = q.get("gate") == "1"
        await ex.start_stream(200, content_type="text/event-stream", headers=[("Cache-Control", "no-cache")])
        for i in range(n):
            if i == 1 and gated:
                await ex.upstream._sse_gate_wait()
            elif i > 0 and interval > 0:
                await asyncio.sleep(interval)
            ex.upstream._note_sse_event()  # counted before writing: a client may see it before send() returns
            await ex.send(f"id: {i}\nevent: tick\ndata: event {i}\n\n".encode())
        await ex.end()
    elif ex.path == "/chunked":
        n = int(q.get("n", "5"))
        interval = float(q.get("interval", "0"))
        await ex.start_stream(200, content_type="text/plain; charset=utf-8")
        for i in range(n):
            if i > 0 and interval > 0:
                await asyncio.sleep(interval)
            await ex.send(f"chunk {i}\n".encode())
        await ex.end()
    elif ex.path == "/big":
        total = int(float(q.get("mb", "1")) * (1 << 20))
        await ex.start_stream(200, content_length=total)
        left = total
        while left:
            piece = _BIG_PIECE if left >= len(_BIG_PIECE) else _BIG_PIECE[:left]
            await ex.send(piece)
            left -= len(piece)
        await ex.end()
    elif ex.path == "/pattern":
        body = pattern(int(q.get("kb", "1024")) * 1024)
        framing = q.get("framing", "length")
        if framing not in ("length", "chunked", "close"):
            await ex.respond(400, f"unknown framing {framing!r}\n".encode())
            return
        length = len(body) if framing == "length" else None
        sent = int(q["sent_kb"]) * 1024 if "sent_kb" in q else len(body)
        await ex.start_stream(200, content_length=length, close_delimited=framing == "close")
        after = SMUGGLED_RESPONSE if q.get("smuggle") == "1" else b""
        for start in range(0, sent, _PATTERN_PIECE):
            end = min(start + _PATTERN_PIECE, sent)
            await ex.send(body[start:end] + (after if end == len(body) else b""))
        if sent < len(body):
            ex.keep_alive = False  # cut short: the connection closes with the body unfinished
            return
        await ex.end()
    elif ex.path == "/ws":
        await _websocket_echo(ex)
    elif ex.path == "/upload" and ex.method == "POST":
        digest = hashlib.sha256()
        length = 0
        pause, read_up_to = float(q.get("pause_ms", "0")) / 1000, int(q.get("read_kb", "-1")) * 1024
        async for data in ex.iter_body():
            digest.update(data)
            length += len(data)
            if 0 <= read_up_to <= length:  # the connection closes with no answer
                raise ConnectionAbortedError(f"the upstream leaves after {length} bytes of the body (read_kb)")
            if pause:
                await asyncio.sleep(pause)
        await ex.respond_json({"length": length, "sha256": digest.hexdigest()})
    else:
        body = await ex.read_body()
        await ex.respond_json(
            {"method": ex.method, "path": ex.target, "host": ex.host, "body_len": len(body), "sni": ex.sni}
        )


class Upstream(_Server):
    """An HTTP/1.1 (keep-alive) server, plain or TLS, on loopback in a background thread.

    Create with :func:`start_http_upstream` or :func:`start_https_upstream`.
    """

    def __init__(
        self,
        *,
        ssl_ctx: ssl.SSLContext | None = None,
        handler: Handler | None = None,
        sock: socket.socket | None = None,
        host: str = "127.0.0.1",
        name: str = "upstream",
    ) -> None:
        super().__init__(name, sock, host)
        self.tls = ssl_ctx is not None
        self.handler: Handler = handler or default_routes
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._sni_seen: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()
        self._conn_counter = 0
        self._sse_events = 0
        self._websocket_messages: list[tuple[int, bytes]] = []
        self._sse_gate = asyncio.Event()  # binds to the server's loop on first use there
        if ssl_ctx is not None:
            ssl_ctx.sni_callback = self._on_sni
        self._start(ssl_ctx)

    # ---------------------------------------------------------------- public API

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Exceptions raised by the handler (a test can assert this is empty)."""
        with self._lock:
            return list(self._errors)

    @property
    def sse_events_sent(self) -> int:
        """How many ``/sse`` events this upstream has started writing so far (all streams)."""
        with self._lock:
            return self._sse_events

    @property
    def websocket_messages(self) -> list[tuple[int, bytes]]:
        """Every ``/ws`` text or binary message received so far, as (opcode, payload), in arrival order."""
        with self._lock:
            return list(self._websocket_messages)

    def release_sse(self) -> None:
        """Let gated ``/sse?gate=1`` streams (current and future) send their remaining events."""
        self._thread.loop.call_soon_threadsafe(self._sse_gate.set)

    def clear_requests(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self._requests.clear()

    def url_for(self, name: str, path: str = "/") -> str:
        """``scheme://name:port/path`` for a client that maps ``name`` to 127.0.0.1 itself."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{name}:{self.port}{path}"

    def curl_resolve(self, name: str) -> str:
        """The ``--resolve`` argument (curl's and boundary's syntax) mapping ``name`` to this server."""
        return f"{name}:{self.port}:{self.host}"

    # ---------------------------------------------------------------- internals

    async def _sse_gate_wait(self) -> None:
        await self._sse_gate.wait()

    def _note_sse_event(self) -> None:
        with self._lock:
            self._sse_events += 1

    def _record_websocket_message(self, opcode: int, payload: bytes) -> None:
        with self._lock:
            self._websocket_messages.append((opcode, payload))

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def _on_sni(self, sslobj: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
        if name is not None and isinstance(sslobj, ssl.SSLObject):
            self._sni_seen[sslobj] = name

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._conn_counter += 1
            conn_id = self._conn_counter
        sslobj = writer.get_extra_info("ssl_object")
        sni = self._sni_seen.get(sslobj) if isinstance(sslobj, ssl.SSLObject) else None
        while True:
            try:
                line = await reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError:
                return  # client closed between requests
            except asyncio.LimitOverrunError:
                return
            received_at = time.monotonic()
            if line == b"\r\n":
                continue  # tolerate a stray CRLF between requests
            ex = await self._read_head(reader, writer, line, sni, conn_id, received_at)
            if ex is None:
                return
            try:
                await self.handler(ex)
                if not ex.response_started:
                    await ex.respond(500, b"handler sent no response\n")
                else:
                    await ex.end()
            except (ConnectionError, asyncio.CancelledError):
                raise
            except Exception as exc:
                with self._lock:
                    self._errors.append(f"{ex.method} {ex.target}: {exc!r}")
                if not ex.response_started:
                    ex.keep_alive = False
                    await ex.respond(500, f"handler error: {exc!r}\n".encode())
                return
            if not ex.keep_alive:
                return

    async def _read_head(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        line: bytes,
        sni: str | None,
        conn_id: int,
        received_at: float,
    ) -> Exchange | None:
        try:
            parts = line.decode("latin-1").rstrip("\r\n").split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                raise _BadRequest(f"bad request line {line!r}")
            method, target, version = parts
            headers: list[tuple[str, str]] = []
            while True:
                hline = await reader.readuntil(b"\r\n")
                if hline == b"\r\n":
                    break
                if len(headers) >= _MAX_HEADERS:
                    raise _BadRequest("too many headers")
                key, sep, value = hline.decode("latin-1").partition(":")
                if not sep or not key or key != key.strip():
                    raise _BadRequest(f"bad header line {hline!r}")
                headers.append((key, value.strip()))
            return Exchange(
                self,
                reader,
                writer,
                method=method,
                target=target,
                version=version,
                headers=headers,
                sni=sni,
                tls=self.tls,
                conn_id=conn_id,
                received_at=received_at,
            )
        except (_BadRequest, asyncio.LimitOverrunError, UnicodeError) as exc:
            with self._lock:
                self._errors.append(f"bad request: {exc!r}")
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return None


def start_http_upstream(
    *, handler: Handler | None = None, sock: socket.socket | None = None, host: str = "127.0.0.1"
) -> Upstream:
    """A plain-HTTP upstream on ``host`` (loopback) with an ephemeral port, or on a listening ``sock``."""
    return Upstream(handler=handler, sock=sock, host=host, name="http-upstream")


def start_https_upstream(
    ca: TestCA,
    names: Sequence[str],
    *,
    handler: Handler | None = None,
    sock: socket.socket | None = None,
    host: str = "127.0.0.1",
) -> Upstream:
    """A TLS upstream presenting one certificate (issued by ``ca``) valid for all ``names``.

    ``sock``, if given, is an already listening TCP socket to serve (e.g. one bound inside another
    network namespace); otherwise a new one is bound on ``host`` (loopback) with an ephemeral port.
    """
    return Upstream(ssl_ctx=ca.server_context(names), handler=handler, sock=sock, host=host, name="https-upstream")


# --------------------------------------------------------------------------------------------- the canary


@dataclasses.dataclass
class CanaryHit:
    """One connection accepted by a :class:`Canary`.

    ``first_bytes`` fills in while the connection is read (up to 4 KiB, until the peer stops sending
    for a moment or closes).
    """

    peer: tuple[str, int]
    accepted_at: float
    first_bytes: bytes = b""


class Canary(_Server):
    """A plain TCP listener that records every connection it accepts: escape tests assert it saw none."""

    def __init__(self, *, host: str = "127.0.0.1", sock: socket.socket | None = None) -> None:
        super().__init__("canary", sock, host)
        self._lock = threading.Lock()
        self._hits: list[CanaryHit] = []
        self._start(None)

    @property
    def hits(self) -> list[CanaryHit]:
        """A snapshot of the connections accepted so far."""
        with self._lock:
            return list(self._hits)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        hit = CanaryHit(peer=(str(peer[0]), int(peer[1])), accepted_at=time.monotonic())
        with self._lock:
            self._hits.append(hit)
        data = bytearray()
        while len(data) < 4096:
            try:
                piece = await asyncio.wait_for(reader.read(4096 - len(data)), 0.5)
            except TimeoutError:
                break
            if not piece:
                break
            data += piece
            with self._lock:
                hit.first_bytes = bytes(data)


def start_canary(host: str = "127.0.0.1") -> Canary:
    """A :class:`Canary` on ``host`` (loopback) with an ephemeral port."""
    return Canary(host=host)
