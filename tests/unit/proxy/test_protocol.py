"""Specification of the proxy's protocol checks (boundary/proxy/protocol.py), on real mitmproxy requests: which
heads no server should be sent, which upgrades go through, how mitmproxy's own refusals read."""

from __future__ import annotations

import pytest
from mitmproxy import http

from boundary.proxy.protocol import audited_method, malformed, refusal_reason, strip_upgrade
from boundary.reasons import Reason


def _request(
    method: bytes = b"GET", fields: tuple[tuple[bytes, bytes], ...] = (), version: str = "HTTP/1.1"
) -> http.Request:
    request = http.Request.make("GET", "http://a.test/x")
    request.headers = http.Headers(fields)  # exactly these (make adds a content-length)
    request.data.method = method
    request.http_version = version
    return request


@pytest.mark.parametrize(
    ("method", "fields", "reason"),
    [
        pytest.param(b"GET", ((b"Host", b"a.test"),), None, id="plain"),
        pytest.param(b"M-SEARCH", ((b"Host", b"a.test"),), None, id="token-method"),
        pytest.param(b"GET /admin?", ((b"Host", b"a.test"),), Reason.INVALID_METHOD, id="method-with-space"),
        pytest.param(b"GET", ((b"Host ", b"a.test"),), Reason.MALFORMED_HEADER, id="name-not-a-token"),
        pytest.param(b"GET", ((b"X", b"a\r\n Transfer-Encoding: chunked"),), Reason.MALFORMED_HEADER, id="fold"),
        pytest.param(b"GET", ((b"X", b"a\x00b"),), Reason.MALFORMED_HEADER, id="nul"),
        pytest.param(
            b"POST",
            ((b"Content-Length", b"5"), (b"Content-Length", b"6")),
            Reason.PROTOCOL_ERROR,
            id="two-lengths",  # (length with chunked: mitmproxy's validate_request, see refusal_reason)
        ),
    ],
)
def test_a_head_no_server_should_see_is_refused_with_its_reason(
    method: bytes, fields: tuple[tuple[bytes, bytes], ...], reason: Reason | None
) -> None:
    refused = malformed(_request(method, fields), most_fields=256)
    assert (refused.reason if refused else None) == reason


def test_an_h2_head_over_the_field_count_is_too_large() -> None:
    fields = tuple((f"x-{index}".encode(), b"1") for index in range(30))
    refused = malformed(_request(fields=fields, version="HTTP/2.0"), most_fields=20)
    assert refused is not None and refused.reason is Reason.REQUEST_HEAD_TOO_LARGE
    assert malformed(_request(fields=fields, version="HTTP/2.0"), most_fields=30) is None


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        pytest.param(((b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")), [b"Upgrade", b"Connection"], id="ws"),
        pytest.param(
            ((b"Upgrade", b"h2c"), (b"HTTP2-Settings", b"AAA"), (b"Connection", b"Upgrade, HTTP2-Settings")),
            [],
            id="h2c",
        ),
        pytest.param(((b"Upgrade", b"h2c"), (b"Connection", b"keep-alive, Upgrade")), [b"Connection"], id="kept"),
    ],
)
def test_only_a_websocket_upgrade_is_forwarded(fields: tuple[tuple[bytes, bytes], ...], kept: list[bytes]) -> None:
    request = _request(fields=fields)
    strip_upgrade(request.headers)
    assert [name for name, _ in request.headers.fields] == kept
    if kept == [b"Connection"]:
        assert request.headers["Connection"] == "keep-alive"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("invalid header name: b'Host '", Reason.MALFORMED_HEADER),
        ("Received conflicting headers", Reason.PROTOCOL_ERROR),
    ],
)
def test_mitmproxys_refusals_read_as_our_reasons(message: str, reason: Reason) -> None:
    assert refusal_reason(message) is reason


def test_an_invalid_method_is_audited_as_sent() -> None:
    request = _request(b"get /x?")
    assert audited_method(request, malformed(request, 256)) == "get /x?"
