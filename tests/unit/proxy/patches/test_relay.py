"""Specification of the body relay: an allowed, streamed HTTP/1 response body goes from the upstream connection
straight to the client connection, byte for byte, and everything else stays mitmproxy's.

The HTTP layer is driven here without sockets, as mitmproxy's own layer tests do: events in, commands out,
every blocking command answered at once (an addon that streams every response, like boundary's). The upstream
is plain HTTP or a TLS server in memory (pyOpenSSL), so both relay paths run: plaintext handed over by an
upstream TLS layer above, and ciphertext the relay decrypts itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import connection, ctx
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers.http import HttpLayer, ResponseData
from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook
from mitmproxy.proxy.layers.http._http1 import Http1Server
from mitmproxy.proxy.layers.tls import TlsStartServerHook
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler, ServerInstance
from mitmproxy.tls import TlsData
from OpenSSL import SSL

from boundary.audit import AuditLog
from boundary.ca import generate_ca
from boundary.dns.fakedns import FakeDnsTable
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.gate import GatedEventLoop
from boundary.proxy.master import start_proxy  # also registers mitmproxy.addons bare, as the proxy does
from boundary.proxy.patches import relay
from boundary.proxy.patches.relay import READ_SIZE, RelayingHttpLayer, _decrypt
from boundary.proxy.settings import ProxySettings
from tests.support.layers import drive, http_layer, opened
from tests.support.upstreams import TestCA, pattern, start_http_upstream, start_https_upstream

BODY = pattern(300_000)


# --- TLS in memory -------------------------------------------------------------------------------------------


def _server_context() -> SSL.Context:
    leaf = TestCA().issue(["upstream.test"])
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate(x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()))
    context.use_privatekey(serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None))
    return context


SERVER_CONTEXT = _server_context()


def _drain(tls: SSL.Connection) -> bytes:
    out = b""
    while True:
        try:
            out += tls.bio_read(1 << 20)
        except SSL.WantReadError:
            return out


def _handshake_pair() -> tuple[SSL.Connection, SSL.Connection]:
    """A connected (client, server) pair in memory."""
    client, server = SSL.Connection(SSL.Context(SSL.TLS_METHOD)), SSL.Connection(SERVER_CONTEXT)
    client.set_connect_state()
    server.set_accept_state()
    for _ in range(5):
        for this, other in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                this.do_handshake()
            if data := _drain(this):
                other.bio_write(data)
    return client, server


# --- driving the HTTP layer ----------------------------------------------------------------------------------


class Driver:
    """The HTTP layer in regular (explicit proxy) mode with everything around it answered in memory: the
    proxy's client connection is plain, the upstream speaks HTTP/1.1 (in TLS when the URL says https)."""

    def __init__(self, layer_class: type[HttpLayer]) -> None:
        self.client, self.layer = http_layer(layer_class)
        self.to_client = bytearray()
        self.to_upstream = bytearray()
        self.upstream: connection.Server | None = None
        self.upstream_tls: SSL.Connection | None = None
        self.feed(events.Start())

    def feed(self, *first: events.Event) -> None:
        drive(self.layer, self._answer, *first)

    def _answer(self, command: commands.Command) -> list[events.Event]:
        if isinstance(command, commands.SendData):
            if command.connection is self.client:
                self.to_client += command.data
                return []
            return self._upstream_receives(command.data)
        if isinstance(command, commands.OpenConnection):
            self.upstream = command.connection
            return opened(command)
        if isinstance(command, HttpResponseHeadersHook):
            command.flow.response.stream = True  # what boundary's addon does for every allowed response
        if isinstance(command, TlsStartServerHook):
            tls_start: TlsData = command.data
            tls_start.ssl_conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD))
            tls_start.ssl_conn.set_connect_state()
            self.upstream_tls = SSL.Connection(SERVER_CONTEXT)
            self.upstream_tls.set_accept_state()
        if isinstance(command, commands.StartHook):
            return [events.HookCompleted(command)]
        assert isinstance(command, (commands.Log, commands.RequestWakeup)), command
        return []

    def _upstream_receives(self, data: bytes) -> list[events.Event]:
        if self.upstream_tls is None:
            self.to_upstream += data
            return []
        self.upstream_tls.bio_write(data)
        try:
            self.upstream_tls.do_handshake()
            while True:
                self.to_upstream += self.upstream_tls.recv(65536)
        except SSL.WantReadError:
            pass
        reply = _drain(self.upstream_tls)
        return [events.DataReceived(self.upstream, reply)] if reply else []

    def request(self, url: str) -> None:
        host = url.split("/")[2]
        self.feed(events.DataReceived(self.client, f"GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()))
        assert self.to_upstream.startswith(b"GET /"), self.to_upstream

    def upstream_sends(self, data: bytes) -> None:
        assert self.upstream is not None
        if self.upstream_tls is not None:
            self.upstream_tls.sendall(data)
            data = _drain(self.upstream_tls)
        self.feed(events.DataReceived(self.upstream, data))


@pytest.fixture
def through_http1_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The sizes of the response body pieces that go mitmproxy's way, through its HTTP/1 server layer."""
    sizes: list[int] = []
    send = Http1Server.send

    def counting(self: Http1Server, event: object) -> layer.CommandGenerator[None]:
        if isinstance(event, ResponseData):
            sizes.append(len(event.data))
        return send(self, event)

    monkeypatch.setattr(Http1Server, "send", counting)
    yield sizes


def head(framing: str) -> bytes:
    framing_header = {"length": f"Content-Length: {len(BODY)}\r\n", "close": "Connection: close\r\n"}[framing]
    return f"HTTP/1.1 200 OK\r\n{framing_header}\r\n".encode()


def download(driver: Driver, url: str, framing: str, pieces: int = 4) -> None:
    """Request `url`; the upstream answers BODY in `pieces` sends (the head with the first one)."""
    driver.request(url)
    size = -(-len(BODY) // pieces)
    driver.upstream_sends(head(framing) + BODY[:size])
    for start in range(size, len(BODY), size):
        driver.upstream_sends(BODY[start : start + size])


URLS = ["http://upstream.test/pattern", "https://upstream.test/pattern"]


@pytest.mark.parametrize("url", URLS)
def test_mitmproxy_alone_passes_every_body_piece_through_its_layers(url: str, through_http1_server: list[int]) -> None:
    """The control: with mitmproxy's own HTTP layer, the HTTP/1 server layer sees the whole body."""
    driver = Driver(HttpLayer)
    download(driver, url, "length")
    assert sum(through_http1_server) == len(BODY)
    assert driver.to_client.endswith(BODY)


@pytest.mark.parametrize("url", URLS)
def test_a_sized_body_is_relayed_but_its_last_byte(url: str, through_http1_server: list[int]) -> None:
    """After the piece that came with the head, all but the body's last byte skip mitmproxy's HTTP layers; the
    client gets the body byte for byte, and the last byte ends the message mitmproxy's way."""
    driver = Driver(RelayingHttpLayer)
    download(driver, url, "length")
    first_piece = -(-len(BODY) // 4)
    assert through_http1_server == [first_piece, 1]
    assert driver.to_client.endswith(BODY)
    assert driver.to_client.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("url", URLS)
def test_the_connection_serves_the_next_request_after_a_relayed_body(url: str, through_http1_server: list[int]) -> None:
    """Keep-alive: the response ended in mitmproxy's state, so the next request on the client connection is
    read, sent upstream and answered as usual."""
    driver = Driver(RelayingHttpLayer)
    download(driver, url, "length")
    driver.to_client.clear()
    driver.to_upstream.clear()
    driver.request(url.replace("/pattern", "/next"))
    assert driver.to_upstream.startswith(b"GET /next HTTP/1.1\r\n")
    driver.upstream_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
    assert driver.to_client.endswith(b"\r\n\r\nnext")


@pytest.mark.parametrize("url", URLS)
def test_a_close_delimited_body_is_relayed_whole(url: str, through_http1_server: list[int]) -> None:
    """Without a length, the body ends when the upstream closes: every piece after the first is relayed."""
    driver = Driver(RelayingHttpLayer)
    download(driver, url, "close")
    assert through_http1_server == [-(-len(BODY) // 4)]
    assert driver.to_client.endswith(BODY)


@pytest.mark.parametrize("url", URLS)
def test_a_chunked_body_goes_mitmproxys_way(url: str, through_http1_server: list[int]) -> None:
    """Chunked framing is mitmproxy's to parse and to re-frame: nothing is relayed."""
    driver = Driver(RelayingHttpLayer)
    driver.request(url)
    chunks = [BODY[:100_000], BODY[100_000:]]
    driver.upstream_sends(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for chunk in chunks:
        driver.upstream_sends(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    driver.upstream_sends(b"0\r\n\r\n")
    assert sum(through_http1_server) == len(BODY)
    assert driver.to_client.endswith(b"0\r\n\r\n")


def test_a_body_the_addon_does_not_stream_goes_mitmproxys_way(
    through_http1_server: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a response streamed unchanged (`stream is True`) is relayed: a body modifier sees every byte."""
    seen: list[int] = []

    def modifier(data: bytes) -> bytes:
        seen.append(len(data))
        return data

    answer = Driver._answer

    def streams_through_a_modifier(self: Driver, command: commands.Command) -> list[events.Event]:
        replies = answer(self, command)
        if isinstance(command, HttpResponseHeadersHook):
            command.flow.response.stream = modifier
        return replies

    monkeypatch.setattr(Driver, "_answer", streams_through_a_modifier)
    driver = Driver(RelayingHttpLayer)
    download(driver, "https://upstream.test/pattern", "length")
    assert sum(seen) == len(BODY)
    assert sum(through_http1_server) == len(BODY)


# --- decrypting -------------------------------------------------------------------------------------------------


def test_decrypt_stops_at_the_budget_and_says_more_is_left() -> None:
    client, server = _handshake_pair()
    server.sendall(BODY)
    client.bio_write(_drain(server))
    data, more = _decrypt(client, 1000)
    assert data == BODY[:1000] and more
    rest, more = _decrypt(client, len(BODY))
    assert rest == BODY[1000:] and not more


def test_decrypt_leaves_the_peers_close_to_the_tls_layer() -> None:
    """A close_notify is not data: `more` sends the TLS layer's own read to find it."""
    client, server = _handshake_pair()
    server.sendall(b"last words")
    server.shutdown()
    client.bio_write(_drain(server))
    data, more = _decrypt(client, 1 << 20)
    assert data == b"last words" and more
    with pytest.raises(SSL.ZeroReturnError):
        client.recv(100)


def test_decrypt_returns_at_most_one_buffer() -> None:
    client, server = _handshake_pair()
    capacity = len(relay._PLAINTEXT)
    big = pattern(capacity + 50_000)
    server.sendall(big)
    client.bio_write(_drain(server))
    data, more = _decrypt(client, len(big))
    assert data == big[:capacity] and more
    assert _decrypt(client, len(big))[0] == big[capacity:]


# --- encrypting -------------------------------------------------------------------------------------------------


def test_encrypt_writes_every_record_in_one_call_and_keeps_the_mode() -> None:
    """A body of many records goes into the connection at once and decrypts whole on the other side; the
    connection still writes partially afterwards (pyOpenSSL's setting, which mitmproxy's own writes rely on)."""
    client, server = _settled_pair()
    big = pattern(300_000)  # ~19 records
    assert relay._encrypt(server, _in_memory(big), len(big))
    client.bio_write(_drain(server))
    assert _decrypt(client, len(big) + 1) == (big, False)
    assert relay._lib.SSL_set_mode(server._ssl, 0) & relay._lib.SSL_MODE_ENABLE_PARTIAL_WRITE


def test_encrypt_is_refused_once_the_connection_shut_down() -> None:
    """After its close_notify a connection takes no more data: False (and no error left queued in OpenSSL)."""
    _, server = _settled_pair()
    server.shutdown()
    assert not relay._encrypt(server, _in_memory(b"late"), 4)
    assert relay._lib.ERR_peek_error() == 0


def _in_memory(data: bytes) -> object:
    """`data` in a buffer of OpenSSL's own kind (what the direct path reads into)."""
    buffer = relay._ffi.new("char[]", data)
    return buffer


def _settled_pair() -> tuple[SSL.Connection, SSL.Connection]:
    """A handshake pair whose client has read all the server sent (its session tickets): its BIO is empty, as
    mitmproxy's TLS layer leaves a connection's."""
    client, server = _handshake_pair()
    server.sendall(b"!")
    client.bio_write(_drain(server))
    assert client.recv(10) == b"!"
    return client, server


def test_a_connection_reads_in_place_across_records_split_between_reads() -> None:
    """Ciphertext read in place, in pieces that split records, decrypts to the body; afterwards the connection
    takes pyOpenSSL's bio_write and recv again."""
    client, server = _settled_pair()
    server.sendall(BODY)
    ciphertext = _drain(server)
    plaintext, view, pieces = b"", None, []
    for start in range(0, len(ciphertext), 10_000):  # records are ~16 KiB: most pieces end inside one
        pieces.append(_in_memory(ciphertext[start : start + 10_000]))
        view = relay._read_in_place(client, view, pieces[-1], len(ciphertext[start : start + 10_000]))
        assert view is not None
        data, more = _decrypt(client, len(BODY))
        assert not more
        plaintext += data
    assert plaintext == BODY
    relay._stop_reading_in_place(client, view)
    server.sendall(b"after")
    client.bio_write(_drain(server))
    assert client.recv(100) == b"after"


def test_what_a_connection_has_not_read_in_place_stays_its_own() -> None:
    """Stopped short (a budget), the rest of the read goes to the connection's memory BIO with it."""
    client, server = _settled_pair()
    server.sendall(BODY)
    ciphertext = _drain(server)
    piece = _in_memory(ciphertext)
    view = relay._read_in_place(client, None, piece, len(ciphertext))
    data, more = _decrypt(client, 1000)
    assert data == BODY[:1000] and more
    relay._stop_reading_in_place(client, view)
    del piece  # the buffer may be reused: the connection kept a copy of what it had not read
    rest, more = _decrypt(client, len(BODY))
    assert rest == BODY[1000:] and not more


def test_bytes_a_connection_has_yet_to_read_come_before_a_read_in_place() -> None:
    """Unread ciphertext in the memory BIO (or in the BIO of the read before): the new read is appended to a
    memory BIO instead of replacing it, and everything decrypts in order."""
    client, server = _settled_pair()
    server.sendall(BODY)
    ciphertext = _drain(server)
    first, second, third = ciphertext[:40_000], ciphertext[40_000:80_000], ciphertext[80_000:]
    client.bio_write(first)  # not read yet
    assert relay._read_in_place(client, None, _in_memory(second), len(second)) is None
    view = relay._read_in_place(client, None, _in_memory(third), len(third))  # now BIO-held: appended as well
    assert view is None
    assert _decrypt(client, len(BODY) + 1) == (BODY, False)
    server.sendall(BODY)
    ciphertext = _drain(server)
    piece = _in_memory(ciphertext[:50_000])  # kept: the connection reads it in place
    view = relay._read_in_place(client, None, piece, 50_000)
    assert view is not None  # empty now: read in place
    _decrypt(client, 1000)  # stops short: the view still holds bytes
    assert relay._read_in_place(client, view, _in_memory(ciphertext[50_000:]), len(ciphertext) - 50_000) is None
    assert _decrypt(client, len(BODY)) == (BODY[1000:], False)


def test_reading_in_place_leaves_no_memory_bio_to_write_to() -> None:
    """pyOpenSSL's own memory BIO is freed while the connection reads in place: its bio_write refuses."""
    client, server = _settled_pair()
    server.sendall(b"x")
    ciphertext = _drain(server)
    piece = _in_memory(ciphertext)
    view = relay._read_in_place(client, None, piece, len(ciphertext))
    with pytest.raises(TypeError):
        client.bio_write(b"more")
    relay._stop_reading_in_place(client, view)


# --- reading -----------------------------------------------------------------------------------------------------


def test_reads_ask_for_at_least_read_size() -> None:
    """mitmproxy asks its readers for 64 KiB at a time; wrapped, a read takes all that is buffered."""

    async def scenario() -> bytes:
        reader = asyncio.StreamReader(limit=READ_SIZE)
        reader.feed_data(BODY)
        return await relay._LargeReads(reader).read(65535)

    assert asyncio.run(scenario()) == BODY


def test_a_read_to_the_end_stays_one() -> None:
    async def scenario() -> bytes:
        reader = asyncio.StreamReader(limit=READ_SIZE)
        reader.feed_data(BODY)
        reader.feed_eof()
        return await relay._LargeReads(reader).read(-1)

    assert asyncio.run(scenario()) == BODY


def test_every_mitmproxy_connection_reads_large_once_patched() -> None:
    handle_connection = relay.server.ConnectionHandler.handle_connection
    assert getattr(handle_connection, "reads_large", False)
    relay.read_large()  # a second call does not wrap it again
    assert relay.server.ConnectionHandler.handle_connection is handle_connection


# --- the direct path: a real proxy on loopback -----------------------------------------------------------------


@pytest.fixture
def relayed_directly(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The sizes of the plaintext pieces the direct path wrote to a client."""
    sizes: list[int] = []
    send = relay._DirectPath._send

    def counting(self: relay._DirectPath, plaintext: object, size: int) -> bool:
        sizes.append(size)
        return send(self, plaintext, size)

    monkeypatch.setattr(relay._DirectPath, "_send", counting)
    yield sizes


@pytest.fixture
def paused_directly(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The direct paths that paused their source while the sink's transport was full, once per pause."""
    pauses: list[object] = []
    pause = relay._DirectPath._pause

    def counting(self: relay._DirectPath) -> None:
        pauses.append(self)
        pause(self)

    monkeypatch.setattr(relay._DirectPath, "_pause", counting)
    yield pauses


Client = socket.socket | ssl.SSLSocket


def _read_head(client: Client, pending: bytearray) -> tuple[bytes, int | None]:
    """A response's head from the connection (what follows it stays in `pending`), and its Content-Length."""
    while b"\r\n\r\n" not in pending:
        data = client.recv(1 << 16)
        if not data:
            raise ConnectionError(f"closed before a response head: {bytes(pending)[:80]!r}")
        pending += data
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    pending[:] = rest
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    return head, int(lengths[0]) if lengths else None


def _read_body(client: Client, pending: bytearray, length: int | None, pause: float = 0.0) -> bytes:
    """Up to `length` body bytes (all until the connection closes if None, or if it closes first), reading
    64 KiB at a time with `pause` seconds between reads."""
    while length is None or len(pending) < length:
        if pause:
            time.sleep(pause)
        data = client.recv(1 << 16)
        if not data:
            break
        pending += data
    body = bytes(pending[:length])
    del pending[: len(body)]
    return body


def _ask(client: Client, path: str) -> None:
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode())


def _get(client: Client, path: str, pending: bytearray) -> tuple[bytes, bytes]:
    """One GET on the connection: the response's head and body."""
    _ask(client, path)
    head, length = _read_head(client, pending)
    return head, _read_body(client, pending, length)


def _post_head(path: str, length: int) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: {length}\r\n\r\n".encode()


def _post(client: Client, path: str, body: bytes, pending: bytearray) -> tuple[bytes, bytes]:
    """One POST of `body` (sent 256 KiB at a time) on the connection: the response's head and body."""
    client.sendall(_post_head(path, len(body)))
    for start in range(0, len(body), 1 << 18):
        client.sendall(body[start : start + (1 << 18)])
    head, length = _read_head(client, pending)
    return head, _read_body(client, pending, length)


def _received(body: bytes) -> dict[str, object]:
    """What the test upstream's /upload answers for `body`."""
    return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@dataclass
class Jail:
    """The run's proxy on loopback with an upstream for allowed.test; a client's connection is served as
    mitmproxy's transparent mode serves one once the kernel has named its original destination (the test
    names it: allowed.test's fake-DNS address)."""

    scheme: str
    address: tuple[str, int]
    client_tls: ssl.SSLContext | None

    @contextlib.contextmanager
    def connect(self, receive_buffer: int = 0) -> Iterator[Client]:
        with socket.socket() as raw:
            if receive_buffer:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            raw.settimeout(30)
            raw.connect(self.address)
            yield self.client_tls.wrap_socket(raw, server_hostname="allowed.test") if self.client_tls else raw


def through_proxy[T](scheme: str, tmp_path: Path, client: Callable[[Jail], T]) -> tuple[T, list[tuple[str, str]]]:
    """What `client` returned, run in a thread against the proxy, and the run's decisions (decision, path)."""
    test_ca, ca = TestCA(), generate_ca("relaytest", datetime.now(UTC))
    port = {"https": 443, "http": 80}[scheme]
    upstream = start_https_upstream(test_ca, ["allowed.test"]) if scheme == "https" else start_http_upstream()
    table = FakeDnsTable()
    destination = (str(table.address_for("allowed.test")), port)
    policy = (
        "version: 1\nallow:\n  - domain: allowed.test\n    ports: [80, 443]\n    paths: [/pattern, /hello, /upload]\n"
    )
    client_tls = ssl.create_default_context(cadata=ca.cert_pem.decode()) if scheme == "https" else None

    async def main() -> T:
        with AuditLog(tmp_path / "audit.jsonl") as log, socket.socket() as unused:
            proxy = await start_proxy(
                listen=unused,
                table=table,
                settings=ProxySettings(
                    matcher=Matcher(parse_policy(policy)),
                    overrides={("allowed.test", port): ("127.0.0.1", upstream.port)},
                    log=log,
                    run_id="relaytest",
                    ca=ca,
                    upstream_trust=test_ca.write_ca_pem(tmp_path),
                ),
            )
            instance: ServerInstance[Any] = ServerInstance.make("transparent", ctx.master.addons.get("proxyserver"))

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                handler = ProxyConnectionHandler(ctx.master, reader, writer, ctx.options, instance.mode)
                handler.layer = instance.make_top_layer(handler.layer.context)
                handler.layer.context.client.sockname = handler.layer.context.server.address = destination
                with instance.manager.register_connection(handler.layer.context.client.id, handler):
                    await handler.handle_client()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            try:
                async with asyncio.timeout(30):
                    jail = Jail(scheme, server.sockets[0].getsockname(), client_tls)
                    return await asyncio.to_thread(client, jail)
            finally:
                server.close()
                await proxy.close()

    try:
        with asyncio.Runner(loop_factory=GatedEventLoop) as runner:
            result = runner.run(main())
    finally:
        upstream.close()
    decisions = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    return result, [(line["decision"], line["path"]) for line in decisions]


@pytest.fixture
def no_proxy_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The proxy logged no error (an exception in a layer is logged as "mitmproxy has crashed!")."""
    yield
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


SCHEMES = pytest.mark.parametrize("scheme", ["https", "http"])  # TLS on both sides, or on neither
LONG = 8000 * 1024


def much_of(size: int) -> int:
    """What the direct path carries of a request body at least: a client that sends faster than the upstream
    takes lets mitmproxy's reader run a few MiB ahead (bytes it read must go its way) before the direct path
    can take the socket."""
    return size // 2


def most_of(size: int) -> int:
    """What the direct path carries of a body at least: all but its first read (mitmproxy's, which the
    relay takes) and the read that could hold its end (handed back)."""
    return size - 2 * READ_SIZE - (1 << 16)


@SCHEMES
def test_a_long_body_takes_the_direct_path_and_the_connection_stays_checked(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """The 8000 KiB body of an allowed response arrives byte for byte, most of it by the direct path; the
    next requests on the same client connection are still decided, and a second long body on it (over the
    same upstream connection, given back to mitmproxy in between) takes the direct path again."""
    paths = ("/pattern?kb=8000", "/secret", "/hello", "/pattern?kb=7000")

    def client(jail: Jail) -> list[tuple[bytes, bytes]]:
        with jail.connect() as connection:
            pending = bytearray()
            return [_get(connection, path, pending) for path in paths]

    answers, decisions = through_proxy(scheme, tmp_path, client)
    (body_head, body), (denied_head, _), (hello_head, hello), (_, second) = answers
    assert body_head.startswith(b"HTTP/1.1 200") and body == pattern(LONG)
    assert second == pattern(7000 * 1024)
    assert sum(relayed_directly) >= most_of(LONG) + most_of(7000 * 1024), relayed_directly
    assert denied_head.startswith(b"HTTP/1.1 403")
    assert hello_head.startswith(b"HTTP/1.1 200") and hello == b"hello from allowed.test\n"
    assert decisions == [("allow", paths[0]), ("deny", paths[1]), ("allow", paths[2]), ("allow", paths[3])]


@SCHEMES
def test_a_close_delimited_body_takes_the_direct_path_to_its_end(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    def client(jail: Jail) -> tuple[bytes, bytes]:
        with jail.connect() as connection:
            return _get(connection, "/pattern?kb=8000&framing=close", bytearray())

    (head, body), decisions = through_proxy(scheme, tmp_path, client)
    assert head.startswith(b"HTTP/1.1 200") and body == pattern(LONG)
    assert sum(relayed_directly) >= most_of(LONG), relayed_directly
    assert decisions == [("allow", "/pattern?kb=8000&framing=close")]


@SCHEMES
def test_a_body_the_upstream_cuts_short_ends_the_client_connection_short(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """The upstream promises 8000 KiB and closes after 6000: the client gets the 6000 KiB (never more, never
    other bytes) and then its connection closes, so it knows the body is incomplete; the next connection
    is served."""

    def client(jail: Jail) -> tuple[bytes, bytes, tuple[bytes, bytes]]:
        with jail.connect() as connection:
            head, body = _get(connection, "/pattern?kb=8000&sent_kb=6000", bytearray())
        with jail.connect() as connection:
            return head, body, _get(connection, "/hello", bytearray())

    (head, body, (_, hello)), decisions = through_proxy(scheme, tmp_path, client)
    assert head.startswith(b"HTTP/1.1 200") and body == pattern(6000 * 1024)
    assert sum(relayed_directly) >= most_of(6000 * 1024), relayed_directly
    assert hello == b"hello from allowed.test\n"
    assert decisions == [("allow", "/pattern?kb=8000&sent_kb=6000"), ("allow", "/hello")]


@SCHEMES
def test_a_slow_client_pauses_the_upstream_and_gets_every_byte(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None, paused_directly: list[object]
) -> None:
    """A client reading 64 KiB every 2 ms through a small receive buffer, more than the sockets between can
    hold: the direct path stops reading the upstream while the client's transport is full and resumes when
    it drains."""

    def client(jail: Jail) -> bytes:
        with jail.connect(receive_buffer=1 << 16) as connection:
            _ask(connection, "/pattern?kb=20000")
            pending = bytearray()
            _, length = _read_head(connection, pending)
            return _read_body(connection, pending, length, pause=0.002)

    body, _ = through_proxy(scheme, tmp_path, client)
    assert body == pattern(20000 * 1024)
    assert paused_directly and sum(relayed_directly) >= most_of(20000 * 1024)


@SCHEMES
def test_bodies_relayed_at_once_on_two_connections_arrive_intact(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """Two connections read in turns, 64 KiB each, so both direct paths run at once (they share the
    relay's buffers); each gets its own body, byte for byte."""
    sizes = (8000 * 1024, 7000 * 1024)

    def client(jail: Jail) -> list[bytes]:
        with jail.connect() as first, jail.connect() as second:
            connections, bodies = (first, second), [bytearray(), bytearray()]
            for connection, size in zip(connections, sizes, strict=True):
                _ask(connection, f"/pattern?kb={size // 1024}")
            for connection, body in zip(connections, bodies, strict=True):
                _read_head(connection, body)
            while any(len(body) < size for body, size in zip(bodies, sizes, strict=True)):
                for connection, body, size in zip(connections, bodies, sizes, strict=True):
                    if len(body) < size:
                        body += connection.recv(1 << 16)
            return [bytes(body) for body in bodies]

    bodies, _ = through_proxy(scheme, tmp_path, client)
    assert bodies == [pattern(size) for size in sizes]
    assert sum(relayed_directly) >= most_of(sizes[0]) + most_of(sizes[1])


@SCHEMES
def test_a_client_that_leaves_mid_body_leaves_the_proxy_serving(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """The client reads 1.5 MiB of a 30 MiB body and goes; the next connection is served."""

    def client(jail: Jail) -> tuple[bytes, bytes]:
        with jail.connect() as connection:
            _ask(connection, "/pattern?kb=30000")
            pending = bytearray()
            _read_head(connection, pending)
            started = _read_body(connection, pending, 1536 * 1024)
        with jail.connect() as connection:
            return started, _get(connection, "/hello", bytearray())[1]

    (started, hello), decisions = through_proxy(scheme, tmp_path, client)
    assert started == pattern(1536 * 1024) and hello == b"hello from allowed.test\n"
    assert 0 < sum(relayed_directly) < 30000 * 1024
    assert decisions == [("allow", "/pattern?kb=30000"), ("allow", "/hello")]


@SCHEMES
def test_requests_pipelined_mid_body_are_each_decided_after_it(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """While the direct path carries a body, the client sends two more requests at once (a denied one and an
    allowed one): neither rides along with the body; each is decided and answered in turn after it."""
    paths = ("/pattern?kb=8000", "/secret", "/hello")

    def client(jail: Jail) -> list[tuple[bytes, bytes]]:
        with jail.connect() as connection:
            _ask(connection, paths[0])
            pending = bytearray()
            head, length = _read_head(connection, pending)
            started = _read_body(connection, pending, 2 * READ_SIZE)
            connection.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: allowed.test\r\n\r\n".encode() for p in paths[1:]))
            answers = [(head, started + _read_body(connection, pending, (length or 0) - len(started)))]
            for _ in paths[1:]:
                next_head, next_length = _read_head(connection, pending)
                answers.append((next_head, _read_body(connection, pending, next_length)))
            return answers

    answers, decisions = through_proxy(scheme, tmp_path, client)
    (body_head, body), (denied_head, _), (hello_head, hello) = answers
    assert body_head.startswith(b"HTTP/1.1 200") and body == pattern(LONG)
    assert sum(relayed_directly) >= most_of(LONG), relayed_directly
    assert denied_head.startswith(b"HTTP/1.1 403")
    assert hello_head.startswith(b"HTTP/1.1 200") and hello == b"hello from allowed.test\n"
    assert decisions == [("allow", paths[0]), ("deny", paths[1]), ("allow", paths[2])]


@SCHEMES
def test_a_response_smuggled_after_a_relayed_body_never_reaches_the_client(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """The upstream follows the 8000 KiB body with a whole response nobody asked for, in the same write (the
    read that ends the body goes mitmproxy's way): the client gets the body and never those bytes; its next
    request is decided and answered by the upstream's own answer to it."""

    def client(jail: Jail) -> list[tuple[bytes, bytes]]:
        with jail.connect() as connection:
            pending = bytearray()
            return [_get(connection, path, pending) for path in ("/pattern?kb=8000&smuggle=1", "/hello")]

    [(_, body), (_, hello)], decisions = through_proxy(scheme, tmp_path, client)
    assert body == pattern(LONG)
    assert sum(relayed_directly) >= most_of(LONG), relayed_directly
    assert hello == b"hello from allowed.test\n"
    assert decisions == [("allow", "/pattern?kb=8000&smuggle=1"), ("allow", "/hello")]


# --- the direct path, request bodies ----------------------------------------------------------------------------


@SCHEMES
def test_a_long_upload_takes_the_direct_path_and_the_connection_stays_checked(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """An 8000 KiB request body reaches the upstream byte for byte, most of it by the direct path (client
    socket to upstream socket); the next requests on the connection are still decided, and a second long
    upload on it takes the direct path again."""
    first, second = pattern(LONG), pattern(7000 * 1024)[::-1]

    def client(jail: Jail) -> list[tuple[bytes, bytes]]:
        with jail.connect() as connection:
            pending = bytearray()
            answers = [_post(connection, "/upload", first, pending)]
            answers += [_get(connection, path, pending) for path in ("/secret", "/hello")]
            return [*answers, _post(connection, "/upload", second, pending)]

    answers, decisions = through_proxy(scheme, tmp_path, client)
    (head, answer), (denied_head, _), (_, hello), (_, second_answer) = answers
    assert head.startswith(b"HTTP/1.1 200") and json.loads(answer) == _received(first)
    assert json.loads(second_answer) == _received(second)
    assert sum(relayed_directly) >= much_of(len(first)) + much_of(len(second)), relayed_directly
    assert denied_head.startswith(b"HTTP/1.1 403") and hello == b"hello from allowed.test\n"
    assert decisions == [("allow", "/upload"), ("deny", "/secret"), ("allow", "/hello"), ("allow", "/upload")]


@SCHEMES
def test_a_request_pipelined_right_after_a_long_upload_is_decided(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """The client sends its next request in the same write as the end of a long upload (the bytes a relay that
    overran the body would pass upstream unchecked): that request is decided (denied here) and answered after
    the upload's answer."""
    body = pattern(LONG)

    def client(jail: Jail) -> list[tuple[bytes, bytes]]:
        with jail.connect() as connection:
            connection.sendall(_post_head("/upload", len(body)) + body[: -(1 << 16)])
            connection.sendall(body[-(1 << 16) :] + b"GET /secret HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
            pending = bytearray()
            answers = []
            for _ in range(2):
                response_head, length = _read_head(connection, pending)
                answers.append((response_head, _read_body(connection, pending, length)))
            return answers

    [(_, answer), (denied_head, _)], decisions = through_proxy(scheme, tmp_path, client)
    assert json.loads(answer) == _received(body)
    assert sum(relayed_directly) >= much_of(len(body)), relayed_directly
    assert denied_head.startswith(b"HTTP/1.1 403")
    assert decisions == [("allow", "/upload"), ("deny", "/secret")]


@SCHEMES
def test_a_slow_upstream_pauses_the_client_and_gets_every_byte(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None, paused_directly: list[object]
) -> None:
    """An upstream reading 64 KiB every 2 ms, slower than the client sends 20000 KiB: the direct path stops
    reading the client while the upstream's transport is full and resumes when it drains."""
    body = pattern(20000 * 1024)

    def client(jail: Jail) -> bytes:
        with jail.connect() as connection:
            return _post(connection, "/upload?pause_ms=2", body, bytearray())[1]

    answer, _ = through_proxy(scheme, tmp_path, client)
    assert json.loads(answer) == _received(body)
    assert paused_directly and sum(relayed_directly) >= much_of(len(body))


@SCHEMES
def test_uploads_relayed_at_once_on_two_connections_arrive_intact(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """Two connections send in turns, 256 KiB each, so both direct paths run at once (they share the relay's
    buffers); the upstream gets each body, byte for byte."""
    bodies = (pattern(8000 * 1024), pattern(7000 * 1024)[::-1])

    def client(jail: Jail) -> list[bytes]:
        with jail.connect() as first, jail.connect() as second:
            connections = (first, second)
            for connection, body in zip(connections, bodies, strict=True):
                connection.sendall(_post_head("/upload", len(body)))
            for start in range(0, max(map(len, bodies)), 1 << 18):
                for connection, body in zip(connections, bodies, strict=True):
                    if start < len(body):
                        connection.sendall(body[start : start + (1 << 18)])
            answers = []
            for connection in connections:
                pending = bytearray()
                _, length = _read_head(connection, pending)
                answers.append(_read_body(connection, pending, length))
            return answers

    answers, _ = through_proxy(scheme, tmp_path, client)
    assert [json.loads(answer) for answer in answers] == [_received(body) for body in bodies]
    assert sum(relayed_directly) >= much_of(len(bodies[0])) + much_of(len(bodies[1]))


@SCHEMES
def test_a_client_that_stops_mid_upload_leaves_the_proxy_serving(
    scheme: str, tmp_path: Path, relayed_directly: list[int], no_proxy_errors: None
) -> None:
    """The client promises 8000 KiB, sends 6000 and goes: the upstream never gets more than was sent (it
    answers nothing), and the next connection is served."""

    def client(jail: Jail) -> bytes:
        with jail.connect() as connection:
            connection.sendall(_post_head("/upload", LONG))
            connection.sendall(pattern(6000 * 1024))
        with jail.connect() as connection:
            return _get(connection, "/hello", bytearray())[1]

    hello, decisions = through_proxy(scheme, tmp_path, client)
    assert hello == b"hello from allowed.test\n"
    assert 0 < sum(relayed_directly) <= 6000 * 1024
    assert sorted(decisions) == [("allow", "/hello"), ("allow", "/upload")]  # the upload's line comes at its end


@SCHEMES
def test_an_upstream_that_leaves_mid_upload_ends_the_client_connection(
    scheme: str, tmp_path: Path, relayed_directly: list[int]
) -> None:
    """The upstream reads 3000 KiB of an 8000 KiB upload and closes: the client, which stops sending once
    the proxy takes no more for 2 s, gets mitmproxy's 502, a closed connection or (seen once in ~80 runs,
    over HTTPS) nothing within 10 s, never another answer; the next connection is served."""
    body = pattern(LONG)

    def client(jail: Jail) -> tuple[bytes, bytes]:
        with jail.connect() as connection:
            connection.settimeout(2)
            try:
                connection.sendall(_post_head("/upload?read_kb=3000", LONG))
                for start in range(0, len(body), 1 << 18):
                    connection.sendall(body[start : start + (1 << 18)])
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass
            connection.settimeout(10)
            try:
                answer = _read_head(connection, bytearray())[0]
            except (ConnectionError, ssl.SSLError, TimeoutError):
                answer = b""
        with jail.connect() as connection:
            return answer, _get(connection, "/hello", bytearray())[1]

    (answer, hello), decisions = through_proxy(scheme, tmp_path, client)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 502"), answer
    assert hello == b"hello from allowed.test\n"
    assert 0 < sum(relayed_directly) < LONG  # (what the sockets took: more than the upstream read)
    assert sorted(decisions) == [("allow", "/hello"), ("allow", "/upload?read_kb=3000")]
