"""A short path for the bytes of an already-decided HTTP/1 response body, and larger reads.

mitmproxy hands every piece of a streamed response body through its HTTP/1 client layer (a buffer and h11's body
reader), an HTTP stream and its HTTP/1 server layer before the client-side TLS layer encrypts it: at a 1 GiB
download that was about half of the proxy's CPU, with four copies of every byte on the way. Once a response's
headers went through the policy and its body streams unchanged to an HTTP/1 client, those layers only count:
`RelayingHttpLayer` sends the plaintext straight to the client connection (through the same client TLS layer,
which sits above every HTTP layer) and takes the count off mitmproxy's body reader. It leaves the last byte of a
sized body to the normal path, so the end of the message, keep-alive and the next request stay mitmproxy's own.

Only bodies are relayed, and only in the plain case: requests, headers and every other event take mitmproxy's
path, and so does a body with HTTP/2 on either side, chunked framing, a body modifier, stored bodies or bytes
already buffered in the reader. When the upstream TLS layer is the HTTP layer's child, the relay decrypts on its
TLS connection itself, at most what the body has left; what remains there is read by the TLS layer as usual.

`read_large`: mitmproxy reads 64 KiB per socket read and each read is one trip through its layers; reading up
to 1 MiB took a quarter off the proxy's CPU per GiB.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from h11._readers import ContentLengthReader, Http10Reader
from mitmproxy.connection import Connection
from mitmproxy.proxy import commands, events, layer, server
from mitmproxy.proxy.layers.http import HttpClient, HttpLayer
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server
from mitmproxy.proxy.layers.tls import ServerTLSLayer
from mitmproxy.proxy.tunnel import TunnelState
from OpenSSL import SSL

# Reads from a socket of up to this much: mitmproxy reads 64 KiB, and every read is one trip through its layers.
READ_SIZE = 1 << 20

_UNBOUNDED = 1 << 62  # what may be relayed of a close-delimited body

_lib, _ffi = SSL._lib, SSL._ffi  # type: ignore[attr-defined]
_PLAINTEXT = _ffi.new("char[]", READ_SIZE)  # one event's plaintext at a time: the event loop is one thread


class RelayingHttpLayer(HttpLayer):
    """mitmproxy's HTTP layer, relaying the plaintext body of a streamed HTTP/1 response to an HTTP/1 client."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        rest: events.Event | None = event
        if isinstance(event, events.DataReceived):
            upstream = self.connections.get(event.connection)
            if type(upstream) is HttpClient:
                rest = yield from self._relay_plaintext(upstream, event)
            elif type(upstream) is ServerTLSLayer:
                rest = yield from self._relay_ciphertext(upstream, event)
        if rest is not None:
            yield from super()._handle_event(rest)

    def _relay_plaintext(
        self, upstream: HttpClient, event: events.DataReceived
    ) -> layer.CommandGenerator[events.DataReceived | None]:
        """Relay what `event` carries of a relayable body; the event for the rest, if any."""
        reader = self._relayable_body(upstream)
        if reader is None:
            return event
        data = event.data
        take = min(len(data), _budget(reader))
        if take:
            _count(reader, take)
            yield commands.SendData(self.context.client, data[:take])
        return events.DataReceived(event.connection, data[take:]) if take < len(data) else None

    def _relay_ciphertext(
        self, tls_layer: ServerTLSLayer, event: events.DataReceived
    ) -> layer.CommandGenerator[events.DataReceived | None]:
        """Decrypt on `tls_layer`'s connection as much as the relayable body has left and relay it; what may
        be left in the TLS connection goes the normal way (an event without data: the TLS layer reads on)."""
        upstream = tls_layer.child_layer
        reader = self._relayable_body(upstream) if tls_layer.tunnel_state is TunnelState.OPEN else None
        if reader is None:
            return event
        tls_layer.tls.bio_write(event.data)
        data, left_in_tls = _decrypt(tls_layer.tls, _budget(reader))
        if data:
            _count(reader, len(data))
            yield commands.SendData(self.context.client, data)
        yield from tls_layer.tls_interact()
        return events.DataReceived(event.connection, b"") if left_in_tls else None

    def _relayable_body(self, upstream: layer.Layer) -> ContentLengthReader | Http10Reader | None:
        """The body reader of `upstream`'s response if its plaintext may go straight to the client."""
        client = getattr(upstream, "child_layer", None)
        if type(client) is not Http1Client or client.state != client.read_body or client.buf:
            return None
        reader = client.body_reader
        if type(reader) is ContentLengthReader:
            if reader._remaining < 2:
                return None
        elif type(reader) is not Http10Reader:
            return None
        stream = self.streams.get(client.stream_id or 0)
        if stream is None or stream.server_state != stream.state_stream_response_body:
            return None
        if stream.flow.response is None or stream.flow.response.stream is not True:
            return None
        if self.context.options.store_streamed_bodies:
            return None
        downstream = self.connections.get(self.context.client)
        if type(downstream) is not Http1Server or downstream.stream_id != client.stream_id:
            return None
        response = downstream.response
        if response is None or "chunked" in response.headers.get("transfer-encoding", "").lower():
            return None
        return reader


def _decrypt(tls: SSL.Connection, budget: int) -> tuple[bytes, bool]:
    """Up to `budget` bytes of plaintext from what `tls` has received, and whether it may hold more (or an
    error, or the peer's close): then the TLS layer's own read must see it. SSL_read straight into one buffer:
    pyOpenSSL's recv allocates and copies once per 16 KiB record (~10% of the proxy's CPU in a download)."""
    ssl, buffer = tls._ssl, _PLAINTEXT
    filled = 0
    while filled < len(buffer) and budget > filled:
        read = _lib.SSL_read(ssl, buffer + filled, min(len(buffer), budget) - filled)
        if read <= 0:
            return _ffi.buffer(buffer, filled)[:], _lib.SSL_get_error(ssl, read) != _lib.SSL_ERROR_WANT_READ
        filled += read
    return _ffi.buffer(buffer, filled)[:], True


def _budget(reader: ContentLengthReader | Http10Reader) -> int:
    """How much of the body may be relayed: all but its last byte (which ends the message the normal way)."""
    return reader._remaining - 1 if type(reader) is ContentLengthReader else _UNBOUNDED


def _count(reader: ContentLengthReader | Http10Reader, relayed: int) -> None:
    if type(reader) is ContentLengthReader:
        reader._remaining -= relayed


class _LargeReads:
    """A StreamReader whose reads ask for at least READ_SIZE bytes (mitmproxy asks for 64 KiB)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        return await self._reader.read(max(n, READ_SIZE) if n >= 0 else n)


_Handler = Callable[[server.ConnectionHandler, Connection], Coroutine[Any, Any, None]]


def _read_large(handle_connection: _Handler) -> _Handler:
    async def handle(self: server.ConnectionHandler, connection: Connection) -> None:
        io = self.transports[connection]
        if isinstance(io.reader, asyncio.StreamReader):
            io.reader = _LargeReads(io.reader)  # type: ignore[assignment]
        await handle_connection(self, connection)

    return handle


def read_large() -> None:
    """Make every connection of mitmproxy's read up to READ_SIZE at a time (once per process)."""
    handle_connection = server.ConnectionHandler.handle_connection
    if not getattr(handle_connection, "reads_large", False):
        handle = _read_large(handle_connection)
        handle.reads_large = True  # type: ignore[attr-defined]
        server.ConnectionHandler.handle_connection = handle  # type: ignore[method-assign,assignment]
