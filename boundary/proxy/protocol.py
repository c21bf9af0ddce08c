"""The proxy's protocol checks: requests no server should be sent (a method or field name that is not a
token, a line break in a value, framing mitmproxy refuses, too many fields), the upgrades it lets through
(WebSocket only), and how mitmproxy's own refusals read as reasons. Pure functions of mitmproxy's request and
flow objects; the addon's hooks call them."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http import http1

from boundary.policy.canon import TOKEN_BYTES
from boundary.policy.matcher import Decision, deny
from boundary.reasons import Reason


def is_multiplexed(request: http.Request) -> bool:
    """HTTP/2 and HTTP/3 carry `:authority` in place of Host; HTTP/1 has an authority only in absolute-form."""
    return request.is_http2 or request.is_http3


def bad_field(headers: http.Headers) -> bool:
    """A field name that is not a token, or a value with CR, LF (an obs-folded line, RFC 9112 §5.2, which a
    server may read as a field of its own: `X: y\r\n Transfer-Encoding: chunked`) or NUL."""
    for name, value in headers.fields:
        if TOKEN_BYTES.fullmatch(name) is None or b"\r" in value or b"\n" in value or b"\0" in value:
            return True
    return False


def malformed(request: http.Request, most_fields: int) -> Decision | None:
    """A request no server should be sent: a method or field name that is not a token, a field value with a
    line break or NUL, framing mitmproxy itself refuses (it answers 400 and closes, but only after this hook
    has seen the headers), or an HTTP/2 header list with more fields than the policy's limit (the HTTP/1
    server layer counts its own before any hook; HPACK only counts bytes)."""
    if TOKEN_BYTES.fullmatch(request.data.method) is None:
        return deny(Reason.INVALID_METHOD)
    if bad_field(request.headers):
        return deny(Reason.MALFORMED_HEADER)
    if not is_multiplexed(request):
        try:
            http1.expected_http_body_size(request)
        except ValueError:
            return deny(Reason.PROTOCOL_ERROR)
    elif len(request.headers.fields) > most_fields:
        return deny(Reason.REQUEST_HEAD_TOO_LARGE)
    return None


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def strip_upgrade(headers: http.Headers) -> None:
    """Drop a request's `Upgrade` unless it asks for WebSocket alone, with the hop-by-hop headers that go with
    it: after a `101` the connection would carry another protocol (h2c: HTTP/2) that no hook decides."""
    upgrade = headers.get_all("Upgrade")
    if not upgrade or _tokens(",".join(upgrade)) == ["websocket"]:
        return
    del headers["Upgrade"]
    headers.pop("HTTP2-Settings", None)
    kept = [t for t in _tokens(",".join(headers.get_all("Connection"))) if t not in ("upgrade", "http2-settings")]
    if kept:
        headers["Connection"] = ", ".join(kept)
    else:
        headers.pop("Connection", None)


def is_websocket_switch(flow: http.HTTPFlow) -> bool:
    """A 101 that mitmproxy's WebSocket layer takes over (the same test it applies: version 13 asked, both sides
    say `websocket`); any other 101 would leave a raw stream behind."""
    assert flow.response is not None
    return (
        flow.response.status_code == 101
        and flow.request.headers.get("Sec-WebSocket-Version", "") == "13"
        and all(
            _tokens(message.headers.get("Upgrade", "")) == ["websocket"] for message in (flow.request, flow.response)
        )
    )


# What mitmproxy's own request checks say (`validate_request`), as the reasons of ours that say the same.
_MITMPROXY_REFUSALS = (("invalid header name", Reason.MALFORMED_HEADER),)


def refusal_reason(message: str) -> Reason:
    return next((reason for text, reason in _MITMPROXY_REFUSALS if text in message), Reason.PROTOCOL_ERROR)


def audited_method(request: http.Request, decision: Decision) -> str:
    """The method as checked (upper-cased), or as sent when it was refused for not being a token."""
    if decision.reason == Reason.INVALID_METHOD:
        return request.data.method.decode("utf-8", "surrogateescape")
    return request.method
