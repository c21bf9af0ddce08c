"""What the two in-jail probe scripts share (tests/escape/probe.py, tests/integration/jail/probe.py): the probes
both run (UDP, ICMP, raw sockets, unix sockets), the errno naming and the ``+``-separated dispatch.

The scripts run by path with the venv's Python, inside the jail, as root or as the rootless user, and import this
module through the editable install's path entry for the repository. Standard library only. A probe never
raises: every outcome is data under ``result`` (``ok``, ``reply``, or the errno's name).
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["TIMEOUT", "Probe", "error_name", "family", "icmp", "raw", "run_probes", "udp_exchange", "unix"]

TIMEOUT = 3.0
ICMP_ECHO = bytes([8, 0, 0xF7, 0xFF, 0, 0, 0, 0])  # type 8, code 0, checksum of an all-zero echo

Probe = Callable[..., dict[str, Any]]


def error_name(exc: OSError) -> str:
    """``ECONNREFUSED`` and the like; ``timeout`` for a timeout (which has no errno)."""
    if isinstance(exc, TimeoutError) or exc.errno is None:
        return "timeout"
    return errno.errorcode.get(exc.errno, str(exc.errno))


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_exchange(host: str, port: str, payload: bytes, wait: float) -> dict[str, Any]:
    """Send one datagram (over IPv6 if HOST has a colon), wait ``wait`` s for any answer; ``stage`` says which
    step failed."""
    with socket.socket(family(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        try:
            sock.sendto(payload, (host, int(port)))
        except OSError as exc:
            return {"result": error_name(exc), "stage": "send"}
        try:
            data, peer = sock.recvfrom(4096)
        except OSError as exc:
            return {"result": error_name(exc), "stage": "receive"}
    return {"result": "reply", "data": data.decode(errors="replace"), "peer": f"{peer[0]}:{peer[1]}"}


def _icmp_via(kind: int, host: str) -> dict[str, Any]:
    try:
        sock = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)
    except OSError as exc:
        return {"result": error_name(exc), "stage": "socket"}
    with sock:
        sock.settimeout(1)
        try:
            sock.sendto(ICMP_ECHO, (host, 0))
        except OSError as exc:
            return {"result": error_name(exc), "stage": "send"}
        try:
            sock.recvfrom(4096)
        except OSError as exc:
            return {"result": error_name(exc), "stage": "receive"}
    return {"result": "reply"}


def icmp(host: str) -> dict[str, Any]:
    """An echo request through a ping socket, then through a raw socket; ``reply`` if either was answered."""
    ping, raw_sock = _icmp_via(socket.SOCK_DGRAM, host), _icmp_via(socket.SOCK_RAW, host)
    worst = "reply" if "reply" in (ping["result"], raw_sock["result"]) else "failed"
    return {"result": worst, "ping_socket": ping, "raw_socket": raw_sock}


RAW_SOCKETS = (
    ("inet_raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
    ("inet_icmp_raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    ("inet6_raw", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW),
    ("packet", socket.AF_PACKET, socket.SOCK_RAW, 0x0300),  # htons(ETH_P_ALL)
)


def raw() -> dict[str, Any]:
    """Open (and close) each of `RAW_SOCKETS`: packets built by hand, which no nft redirect would see."""
    outcomes = {}
    for name, address_family, kind, proto in RAW_SOCKETS:
        try:
            socket.socket(address_family, kind, proto).close()
            outcomes[name] = "ok"
        except OSError as exc:
            outcomes[name] = error_name(exc)
    return {"result": "ok" if "ok" in outcomes.values() else "failed", "sockets": outcomes}


def unix(path: str) -> dict[str, Any]:
    """Connect to the unix stream socket PATH (``@name``: the abstract namespace), send a line, read one line.

    ``ok`` as soon as the connection is made (the attempt got somewhere), whatever the listener then does."""
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(address)
        except OSError as exc:
            return {"result": error_name(exc)}
        try:
            sock.sendall(b"escaped through a unix socket\n")
            return {"result": "ok", "reply": sock.makefile("rb").readline().decode(errors="replace").strip()}
        except OSError as exc:
            return {"result": "ok", "reply": None, "exchange": error_name(exc)}


def run_probes(probes: Mapping[str, Probe], argv: Sequence[str]) -> int:
    """Run ``PROBE ARGS... [+ PROBE ARGS...]...``: one JSON line per probe, ``{"probe", "args", **outcome}``."""
    groups: list[list[str]] = [[]]
    for arg in argv:
        if arg == "+":
            groups.append([])
        else:
            groups[-1].append(arg)
    for name, *args in (group for group in groups if group):
        outcome = probes[name](*args)
        print(json.dumps({"probe": name, "args": args, **outcome}), flush=True)
    return 0
