"""Escape attempts the jailed workload makes (run by path with the venv's Python): one JSON line per probe.

    python probe.py PROBE ARGS... [+ PROBE ARGS...]...

``+`` separates probes, so one interpreter start serves a whole test. Every outcome is data (``ok``, a reply,
or the errno's name): a probe never raises, so the test sees exactly how each attempt ended. The result key
is always ``result``; ``ok``/``reply``/``answer`` mean the attempt got somewhere, anything else is how it failed.
The probes shared with tests/integration/jail/probe.py (udp, icmp, raw, unix) live in tests/support/probing.py.

Probes:

* ``tcp HOST PORT [SEND]``      connect (IPv6 if HOST has a colon), send SEND (default ``hello``; a literal
                                ``\\r\\n`` is a line break) and CRLF, read a reply;
* ``udp HOST PORT [SEND]``      send one datagram (IPv6 if HOST has a colon), wait 1 s for any answer;
* ``icmp HOST``                 an echo request through a ping socket, then through a raw socket;
* ``raw``                       open raw IPv4 (also ICMP), IPv6 and packet sockets;
* ``dns SERVER PROTO NAME TYPE`` one query (PROTO ``udp`` or ``tcp``) straight to SERVER:53;
* ``unix PATH``                 connect to a unix stream socket (``@name``: the abstract namespace), send a
                                line, read one;
* ``loopback PORT``             connect to 127.0.0.1:PORT, then listen there itself and connect again;
* ``ptrace PID...``             PTRACE_ATTACH to each PID, then to every other PID visible in /proc;
* ``setns [PID...]``            setns() into the namespaces of PID 1 and each PID, also from a nested userns;
* ``netadmin HOST_NETNS_INO``   only if this netns is not the host's: ip/nft commands that would open the jail;
* ``killall``                   SIGKILL and SIGTERM every other visible PID (ignoring SIGTERM itself);
* ``keyhunt PEM DIR...``        search DIRs for a PEM private key matching the last certificate in PEM.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from tests.support.probing import TIMEOUT, Probe, error_name, family, icmp, raw, run_probes, udp_exchange, unix

PTRACE_ATTACH, PTRACE_DETACH = 16, 17
CLONE_NEWUSER = 0x10000000


def tcp(host: str, port: str, send: str = "hello") -> dict[str, Any]:
    try:
        with socket.socket(family(host), socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect((host, int(port)))
            sock.sendall(send.replace("\\r\\n", "\r\n").encode() + b"\r\n")
            reply = sock.recv(200)
    except OSError as exc:
        return {"result": error_name(exc)}
    # The proxy closing on us without a word is how a denied non-HTTP stream ends.
    return {"result": "reply", "data": reply.decode(errors="replace")} if reply else {"result": "closed"}


def udp(host: str, port: str, send: str = "") -> dict[str, Any]:
    return udp_exchange(host, port, (send or f"escape to {host}:{port}").encode(), wait=1)


def _query(name: str, qtype: str) -> bytes:
    types = {"A": 1, "TXT": 16, "AAAA": 28}
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split("."))
    return struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", types[qtype], 1)


def _answers(reply: bytes) -> dict[str, Any]:
    _id, flags, qdcount, ancount, _ns, _ar = struct.unpack(">HHHHHH", reply[:12])
    at = 12
    for _ in range(qdcount):
        while reply[at]:
            at += reply[at] + 1
        at += 5
    addresses = []
    for _ in range(ancount):
        at += 2 if reply[at] & 0xC0 == 0xC0 else reply.index(b"\0", at) - at + 1
        rtype, _class, _ttl, length = struct.unpack(">HHIH", reply[at : at + 10])
        at += 10
        data = reply[at : at + length]
        at += length
        addresses.append(socket.inet_ntoa(data) if rtype == 1 else data.hex())
    return {"result": "answer", "rcode": flags & 0xF, "answers": addresses}


def dns(server: str, proto: str, name: str, qtype: str = "A") -> dict[str, Any]:
    query = _query(name, qtype)
    try:
        if proto == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendto(query, (server, 53))
                reply = sock.recv(4096)
        else:
            with socket.create_connection((server, 53), timeout=TIMEOUT) as sock:
                sock.sendall(struct.pack(">H", len(query)) + query)
                stream = sock.makefile("rb")
                (length,) = struct.unpack(">H", stream.read(2))
                reply = stream.read(length)
    except (OSError, struct.error) as exc:
        return {"result": error_name(exc) if isinstance(exc, OSError) else "truncated"}
    return _answers(reply)


def loopback(port: str) -> dict[str, Any]:
    before = tcp("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", int(port)))
        except OSError as exc:
            return {"result": "bind-" + error_name(exc), "before": before}
        server.listen(1)
        with socket.create_connection(("127.0.0.1", int(port)), timeout=TIMEOUT) as client:
            peer, _ = server.accept()
            with peer:
                peer.sendall(b"jail's own loopback\n")
                mine = client.recv(100).decode()
    return {"result": before["result"], "before": before, "own_listener": mine}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def ptrace(*pids: str) -> dict[str, Any]:
    libc = _libc()
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    visible = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())
    outcomes = {}
    for pid in [*(int(p) for p in pids), *visible]:
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            outcomes[str(pid)] = "ok"
            libc.ptrace(PTRACE_DETACH, pid, None, None)
        else:
            outcomes[str(pid)] = errno.errorcode.get(ctypes.get_errno(), "?")
    return {"result": "ok" if "ok" in outcomes.values() else "failed", "attach": outcomes, "visible": visible}


def _setns_all(libc: ctypes.CDLL, pids: list[str]) -> dict[str, str]:
    outcomes = {}
    for pid in pids:
        try:
            kinds = sorted(os.listdir(f"/proc/{pid}/ns"))
        except OSError as exc:
            outcomes[pid] = error_name(exc)
            continue
        for kind in kinds:
            try:
                fd = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY)
            except OSError as exc:
                outcomes[f"{pid}/{kind}"] = "open-" + error_name(exc)
                continue
            try:
                ok = libc.setns(fd, 0) == 0
                outcomes[f"{pid}/{kind}"] = "ok" if ok else errno.errorcode.get(ctypes.get_errno(), "?")
            finally:
                os.close(fd)
    return outcomes


def setns(*pids: str) -> dict[str, Any]:
    """setns() into the namespaces of PID 1 (the jail's init, which holds capabilities the workload lacks) and
    of each PID given (pids outside the jail), then the same again from a nested user namespace, where the
    workload does hold every capability, but only over namespaces it owns; then nsenter(1)."""
    libc = _libc()
    targets = ["1", *pids]
    direct = _setns_all(libc, targets)
    nested: dict[str, str] | str
    if libc.unshare(CLONE_NEWUSER) == 0:
        nested = _setns_all(libc, targets)
    else:
        nested = "unshare-" + errno.errorcode.get(ctypes.get_errno(), "?")
    try:
        entered = subprocess.run(
            ["nsenter", "-t", "1", "-n", "-m", "true"], capture_output=True, timeout=10, check=False
        ).returncode
    except OSError as exc:
        entered = error_name(exc)
    escaped = "ok" in direct.values() or (isinstance(nested, dict) and "ok" in nested.values()) or entered == 0
    return {"result": "ok" if escaped else "failed", "direct": direct, "nested": nested, "nsenter": entered}


# Each one, had it worked, would open the jail: drop its firewall, route around lo, add an interface.
NETADMIN = (
    ["/usr/sbin/nft", "flush", "ruleset"],
    ["/usr/sbin/nft", "add", "table", "ip", "escape"],
    ["/usr/sbin/ip", "route", "add", "198.51.100.0/24", "dev", "lo"],
    ["/usr/sbin/ip", "route", "del", "local", "default"],
    ["/usr/sbin/ip", "link", "add", "escape0", "type", "dummy"],
    ["/usr/sbin/ip", "link", "set", "lo", "down"],
    ["/usr/sbin/ip", "addr", "add", "198.51.100.9/32", "dev", "lo"],
)


def netadmin(host_netns_inode: str) -> dict[str, Any]:
    # These commands would break the machine if run outside a jail: refuse unless the netns is provably not
    # the host's.
    if os.stat("/proc/self/ns/net").st_ino == int(host_netns_inode):
        return {"result": "not-in-jail"}
    outcomes = {}
    for argv in NETADMIN:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            outcomes[" ".join(argv[1:])] = done.returncode
        except OSError as exc:
            outcomes[" ".join(argv[1:])] = error_name(exc)
    return {"result": "ok" if 0 in outcomes.values() else "failed", "commands": outcomes}


def killall() -> dict[str, Any]:
    # Init forwards SIGTERM to us: ignore it, or we would only kill ourselves.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    outcomes = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        tried = []
        for signum in (signal.SIGKILL, signal.SIGTERM):
            try:
                os.kill(int(name), signum)
                tried.append("sent")
            except OSError as exc:
                tried.append(error_name(exc))
        outcomes[name] = tried
    return {"result": "done", "signalled": outcomes}


def keyhunt(bundle: str, *tops: str) -> dict[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(bundle, "rb") as f:
        ours = x509.load_pem_x509_certificates(f.read())[-1]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    wanted = ours.public_key().public_bytes(*spki)
    found, keys_seen = [], 0
    for top in tops:
        for directory, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read(1 << 20)
                    if b"PRIVATE KEY" not in data:
                        continue
                    keys_seen += 1
                    key = serialization.load_pem_private_key(data, None)
                    if key.public_key().public_bytes(*spki) == wanted:
                        found.append(path)
                except Exception:
                    continue
    return {
        "result": "ok" if found else "failed",
        "found": found,
        "keys_seen": keys_seen,
        "subject": ours.subject.rfc4514_string(),
    }


_TAMPERING: dict[str, Callable[[str], object]] = {
    "append": lambda path: os.close(os.open(path, os.O_WRONLY | os.O_APPEND)),
    "truncate": lambda path: os.truncate(path, 0),
    "unlink": os.unlink,
    "rename": lambda path: os.rename(path, path + ".moved"),
}


def _create_beside(directory: str) -> None:
    os.close(os.open(os.path.join(directory, "forged.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def tamper(*paths: str) -> dict[str, Any]:
    """Try to forge, cut, remove or replace each file: append, truncate, unlink, rename it away. A directory
    stands for the files in it, and a new file is tried there too."""
    outcomes: dict[str, dict[str, str]] = {}
    files = [os.path.join(p, name) for p in paths if os.path.isdir(p) for name in sorted(os.listdir(p))]
    for directory in (p for p in paths if os.path.isdir(p)):
        try:
            _create_beside(directory)
            outcomes[directory] = {"create": "ok"}
        except OSError as exc:
            outcomes[directory] = {"create": error_name(exc)}
    for path in [p for p in paths if not os.path.isdir(p)] + files:
        tried: dict[str, str] = {}
        for name, attempt in _TAMPERING.items():
            try:
                attempt(path)
                tried[name] = "ok"
            except OSError as exc:
                tried[name] = error_name(exc)
        outcomes[path] = tried
    done = any(outcome == "ok" for tried in outcomes.values() for outcome in tried.values())
    return {"result": "ok" if done else "failed", "files": outcomes}


PROBES: dict[str, Probe] = {
    "tcp": tcp,
    "udp": udp,
    "icmp": icmp,
    "raw": raw,
    "dns": dns,
    "unix": unix,
    "loopback": loopback,
    "ptrace": ptrace,
    "setns": setns,
    "netadmin": netadmin,
    "killall": killall,
    "keyhunt": keyhunt,
    "tamper": tamper,
}


if __name__ == "__main__":
    sys.exit(run_probes(PROBES, sys.argv[1:]))
