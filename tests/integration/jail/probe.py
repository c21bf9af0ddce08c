"""Network probes the jailed workload runs (by path, with the venv's Python): one JSON line per probe on stdout.

    python probe.py PROBE ARGS... [+ PROBE ARGS...]...

Probes (``+`` separates several in one run, so one interpreter start serves a whole test):

* ``tcp HOST PORT [LINE]``   connect, send LINE (default ``hello``), read one reply line;
* ``tcp6 HOST PORT``         connect over IPv6 (nothing is sent);
* ``udp HOST PORT [WAIT]``   send one datagram naming its destination (over IPv6 if HOST has a colon), wait
                             WAIT s (default 1) for the echo;
* ``icmp HOST``              an ICMP echo request through a ping socket, then through a raw socket;
* ``raw``                    try to open raw IPv4 (also ICMP), IPv6 and packet sockets;
* ``unix PATH``              connect to a unix socket (``@NAME``: the abstract namespace), send a line, read one;
* ``write PATH``             open PATH for writing and close it at once (nothing is ever written);
* ``counters``               ask the driver (via the proxy socket) for the jail's nft counters;
* ``signal NAME``            ask the driver to send SIGNAME to the jail's init.

Every outcome is data (``ok``, ``reply``, or the errno's name): a probe never raises. Standard library only;
the probes shared with tests/escape/probe.py (udp, icmp, raw, unix) live in tests/support/probing.py.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

from tests.support.probing import TIMEOUT, Probe, error_name, icmp, raw, run_probes, udp_exchange, unix

# Any address outside the jail reaches the driver through the proxy redirect; this one is guarded on the host.
DRIVER_ADDRESS = ("198.51.100.1", 9)


def _exchange(address: tuple[str, int], line: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with socket.create_connection(address, timeout=TIMEOUT) as sock:
            sock.sendall(line.encode() + b"\n")
            reply = sock.makefile("rb").readline().decode().strip()
        return {"result": "ok", "reply": reply, "seconds": time.monotonic() - started}
    except OSError as exc:
        return {"result": error_name(exc), "seconds": time.monotonic() - started}


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
        return {"result": error_name(exc), "seconds": time.monotonic() - started}


def udp(host: str, port: str, wait: str = "1") -> dict[str, Any]:
    return udp_exchange(host, port, f"to {host}:{port}".encode(), float(wait))


def write(path: str) -> dict[str, Any]:
    try:
        os.close(os.open(path, os.O_WRONLY))
    except OSError as exc:
        return {"result": error_name(exc)}
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


PROBES: dict[str, Probe] = {
    "tcp": tcp,
    "tcp6": tcp6,
    "udp": udp,
    "icmp": icmp,
    "raw": raw,
    "unix": unix,
    "write": write,
    "counters": counters,
    "signal": send_signal,
}


if __name__ == "__main__":
    sys.exit(run_probes(PROBES, sys.argv[1:]))
