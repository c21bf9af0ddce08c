"""mitmproxy as a library: one `Master`, our minimal addon list, the jail's socket, and one gate for dials.

Importing this module imports mitmproxy (~0.45 s); the session does it only after the jail is running, so the
workload never waits for it (its first connections sit in the listening socket's backlog meanwhile).

Every upstream connection mitmproxy makes goes through `asyncio.open_connection` -> `loop.create_connection`,
which `boundary.gate.GatedEventLoop` checks.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
from pathlib import Path
from typing import Any

from mitmproxy import certs, master, options
from mitmproxy.addons import next_layer, proxyserver, tlsconfig
from mitmproxy.proxy.mode_servers import ServerInstance

from boundary.addon import PolicyAddon
from boundary.audit import AuditLog
from boundary.ca import RunCA
from boundary.fakedns import FakeDnsTable
from boundary.gate import GatedEventLoop, UpstreamGate
from boundary.matcher import Matcher

logger = logging.getLogger(__name__)


class RunTlsConfig(tlsconfig.TlsConfig):
    """mitmproxy's TLS addon, with the run's in-memory CA instead of one read from (or written to) a confdir."""

    _CERTSTORE_OPTIONS = frozenset({"certs", "confdir", "key_size", "cert_passphrase", "emudhra", "emudhra_old"})

    def __init__(self, store: certs.CertStore) -> None:
        super().__init__()
        self.certstore = store

    def configure(self, updated: set[str]) -> None:
        store = self.certstore
        super().configure(set(updated) - self._CERTSTORE_OPTIONS)
        self.certstore = store


def _certstore(ca: RunCA) -> certs.CertStore:
    # mitmproxy only loads DH parameters from a file; they are public constants, not a secret.
    with tempfile.TemporaryDirectory(prefix="boundary-dh-") as tmp:
        dhparams = certs.CertStore.load_dhparam(Path(tmp) / "dhparam.pem")
    return certs.CertStore(ca.key, certs.Cert(ca.cert), None, certs.dummy_crl(ca.key, ca.cert), dhparams)


class Proxy:
    def __init__(self, master_: master.Master, servers: list[asyncio.Server], task: asyncio.Task[None]) -> None:
        self._master = master_
        self._servers = servers
        self._task = task

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        self._master.shutdown()
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, asyncio.CancelledError):
            logger.warning("boundary: proxy did not shut down in time")


async def start_proxy(
    *,
    listen: socket.socket,
    matcher: Matcher,
    table: FakeDnsTable,
    log: AuditLog,
    run_id: str,
    ca: RunCA,
    upstream_trust: Path,
    overrides: dict[tuple[str, int], tuple[str, int]],
) -> Proxy:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, GatedEventLoop):
        raise RuntimeError("the proxy must run on a GatedEventLoop")
    loop.gate = UpstreamGate(table, matcher, overrides)

    opts = options.Options()
    master_ = master.Master(opts, event_loop=loop)
    server_manager = proxyserver.Proxyserver()
    master_.addons.add(
        server_manager,
        next_layer.NextLayer(),
        RunTlsConfig(_certstore(ca)),
        PolicyAddon(matcher, table, log, run_id),
    )
    opts.update(
        server=False,
        connection_strategy="lazy",
        upstream_cert=False,
        stream_large_bodies="64k",
        ssl_verify_upstream_trusted_ca=str(upstream_trust),
    )
    task = asyncio.ensure_future(master_.run())
    instance: ServerInstance[Any] = ServerInstance.make("transparent", server_manager)
    server = await asyncio.start_server(instance.handle_stream, sock=listen)
    return Proxy(master_, [server], task)
