"""Specification of boundary's patches to mitmproxy's protocol layers (boundary/proxy/patches/framing.py).

mitmproxy's real HTTP layer is driven here without sockets, as its own layer tests do: an HTTP/2 client (the
h2 library, sending frames as told, unvalidated) on one side, a plain HTTP/1 upstream on the other, every hook
answered as boundary's addon does for an allowed request (the request streamed). What the upstream receives
is parsed by h11, a strict HTTP/1.1 server parser: every request it finds in the bytes is one the upstream
would serve.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import connection
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http._hooks import HttpRequestHeadersHook, HttpResponseHeadersHook
from mitmproxy.proxy.layers.http._http1 import Http1Client, Http1Server
from mitmproxy.proxy.layers.http._http2 import Http2Server

from boundary.policy.model import DEFAULT_REQUEST_HEAD, DEFAULT_REQUEST_HEADERS
from boundary.proxy.patches import framing
from boundary.proxy.patches.framing import Refusal, RequestRefusedHook, h1_framing
from tests.support.layers import drive, http_layer, opened

SMUGGLED = b"DELETE /admin HTTP/1.1\r\nHost: other.test\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Driver:
    """mitmproxy's HTTP layer in regular mode between an h2 (or HTTP/1) client and an HTTP/1 upstream."""

    h2_client: bool = True
    request_head: int = DEFAULT_REQUEST_HEAD
    request_headers: int = DEFAULT_REQUEST_HEADERS
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    refused: list[Refusal] = field(default_factory=list)
    client_closed: bool = False

    def __post_init__(self) -> None:
        limits = {framing.OPTION_REQUEST_HEAD: self.request_head, framing.OPTION_REQUEST_HEADERS: self.request_headers}
        self.client, self.layer = http_layer(alpn=b"h2" if self.h2_client else None, extra=limits)
        self.upstream: connection.Server | None = None
        self.feed(events.Start())
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, header_encoding=None)
        )
        if self.h2_client:
            self.h2.initiate_connection()
            self.send_client()

    def feed(self, *first: events.Event) -> None:
        drive(self.layer, self._answer, *first)

    def _answer(self, command: commands.Command) -> list[events.Event]:
        if isinstance(command, commands.SendData):
            (self.to_client if command.connection is self.client else self.to_upstream).extend(command.data)
            return []
        if isinstance(command, commands.OpenConnection):
            self.upstream = command.connection
            return opened(command)
        if isinstance(command, commands.CloseConnection):
            if command.connection is self.client:
                self.client_closed = True
            return []
        if isinstance(command, HttpRequestHeadersHook):
            command.flow.request.stream = True  # what boundary's addon does for every allowed request
        if isinstance(command, HttpResponseHeadersHook):
            assert command.flow.response is not None
            command.flow.response.stream = True
        if isinstance(command, RequestRefusedHook):
            self.refused.append(command.refusal)
        if isinstance(command, commands.StartHook):
            return [events.HookCompleted(command)]
        assert isinstance(command, (commands.Log, commands.RequestWakeup)), command
        return []

    def send_client(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.feed(events.DataReceived(self.client, data))

    def send_raw(self, data: bytes) -> None:
        self.feed(events.DataReceived(self.client, data))

    def h2_request(
        self,
        headers: list[tuple[bytes, bytes]],
        data: Sequence[bytes] = (),
        trailers: list[tuple[bytes, bytes]] | None = None,
        end_on_headers: bool = False,
    ) -> None:
        stream = self.h2.get_next_available_stream_id()
        pseudo = [(b":scheme", b"http"), (b":authority", b"upstream.test")]
        self.h2.send_headers(stream, pseudo + headers, end_stream=end_on_headers)
        if not end_on_headers:
            for index, chunk in enumerate(data):
                self.h2.send_data(stream, chunk, end_stream=index == len(data) - 1 and not trailers)
            if trailers:
                self.h2.send_headers(stream, trailers, end_stream=True)
            elif not data:
                self.h2.end_stream(stream)
        self.send_client()


def upstream_requests(data: bytes) -> tuple[list[tuple[bytes, bytes, bytes]], bytes]:
    """The requests (method, target, body) h11 reads from `data`, and the bytes left that are no request."""
    found: list[tuple[bytes, bytes, bytes]] = []
    server = h11.Connection(h11.SERVER)
    if data:  # h11 reads no data at all as the end of the connection
        server.receive_data(bytes(data))
    while True:
        event = server.next_event()
        if isinstance(event, h11.Request):
            method, target, body = event.method, event.target, b""
            while not isinstance(event := server.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    return found, b"(incomplete body) " + body
                assert isinstance(event, h11.Data), event
                body += event.data
            found.append((method, target, body))
            server.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            server.send(h11.EndOfMessage())
            server.start_next_cycle()
        elif event is h11.NEED_DATA:
            return found, bytes(server.trailing_data[0])
        else:
            raise AssertionError(event)


# --- h2 -> HTTP/1 framing -----------------------------------------------------------------------------------

FRAMING = [
    ([(b"content-length", b"5")], False, "length"),
    ([], False, "chunked"),
    ([], True, "none"),
    ([(b"content-length", b"0")], True, "none"),
]


@pytest.mark.parametrize(("headers", "end_stream", "framing"), FRAMING)
def test_an_h2_request_gets_one_framing_for_http1(
    headers: list[tuple[bytes, bytes]], end_stream: bool, framing: str
) -> None:
    """Its content-length if it has one; chunked if it has a body and none; nothing if HEADERS ended it."""
    from mitmproxy.http import Headers

    assert h1_framing(Headers(headers), end_stream) == framing


@pytest.mark.parametrize("method", [b"GET", b"POST"])
def test_data_without_a_content_length_is_one_chunked_body_not_a_second_request(method: bytes) -> None:
    """The smuggling attack: an allowed request with no content-length whose DATA is a whole HTTP/1 request.
    Unpatched mitmproxy sends the head without framing and the DATA raw: the upstream reads two requests."""
    driver = Driver()
    driver.h2_request([(b":method", method), (b":path", b"/hello")], [SMUGGLED])
    requests, rest = upstream_requests(driver.to_upstream)
    assert requests == [(method, b"/hello", SMUGGLED)]
    assert rest == b""


def test_an_empty_data_frame_does_not_end_a_chunked_body() -> None:
    """An empty chunk is the end of a chunked body: an empty DATA frame mid-stream must send nothing."""
    driver = Driver()
    driver.h2_request([(b":method", b"POST"), (b":path", b"/upload")], [b"", SMUGGLED, b"", b"tail"])
    requests, rest = upstream_requests(driver.to_upstream)
    assert requests == [(b"POST", b"/upload", SMUGGLED + b"tail")]
    assert rest == b""


def test_a_content_length_the_data_exceeds_never_lets_the_excess_through() -> None:
    """The h2 library holds the DATA to the content-length: the frame that goes past it is refused, so the
    upstream gets the declared body and nothing that could be read as a next request."""
    driver = Driver()
    stream = driver.h2.get_next_available_stream_id()
    headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"upstream.test"), (b":path", b"/up")]
    driver.h2.send_headers(stream, [*headers, (b"content-length", b"4")])
    driver.h2.send_data(stream, b"body")
    driver.send_client()
    assert driver.to_upstream.startswith(b"POST /up HTTP/1.1\r\n")
    driver.h2.send_data(stream, SMUGGLED, end_stream=True)
    driver.send_client()
    requests, rest = upstream_requests(driver.to_upstream)
    assert rest == b"(incomplete body) body" or [(m, t) for m, t, _ in requests] == [(b"POST", b"/up")]
    assert b"DELETE" not in driver.to_upstream


def test_trailers_go_in_the_chunked_trailer_section() -> None:
    """h2 trailers reach an HTTP/1 upstream in the chunked trailer section (mitmproxy alone crashed on them);
    framing fields among them are dropped."""
    driver = Driver()
    trailers = [(b"x-checksum", b"abc"), (b"content-length", b"999")]
    driver.h2_request([(b":method", b"POST"), (b":path", b"/upload")], [b"data"], trailers=trailers)
    assert driver.to_upstream.endswith(b"4\r\ndata\r\n0\r\nx-checksum: abc\r\n\r\n")
    requests, rest = upstream_requests(driver.to_upstream)
    assert requests == [(b"POST", b"/upload", b"data")] and rest == b""


frames = st.lists(st.binary(max_size=80) | st.just(SMUGGLED) | st.just(b""), max_size=5)
header_sets = st.sampled_from([[], [(b"content-length", b"0")], [(b"content-length", b"70")]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from([b"GET", b"POST", b"HEAD", b"OPTIONS", b"DELETE"]),
    extra=header_sets,
    data=frames,
    trailers=st.booleans(),
    end_on_headers=st.booleans(),
)
def test_no_h2_request_forwarded_as_http1_yields_more_than_one_request(
    method: bytes, extra: list[tuple[bytes, bytes]], data: list[bytes], trailers: bool, end_on_headers: bool
) -> None:
    """Property: whatever an h2 client sends in one stream (method, content-length or none, any DATA frames,
    empty ones and whole HTTP/1 requests among them, trailers), the HTTP/1 upstream reads at most one request,
    and no bytes beyond it."""
    driver = Driver()
    driver.h2_request(
        [(b":method", method), (b":path", b"/p"), *extra],
        data,
        trailers=[(b"x-t", b"1")] if trailers else None,
        end_on_headers=end_on_headers,
    )
    requests, rest = upstream_requests(driver.to_upstream)
    assert len(requests) <= 1
    assert rest in (b"",) or rest.startswith(b"(incomplete body)")
    assert b"other.test" not in b"".join(m + t for m, t, _ in requests)


# --- request heads --------------------------------------------------------------------------------------------


def test_a_head_without_an_end_is_refused_past_the_limit() -> None:
    """A header value that never ends: past `request_head` bytes the client gets 431, the buffer is dropped,
    the connection closes, and a hook is told (for the audit line)."""
    driver = Driver(h2_client=False, request_head=8192)
    driver.send_raw(b"GET http://upstream.test/ HTTP/1.1\r\nX-Big: ")
    for _ in range(100):
        driver.send_raw(b"a" * 1024)
        if driver.client_closed:  # mitmproxy reads nothing more from a connection it closed
            break
    assert driver.to_client.startswith(b"HTTP/1.1 431 ")
    assert driver.client_closed and driver.to_upstream == b""
    assert [(r.status, r.reason) for r in driver.refused] == [(431, "request-head-too-large")]
    http1 = driver.layer.connections[driver.client]
    assert type(http1) is Http1Server and len(http1.buf) == 0


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://upstream.test/ HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",  # complete, in one read
        b"GET http://upstream.test/ HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n",
    ],
    ids=["bytes", "fields"],
)
def test_a_complete_head_over_a_limit_is_refused_before_any_hook(head: bytes) -> None:
    """A whole head that arrives at once is measured too: over `request_head` bytes or `request_headers`
    fields, 431 and no request reaches a hook or the upstream."""
    driver = Driver(h2_client=False, request_head=8192, request_headers=32)
    driver.send_raw(head)
    assert driver.to_client.startswith(b"HTTP/1.1 431 ")
    assert driver.to_upstream == b""
    assert [r.reason for r in driver.refused] == ["request-head-too-large"]


def test_a_head_within_the_limits_is_served() -> None:
    """The control: the same kind of head under the limits goes upstream as usual."""
    driver = Driver(h2_client=False, request_head=8192, request_headers=32)
    driver.send_raw(b"GET http://upstream.test/ HTTP/1.1\r\nHost: upstream.test\r\nX-Big: " + b"a" * 7000 + b"\r\n\r\n")
    assert driver.to_upstream.startswith(b"GET / HTTP/1.1\r\n")
    assert driver.refused == []


@pytest.mark.parametrize(
    "line", [b"GET / http/1.1\r\n\r\n", b"GET /\r\n\r\n", b"\x16\x03\x01 nonsense\r\n\r\n"], ids=repr
)
def test_a_head_mitmproxy_cannot_parse_is_refused_and_told(line: bytes) -> None:
    """mitmproxy answers 400 to a head it cannot parse and tells no addon; the patch starts a hook so the
    refusal gets its audit line."""
    driver = Driver(h2_client=False)
    driver.send_raw(line)
    assert driver.to_client.startswith(b"HTTP/1.1 400 ")
    assert [(r.status, r.reason) for r in driver.refused] == [(400, "protocol-error")]


def test_an_h2_header_list_over_the_limit_ends_the_connection_and_is_told() -> None:
    """HPACK inflates at most `request_head` bytes of header list; past it the connection ends (GOAWAY) and
    the refusal is told."""
    driver = Driver(request_head=8192)
    driver.h2_request([(b":method", b"GET"), (b":path", b"/"), (b"x-big", b"a" * 9000)], end_on_headers=True)
    assert driver.to_upstream == b""
    assert [r.reason for r in driver.refused] == ["request-head-too-large"]


def test_an_h2_header_block_in_continuation_frames_is_bounded_before_hpack() -> None:
    """The h2 library holds every CONTINUATION frame of a block until its last: the compressed block is held
    to the limit too, so a client cannot park megabytes per connection before HPACK looks at them."""
    driver = Driver(request_head=8192)
    stream = driver.h2.get_next_available_stream_id()
    # A HEADERS frame without END_HEADERS, then CONTINUATION frames that never end the block.
    from hyperframe.frame import ContinuationFrame, HeadersFrame

    first = HeadersFrame(stream, data=b"\x00" * 4000)
    driver.send_raw(first.serialize())
    for _ in range(5):
        driver.send_raw(ContinuationFrame(stream, data=b"\x00" * 4000).serialize())
    assert [r.reason for r in driver.refused] == ["request-head-too-large"]


# --- the patches hold on to mitmproxy ----------------------------------------------------------------------


@pytest.fixture
def fresh() -> Iterator[None]:
    yield
    framing.apply()


def test_apply_installs_every_patch_once(fresh: None) -> None:
    """After `apply`, the patched methods are boundary's; applying again changes nothing."""
    framing.apply()
    first = (Http1Client.send, Http1Server.read_headers, Http2Server._handle_event, Http2Server.protocol_error)
    framing.apply()
    assert (Http1Client.send, Http1Server.read_headers, Http2Server._handle_event, Http2Server.protocol_error) == first
    assert all(getattr(method, "__module__", "") == "boundary.proxy.patches.framing" for method in first)


def test_the_refusal_hook_carries_one_argument_as_mitmproxy_unpacks_it() -> None:
    """mitmproxy's connection handler runs a hook as `data, = hook.args()`: a hook of several fields would fail
    there, in a task nobody awaits, and no audit line would be written."""
    refusal = Refusal(
        connection.Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2)),
        connection.Server(address=None),
        400,
        "protocol-error",
        "x",
    )
    (data,) = RequestRefusedHook(refusal).args()
    assert data is refusal
