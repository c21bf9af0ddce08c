"""Short paths for the bytes of an already-decided HTTP/1 message body, and larger reads.

mitmproxy hands every piece of a streamed response body through its HTTP/1 client layer (a buffer and h11's body
reader), an HTTP stream and its HTTP/1 server layer before the client-side TLS layer encrypts it: a large
share of the proxy's CPU in a download, with four copies of every byte on the way. Once a response's
headers went through the policy and its body streams unchanged to an HTTP/1 client, those layers only count:
`RelayingHttpLayer` sends the plaintext straight to the client connection (through the same client TLS layer,
which sits above every HTTP layer) and takes the count off mitmproxy's body reader. It leaves the last byte of a
sized body to the normal path, so the end of the message, keep-alive and the next request stay mitmproxy's own.
A request body (an upload) is relayed the same way, from the client's HTTP/1 server layer to the server
connection's own layers, once the request was allowed and streams to an HTTP/1 server that has not answered.

Only bodies are relayed, and only in the plain case: requests, headers and every other event take mitmproxy's
path, and so does a body with HTTP/2 on either side, chunked framing, a body modifier, stored bodies or bytes
already buffered in the parser. When the upstream TLS layer is the HTTP layer's child, the relay decrypts on its
TLS connection itself, at most what the body has left; what remains there is read by the TLS layer as usual.

A long body goes further (`_DirectPath`): past its first read, the reads of the socket it arrives on skip
mitmproxy's connection handler and layers altogether, from that socket to the other side's transport in one
call each, until a read could hold the body's end.

`read_large`: mitmproxy reads 64 KiB per socket read and each read is one trip through its layers; reading up
to 1 MiB makes a sixteenth of the trips.

Performance only, each of these; the measurements behind them are in docs/internals.md.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, cast

from h11._readers import ContentLengthReader, Http10Reader
from mitmproxy import ctx
from mitmproxy.connection import Connection
from mitmproxy.proxy import commands, events, layer, server
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.layers.http import HttpClient, HttpLayer
from mitmproxy.proxy.layers.http._events import RequestData
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server
from mitmproxy.proxy.layers.tls import ClientTLSLayer, ServerTLSLayer
from mitmproxy.proxy.tunnel import TunnelLayer, TunnelState
from OpenSSL import SSL

# Reads from a socket of up to this much: mitmproxy reads 64 KiB, and every read is one trip through its layers.
READ_SIZE = 1 << 20

_UNBOUNDED = 1 << 62  # what may be relayed of a close-delimited body

# A body with more than this left takes the direct path: below it, setting one up costs more than it saves.
DIRECT_MIN = 1 << 20

# What a TLS connection may hold of earlier reads when a new one arrives: a partial record, at most.
_RECORD_SLACK = 1 << 15

_lib, _ffi = SSL._lib, SSL._ffi  # type: ignore[attr-defined]  # pyOpenSSL's private cffi bindings
# One read's bytes at a time (the event loop is one thread): what the direct path reads from the upstream socket,
# its plaintext (with what the TLS connection held of earlier reads) and that plaintext encrypted for the client.
# Not zeroed: a page costs memory only once a read has used it, so a proxy that never relays a long body
# carries none of it.
_buffer = _ffi.new_allocator(should_clear_after_alloc=False)
_INBOX = _buffer("char[]", READ_SIZE)
_PLAINTEXT = _buffer("char[]", READ_SIZE + _RECORD_SLACK)
_CIPHERTEXT = _buffer("char[]", READ_SIZE + 2 * _RECORD_SLACK)
_INBOX_VIEW = memoryview(_ffi.buffer(_INBOX))

_BodyReader = ContentLengthReader | Http10Reader

# Layers that pass what goes to the client through unchanged.
_TRANSPARENT_LAYERS = (modes.TransparentProxy, TunnelLayer)


class RelayingHttpLayer(HttpLayer):
    """mitmproxy's HTTP layer, relaying the plaintext body of a streamed HTTP/1 message straight to the other
    side: a response's to an HTTP/1 client, a request's to an HTTP/1 server."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        rest: events.Event | None = event
        if isinstance(event, events.DataReceived):
            upstream = self.connections.get(event.connection)
            if type(upstream) is Http1Server:  # the client's side
                rest = yield from self._relay_request(event)
            elif type(upstream) is HttpClient:
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
        rest = yield from self._take(reader, event, lambda data: [commands.SendData(self.context.client, data)])
        if rest is None:
            self._go_direct(event.connection, upstream, reader)
        return rest

    def _relay_ciphertext(
        self, tls_layer: ServerTLSLayer, event: events.DataReceived
    ) -> layer.CommandGenerator[events.DataReceived | None]:
        """Decrypt on `tls_layer`'s connection as much as the relayable body has left and relay it; what may
        be left in the TLS connection goes the normal way (an event without data: the TLS layer reads on)."""
        upstream = tls_layer.child_layer
        reader = self._relayable_body(upstream) if tls_layer.tunnel_state is TunnelState.OPEN else None
        if reader is None:
            return event
        if event.data:  # none when the direct path prompts a read
            tls_layer.tls.bio_write(event.data)
        data, left_in_tls = _decrypt(tls_layer.tls, _budget(reader))
        if data:
            _count(reader, len(data))
            yield commands.SendData(self.context.client, data)
        yield from tls_layer.tls_interact()
        if left_in_tls:
            return events.DataReceived(event.connection, b"")
        self._go_direct(event.connection, upstream, reader)
        return None

    def _relay_request(self, event: events.DataReceived) -> layer.CommandGenerator[events.DataReceived | None]:
        """Send what the client's `event` carries of a relayable request body to the server connection's own
        layers (past the client's HTTP/1 parser and the HTTP stream); the event for the rest, if any."""
        relayable = self._relayable_request_body()
        if relayable is None:
            return event
        reader, stream_id, server = relayable
        rest = yield from self._take(
            reader, event, lambda data: self.event_to_child(self.connections[server], RequestData(stream_id, data))
        )
        if rest is None:

            def still_relayable() -> bool:
                now = self._relayable_request_body()
                return now is not None and now[0] is reader

            self._direct(server, reader, still_relayable, upload=True)
        return rest

    def _take(
        self,
        reader: _BodyReader,
        event: events.DataReceived,
        send: Callable[[bytes], Iterable[commands.Command]],
    ) -> layer.CommandGenerator[events.DataReceived | None]:
        """Count off `reader` and `send` on what `event` carries of the body; the event for what lies beyond
        the body's budget, None if it was all body."""
        data = event.data
        take = min(len(data), _budget(reader))
        if take:
            _count(reader, take)
            yield from send(data[:take])
        return events.DataReceived(event.connection, data[take:]) if take < len(data) else None

    def _go_direct(self, server: Connection, upstream: layer.Layer, reader: _BodyReader) -> None:
        """Take the upstream socket's next reads of a long relayable response body past mitmproxy."""

        def still_relayable() -> bool:
            return self._relayable_body(upstream) is reader

        self._direct(server, reader, still_relayable, upload=False)

    def _direct(
        self, server: Connection, reader: _BodyReader, still_relayable: Callable[[], bool], upload: bool
    ) -> None:
        """Take the next reads of the socket the body arrives on (the client's for an upload, else `server`'s)
        past mitmproxy (see `_DirectPath`) if the body has more than DIRECT_MIN left and both sockets are
        mitmproxy's own, idle as far as mitmproxy knows, with nothing but TLS or nothing between them and
        this layer."""
        if _budget(reader) < DIRECT_MIN:
            return
        (client_known, client_tls), (server_known, server_tls) = self._client_tls(), self._server_tls(server)
        if not client_known or not server_known:
            return
        client = self.context.client
        source, source_tls, sink, sink_tls = (
            (client, client_tls, server, server_tls) if upload else (server, server_tls, client, client_tls)
        )
        handler = _connection_handler(self.context.client)
        if handler is None:
            return
        source_io, sink_io = handler.transports.get(source), handler.transports.get(sink)
        if source_io is None or sink_io is None:
            return
        source_reader = getattr(source_io.reader, "reader", None)
        if not isinstance(source_reader, asyncio.StreamReader) or source_reader._eof:  # type: ignore[attr-defined]  # asyncio's private
            return
        ahead: bytearray = source_reader._buffer  # type: ignore[attr-defined]  # asyncio's: what mitmproxy has not read
        if len(ahead) > READ_SIZE:
            return
        source_writer, sink_writer = source_io.writer, sink_io.writer
        if not isinstance(source_writer, asyncio.StreamWriter) or not isinstance(sink_writer, asyncio.StreamWriter):
            return
        transport = source_writer.transport
        protocol = transport.get_protocol()
        if not isinstance(transport, asyncio.Transport) or type(protocol) is not asyncio.StreamReaderProtocol:
            return  # not mitmproxy's own (or already direct)
        path = _DirectPath(handler, source, transport, source_tls, reader, still_relayable, sink_tls, sink_writer)
        if ahead:  # what mitmproxy's reader holds comes first: the direct path's first read
            size = len(ahead)
            _INBOX_VIEW[:size] = ahead
            ahead.clear()
            source_reader._maybe_resume_transport()  # type: ignore[attr-defined]  # asyncio's private
            path.buffer_updated(size)

    def _client_tls(self) -> tuple[bool, SSL.Connection | None]:
        """What turns the client's socket bytes into this layer's plaintext and back: (True, the client TLS
        connection), (True, None) for plain HTTP, or (False, None) if a layer between this one and the socket
        could change them otherwise."""
        client, tls = self.context.client, None
        for outer in self.context.layers:
            if outer is self:
                return True, tls
            if isinstance(outer, TunnelLayer) and outer.tunnel_connection is client:
                if type(outer) is not ClientTLSLayer or tls is not None or outer.tunnel_state is not TunnelState.OPEN:
                    return False, None
                tls = outer.tls
            elif not isinstance(outer, _TRANSPARENT_LAYERS):
                return False, None
        return False, None

    def _server_tls(self, server: Connection) -> tuple[bool, SSL.Connection | None]:
        """Like `_client_tls`, between this layer and `server`'s socket: its open TLS layer or none at all."""
        upstream = self.connections.get(server)
        if type(upstream) is HttpClient:
            return True, None
        if type(upstream) is ServerTLSLayer and upstream.tunnel_state is TunnelState.OPEN:
            return True, upstream.tls
        return False, None

    def _relayable_request_body(self) -> tuple[_BodyReader, int, Connection] | None:
        """The body reader of the client's request, its stream and the server connection it goes to, if its
        plaintext may go straight there: a streamed HTTP/1 request with a Content-Length to an HTTP/1 server
        that has not answered yet."""
        downstream = self.connections.get(self.context.client)
        if type(downstream) is not Http1Server or downstream.state != downstream.read_body or downstream.buf:
            return None
        reader = downstream.body_reader
        if type(reader) is not ContentLengthReader or reader._remaining < 2:
            return None
        stream = self.streams.get(downstream.stream_id)
        if stream is None or stream.client_state != stream.state_stream_request_body:
            return None
        if stream.server_state != stream.state_wait_for_response_headers:
            return None
        if stream.flow.request.stream is not True or self.context.options.store_streamed_bodies:
            return None
        server = stream.context.server
        upstream = self.connections.get(server)
        if type(upstream) is ServerTLSLayer:
            upstream = upstream.child_layer
        client = getattr(upstream, "child_layer", None) if type(upstream) is HttpClient else None
        if type(client) is not Http1Client or client.stream_id != downstream.stream_id or client.request is None:
            return None
        if "chunked" in client.request.headers.get("transfer-encoding", "").lower():
            return None
        return reader, downstream.stream_id, server

    def _relayable_body(self, upstream: layer.Layer) -> _BodyReader | None:
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


class _DirectPath(asyncio.BufferedProtocol):
    """A long relayable body's reads, from the socket it arrives on to the other side's, in one call per read.

    mitmproxy's path for each read of a socket: a fresh bytes object, its reader's buffer, a task wake-up, its
    connection handler, the layer stack down to the relay and back up through the other side's TLS layer, one
    command per 64 KiB and a drain of every writer. Once a body is relayable and has more than DIRECT_MIN
    left, this protocol stands in for mitmproxy's on the source's transport (the upstream's for a response,
    the client's for a request): the socket is read into one buffer, decrypted (if the source speaks TLS),
    counted, encrypted (if the sink does) and written to the sink's transport; when that transport's buffer is
    full, the source pauses until it drains.

    A read that could hold the body's end (or more) goes to mitmproxy's protocol untouched, and so does
    everything after it: the message ends, and the next message is parsed, on mitmproxy's own path. So does
    every read once the body is no longer relayable or the sink is closing, and the source's end. A TLS error
    or close on the source ends the direct path and prompts mitmproxy's TLS layer to read, which then meets
    it. Nothing but body bytes of a message already allowed takes this path."""

    def __init__(
        self,
        handler: server.ConnectionHandler,
        source: Connection,
        source_transport: asyncio.Transport,
        source_tls: SSL.Connection | None,
        reader: _BodyReader,
        still_relayable: Callable[[], bool],
        sink_tls: SSL.Connection | None,
        sink: asyncio.StreamWriter,
    ) -> None:
        self._handler, self._source, self._source_tls = handler, source, source_tls
        self._source_transport = source_transport
        self._reader, self._still_relayable, self._sink_tls, self._sink = reader, still_relayable, sink_tls, sink
        self._sink_socket = sink.transport.get_extra_info("socket").fileno()
        self._mitmproxy = cast(asyncio.StreamReaderProtocol, source_transport.get_protocol())
        self._paused = False
        self._pending: asyncio.Future[None] | None = None  # the drain or prompt under way: a task needs a reference
        self._view: Any = None  # the BIO that has `source_tls` read _INBOX in place, while there is one
        source_transport.set_protocol(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _INBOX_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        if nbytes + _RECORD_SLACK >= _budget(self._reader) or self._sink.is_closing() or not self._still_relayable():
            self._leave(_INBOX_VIEW[:nbytes].tobytes())
            return
        self._handler.timeout_watchdog.register_activity()
        if self._source_tls is None:
            plaintext, size, more = _INBOX, nbytes, False
        else:
            plaintext, (size, more) = _PLAINTEXT, self._decrypt(self._source_tls, nbytes)
        if size:
            _count(self._reader, size)
            if not self._send(plaintext, size):
                self._leave(b"")
                return
        if more:
            self._leave(b"")
            prompt = events.DataReceived(self._source, b"")  # mitmproxy's TLS layer reads on and meets it
            self._pending = asyncio.ensure_future(self._handler.server_event(prompt))
        elif self._sink.transport.get_write_buffer_size() > self._sink.transport.get_write_buffer_limits()[1]:
            self._pause()

    def eof_received(self) -> bool | None:
        self._leave(b"")
        return self._mitmproxy.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave(b"")
        self._mitmproxy.connection_lost(exc)

    def pause_writing(self) -> None:
        self._mitmproxy.pause_writing()

    def resume_writing(self) -> None:
        self._mitmproxy.resume_writing()

    def _decrypt(self, source: SSL.Connection, nbytes: int) -> tuple[int, bool]:
        """`_decrypt_into` of the read in _INBOX, which `source` reads in place (see `_read_in_place`)."""
        self._view = _read_in_place(source, self._view, _INBOX, nbytes)
        return _decrypt_into(source, _budget(self._reader))

    def _send(self, plaintext: Any, size: int) -> bool:
        """Write `size` bytes at `plaintext` to the sink; False if its TLS connection refused them (as
        mitmproxy's TLS layer does, they are dropped: the sink is closing)."""
        if self._sink_tls is None:
            self._write(plaintext, size)
            return True
        if not _encrypt(self._sink_tls, plaintext, size):
            return False
        while (ciphertext := _lib.BIO_read(self._sink_tls._from_ssl, _CIPHERTEXT, len(_CIPHERTEXT))) > 0:
            self._write(_CIPHERTEXT, ciphertext)
        return True

    def _write(self, data: Any, size: int) -> None:
        """Write `size` bytes at `data` (a buffer the next read reuses) to the sink: while its transport has
        nothing queued, straight from the buffer to the socket (what the transport's write would do first, but
        without copying the bytes out); what the socket does not take goes through the transport, which keeps
        a copy."""
        transport, sent = self._sink.transport, 0
        if not transport.get_write_buffer_size():
            try:
                sent = os.write(self._sink_socket, _ffi.buffer(data, size))
            except OSError:  # would block, or the connection failed: the transport's write meets it as usual
                sent = 0
        if sent < size:
            transport.write(_ffi.buffer(data + sent, size - sent)[:])

    def _pause(self) -> None:
        """Stop reading the source until the sink's transport has drained."""
        self._paused = True
        self._source_transport.pause_reading()
        self._pending = asyncio.ensure_future(self._resume_when_drained())

    async def _resume_when_drained(self) -> None:
        try:
            await self._sink.drain()
        except OSError:
            self._leave(b"")  # mitmproxy's handler of the sink's connection meets the same and closes both
            return
        if self._paused:
            self._paused = False
            self._source_transport.resume_reading()

    def _leave(self, data: bytes) -> None:
        """Give the source's transport back to mitmproxy's protocol, starting with `data`."""
        if self._view is not None and self._source_tls is not None:
            _stop_reading_in_place(self._source_tls, self._view)
            self._view = None
        if self._source_transport.get_protocol() is self:
            self._source_transport.set_protocol(self._mitmproxy)
        if self._paused:
            self._paused = False
            self._source_transport.resume_reading()
        if data:
            self._mitmproxy.data_received(data)


def _connection_handler(client: Connection) -> server.ConnectionHandler | None:
    """The handler serving `client` and its upstream connections, from mitmproxy's proxyserver, which
    registers each for its lifetime. None for layers driven without one (as layer tests do)."""
    master = getattr(ctx, "master", None)
    proxyserver = master.addons.get("proxyserver") if master is not None else None
    handler: server.ConnectionHandler | None = proxyserver.connections.get(client.id) if proxyserver else None
    return handler


def _read_in_place(tls: SSL.Connection, view: Any, data: Any, size: int) -> Any:
    """Have `tls` read its next ciphertext, the `size` bytes at `data`, where they are: through a read-only BIO
    that stands in for pyOpenSSL's memory BIO (which copies what it is given, after OpenSSL zeroed the space:
    two passes over every byte of a download). `view` is the BIO of the read before (None at first). The BIO
    replaced is freed, so pyOpenSSL's bio_write refuses until `_stop_reading_in_place`. Should the BIO in
    place hold bytes yet unread (mitmproxy's TLS layer reads its BIO empty: not seen), those come first: the
    read is appended to a memory BIO instead. Returns the BIO in place now (None: pyOpenSSL's)."""
    if _lib.BIO_get_mem_data(view if view is not None else tls._into_ssl, _ffi.NULL) > 0:
        if view is not None:
            _stop_reading_in_place(tls, view)
        _lib.BIO_write(tls._into_ssl, data, size)
        return None
    view = _lib.BIO_new_mem_buf(data, size)
    _lib.BIO_set_mem_eof_return(view, -1)  # read to its end, it asks for more instead of reporting the end
    _lib.SSL_set_bio(tls._ssl, view, tls._from_ssl)
    tls._into_ssl = None
    return view


def _stop_reading_in_place(tls: SSL.Connection, view: Any) -> None:
    """Give `tls` a memory BIO of pyOpenSSL's again, holding what it has not read of `view`."""
    into, unread = _lib.BIO_new(_lib.BIO_s_mem()), _ffi.new("char **")
    if (left := _lib.BIO_get_mem_data(view, unread)) > 0:
        _lib.BIO_write(into, unread[0], left)
    _lib.SSL_set_bio(tls._ssl, into, tls._from_ssl)
    tls._into_ssl = into


def _decrypt(tls: SSL.Connection, budget: int) -> tuple[bytes, bool]:
    """Up to `budget` bytes of plaintext from what `tls` has received, and whether it may hold more (or an
    error, or the peer's close): then the TLS layer's own read must see it."""
    size, more = _decrypt_into(tls, budget)
    return _ffi.buffer(_PLAINTEXT, size)[:], more


def _decrypt_into(tls: SSL.Connection, budget: int) -> tuple[int, bool]:
    """`_decrypt` into _PLAINTEXT: its size. SSL_read straight into one buffer: pyOpenSSL's recv allocates and
    copies once per 16 KiB record."""
    ssl, buffer = tls._ssl, _PLAINTEXT
    filled = 0
    while filled < len(buffer) and budget > filled:
        read = _lib.SSL_read(ssl, buffer + filled, min(len(buffer), budget) - filled)
        if read <= 0:
            return filled, _lib.SSL_get_error(ssl, read) != _lib.SSL_ERROR_WANT_READ
        filled += read
    return filled, True


def _encrypt(tls: SSL.Connection, plaintext: Any, size: int) -> bool:
    """Write the `size` bytes at `plaintext` to `tls` in one call (pyOpenSSL's connections write partially, a
    record per call); False if it refused them (it is shutting down)."""
    ssl = tls._ssl
    mode = _lib.SSL_set_mode(ssl, 0)  # its mode, unchanged
    _lib.SSL_clear_mode(ssl, _lib.SSL_MODE_ENABLE_PARTIAL_WRITE)
    written = _lib.SSL_write(ssl, plaintext, size)
    _lib.SSL_set_mode(ssl, mode & _lib.SSL_MODE_ENABLE_PARTIAL_WRITE)
    if written == size:
        return True
    _lib.ERR_clear_error()
    return False


def _budget(reader: _BodyReader) -> int:
    """How much of the body may be relayed: all but its last byte (which ends the message the normal way)."""
    return reader._remaining - 1 if type(reader) is ContentLengthReader else _UNBOUNDED


def _count(reader: _BodyReader, relayed: int) -> None:
    if type(reader) is ContentLengthReader:
        reader._remaining -= relayed


class _LargeReads:
    """A StreamReader whose reads ask for at least READ_SIZE bytes (mitmproxy asks for 64 KiB)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def read(self, n: int = -1) -> bytes:
        return await self.reader.read(max(n, READ_SIZE) if n >= 0 else n)


_Handler = Callable[[server.ConnectionHandler, Connection], Coroutine[Any, Any, None]]


def _read_large(handle_connection: _Handler) -> _Handler:
    async def handle(self: server.ConnectionHandler, connection: Connection) -> None:
        io = self.transports[connection]
        if isinstance(io.reader, asyncio.StreamReader):
            io.reader = _LargeReads(io.reader)  # type: ignore[assignment]  # duck-typed: mitmproxy only reads
        await handle_connection(self, connection)

    return handle


def read_large() -> None:
    """Make every connection of mitmproxy's read up to READ_SIZE at a time (once per process)."""
    handle_connection = server.ConnectionHandler.handle_connection
    if not getattr(handle_connection, "reads_large", False):
        handle = _read_large(handle_connection)
        handle.reads_large = True  # type: ignore[attr-defined]  # a mark on the function: wrapped once
        server.ConnectionHandler.handle_connection = handle  # type: ignore[method-assign,assignment]  # the patch
