"""mitmproxy as a library: one `Master`, our minimal addon list, the jail's socket, and one gate for dials.

Importing this module imports mitmproxy, which takes a while; the session does it only after the jail is running,
so the workload never waits for it (its first connections sit in the listening socket's backlog meanwhile).
Importing it patches nothing: `start_proxy` applies `boundary.proxy.patches`, the one place that uses private
APIs of mitmproxy and its libraries, before the master runs (and refuses to start if this mitmproxy lacks what
they need).

Every upstream connection mitmproxy makes goes through `asyncio.open_connection` -> `loop.create_connection`,
which `boundary.proxy.gate.GatedEventLoop` checks.

Fail closed: the session watches `Proxy.stopped`; the master ending (or failing) while the workload runs ends
the run, since the jail then has no way out.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any


def _register_addons_package_bare() -> None:
    """Make `mitmproxy.addons` importable without running its `__init__`, which imports every default addon
    (flask, ldap3, ... hundreds of modules: time and memory at every start). We use three of them by hand.
    It has to run before anything imports `mitmproxy.addons`: hence at the very top of this module."""
    if "mitmproxy.addons" in sys.modules:
        return
    spec = importlib.util.find_spec("mitmproxy.addons")
    if spec is None:  # pragma: no cover - mitmproxy itself is missing; the import below says so
        return
    sys.modules["mitmproxy.addons"] = importlib.util.module_from_spec(spec)


_register_addons_package_bare()

from mitmproxy import certs, master, options  # noqa: E402 - after the bare registration
from mitmproxy.addons import next_layer, proxyserver, tlsconfig  # noqa: E402 - after the bare registration
from mitmproxy.proxy import layer  # noqa: E402 - after the bare registration
from mitmproxy.proxy.layers import modes  # noqa: E402 - after the bare registration
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode  # noqa: E402 - after the bare registration
from mitmproxy.proxy.mode_servers import ServerInstance  # noqa: E402 - after the bare registration
from mitmproxy.tls import TlsData  # noqa: E402 - after the bare registration

from boundary.ca import RunCA  # noqa: E402 - after the bare registration
from boundary.dns.fakedns import FakeDnsTable  # noqa: E402 - after the bare registration
from boundary.proxy import patches  # noqa: E402 - after the bare registration
from boundary.proxy.addon import PolicyAddon  # noqa: E402 - after the bare registration
from boundary.proxy.gate import GatedEventLoop, UpstreamGate  # noqa: E402 - after the bare registration
from boundary.proxy.identity import proxy_form  # noqa: E402 - after the bare registration
from boundary.proxy.patches import framing, lean  # noqa: E402 - after the bare registration
from boundary.proxy.patches.relay import RelayingHttpLayer  # noqa: E402 - after the bare registration
from boundary.proxy.settings import ProxySettings  # noqa: E402 - after the bare registration

logger = logging.getLogger(__name__)


class RunTlsConfig(tlsconfig.TlsConfig):
    """mitmproxy's TLS addon, with the run's in-memory CA instead of one read from (or written to) a confdir,
    and TLS connections that hand their buffers back when idle."""

    _CERTSTORE_OPTIONS = frozenset({"certs", "confdir", "key_size", "cert_passphrase", "emudhra", "emudhra_old"})

    def __init__(self, store: certs.CertStore) -> None:
        super().__init__()
        self.certstore = store

    def configure(self, updated: set[str]) -> None:
        store = self.certstore
        super().configure(set(updated) - self._CERTSTORE_OPTIONS)
        self.certstore = store

    def tls_start_client(self, tls_start: TlsData) -> None:
        super().tls_start_client(tls_start)
        assert tls_start.ssl_conn is not None
        lean.release_idle_buffers(tls_start.ssl_conn)

    def tls_start_server(self, tls_start: TlsData) -> None:
        super().tls_start_server(tls_start)
        assert tls_start.ssl_conn is not None
        lean.release_idle_buffers(tls_start.ssl_conn)


class JailNextLayer(next_layer.NextLayer):
    """mitmproxy's choice of protocol layers, plus what transparent mode lacks: a connection whose first request
    line is proxy-form (`CONNECT host:port`, `GET http://host/`: the agent has a proxy configured) is served as
    an explicit HTTP proxy. Transparent mode would refuse a CONNECT with a bare 400 that no hook sees, and
    would forward an absolute-form request to whatever address the agent dialled."""

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        # mitmproxy's hook, not its private `_next_layer`: nothing here needs to be fenced in `patches`.
        if nextlayer.layer:
            return  # another addon chose, as mitmproxy's own addon respects
        context = nextlayer.context
        top = next_layer.stack_match(context, [modes.TransparentProxy])
        if top and context.client.transport_protocol == "tcp" and not nextlayer.data_server():
            form = proxy_form(nextlayer.data_client())
            if form is None:
                return  # no layer yet: mitmproxy asks again with the next bytes
            if form:
                nextlayer.layer = RelayingHttpLayer(context, HTTPMode.regular)
                return
        super().next_layer(nextlayer)
        if type(nextlayer.layer) is HttpLayer:
            # Built and registered in its context by mitmproxy; the subclass only adds methods.
            nextlayer.layer.__class__ = RelayingHttpLayer


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

    @property
    def stopped(self) -> asyncio.Future[None]:
        """Done when mitmproxy's master ends, which before `close` only happens if it failed."""
        return self._task

    def why_stopped(self) -> str:
        """What ended the master, for a one-line message (call once `stopped` is done)."""
        error = None if self._task.cancelled() else self._task.exception()
        return f"{type(error).__name__}: {error}" if error is not None else "it ended unexpectedly"

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        self._master.shutdown()
        # `wait`, not `wait_for`: a master that already failed must not raise here, over the session's message.
        done, _ = await asyncio.wait({self._task}, timeout=5)
        if not done:
            logger.warning("boundary: proxy did not shut down in time")
        elif not self._task.cancelled() and self._task.exception() is not None:
            logger.error("boundary: proxy failed: %s", self.why_stopped())


async def start_proxy(*, listen: socket.socket, table: FakeDnsTable, settings: ProxySettings) -> Proxy:
    """Serve `listen` (the jail's proxy socket) with the run's policy, CA and audit log (a `StartProxy`)."""
    # Before anything of mitmproxy's runs; a RuntimeError naming what this mitmproxy lacks, if anything.
    patches.apply()
    matcher, overrides = settings.matcher, settings.overrides
    loop = asyncio.get_running_loop()
    if not isinstance(loop, GatedEventLoop):
        raise RuntimeError("the proxy must run on a GatedEventLoop")
    loop.gate = UpstreamGate(table, matcher, overrides)

    opts = options.Options()
    master_ = master.Master(opts, event_loop=loop)
    server_manager = proxyserver.Proxyserver()
    master_.addons.add(
        server_manager,
        JailNextLayer(),
        RunTlsConfig(_certstore(settings.ca)),
        PolicyAddon(matcher, table, settings.log, settings.run_id, proxy_token=settings.proxy_token),
    )
    opts.update(
        server=False,
        connection_strategy="lazy",
        upstream_cert=False,
        stream_large_bodies="64k",
        ssl_verify_upstream_trusted_ca=str(settings.upstream_trust),
        **{
            framing.OPTION_REQUEST_HEAD: matcher.policy.limits.request_head,
            framing.OPTION_REQUEST_HEADERS: matcher.policy.limits.request_headers,
        },
    )
    task = asyncio.ensure_future(master_.run())
    instance: ServerInstance[Any] = ServerInstance.make(settings.mode, server_manager)
    server = await asyncio.start_server(instance.handle_stream, sock=listen)
    return Proxy(master_, [server], task)
