"""Who the client is talking to: the pure checks that tie a request to the one destination it may name.

A direct (transparent) connection's destination is the name the jail's fake DNS gave its synthetic address;
the SNI, the Host header and an HTTP/1 absolute-form target must all name it (and its port). A request to a
proxy (`CONNECT host:port`, `GET http://host/`) names its own target, which a Host header must agree with.
Each check returns the denial, or None when the policy may decide. No mitmproxy here: strings in, decisions out.
"""

from __future__ import annotations

from boundary.matcher import REASON_INVALID_HOST, Decision, deny
from boundary.policy import is_ip_literal, normalize_host

REASON_HOST_MISMATCH = "host-mismatch"
REASON_SNI_MISMATCH = "sni-mismatch"
REASON_IP_LITERAL = "ip-literal"


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
    return deny(REASON_IP_LITERAL if is_ip_literal(host) else REASON_INVALID_HOST)


def same_host(a: str | None, b: str) -> bool:
    return a is not None and (a.lower().removesuffix(".") == b or canonical(a) == b)


def host_header_agrees(header: str | None, name: str, port: int) -> bool:
    header_host, header_port = split_host_header(header) if header else (None, None)
    return same_host(header_host, name) and header_port in (None, port)


def check_direct(
    name: str | None, port: int, *, sni: str | None, tls: bool, host_header: str | None, authority: str | None
) -> Decision | None:
    """A request on a direct connection to `name`:`port` (None: the destination is no synthetic address, an IP
    literal). `authority`: an HTTP/1 absolute-form target's, which the origin server would route by."""
    if name is None:
        return deny(REASON_IP_LITERAL)
    if tls and not same_host(sni, name):
        return deny(REASON_SNI_MISMATCH)
    if not host_header_agrees(host_header, name, port):
        return deny(REASON_HOST_MISMATCH)
    if authority and not host_header_agrees(authority, name, port):
        return deny(REASON_HOST_MISMATCH)
    return None


def check_target(target: str, port: int, host_header: str | None) -> tuple[str | None, Decision | None]:
    """A request to a proxy or a CONNECT naming `target`:`port`: (its canonical name, the denial or None). A Host
    header that is present must agree; without one the target alone names the host."""
    name = canonical(target)
    if name is None:
        return None, unnamed(target)
    if host_header is not None and not host_header_agrees(host_header, name, port):
        return name, deny(REASON_HOST_MISMATCH)
    return name, None
