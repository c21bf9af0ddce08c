"""Where boundary changes mitmproxy's protocol layers: the one place that patches their private methods.

Each patch closes a seam where one request could be read two ways, or where mitmproxy refuses something
without any hook seeing it. `apply()` installs them all, once per process (`boundary.proxy.patches.apply`, which
first checks that this mitmproxy still has what they wrap: `REQUIRED` there).

- **h2 -> HTTP/1 framing** (`Http1Client.send`). mitmproxy writes an HTTP/2 request to an HTTP/1 server as its
  head plus the DATA, raw. Without a `content-length` the head has neither Content-Length nor
  Transfer-Encoding, so the server reads the DATA as *further requests*: any method, path and Host, never
  checked. Here every such request gets unambiguous framing: its `content-length` (which the h2 library holds
  the DATA to), or else chunked encoding (even on a GET: a body is framed wherever it appears); a request
  whose HEADERS ended the stream has no body at all. Empty DATA frames send nothing (chunked, an empty chunk
  would end the body early). HTTP/2 trailers go in the chunked trailer section (mitmproxy would crash on
  them), checked like header lines; with a Content-Length they cannot be carried and are dropped.
- **Request-head limits** (`Http1Server.read_headers`). mitmproxy buffers a request head without bound ("FIXME:
  protect against header size DoS"): a head over `request_head` bytes, complete or not, or with more than
  `request_headers` fields, is answered `431` and the connection closed, before any hook. HTTP/2 header lists
  are held to the same size by the h2 library's HPACK decoder (`Http2Server`, advertised in SETTINGS).
- **Refusals no hook sees.** mitmproxy answers a request head it cannot parse (a lower-case `http/1.1`, an
  HTTP/0.9 line) with `400`, and ends an HTTP/2 connection on a protocol error, without telling any addon.
  Each of these, and the 431s above, starts a `RequestRefusedHook` so the policy addon writes its audit line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import h2.exceptions
from mitmproxy import connection, http
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestTrailers,
)
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server
from mitmproxy.proxy.layers.http._http2 import Http2Server

from boundary.policy.canon import TOKEN_BYTES
from boundary.policy.model import DEFAULT_REQUEST_HEAD, DEFAULT_REQUEST_HEADERS
from boundary.reasons import Reason

logger = logging.getLogger(__name__)

__all__ = [
    "Refusal",
    "RequestRefusedHook",
    "apply",
    "h1_framing",
]

# mitmproxy options the policy addon declares; the patched layers read them from their context.
OPTION_REQUEST_HEAD: Final = "boundary_request_head"
OPTION_REQUEST_HEADERS: Final = "boundary_request_headers"


# Framing and routing fields have no place in trailers (RFC 9110 6.5.1); a server must not act on them.
_NOT_IN_TRAILERS: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"connection", b"te", b"trailer", b"upgrade"}
)


@dataclass(frozen=True)
class Refusal:
    """A request (head) refused inside mitmproxy's layers, before any HTTP hook could see it."""

    client: connection.Client
    server: connection.Server
    status: int | None  # what the client got; None: the connection was closed without a response
    reason: Reason
    error: str


@dataclass
class RequestRefusedHook(commands.StartHook):
    """Tells addons of a `Refusal` (`request_refused(refusal)`); a hook carries one argument, as mitmproxy's
    connection handler unpacks it."""

    name = "request_refused"
    refusal: Refusal


def h1_framing(headers: http.Headers, end_stream: bool) -> str:
    """How an HTTP/2 request goes to an HTTP/1 server: "none" (no body: the HEADERS ended the stream),
    "length" (its content-length, which the h2 library holds the DATA to) or "chunked"."""
    if end_stream:
        return "none"
    if "content-length" in headers:
        return "length"
    return "chunked"


def _framed_request(request: http.Request, framing: str) -> http.Request:
    framed = request.copy()
    framed.headers.pop("transfer-encoding", None)
    lengths = framed.headers.get_all("content-length")
    if framing == "chunked":
        framed.headers.pop("content-length", None)
        framed.headers["transfer-encoding"] = "chunked"
    elif len(lengths) > 1:  # equal, or the h2 library would have refused them: one is unambiguous
        framed.headers["content-length"] = lengths[0]
    return framed


def _trailer_section(trailers: http.Headers) -> bytes:
    lines = []
    for name, value in trailers.fields:
        if not TOKEN_BYTES.fullmatch(name) or any(c in value for c in b"\r\n\0") or name.lower() in _NOT_IN_TRAILERS:
            logger.warning("boundary: dropped request trailer %r", name)
            continue
        lines.append(name + b": " + value + b"\r\n")
    return b"".join(lines)


_original_client_send = Http1Client.send


def _client_send(self: Http1Client, event: Any) -> layer.CommandGenerator[None]:
    framing: str | None = getattr(self, "_boundary_framing", None)
    if isinstance(event, RequestHeaders):
        request = event.request
        if request.is_http2 or request.is_http3:
            framing = h1_framing(request.headers, event.end_stream)
            event = RequestHeaders(event.stream_id, _framed_request(request, framing), event.end_stream)
        else:
            framing = None
        self._boundary_framing = framing  # type: ignore[attr-defined]  # boundary's own, on mitmproxy's layer
        self._boundary_trailers = None  # type: ignore[attr-defined]  # boundary's own, on mitmproxy's layer
    elif isinstance(event, RequestData) and not event.data:
        return  # nothing to send; chunked, an empty chunk would end the body
    elif isinstance(event, RequestData) and framing == "none":
        # The stream ended with its HEADERS; mitmproxy never sends data after that. Should it, stop here.
        yield commands.CloseConnection(self.conn)
        return
    elif isinstance(event, RequestTrailers):
        if framing == "chunked":
            self._boundary_trailers = event.trailers  # type: ignore[attr-defined]  # boundary's own, on mitmproxy's layer
        else:
            logger.warning("boundary: request trailers dropped: HTTP/1 carries them only in chunked encoding")
        return
    elif isinstance(event, RequestEndOfMessage) and getattr(self, "_boundary_trailers", None) is not None:
        trailers = self._boundary_trailers  # type: ignore[attr-defined]  # boundary's own, on mitmproxy's layer
        self._boundary_trailers = None  # type: ignore[attr-defined]  # boundary's own, on mitmproxy's layer
        yield commands.SendData(self.conn, b"0\r\n" + _trailer_section(trailers) + b"\r\n")
        yield from self.mark_done(request=True)
        return
    yield from _original_client_send(self, event)


# --- request heads ------------------------------------------------------------------------------------------

_original_read_headers = Http1Server.read_headers


def _limits(self: layer.Layer) -> tuple[int, int]:
    options = self.context.options
    return (
        getattr(options, OPTION_REQUEST_HEAD, DEFAULT_REQUEST_HEAD),
        getattr(options, OPTION_REQUEST_HEADERS, DEFAULT_REQUEST_HEADERS),
    )


def _head_size(request: http.Request) -> int:
    line = len(request.data.method) + len(request.data.path) + len(request.data.http_version) + 4
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers.fields) + 2


def _refuse(self: Http1Server, status: int, reason: Reason, error: str) -> layer.CommandGenerator[None]:
    # The hook (the audit line) before the answer: once the client has it, the run may end at any moment.
    yield RequestRefusedHook(Refusal(self.context.client, self.context.server, status, reason, error))
    yield commands.SendData(self.conn, _http1.make_error_response(status, error))
    yield commands.CloseConnection(self.conn)
    self.state = self.done


def _read_headers(self: Http1Server, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
    """mitmproxy's `read_headers` with the limits, and with a hook for the heads it refuses by itself. Its
    commands are held back until a request head has been read or the step ends, so that such a hook comes
    before mitmproxy's 400 (they are never blocking: SendData, CloseConnection, Log, ReceiveHttp)."""
    head_limit, count_limit = _limits(self)
    held: list[commands.Command] | None = []
    for command in _original_read_headers(self, event):
        if held is not None and isinstance(command, ReceiveHttp) and isinstance(command.event, RequestHeaders):
            request = command.event.request
            fields = len(request.headers.fields)
            size = _head_size(request)
            if fields > count_limit or size > head_limit:
                found = f"{fields} header fields, {size} bytes"
                limit = f"at most {count_limit} fields and {head_limit} bytes"
                yield from _refuse(
                    self, 431, Reason.REQUEST_HEAD_TOO_LARGE, f"request head too large ({found}; {limit})"
                )
                return
            yield from held
            held = None
        if held is None:
            yield command
        else:
            held.append(command)
    if held is None:
        return
    if self.state == self.read_headers and len(self.buf) > head_limit:
        # No end of head within the limit: nothing more is read or kept.
        self.buf = type(self.buf)()
        yield from _refuse(
            self, 431, Reason.REQUEST_HEAD_TOO_LARGE, f"request head too large (no end within {head_limit} bytes)"
        )
        return
    if self.state == self.done and self.request is None and isinstance(event, events.DataReceived):
        # mitmproxy refused a head it could not parse (its 400 is among the held commands) and told no hook.
        said = [command.message for command in held if isinstance(command, commands.Log)]
        error = said[0].split(": ", 1)[-1] if said else "request head not understood"  # after "address: "
        yield RequestRefusedHook(Refusal(self.context.client, self.context.server, 400, Reason.PROTOCOL_ERROR, error))
    yield from held


# --- HTTP/2 -------------------------------------------------------------------------------------------------

_original_h2_start = Http2Server._handle_event
_original_protocol_error = Http2Server.protocol_error


def _h2_start(self: Http2Server, event: events.Event) -> layer.CommandGenerator[None]:
    if isinstance(event, events.Start):
        head_limit, _ = _limits(self)
        conn = self.h2_conn
        # Advertised in SETTINGS (mitmproxy acknowledges its own local settings up front, so do we) and
        # enforced while HPACK inflates, so a compression bomb stops at the limit.
        conn.local_settings.max_header_list_size = head_limit
        conn.local_settings.acknowledge()
        conn.decoder.max_header_list_size = head_limit
        _bound_header_block(conn.incoming_buffer, head_limit)
    yield from _original_h2_start(self, event)


def _bound_header_block(buffer: Any, limit: int) -> None:
    """The h2 library keeps a header block's CONTINUATION frames until the last one: up to 64 frames of 128 KiB
    here (mitmproxy's frame size) before HPACK sees any of it. Hold the compressed block to the limit too."""
    update = buffer._update_header_buffer

    def bounded(frame: Any) -> Any:
        if buffer._headers_buffer and frame is not None:
            size = sum(len(held.data) for held in buffer._headers_buffer) + len(getattr(frame, "data", b""))
            if size > limit:
                raise h2.exceptions.ProtocolError(f"A header list larger than {limit} bytes has been received")
        return update(frame)

    buffer._update_header_buffer = bounded


def _h2_protocol_error(self: Http2Server, message: str, *args: Any, **kwargs: Any) -> layer.CommandGenerator[None]:
    reason = Reason.REQUEST_HEAD_TOO_LARGE if "header list larger" in message else Reason.PROTOCOL_ERROR
    yield RequestRefusedHook(Refusal(self.context.client, self.context.server, None, reason, message))
    yield from _original_protocol_error(self, message, *args, **kwargs)


_PATCHES: Final[tuple[tuple[type, str, Callable[..., Any]], ...]] = (
    (Http1Client, "send", _client_send),
    (Http1Server, "read_headers", _read_headers),
    (Http2Server, "_handle_event", _h2_start),
    (Http2Server, "protocol_error", _h2_protocol_error),
)


def apply() -> None:
    """Install every patch (idempotent)."""
    for owner, name, replacement in _PATCHES:
        if getattr(owner, name) is not replacement:
            setattr(owner, name, replacement)
