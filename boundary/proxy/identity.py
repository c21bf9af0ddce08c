"""Who the client is talking to: the pure checks that tie a request to the one destination it may name.

A direct (transparent) connection's destination is the name the jail's fake DNS gave its synthetic address;
the SNI, the Host header and an HTTP/1 absolute-form target must all name it (and its port). A request to a
proxy (`CONNECT host:port`, `GET http://host/`) names its own target, which a Host header must agree with.
Each check returns the denial, or None when the policy may decide. No mitmproxy here: strings in, decisions out.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re

from boundary.policy.canon import is_ip_literal, normalize_host
from boundary.policy.matcher import Decision, deny
from boundary.reasons import Reason


def split_host_header(value: str) -> tuple[str, int | None]:
    """`example.com:8443` -> ("example.com", 8443); `[::1]:80` -> ("::1", 80); no port -> None."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if port_text.isdigit():
        return host, int(port_text)
    return (host if port_text == "" else value), None


def canonical(host: str) -> str | None:
    """The policy's name for `host`, or None for an IP literal or a string that names no host."""
    if is_ip_literal(host):
        return None
    try:
        return normalize_host(host)
    except ValueError:
        return None


def unnamed(host: str) -> Decision:
    return deny(Reason.IP_LITERAL if is_ip_literal(host) else Reason.INVALID_HOST)


def same_host(a: str | None, b: str) -> bool:
    return a is not None and (a.lower().removesuffix(".") == b or canonical(a) == b)


def host_header_agrees(header: str | None, name: str, port: int) -> bool:
    header_host, header_port = split_host_header(header) if header else (None, None)
    return same_host(header_host, name) and header_port in (None, port)


def proxy_authorized(header: str | None, token: str) -> bool:
    """Whether a `Proxy-Authorization` value carries `token`: `Bearer TOKEN`, or `Basic` of `USER:TOKEN` (any
    user, as clients that only speak Basic need one). Compared in constant time."""
    if header is None:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            credentials = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode(), token.encode())


def check_direct(
    name: str | None, port: int, *, sni: str | None, tls: bool, host_header: str | None, authority: str | None
) -> Decision | None:
    """A request on a direct connection to `name`:`port` (None: the destination is no synthetic address, an IP
    literal). `authority`: an HTTP/1 absolute-form target's, which the origin server would route by."""
    if name is None:
        return deny(Reason.IP_LITERAL)
    if tls and not same_host(sni, name):
        return deny(Reason.SNI_MISMATCH)
    if not host_header_agrees(host_header, name, port):
        return deny(Reason.HOST_MISMATCH)
    if authority and not host_header_agrees(authority, name, port):
        return deny(Reason.HOST_MISMATCH)
    return None


def check_target(target: str, port: int, host_header: str | None) -> tuple[str | None, Decision | None]:
    """A request to a proxy or a CONNECT naming `target`:`port`: (its canonical name, the denial or None). A Host
    header that is present must agree; without one the target alone names the host."""
    name = canonical(target)
    if name is None:
        return None, unnamed(target)
    if host_header is not None and not host_header_agrees(host_header, name, port):
        return name, deny(Reason.HOST_MISMATCH)
    return name, None


# A request line's method, then the start of an absolute-form target (`scheme://`). Bytes beyond this bound
# without a decision are not a proxy request (scheme names are short), so a client is never kept waiting.
_METHOD = re.compile(rb"[A-Za-z]{1,20}")
_URL_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*")
_PROXY_FORM_WITHIN = 64


def proxy_form(data: bytes) -> bool | None:
    """Whether a plaintext connection's first bytes are a request to a proxy: `CONNECT ...` or an absolute-form
    request line (`GET http://host/ HTTP/1.1`). None: too few bytes to tell yet."""
    method, space, target = data.partition(b" ")
    if _METHOD.fullmatch(method) is None:
        return None if data == b"" else False
    if not space:
        return None if len(method) < 20 else False
    if method == b"CONNECT":
        return True
    scheme = _URL_SCHEME.match(target)
    if scheme is None:
        return None if target == b"" else False
    rest = target[scheme.end() :]
    if rest.startswith(b"://"):
        return True
    return None if b"://".startswith(rest) and len(data) < _PROXY_FORM_WITHIN else False
