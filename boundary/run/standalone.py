"""`boundary proxy`: the run's proxy without a jail, as an explicit HTTP/HTTPS proxy on a listening address.

Same policy, identity checks, SSRF guard, dial gate and audit log as `boundary run`, for containers and hosts
where no namespace can be made. Weaker, and said so: only clients that honour `HTTPS_PROXY`/`HTTP_PROXY` (or
are configured to use it) go through it; a process that ignores them is not stopped. Clients reach it with
`CONNECT host:port` or absolute-form requests; a connection that is neither has no destination and is closed.
The run's CA is generated in memory as for a run; its certificate (never its key) is written where the
operator says, for clients to trust.

Listening beyond loopback is refused: an open proxy is never a default (remote listening with a token is
issue 17's `--allow-remote`, not built yet).
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
from typing import Any

from boundary import audit
from boundary.ca import generate_ca
from boundary.dns.fakedns import FakeDnsTable
from boundary.errors import ProxyError, UsageError
from boundary.policy.load import load_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.gate import GatedEventLoop
from boundary.proxy.settings import ProxySettings
from boundary.run import session
from boundary.run.resolve import override_table, parse_resolve

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    policy: str
    listen: str  # HOST:PORT
    ca_cert: str  # where the CA certificate is written
    log: str | None = None
    resolve: tuple[str, ...] = ()
    upstream_ca: tuple[str, ...] = ()


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:8080` or `[::1]:8080` -> (address, port); only loopback addresses (UsageError quoting it)."""
    host, colon, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--listen '{text}': expected ADDRESS:PORT, such as 127.0.0.1:8080")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen '{text}': '{host}' is not an IP address (use 127.0.0.1 or ::1)") from None
    if not address.is_loopback:
        raise UsageError(
            f"--listen '{text}': only a loopback address: a proxy others can reach is an open proxy"
            " (remote listening with a token is not supported yet)"
        )
    return str(address), int(port_text)


def serve(options: ProxyOptions) -> int:
    """Serve until SIGINT or SIGTERM (exit 0), or until the proxy fails (ProxyError)."""
    env = dict(os.environ)
    matcher = Matcher(load_policy(options.policy))
    overrides = override_table([parse_resolve(text) for text in options.resolve])
    trust = session._upstream_trust(session._read_upstream_cas(options.upstream_ca))
    address, port = parse_listen(options.listen)
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
        settings = ProxySettings(matcher, overrides, log, run_id, ca, Path(trust_file.name), mode="regular")
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
    from boundary.proxy.master import start_proxy  # mitmproxy's import, once the inputs are checked

    proxy = await start_proxy(listen=listen, table=FakeDnsTable(), settings=settings)
    try:
        watched: set[asyncio.Future[Any]] = {stop, proxy.stopped}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if not stop.done():
            raise ProxyError(f"the proxy stopped ({proxy.why_stopped()})")
    finally:
        await proxy.close()


def _listening_socket(address: str, port: int, text: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"--listen '{text}': {e.strerror}") from e
    sock.listen(512)
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
