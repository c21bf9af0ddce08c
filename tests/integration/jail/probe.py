"""Network probes the jailed workload runs (by path, with the venv's Python): one JSON line per probe on stdout.

    python probe.py PROBE ARGS... [+ PROBE ARGS...]...

Probes (``+`` separates several in one run, so one interpreter start serves a whole test):

* ``tcp HOST PORT [LINE]``   connect, send LINE (default ``hello``), read one reply line;
* ``tcp6 HOST PORT``         connect over IPv6 (nothing is sent);
* ``udp HOST PORT [WAIT]``   send one datagram naming its destination (over IPv6 if HOST has a colon), wait
                             WAIT s (default 1) for the echo;
* ``icmp HOST``              an ICMP echo request through a ping socket, then through a raw socket;
* ``raw``                    try to open raw IPv4 and IPv6 sockets and a packet socket;
* ``unix PATH``              connect to a filesystem unix socket and read one line;
* ``abstract NAME``          the same with the abstract unix socket ``@NAME``;
* ``write PATH``             open PATH for writing and close it at once (nothing is ever written);
* ``counters``               ask the driver (via the proxy socket) for the jail's nft counters;
* ``signal NAME``            ask the driver to send SIGNAME to the jail's init.

Every outcome is data (``ok``, ``reply``, or the errno's name): a probe never raises. Standard library only.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

TIMEOUT = 3.0
# Any address outside the jail reaches the driver through the proxy redirect; this one is guarded on the host.
DRIVER_ADDRESS = ("198.51.100.1", 9)
ICMP_ECHO = bytes([8, 0, 0xF7, 0xFF, 0, 0, 0, 0])  # type 8, code 0, checksum of an all-zero echo


def _error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError) or exc.errno is None:
        return "timeout"
    return errno.errorcode.get(exc.errno, str(exc.errno))


def _exchange(address: tuple[str, int], line: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            sock.sendall(line.encode() + b"\n")
            reply = sock.makefile("rb").readline().decode().strip()
        return {"result": "ok", "reply": reply, "seconds": time.monotonic() - started}
    except OSError as exc:
        return {"result": _error(exc), "seconds": time.monotonic() - started}


def tcp(host: str, port: str, line: str = "hello") -> dict[str, Any]:
    return _exchange((host, int(port)), line)


def tcp6(host: str, port: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect((host, int(port)))
        return {"result": "ok", "seconds": time.monotonic() - started}
    except OSError as exc:
        return {"result": _error(exc), "seconds": time.monotonic() - started}


def udp(host: str, port: str, wait: str = "1") -> dict[str, Any]:
    payload = f"to {host}:{port}".encode()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(float(wait))
        try:
            sock.sendto(payload, (host, int(port)))
        except OSError as exc:
            return {"result": _error(exc), "stage": "send"}
        try:
            data, peer = sock.recvfrom(4096)
        except OSError as exc:
            return {"result": _error(exc), "stage": "receive"}
    return {"result": "reply", "data": data.decode(errors="replace"), "peer": f"{peer[0]}:{peer[1]}"}


def _icmp_via(kind: int, host: str) -> dict[str, Any]:
    try:
        sock = socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP)
    except OSError as exc:
        return {"result": _error(exc), "stage": "socket"}
    with sock:
        sock.settimeout(1)
        try:
            sock.sendto(ICMP_ECHO, (host, 0))
        except OSError as exc:
            return {"result": _error(exc), "stage": "send"}
        try:
            sock.recvfrom(4096)
        except OSError as exc:
            return {"result": _error(exc), "stage": "receive"}
    return {"result": "reply"}


def icmp(host: str) -> dict[str, Any]:
    return {"ping_socket": _icmp_via(socket.SOCK_DGRAM, host), "raw_socket": _icmp_via(socket.SOCK_RAW, host)}


def raw() -> dict[str, Any]:
    outcomes = {}
    for name, family, kind, proto in (
        ("inet_raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
        ("inet6_raw", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW),
        ("packet", socket.AF_PACKET, socket.SOCK_RAW, 0x0300),  # htons(ETH_P_ALL)
    ):
        try:
            socket.socket(family, kind, proto).close()
            outcomes[name] = "ok"
        except OSError as exc:
            outcomes[name] = _error(exc)
    return outcomes


def _unix(address: str) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(address)
            reply = sock.makefile("rb").readline().decode().strip()
        return {"result": "ok", "reply": reply}
    except OSError as exc:
        return {"result": _error(exc)}


def unix(path: str) -> dict[str, Any]:
    return _unix(path)


def abstract(name: str) -> dict[str, Any]:
    return _unix("\0" + name)


def write(path: str) -> dict[str, Any]:
    try:
        os.close(os.open(path, os.O_WRONLY))
    except OSError as exc:
        return {"result": _error(exc)}
    return {"result": "ok"}


def counters() -> dict[str, Any]:
    outcome = _exchange(DRIVER_ADDRESS, "COUNTERS")
    if outcome["result"] != "ok":
        return outcome
    document = json.loads(outcome["reply"])
    if "error" in document:
        return {"result": "error", "error": document["error"]}
    found = {item["counter"]["name"]: item["counter"]["packets"] for item in document["nftables"] if "counter" in item}
    return {"result": "ok", "packets": found}


def send_signal(name: str) -> dict[str, Any]:
    return _exchange(DRIVER_ADDRESS, f"SIGNAL {name}")


PROBES: dict[str, Callable[..., dict[str, Any]]] = {
    "tcp": tcp,
    "tcp6": tcp6,
    "udp": udp,
    "icmp": icmp,
    "raw": raw,
    "unix": unix,
    "abstract": abstract,
    "write": write,
    "counters": counters,
    "signal": send_signal,
}


def main(argv: list[str]) -> int:
    groups: list[list[str]] = [[]]
    for arg in argv:
        if arg == "+":
            groups.append([])
        else:
            groups[-1].append(arg)
    for name, *args in (group for group in groups if group):
        outcome = PROBES[name](*args)
        print(json.dumps({"probe": name, "args": args, **outcome}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
