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
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import connection, options
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode, ResponseData
from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook
from mitmproxy.proxy.layers.http._http1 import Http1Server
from mitmproxy.proxy.layers.tls import TlsStartServerHook
from mitmproxy.tls import TlsData
from OpenSSL import SSL

import boundary.proxy  # noqa: F401 - registers mitmproxy.addons bare, as the proxy does
from boundary import relay
from boundary.relay import READ_SIZE, RelayingHttpLayer, _decrypt
from tests.support.upstreams import TestCA, pattern

BODY = pattern(300_000)


# --- TLS in memory -------------------------------------------------------------------------------------------


def _server_context() -> SSL.Context:
    leaf = TestCA().issue(["upstream.test"])
    context = SSL.Context(SSL.TLS_METHOD)
    context.use_certificate(x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()))
    context.use_privatekey(serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None))  # type: ignore[arg-type]
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
        opts = options.Options()
        proxyserver.Proxyserver().load(opts)
        self.client = connection.Client(
            peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 8080), timestamp_start=1.0
        )
        self.client.state = connection.ConnectionState.OPEN
        self.layer = layer_class(Context(self.client, opts), HTTPMode.regular)
        self.to_client = bytearray()
        self.to_upstream = bytearray()
        self.upstream: connection.Server | None = None
        self.upstream_tls: SSL.Connection | None = None
        self.feed(events.Start())

    def feed(self, *first: events.Event) -> None:
        pending = list(first)
        while pending:
            for command in self.layer.handle_event(pending.pop(0)):
                pending += self._answer(command)

    def _answer(self, command: commands.Command) -> list[events.Event]:
        if isinstance(command, commands.SendData):
            if command.connection is self.client:
                self.to_client += command.data
                return []
            return self._upstream_receives(command.data)
        if isinstance(command, commands.OpenConnection):
            self.upstream = command.connection  # type: ignore[assignment]
            command.connection.state = connection.ConnectionState.OPEN
            command.connection.timestamp_start = 1.0
            return [events.OpenConnectionCompleted(command, None)]
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
        return send(self, event)  # type: ignore[arg-type]

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
    big = pattern(READ_SIZE + 50_000)
    server.sendall(big)
    client.bio_write(_drain(server))
    data, more = _decrypt(client, len(big))
    assert data == big[:READ_SIZE] and more
    assert _decrypt(client, len(big))[0] == big[READ_SIZE:]


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


def test_every_mitmproxy_connection_reads_large_once_the_proxy_is_imported() -> None:
    handle_connection = relay.server.ConnectionHandler.handle_connection
    assert getattr(handle_connection, "reads_large", False)
    relay.read_large()  # a second call does not wrap it again
    assert relay.server.ConnectionHandler.handle_connection is handle_connection
