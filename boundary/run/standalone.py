"""`boundary proxy`: the run's proxy without a jail, as an explicit HTTP/HTTPS proxy on a listening address.

Same policy, identity checks, SSRF guard, dial gate and audit log as `boundary run`, for containers and hosts
where no namespace can be made. Weaker, and said so: only clients that honour `HTTPS_PROXY`/`HTTP_PROXY` (or
are configured to use it) go through it; a process that ignores them is not stopped. Clients reach it with
`CONNECT host:port` or absolute-form requests; a connection that is neither has no destination and is closed.
The run's CA is generated in memory as for a run; its certificate (never its key) is written where the
operator says, for clients to trust.

An open proxy is never a default: listening beyond loopback needs `--allow-remote`, and then a token
(`--token-file`) that every client sends as `Proxy-Authorization` (407 without it). A token may guard a loopback
proxy too (other users of the host share its loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from boundary import audit
from boundary.ca import generate_ca
from boundary.dns.fakedns import FakeDnsTable
from boundary.errors import UsageError
from boundary.policy.load import load_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.gate import GatedEventLoop
from boundary.proxy.settings import ProxySettings
from boundary.run import session
from boundary.run.resolve import override_table, parse_resolve
from boundary.run.serving import serve_until

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    policy: str
    listen: str  # HOST:PORT
    ca_cert: str  # where the CA certificate is written
    log: str | None = None
    resolve: tuple[str, ...] = ()
    upstream_ca: tuple[str, ...] = ()
    allow_remote: bool = False
    token_file: str | None = None


_MIN_TOKEN = 16  # characters: a token is a secret, not a password someone types


def parse_listen(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """`127.0.0.1:8080` or `[::1]:8080` -> (address, port); only loopback addresses unless `allow_remote`
    (UsageError quoting it)."""
    host, colon, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--listen '{text}': expected ADDRESS:PORT, such as 127.0.0.1:8080")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen '{text}': '{host}' is not an IP address (use 127.0.0.1 or ::1)") from None
    if not address.is_loopback and not allow_remote:
        raise UsageError(
            f"--listen '{text}': only a loopback address: a proxy others can reach is an open proxy"
            " (--allow-remote with --token-file to mean it)"
        )
    return str(address), int(port_text)


def serve(options: ProxyOptions) -> int:
    """Serve until SIGINT or SIGTERM (exit 0), or until the proxy fails (ProxyError)."""
    env = dict(os.environ)
    matcher = Matcher(load_policy(options.policy))
    overrides = override_table([parse_resolve(text) for text in options.resolve])
    trust = session.upstream_trust_pem(session.read_upstream_cas(options.upstream_ca))
    address, port = parse_listen(options.listen, allow_remote=options.allow_remote)
    if options.allow_remote and options.token_file is None:
        raise UsageError("--allow-remote needs --token-file: a proxy others can reach must ask for a token")
    token = read_token(options.token_file) if options.token_file is not None else None
    run_id, started = audit.new_run_id(), datetime.now(UTC)
    listen = _listening_socket(address, port, options.listen)
    log_path = Path(options.log) if options.log else audit.default_log_path(run_id, env, started)
    ca = generate_ca(run_id, started)
    _write_certificate(Path(options.ca_cert), ca.cert_pem)
    # mitmproxy reads the upstream trust from a path: a private file, removed when the proxy ends.
    with (
        tempfile.NamedTemporaryFile(prefix=f"boundary-{run_id}-", suffix="-upstream-trust.pem") as trust_file,
        audit.AuditLog(log_path, audit.LinkTrust(os.getuid())) as log,
    ):
        trust_file.write(trust)
        trust_file.flush()
        settings = ProxySettings(
            matcher, overrides, log, run_id, ca, Path(trust_file.name), mode="regular", proxy_token=token
        )
        print(
            f"boundary: proxy {run_id} on {options.listen}: policy {options.policy}, audit log {log.path}, "
            f"CA certificate {options.ca_cert}; clients: HTTPS_PROXY=http://{options.listen} and trust the CA",
            file=sys.stderr,
            flush=True,
        )
        with asyncio.Runner(loop_factory=GatedEventLoop) as runner:
            runner.run(_serve(listen, settings))
    return 0


async def _serve(listen: socket.socket, settings: ProxySettings) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopped_by_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stopped_by_signal)
    # Bound early (an address in use is a usage error), listening only now: a client that got in can stop it.
    listen.listen(512)
    from boundary.proxy.master import start_proxy  # mitmproxy's import, once the inputs are checked

    proxy = await start_proxy(listen=listen, table=FakeDnsTable(), settings=settings)
    await serve_until(stop, proxy)


def read_token(path: str) -> str:
    """The token in `path` (one line), from a file only its owner may read (UsageError quoting the path)."""
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            raw = file.read(4096)
    except OSError as e:
        raise UsageError(f"--token-file '{path}': {e.strerror}") from e
    if mode & 0o077:
        raise UsageError(f"--token-file '{path}': readable by others (mode {mode & 0o777:o}); chmod 600 it")
    token = raw.decode("utf-8", "replace").strip()
    if len(token) < _MIN_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise UsageError(
            f"--token-file '{path}': expected one token of at least {_MIN_TOKEN} printable characters, no spaces"
            " (e.g. `openssl rand -hex 32`)"
        )
    return token


def _listening_socket(address: str, port: int, text: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"--listen '{text}': {e.strerror}") from e
    sock.setblocking(False)
    return sock


def _write_certificate(path: Path, pem: bytes) -> None:
    """The CA certificate, public (0644), replacing only a regular file (never through a link)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"--ca-cert '{path}': not a regular file; refusing to write there")
    staging = path.with_name(f".{path.name}.tmp")
    try:
        staging.write_bytes(pem)
        staging.chmod(0o644)
        staging.replace(path)
    except OSError as e:
        raise UsageError(f"--ca-cert '{path}': cannot write it: {e.strerror}") from e
