"""Escape probes from a red-team review: request framing, protocol switches, the terminal, inherited fds.

Each in-jail client below speaks raw bytes (python sockets), so the proxy sees exactly the attack and nothing a
well-behaved client library would have cleaned up. A step sends its bytes and, unless told otherwise, reads one
whole response (headers and a Content-Length body) before the next step, so the order on the wire is fixed by
the protocol, not by timing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import subprocess
import termios
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import POLICY, Jailer
from tests.escape.conftest import Witnesses, run_probe
from tests.support.canaries import UnixCanary, received_so_far
from tests.support.runner import boundary_argv, boundary_on_terminal, make_user_dir, prepare
from tests.support.tools import venv_python

# The in-jail client: argv[1] is JSON {"tls": bool, "host": str, "port": int, "steps": [[bytes-as-latin1,
# read_response], ...]}; prints one JSON line with every response head it read and how the connection ended.
CLIENT = r"""
import json, socket, ssl, sys
spec = json.loads(sys.argv[1])
sock = socket.create_connection((spec["host"], spec["port"]), timeout=5)
if spec["tls"]:
    sock = ssl.create_default_context().wrap_socket(sock, server_hostname=spec["host"])
buf, heads, end = b"", [], "open"

def response():
    global buf
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        data = sock.recv(65536)
        if not data:
            raise EOFError
        buf += data
    buf = buf[length:]
    heads.append(head.split(b"\r\n")[0].decode())

try:
    for data, read in spec["steps"]:
        sock.sendall(data.encode("latin-1"))
        if read:
            response()
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
    end = "closed"
except EOFError:
    end = "closed"
except OSError as e:
    end = type(e).__name__
print(json.dumps({"responses": heads, "end": end}), flush=True)
"""


def _client(jail: Jailer, *, tls: bool, host: str, port: int, steps: list[tuple[str, bool]], **kw: Any) -> Any:
    spec = json.dumps({"tls": tls, "host": host, "port": port, "steps": steps})
    return run_probe(jail, command=[str(venv_python()), "-c", CLIENT, spec], **kw)


def _targets(requests: list[Any]) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests]


def test_absolute_form_target_on_a_direct_connection_names_the_checked_host(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: on a direct (transparent) TLS connection to allowed.test, send an absolute-form request line
    `GET https://denied.test/hello` with `Host: allowed.test`. The proxy checks the Host header, but an origin
    server must take the host from an absolute-form target and ignore Host (RFC 9112 §3.2.2): on a shared front
    (CDN, virtual hosts) the request reaches denied.test. What goes upstream must name the host that was checked
    (or the request must be denied)."""
    before = len(jail.https.requests)
    request = "GET https://denied.test/hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n"
    probe = _client(jail, tls=True, host="allowed.test", port=443, steps=[(request, True)])
    forwarded = _targets(jail.https.requests[before:])
    assert [t for t in forwarded if "denied.test" in t] == [], (forwarded, probe.run.audit)
    witnesses.assert_nothing_escaped()


def test_raw_stream_after_connect_on_a_connection_with_an_allowed_request_is_not_forwarded(
    jail: Jailer, witnesses: Witnesses
) -> None:
    """Attack: as a proxy client, first make one allowed request (`GET http://allowed.test/hello`), then
    `CONNECT allowed.test:80` on the same connection and send bytes that do not look like HTTP to the proxy (a
    leading CRLF) but that the upstream reads as `POST /admin`. allowed.test allows only GET /hello and /v1/*:
    the raw stream is denied (`not-http`) and must not reach the upstream."""
    before = len(jail.http.requests)
    steps = [
        ("GET http://allowed.test/hello HTTP/1.1\r\nHost: allowed.test\r\n\r\n", True),
        ("CONNECT allowed.test:80 HTTP/1.1\r\nHost: allowed.test:80\r\n\r\n", True),
        ("\r\nPOST /admin HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 6\r\n\r\nsecret", False),
    ]
    probe = _client(jail, tls=False, host="proxy.invalid", port=3128, steps=steps)
    forwarded = _targets(jail.http.requests[before:])
    assert "POST /admin" not in forwarded, (forwarded, probe.run.audit)
    witnesses.assert_nothing_escaped()


class SwitchingUpstream:
    """A plain-HTTP upstream on loopback that answers every request with `101 Switching Protocols` to whatever
    it asked to upgrade to (as an h2c-capable or otherwise upgrade-happy front would), and records every byte
    it receives afterwards."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.after_switch = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            head, _, rest = head.partition(b"\r\n\r\n")
            match = re.search(rb"(?im)^upgrade:\s*(\S+)", head)
            protocol = match.group(1) if match else b"x"
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + protocol + b"\r\n\r\n"
            )
            with self._lock:
                self.after_switch += rest
            while data := conn.recv(4096):
                with self._lock:
                    self.after_switch += data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def switching_upstream() -> Iterator[SwitchingUpstream]:
    upstream = SwitchingUpstream()
    yield upstream
    upstream.close()


SWITCH_POLICY = POLICY + "  - domain: switch.test\n    methods: [GET]\n    paths: [/hello]\n"


def test_protocol_switch_after_an_allowed_request_opens_no_unchecked_stream(
    jail: Jailer, witnesses: Witnesses, switching_upstream: SwitchingUpstream
) -> None:
    """Attack (h2c smuggling): an allowed `GET /hello` asks for `Upgrade: h2c`; the upstream agrees with 101, and
    the proxy turns the connection into a raw stream, which the audit log calls denied (`not-http`). Whatever
    the client sends next (here an HTTP/1 `POST /admin`, in reality HTTP/2 to any path the front serves) must
    not reach the upstream unchecked."""
    steps = [
        ("GET /hello HTTP/1.1\r\nHost: switch.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", True),
        ("POST /admin HTTP/1.1\r\nHost: switch.test\r\nContent-Length: 6\r\n\r\nsecret", False),
    ]
    probe = _client(
        jail,
        tls=False,
        host="switch.test",
        port=80,
        steps=steps,
        policy=SWITCH_POLICY,
        extra=[f"--resolve=switch.test:80:127.0.0.1:{switching_upstream.port}"],
    )
    assert b"/admin" not in bytes(switching_upstream.after_switch), probe.run.audit
    witnesses.assert_nothing_escaped()


# Pushes a command line into the terminal's input queue, as if typed: the shell that started boundary reads it
# once boundary exits, outside the jail.
TIOCSTI_WORKLOAD = r"""
import fcntl, termios
try:
    for ch in "echo escaped-through-tiocsti\n":
        fcntl.ioctl(0, termios.TIOCSTI, ch.encode())
    print("tiocsti: ok", flush=True)
except OSError as e:
    print("tiocsti:", e, flush=True)
"""


def test_the_workload_cannot_type_into_the_invoking_terminal(jail: Jailer) -> None:
    """Attack: TIOCSTI on the shared controlling terminal queues input for whoever reads the terminal next —
    the user's shell, outside the jail, as soon as boundary exits (the bubblewrap CVE-2017-5226 escape). Kernels
    with dev.tty.legacy_tiocsti=1 (or without that sysctl) allow it to any process of the terminal's session.
    After the run, nothing the workload typed may be waiting in the terminal's input queue."""
    command = [str(venv_python()), "-c", TIOCSTI_WORKLOAD]
    with boundary_on_terminal(jail.args(command), rootless=jail.rootless, expose=[jail.workdir]) as run:
        returncode = run.proc.wait(timeout=60)
        queued = fcntl.ioctl(run.slave, termios.FIONREAD, b"\0\0\0\0")
        waiting = int.from_bytes(queued, "little")
        pending = b""
        if waiting:
            os.set_blocking(run.slave, False)
            pending = os.read(run.slave, waiting)
    assert returncode == 0
    assert pending == b"", f"the workload left {pending!r} for the invoking shell to read"


FD_WORKLOAD = r"""
import os, sys
fd = int(sys.argv[1])
try:
    os.write(fd, b"escaped through an inherited descriptor\n")
    print("fd: ok", flush=True)
except OSError as e:
    print("fd:", e, flush=True)
print("fds:", sorted(int(n) for n in os.listdir("/proc/self/fd")), flush=True)
"""


def test_descriptors_inherited_by_boundary_do_not_reach_the_workload(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: boundary's invoker (a shell, an IDE, a CI runner) may hold an open socket or pipe without
    close-on-exec; boundary passes every inherited descriptor on to the workload, which then talks through it
    to whatever is at the other end, outside the jail's netns. Here: a TCP connection to a host loopback
    listener, inherited as it would be from a careless parent; the listener must hear nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    leaked = socket.create_connection(listener.getsockname())
    outside, _ = listener.accept()
    listener.close()
    fd = leaked.fileno()
    os.set_inheritable(fd, True)
    command = [str(venv_python()), "-c", FD_WORKLOAD, str(fd)]
    inv = prepare(boundary_argv(jail.args(command)), rootless=jail.rootless, expose=[jail.workdir])
    try:
        result = subprocess.run(
            inv.argv, env=inv.env, cwd=inv.cwd, capture_output=True, timeout=60, pass_fds=(fd,), check=False
        )
        leaked.close()
        # The workload has exited: whatever it wrote is in the socket's buffer now.
        heard = received_so_far(outside)
    finally:
        leaked.close()
        outside.close()
        inv.cleanup()
    assert heard == b"", (heard, result.stdout)
    witnesses.assert_nothing_escaped()


@pytest.fixture
def home_with_socket() -> Iterator[tuple[Path, UnixCanary]]:
    home = make_user_dir("boundary-escape-home-")
    (home / ".ssh").mkdir(mode=0o755)
    canary = UnixCanary(str(home / ".ssh" / "cm-git@example.com:22"))
    try:
        yield home, canary
    finally:
        canary.close()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def test_unix_sockets_in_the_home_directory_are_out_of_reach(
    jail: Jailer, witnesses: Witnesses, home_with_socket: tuple[Path, UnixCanary]
) -> None:
    """Attack: the hidden trees (/tmp, /run, $XDG_RUNTIME_DIR, $TMPDIR) are not the only places host unix
    sockets live: an SSH ControlMaster socket (`ControlPath ~/.ssh/cm-%r@%h:%p`, a common setting) carries
    new sessions to remote hosts, Docker Desktop keeps ~/.docker/desktop/docker.sock, gpg-agent falls back to
    ~/.gnupg/S.*. The home stays visible in the jail; connecting to such a socket leaves the netns."""
    home, canary = home_with_socket
    probe = run_probe(jail, "unix", canary.path, env={"HOME": str(home)})
    assert probe[0]["result"] != "ok", probe.results
    assert canary.heard == []
    witnesses.assert_nothing_escaped()


def test_pipelined_and_keep_alive_requests_are_each_checked(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: hide a denied request behind an allowed one on the same connection: pipelined in the same
    segment, and after an HTTP/1.0 `Connection: keep-alive` request. Each request is decided on its own: the
    allowed ones are answered, the denied ones get the 403 and never reach the upstream."""
    before = len(jail.http.requests)
    steps = [
        (
            "GET /hello HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET /admin HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
            True,
        ),
        ("", True),
        ("GET /hello HTTP/1.0\r\nHost: allowed.test\r\nConnection: keep-alive\r\n\r\n", True),
        ("GET /admin2 HTTP/1.0\r\nHost: allowed.test\r\n\r\n", True),
    ]
    probe = _client(jail, tls=False, host="allowed.test", port=80, steps=steps)
    statuses = [head.split()[1] for head in probe[0]["responses"]]
    assert statuses == ["200", "403", "200", "403"], (probe.results, probe.run.stderr)
    assert _targets(jail.http.requests[before:]) == ["GET /hello", "GET /hello"]
    witnesses.assert_nothing_escaped()


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",  # CL.TE
        "Transfer-Encoding : chunked",  # a name some servers trim
        "Transfer-Encoding: xchunked",
        "Content-Length: 0\r\nContent-Length: 44",
        "Content-Length: 0, 44",
    ],
)
def test_ambiguous_request_framing_smuggles_nothing(jail: Jailer, witnesses: Witnesses, framing: str) -> None:
    """Attack (request smuggling): frame an allowed request's body so that the proxy and the upstream disagree
    where it ends, the rest being `GET /admin` for the upstream. Requests with conflicting or malformed
    Content-Length / Transfer-Encoding are refused before anything is forwarded."""
    before = len(jail.http.requests)
    smuggled = "GET /admin HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
    request = f"GET /hello HTTP/1.1\r\nHost: allowed.test\r\n{framing}\r\n\r\n0\r\n\r\n{smuggled}"
    probe = _client(jail, tls=False, host="allowed.test", port=80, steps=[(request, False)])
    forwarded = _targets(jail.http.requests[before:])
    assert "GET /admin" not in forwarded, (forwarded, probe.run.audit)
    assert forwarded == [], forwarded
    witnesses.assert_nothing_escaped()
