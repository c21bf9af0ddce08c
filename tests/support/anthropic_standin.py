"""A local stand-in for the Anthropic Messages API, and helpers to run the real Claude Code CLI against it.

The stand-in is an :class:`~tests.support.upstreams.Upstream` (HTTPS, certificate from the test CA) whose
handler answers:

- ``POST /v1/messages`` (any query, e.g. ``?beta=true``): with ``"stream": true`` a server-sent event
  stream in the Messages API format (``message_start``, ``ping``, ``content_block_start``, several
  ``content_block_delta``/``text_delta``, ``content_block_stop``, ``message_delta`` with
  ``stop_reason: end_turn`` and usage, ``message_stop``); otherwise one JSON message. The text is
  :attr:`AnthropicStandin.answer`.
- ``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``.
- ``GET /v1/models`` and ``GET /v1/models/<id>``: a small model list / model object.
- anything else: 404 with an Anthropic-style JSON error (the CLI tolerates it; every request is recorded).

Running the CLI: :func:`find_claude` locates the native binary, :func:`prepare_claude_home` makes a fresh
HOME in which ``claude -p`` runs non-interactively with an API key, and :func:`spawn_in_loopback_netns`
runs a command in a new network namespace that has only ``lo`` (nothing it does can leave the machine),
handing back listening sockets bound inside it, for the stand-in and for a :class:`DnsRecorder` that
records every name the command looks up. :func:`run_claude_in_loopback_netns` puts it all together.

What Claude Code 2.1.197 (``claude -p``, API key, fresh HOME) was seen to do:

- with ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` and ``ANTHROPIC_BASE_URL``: ``HEAD /`` (a warm-up,
  user agent ``Bun/...``; our 404 is fine), then ``POST /v1/messages?beta=true`` with ``stream: true``.
  No DNS lookup at all, no other host.
- the same without a base URL (its normal name): also ``GET /api/claude_code/policy_limits`` and
  ``GET /api/claude_code/settings`` on api.anthropic.com (404 tolerated).
- without ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (which alone suppresses them; the other
  ``DISABLE_*`` switches are belt and braces), more calls, all to api.anthropic.com even with a base URL:
  ``POST /api/eval/sdk-<key>``, ``GET /api/claude_cli/bootstrap``, ``GET /api/claude_code_penguin_mode``,
  ``GET /mcp-registry/v0/servers``, ``GET /api/claude_code/organizations/metrics_enabled``,
  ``POST /api/event_logging/v2/batch``. When api.anthropic.com does not resolve, these fail fast.
- an empty HOME works as well as a prepared one in ``-p`` mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tests.support.upstreams import (
    Exchange,
    FrontedUpstream,
    RecordedRequest,
    TestCA,
    Upstream,
    _LoopThread,
    start_https_upstream,
)

__all__ = [
    "CLAUDE_BINARY_LOCATIONS",
    "DEFAULT_ANSWER",
    "DUMMY_API_KEY",
    "STANDIN_NETNS_PORT",
    "AnthropicStandin",
    "ClaudeRun",
    "DnsQuery",
    "DnsRecorder",
    "NetnsChild",
    "find_claude",
    "netns_unavailable_reason",
    "prepare_claude_home",
    "run_claude_in_loopback_netns",
    "spawn_in_loopback_netns",
    "start_anthropic_standin",
]

DEFAULT_ANSWER = "BOUNDARY-STANDIN-OK"
DUMMY_API_KEY = "sk-ant-test-dummy"
_REPO = Path(__file__).resolve().parents[2]
_NATIVE = Path("node_modules/@anthropic-ai/claude-code-linux-x64/claude")
#: Where :func:`find_claude` looks, in order.
CLAUDE_BINARY_LOCATIONS: tuple[Path, ...] = (
    _REPO / ".cache/npm" / _NATIVE,
    Path("/tmp/claudetry") / _NATIVE,
)


# ------------------------------------------------------------------------------------------- the stand-in


class AnthropicStandin(FrontedUpstream):
    """The Messages API stand-in (an HTTPS :class:`Upstream`); see the module docstring for its routes."""

    def __init__(self, ca: TestCA, names: Sequence[str], answer: str, sock: socket.socket | None) -> None:
        #: The text every ``/v1/messages`` answer carries; may be changed while running.
        self.answer = answer
        self._upstream = start_https_upstream(ca, names, handler=self._handle, sock=sock)

    # ---------------------------------------------------------------- public API

    @property
    def upstream(self) -> Upstream:
        return self._upstream

    def paths(self) -> list[str]:
        """``METHOD path`` of every request so far, in order (for messages and debugging)."""
        return [f"{r.method} {r.path}" for r in self.requests]

    def message_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests (any query string)."""
        return [r for r in self.requests if r.method == "POST" and r.path.split("?", 1)[0] == "/v1/messages"]

    def base_url(self, name: str = "api.anthropic.com") -> str:
        """``https://name:port`` (for ``ANTHROPIC_BASE_URL`` when ``name`` maps to 127.0.0.1)."""
        return f"https://{name}:{self.port}"

    def close(self) -> None:
        self.upstream.close()

    # ---------------------------------------------------------------- handler

    async def _handle(self, ex: Exchange) -> None:
        body = await ex.read_body()
        path = ex.path.rstrip("/")
        request_id = f"req_standin_{uuid.uuid4().hex[:20]}"
        headers = [("request-id", request_id)]
        if ex.method == "POST" and path == "/v1/messages":
            payload = _json_object(body)
            if payload is None:
                await _api_error(ex, 400, "invalid_request_error", "body is not a JSON object", headers)
                return
            model = str(payload.get("model") or "claude-standin")
            if payload.get("stream") is True:
                await self._stream_message(ex, model, headers)
            else:
                await ex.respond_json(self._message(model), headers=headers)
        elif ex.method == "POST" and path == "/v1/messages/count_tokens":
            await ex.respond_json({"input_tokens": max(1, len(body) // 4)}, headers=headers)
        elif ex.method == "GET" and path == "/v1/models":
            models = [_model_info(m) for m in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")]
            await ex.respond_json(
                {"data": models, "has_more": False, "first_id": models[0]["id"], "last_id": models[-1]["id"]},
                headers=headers,
            )
        elif ex.method == "GET" and path.startswith("/v1/models/"):
            await ex.respond_json(_model_info(path.rsplit("/", 1)[1]), headers=headers)
        else:
            await _api_error(ex, 404, "not_found_error", f"{ex.method} {ex.path} is not served here", headers)

    def _message(self, model: str) -> dict[str, Any]:
        return {
            "id": f"msg_standin_{uuid.uuid4().hex[:20]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": self.answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _usage(len(self.answer.split()) + 1),
        }

    async def _stream_message(self, ex: Exchange, model: str, headers: list[tuple[str, str]]) -> None:
        await ex.start_stream(
            200,
            content_type="text/event-stream; charset=utf-8",
            headers=[*headers, ("Cache-Control", "no-cache")],
        )

        async def event(kind: str, data: dict[str, Any]) -> None:
            await ex.send(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())

        message = self._message(model)
        message.update(content=[], stop_reason=None, usage=_usage(1))
        await event("message_start", {"message": message})
        await event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        await event("ping", {})
        pieces = _split_text(self.answer)
        for piece in pieces:
            await event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        await event("content_block_stop", {"index": 0})
        await event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(pieces)},
            },
        )
        await event("message_stop", {})
        await ex.end()


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _model_info(model_id: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "2025-01-01T00:00:00Z",
    }


def _split_text(text: str) -> list[str]:
    """``text`` cut into 3-4 pieces (so a stream has several deltas) that join back to ``text``."""
    if len(text) < 3:
        return [text] if text else [""]
    step = max(1, len(text) // 3)
    return [text[i : i + step] for i in range(0, len(text), step)]


async def _api_error(ex: Exchange, status: int, kind: str, message: str, headers: list[tuple[str, str]]) -> None:
    await ex.respond_json({"type": "error", "error": {"type": kind, "message": message}}, status, headers=headers)


def start_anthropic_standin(
    ca: TestCA,
    names: Sequence[str] = ("api.anthropic.com",),
    *,
    answer: str = DEFAULT_ANSWER,
    sock: socket.socket | None = None,
) -> AnthropicStandin:
    """Start the stand-in with a certificate for ``names`` on 127.0.0.1 (ephemeral port) or on ``sock``."""
    return AnthropicStandin(ca, names, answer, sock)


# --------------------------------------------------------------------------------------- the claude CLI


def find_claude() -> Path | None:
    """The native Claude Code binary (installed by npm), or ``None`` if it is in none of the known places."""
    for path in CLAUDE_BINARY_LOCATIONS:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def prepare_claude_home(
    home: Path,
    *,
    base_url: str | None = None,
    ca_pem: Path | None = None,
    api_key: str = DUMMY_API_KEY,
) -> dict[str, str]:
    """Make ``home`` a HOME in which ``claude -p PROMPT`` runs non-interactively; return the environment.

    Writes ``~/.claude.json`` with onboarding marked done and the API key pre-approved, and creates
    ``~/.claude``. The environment is complete (not merged with ``os.environ``): HOME, PATH, the API key,
    the switches that turn off non-essential traffic (telemetry, error reporting, auto-updater, feedback
    surveys), and, if given, ``ANTHROPIC_BASE_URL`` and ``NODE_EXTRA_CA_CERTS``.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / ".claude").mkdir(exist_ok=True)
    state = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": "99.0.0",
        "numStartups": 1,
        "bypassPermissionsModeAccepted": True,
        "customApiKeyResponses": {"approved": [api_key[-20:]], "rejected": []},
    }
    (home / ".claude.json").write_text(json.dumps(state, indent=2) + "\n")
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    }
    if base_url is not None:
        env["ANTHROPIC_BASE_URL"] = base_url
    if ca_pem is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca_pem)
    return env


# ---------------------------------------------------------------------------------- DNS query recorder


@dataclasses.dataclass(frozen=True)
class DnsQuery:
    """One DNS question received by a :class:`DnsRecorder`."""

    name: str
    qtype: int
    at: float


class DnsRecorder:
    """Serves a UDP DNS socket and records every question.

    A names in ``answers`` (name → IPv4 loopback address) get that address; every other question gets
    NXDOMAIN, at once, so a client never waits on DNS.
    """

    def __init__(self, sock: socket.socket, answers: Mapping[str, str] | None = None) -> None:
        self._answers = {name.lower().rstrip("."): addr for name, addr in (answers or {}).items()}
        for addr in self._answers.values():
            if not ipaddress.IPv4Address(addr).is_loopback:
                raise ValueError(f"DnsRecorder answers loopback addresses only, not {addr!r}")
        self._sock = sock
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._queries: list[DnsQuery] = []
        self._thread = _LoopThread("dns-recorder")
        self._transport: asyncio.DatagramTransport | None = None

        recorder = self

        class _Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.DatagramTransport)
                recorder._transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
                recorder._on_query(data, addr)

        async def start() -> None:
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(_Proto, sock=self._sock)

        self._thread.run(start())

    @property
    def queries(self) -> list[DnsQuery]:
        with self._lock:
            return list(self._queries)

    def names(self) -> list[str]:
        """The distinct names asked about, in first-asked order."""
        return list(dict.fromkeys(q.name for q in self.queries))

    def _on_query(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        parsed = _parse_question(data)
        if parsed is None:
            return
        name, qtype, question_end = parsed
        with self._lock:
            self._queries.append(DnsQuery(name, qtype, time.monotonic()))
        (qid, flags) = struct.unpack("!HH", data[:4])
        rd = flags & 0x0100
        question = data[12:question_end]
        addr_text = self._answers.get(name)
        if addr_text is None:
            reply = struct.pack("!HHHHHH", qid, 0x8000 | rd | 0x0080 | 3, 1, 0, 0, 0) + question  # NXDOMAIN
        elif qtype == 1:  # A: one answer, name compressed to the question (offset 12)
            record = struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + ipaddress.IPv4Address(addr_text).packed
            reply = struct.pack("!HHHHHH", qid, 0x8400 | rd | 0x0080, 1, 1, 0, 0) + question + record
        else:  # the name exists, but has no record of this type (NODATA)
            reply = struct.pack("!HHHHHH", qid, 0x8400 | rd | 0x0080, 1, 0, 0, 0) + question
        if self._transport is not None:
            self._transport.sendto(reply, addr)

    def close(self) -> None:
        async def stop() -> None:
            if self._transport is not None:
                self._transport.close()

        with contextlib.suppress(Exception):
            self._thread.run(stop(), timeout=5)
        self._thread.stop()
        self._sock.close()


def _parse_question(data: bytes) -> tuple[str, int, int] | None:
    """(name, qtype, offset after the question) of a one-question DNS query, or ``None``."""
    if len(data) < 12 or struct.unpack("!H", data[4:6])[0] < 1 or data[2] & 0x80:
        return None
    labels: list[str] = []
    pos = 12
    while True:
        if pos >= len(data):
            return None
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(data):
            return None
        labels.append(data[pos : pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(data):
        return None
    qtype = struct.unpack("!H", data[pos : pos + 2])[0]
    return ".".join(labels).lower(), qtype, pos + 4


# ------------------------------------------------------------------------------ loopback-only network ns

_HELPER = r"""
import ctypes, fcntl, json, os, socket, struct, sys
chan = socket.socket(fileno=int(sys.argv[1]))
spec = json.loads(sys.argv[2])
try:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP added: "ip link set lo up"
    flags = struct.unpack("16sH", fcntl.ioctl(probe, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(probe, 0x8914, struct.pack("16sH", b"lo", flags | 1))
    probe.close()
    fds = []
    for port in spec["tcp_ports"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        fds.append(s.detach())
    if spec["resolv_conf"]:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 53))
        fds.append(u.detach())
        libc = ctypes.CDLL(None, use_errno=True)
        MS_BIND = 4096
        if libc.mount(spec["resolv_conf"].encode(), b"/etc/resolv.conf", None, MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), "bind-mounting resolv.conf")
except BaseException as exc:
    chan.sendall(("error: %r" % (exc,)).encode())
    sys.exit(111)
socket.send_fds(chan, [b"ok"], fds)
for fd in fds:
    os.close(fd)
if chan.recv(16) != b"go":
    sys.exit(112)
chan.close()
os.chdir(spec["cwd"])
os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
"""


@dataclasses.dataclass
class NetnsChild:
    """A process running in its own loopback-only network namespace (see :func:`spawn_in_loopback_netns`)."""

    proc: subprocess.Popen[bytes]
    #: Listening TCP sockets bound to 127.0.0.1 *inside* the namespace, by port.
    listeners: dict[int, socket.socket]
    #: UDP socket bound to 127.0.0.1:53 inside the namespace (``/etc/resolv.conf`` points there), if asked.
    dns_socket: socket.socket | None
    _chan: socket.socket

    def start(self) -> None:
        """Let the command run (exec it). Start the servers on :attr:`listeners` first."""
        self._chan.sendall(b"go")
        self._chan.close()

    def kill(self) -> None:
        """Kill the process if it still runs and reap it."""
        self._chan.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def netns_unavailable_reason() -> str | None:
    """Why :func:`spawn_in_loopback_netns` cannot work here, or ``None`` if it can."""
    probe = subprocess.run([*_unshare_argv(), "true"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        return f"cannot create a network namespace ({' '.join(_unshare_argv())}): {probe.stderr.strip()}"
    return None


def _unshare_argv() -> list[str]:
    argv = ["unshare", "--net", "--mount"]
    if os.geteuid() != 0:
        argv.append("--map-root-user")
    return argv


def spawn_in_loopback_netns(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    tcp_ports: Sequence[int] = (),
    resolv_dir: Path | None = None,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
) -> NetnsChild:
    """Prepare ``argv`` to run in new network + mount namespaces whose only interface is ``lo``.

    Nothing the command sends can leave the machine: there is no route but loopback. Each port in
    ``tcp_ports`` is bound and listening on 127.0.0.1 inside the namespace and handed back (serve it
    from this process, e.g. with ``start_https_upstream(..., sock=...)``). With ``resolv_dir`` a
    ``resolv.conf`` naming 127.0.0.1 is written there and bind-mounted over ``/etc/resolv.conf`` inside, and
    the UDP socket on 127.0.0.1:53 is handed back (serve it with :class:`DnsRecorder`).

    The command is exec'd only after :meth:`NetnsChild.start`; stdin is ``/dev/null``. As non-root this
    uses a user namespace (``unshare --map-root-user``).
    """
    resolv_conf: str | None = None
    if resolv_dir is not None:
        resolv_dir.mkdir(parents=True, exist_ok=True)
        path = resolv_dir / "resolv.conf"
        path.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        path.chmod(0o644)
        resolv_conf = str(path)
    spec = {
        "tcp_ports": list(tcp_ports),
        "resolv_conf": resolv_conf,
        "argv": list(argv),
        "env": dict(env),
        "cwd": str(cwd),
    }
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            [*_unshare_argv(), "--", sys.executable, "-c", _HELPER, str(child.fileno()), json.dumps(spec)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=[child.fileno()],
        )
    finally:
        child.close()
    try:
        parent.settimeout(30)
        msg, fds, _flags, _addr = socket.recv_fds(parent, 1024, len(tcp_ports) + 1)
        if msg != b"ok":
            raise RuntimeError(f"loopback netns helper failed: {msg.decode(errors='replace') or 'no answer'}")
        socks = [socket.socket(fileno=fd) for fd in fds]
        listeners = dict(zip(tcp_ports, socks[: len(tcp_ports)], strict=True))
        dns_socket = socks[len(tcp_ports)] if resolv_conf is not None else None
        parent.settimeout(None)
    except BaseException:
        parent.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        raise
    return NetnsChild(proc=proc, listeners=listeners, dns_socket=dns_socket, _chan=parent)


# ------------------------------------------------------------------------ the CLI against the stand-in

#: Port the stand-in listens on inside the namespace when the CLI is given ``ANTHROPIC_BASE_URL``.
STANDIN_NETNS_PORT = 8443


@dataclasses.dataclass(frozen=True)
class ClaudeRun:
    """What :func:`run_claude_in_loopback_netns` saw."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    #: Every request the stand-in received, in order.
    requests: list[RecordedRequest]
    #: Distinct names the CLI looked up in DNS (the namespace's resolver is a :class:`DnsRecorder`).
    dns_names: list[str]
    #: Exceptions raised by the stand-in's handler (should be empty).
    standin_errors: list[str]

    def describe(self) -> str:
        """A summary for assertion messages."""
        paths = [f"{r.method} {r.path}" for r in self.requests]
        return (
            f"rc={self.returncode} timed_out={self.timed_out}\nrequests={paths}\ndns={self.dns_names}\n"
            f"standin_errors={self.standin_errors}\nstdout={self.stdout[-2000:]!r}\nstderr={self.stderr[-2000:]!r}"
        )


def run_claude_in_loopback_netns(
    claude: Path,
    prompt: str,
    *,
    ca: TestCA,
    workdir: Path,
    normal_name: bool = False,
    answer: str = DEFAULT_ANSWER,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> ClaudeRun:
    """Run ``claude -p PROMPT`` (not jailed by boundary) in a loopback-only namespace against the stand-in.

    By default the CLI is pointed at ``ANTHROPIC_BASE_URL=https://localhost:8443`` (certificate for
    ``localhost``). With ``normal_name`` it gets no base URL and reaches the stand-in by its own name:
    the namespace's DNS answers ``api.anthropic.com`` with 127.0.0.1 and the stand-in listens on 443 with a
    certificate for ``api.anthropic.com``. Every other name gets NXDOMAIN at once and nothing can leave
    the machine. ``workdir`` receives ``home/``, ``project/`` (the cwd), ``ca/`` and ``etc/``.
    On ``timeout`` the CLI is killed (``timed_out``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ca_pem = ca.write_ca_pem(workdir / "ca")
    project = workdir / "project"
    project.mkdir(exist_ok=True)
    port = 443 if normal_name else STANDIN_NETNS_PORT
    base_url = None if normal_name else f"https://localhost:{port}"
    env = prepare_claude_home(workdir / "home", base_url=base_url, ca_pem=ca_pem)
    env.update(extra_env or {})
    child = spawn_in_loopback_netns(
        [str(claude), "-p", prompt, *extra_args],
        env=env,
        cwd=project,
        tcp_ports=[port],
        resolv_dir=workdir / "etc",
    )
    assert child.dns_socket is not None
    names = ("api.anthropic.com",) if normal_name else ("localhost",)
    standin = start_anthropic_standin(ca, names, answer=answer, sock=child.listeners[port])
    dns = DnsRecorder(child.dns_socket, answers={"api.anthropic.com": "127.0.0.1"} if normal_name else None)
    timed_out = False
    try:
        child.start()
        try:
            out, err = child.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            child.kill()
            out, err = child.proc.communicate()
    finally:
        child.kill()
        standin.close()
        dns.close()
    return ClaudeRun(
        returncode=child.proc.returncode,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        timed_out=timed_out,
        requests=standin.requests,
        dns_names=dns.names(),
        standin_errors=standin.errors,
    )
