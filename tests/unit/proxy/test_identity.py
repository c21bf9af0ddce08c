"""Specification of the identity checks (boundary/proxy/identity.py): which names a request may carry for the
destination it reached, and the denial when one names another."""

from __future__ import annotations

import base64

import pytest

from boundary.proxy.identity import check_direct, check_target, proxy_authorized, proxy_form, split_host_header

# --- split_host_header --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8443", ("example.com", 8443)),
        ("example.com:", ("example.com", None)),
        ("[::1]", ("::1", None)),
        ("[::1]:80", ("::1", 80)),
        ("[::1]:", ("::1", None)),
        ("::1", ("::1", None)),  # unbracketed IPv6: the colons are not a port separator
        ("example.com:https", ("example.com:https", None)),  # bad port text: the whole value, no port
        ("example.com:-1", ("example.com:-1", None)),
        ("[::1]:http", ("[::1]:http", None)),
        ("a:1:2", ("a:1:2", None)),
    ],
)
def test_split_host_header(value: str, expected: tuple[str, int | None]) -> None:
    """A Host header splits into host and port; anything that is not a clean port keeps the value whole."""
    assert split_host_header(value) == expected


# --- a direct connection: SNI, Host, absolute-form authority -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sni", "tls", "host_header", "authority", "reason"),
    [
        pytest.param("api.test", "api.test", True, "api.test", None, None, id="all-agree"),
        pytest.param("api.test", None, False, "API.test.:443", None, None, id="case-dot-port"),
        pytest.param(None, None, False, "api.test", None, "ip-literal", id="no-synthetic-address"),
        pytest.param("api.test", "other.test", True, "api.test", None, "sni-mismatch", id="sni"),
        pytest.param("api.test", None, True, "api.test", None, "sni-mismatch", id="tls-without-sni"),
        pytest.param("api.test", "api.test", True, "other.test", None, "host-mismatch", id="host"),
        pytest.param("api.test", None, False, "api.test:8443", None, "host-mismatch", id="host-port"),
        pytest.param("api.test", None, False, None, None, "host-mismatch", id="no-host"),
        pytest.param("api.test", None, False, "api.test", "other.test", "host-mismatch", id="absolute-form"),
        pytest.param("api.test", None, False, "api.test", "api.test:443", None, id="absolute-form-agrees"),
    ],
)
def test_a_direct_request_must_name_its_destination_everywhere(
    name: str | None, sni: str | None, tls: bool, host_header: str | None, authority: str | None, reason: str | None
) -> None:
    refused = check_direct(name, 443, sni=sni, tls=tls, host_header=host_header, authority=authority)
    assert (refused.reason if refused else None) == reason


# --- a request to a proxy, a CONNECT: its own target ---------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "host_header", "expected"),
    [
        ("API.Test.", None, ("api.test", None)),
        ("api.test", "api.test:443", ("api.test", None)),
        ("api.test", "other.test", ("api.test", "host-mismatch")),
        ("203.0.113.7", None, (None, "ip-literal")),
        ("bad_name!", None, (None, "invalid-host")),
    ],
)
def test_a_proxy_target_is_checked_like_a_destination(
    target: str, host_header: str | None, expected: tuple[str | None, str | None]
) -> None:
    name, refused = check_target(target, 443, host_header)
    assert (name, refused.reason if refused else None) == expected


# --- a connection's first bytes: a request to a proxy? -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"CONNECT api.example.com:443 HTTP/1.1\r\n", True),
        (b"CONNECT ", True),
        (b"GET http://api.example.com/ HTTP/1.1\r\n", True),
        (b"POST https://api.example.com/v1 HTTP/1.1\r\n", True),
        (b"GET svn+ssh://x/ HTTP/1.1\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: api.example.com\r\n", False),
        (b"OPTIONS * HTTP/1.1\r\n", False),
        (b"PRI * HTTP/2.0\r\n", False),
        (b"GET http:/x HTTP/1.1\r\n", False),
        (b"GET api.example.com:443 HTTP/1.1\r\n", False),
        (b" GET http://x/", False),
        (b"\x16\x03\x01\x02\x00", False),  # a TLS ClientHello
        (b"SSH-2.0-OpenSSH_9.2\r\n", False),
        (b"PING\r\n", False),
        (b"GET " + b"h" * 80, False),  # no decision within the bound: not a proxy request
        (b"A" * 20, False),
        (b"", None),
        (b"CONN", None),
        (b"CONNECT", None),
        (b"GET ", None),
        (b"GET http", None),
        (b"GET http:/", None),
    ],
)
def test_proxy_form_is_told_by_the_request_line(data: bytes, expected: bool | None) -> None:
    """A connection is a request to a proxy iff its request line is `CONNECT ...` or has an absolute-form
    target; None means the bytes so far could still go either way."""
    assert proxy_form(data) is expected


# --- the token of `boundary proxy --token-file` ---------------------------------------------------------------

TOKEN = "0123456789abcdef0123"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        pytest.param(f"Bearer {TOKEN}", True, id="bearer"),
        pytest.param("Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode(), True, id="basic-any-user"),
        pytest.param("basic " + base64.b64encode(f":{TOKEN}".encode()).decode(), True, id="basic-no-user"),
        pytest.param(None, False, id="missing"),
        pytest.param(f"Bearer {TOKEN}x", False, id="longer"),
        pytest.param(f"Bearer {TOKEN[:-1]}", False, id="shorter"),
        pytest.param(f"Token {TOKEN}", False, id="other-scheme"),
        pytest.param("Basic " + base64.b64encode(TOKEN.encode()).decode(), False, id="basic-without-colon"),
        pytest.param("Basic !!!", False, id="basic-not-base64"),
    ],
)
def test_only_the_proxys_token_authorizes(header: str | None, ok: bool) -> None:
    assert proxy_authorized(header, TOKEN) is ok
