"""Specification of the mitmproxy shell: the run's CA signs every leaf, nothing is written to a confdir, and a
proxy can be started on an injected socket and closed.

A full request through the proxy needs a transparent-mode socket (the jail's nft redirect and
`SO_ORIGINAL_DST`): that belongs to the e2e suite.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from mitmproxy import certs, hooks, master, options
from mitmproxy.addons import tlsconfig
from mitmproxy.proxy import layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.events import DataReceived
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode, HttpStream
from mitmproxy.test import taddons, tflow
from mitmproxy.tls import TlsData
from OpenSSL import SSL

from boundary.audit import AuditLog
from boundary.ca import RunCA, generate_ca
from boundary.dns.fakedns import FakeDnsTable
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.gate import GatedEventLoop, UpstreamGate
from boundary.proxy.master import JailNextLayer, Proxy, RunTlsConfig, _certstore, start_proxy
from boundary.proxy.patches.relay import RelayingHttpLayer
from boundary.proxy.settings import ProxySettings

POLICY = "version: 1\nallow:\n  - domain: api.example.com\n"
TIMEOUT = 10.0  # a guard against hangs, not a measurement


@pytest.fixture(scope="module")
def ca() -> RunCA:
    return generate_ca("proxytest", datetime.now(UTC))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty HOME, so that `~/.mitmproxy` would be created inside it."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    yield path


# --- the certificate store ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("common_name", "sans"),
    [
        ("api.example.com", []),
        ("api.example.com", ["api.example.com"]),
        (None, ["a.test", "b.test"]),
    ],
)
def test_leaf_certificates_chain_to_the_run_ca(ca: RunCA, common_name: str | None, sans: list[str]) -> None:
    """Every leaf the store makes is issued and signed by the run's CA, for the names asked, for servers."""
    store = _certstore(ca)
    entry = store.get_cert(common_name, [x509.DNSName(name) for name in sans])
    leaf = entry.cert.to_cryptography()
    leaf.verify_directly_issued_by(ca.cert)  # issuer name matches and the CA's key verifies the signature
    assert entry.chain_certs == [certs.Cert(ca.cert)]
    names = [attribute.value for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    assert names == ([common_name] if common_name else [])
    if sans:
        assert (
            leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
            == sans
        )
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_store_uses_the_run_ca_and_its_key(ca: RunCA) -> None:
    """The store's default CA and key are the run's own: nothing is generated or read from disk."""
    store = _certstore(ca)
    assert store.default_ca == certs.Cert(ca.cert)
    assert store.default_privatekey is ca.key
    assert store.default_chain_file is None
    assert store.dhparams is not None


def test_leaf_certificates_are_reused_per_name(ca: RunCA) -> None:
    """Asking twice for the same name gives the same leaf (mitmproxy caches it in the store)."""
    store = _certstore(ca)
    assert store.get_cert("api.example.com", []) is store.get_cert("api.example.com", [])


# --- RunTlsConfig -------------------------------------------------------------------------------------------


def configure_everything(context: taddons.context, addon: tlsconfig.TlsConfig) -> None:
    """Send `addon` the configure event for every option, as when all options are (re)loaded."""
    context.master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(set(context.options.keys())))


def test_stock_tls_addon_would_write_a_confdir(home: Path) -> None:
    """The control for the next test: configured, mitmproxy's own TLS addon creates `~/.mitmproxy` and a CA."""
    addon = tlsconfig.TlsConfig()
    with taddons.context(addon) as context:
        configure_everything(context, addon)
    assert (home / ".mitmproxy" / "mitmproxy-ca.pem").exists()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"confdir": "~/elsewhere"},
        {"key_size": 4096, "cert_passphrase": "secret"},
        {"tls_version_client_min": "TLS1_2"},  # an option outside the store's: handled by mitmproxy as usual
    ],
)
def test_run_tls_config_keeps_the_run_store_and_writes_nothing(
    ca: RunCA, home: Path, options: dict[str, object]
) -> None:
    """Loading and configuring our TLS addon keeps the run's store and never creates a confdir."""
    store = _certstore(ca)
    addon = RunTlsConfig(store)
    with taddons.context(addon) as context:
        configure_everything(context, addon)
        assert addon.certstore is store
        context.configure(addon, **options)
        assert addon.certstore is store
    assert list(home.iterdir()) == []


def connection_mode(ssl_conn: SSL.Connection) -> int:
    lib = SSL._lib  # type: ignore[attr-defined]  # pyOpenSSL's private cffi bindings: no public get_mode
    return int(lib.SSL_set_mode(ssl_conn._ssl, 0))  # SSL_set_mode ORs bits in and returns the mode


@pytest.mark.parametrize("side", ["client", "server"])
def test_tls_connections_release_idle_buffers(ca: RunCA, side: str) -> None:
    """Agent-facing and upstream-facing TLS connections both hand their record buffers back when idle
    (`patches.lean`); a connection made from the same mitmproxy context without our addon (the control) does
    not."""
    release = SSL._lib.SSL_MODE_RELEASE_BUFFERS  # type: ignore[attr-defined]  # pyOpenSSL's private cffi bindings
    addon = RunTlsConfig(_certstore(ca))
    with taddons.context(addon) as context:
        configure_everything(context, addon)
        conn_context = Context(tflow.tclient_conn(), context.options)
        conn_context.server.address = ("bench.test", 443)
        conn_context.server.sni = "bench.test"
        conn = conn_context.client if side == "client" else conn_context.server
        start = addon.tls_start_client if side == "client" else addon.tls_start_server
        tls_start = TlsData(conn, conn_context)
        start(tls_start)
        assert tls_start.ssl_conn is not None
        assert connection_mode(tls_start.ssl_conn) & release
        assert not connection_mode(SSL.Connection(tls_start.ssl_conn.get_context())) & release


# --- start_proxy ----------------------------------------------------------------------------------------------


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


async def received(loop: asyncio.AbstractEventLoop, client: socket.socket) -> bytes:
    """What the server sent before closing; a reset (the server closed with our request unread) is nothing."""
    try:
        return await loop.sock_recv(client, 1024)
    except ConnectionResetError:
        return b""


def test_start_proxy_serves_the_socket_and_closes_it(ca: RunCA, tmp_path: Path, home: Path) -> None:
    """`start_proxy` installs the gate on the loop, serves the injected socket, and `close` stops both."""
    trust = tmp_path / "upstream-trust.pem"
    trust.write_bytes(ca.cert_pem)
    table = FakeDnsTable()
    matcher = Matcher(parse_policy(POLICY))
    overrides = {("api.example.com", 443): ("127.0.0.1", 1)}
    sock = listening_socket()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, GatedEventLoop)
        with AuditLog(tmp_path / "audit.jsonl") as log:
            async with asyncio.timeout(TIMEOUT):
                proxy = await start_proxy(
                    listen=sock,
                    table=table,
                    settings=ProxySettings(
                        matcher=matcher,
                        overrides=overrides,
                        log=log,
                        run_id="proxytest",
                        ca=ca,
                        upstream_trust=trust,
                    ),
                )
                assert loop.gate == UpstreamGate(table, matcher, overrides)
                assert not proxy.stopped.done()
                # A connection that no nft rule redirected has no original destination: closed, nothing dialled.
                with socket.socket() as client:
                    client.setblocking(False)
                    await loop.sock_connect(client, sock.getsockname())
                    await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
                    assert await received(loop, client) == b""
                await proxy.close()
                assert proxy.stopped.done()
            assert log.path.read_text() == ""  # no decision was made for it
        assert sock.fileno() == -1  # closing the proxy closed the listening socket

    try:
        with asyncio.Runner(loop_factory=GatedEventLoop) as runner:
            runner.run(main())
    finally:
        sock.close()
    assert list(home.iterdir()) == []  # no ~/.mitmproxy


async def _start_unused_proxy(sock: socket.socket, ca: RunCA, tmp_path: Path) -> None:
    """`start_proxy` with POLICY and no upstream: for the cases where it must refuse before serving."""
    with AuditLog(tmp_path / "audit.jsonl") as log:
        settings = ProxySettings(Matcher(parse_policy(POLICY)), {}, log, "proxytest", ca, tmp_path / "unused.pem")
        await start_proxy(listen=sock, table=FakeDnsTable(), settings=settings)


def test_start_proxy_refuses_an_ungated_loop(ca: RunCA, tmp_path: Path) -> None:
    """The proxy must never run where its upstream dials would bypass the gate."""
    sock = listening_socket()

    async def main() -> None:
        await _start_unused_proxy(sock, ca, tmp_path)

    try:
        with pytest.raises(RuntimeError, match="must run on a GatedEventLoop"):
            asyncio.run(main())
    finally:
        sock.close()


# --- the master ending ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "why"),
    [(RuntimeError("the loop broke"), "RuntimeError: the loop broke"), (None, "it ended unexpectedly")],
)
def test_a_master_that_ends_by_itself_is_reported(ending: Exception | None, why: str) -> None:
    """`stopped` completes when the master's task ends, failed or not; `why_stopped` says how in one line, and
    `close` afterwards neither raises nor hangs (the session's message must be the one shown)."""

    async def main() -> None:
        async def run() -> None:
            if ending is not None:
                raise ending

        proxy = Proxy(master.Master(options.Options()), [], asyncio.ensure_future(run()))
        async with asyncio.timeout(TIMEOUT):
            await asyncio.wait({proxy.stopped})
            assert proxy.why_stopped() == why
            await proxy.close()

    asyncio.run(main())


# --- which layer serves a connection -----------------------------------------------------------------------


def _choose(data: bytes, *, nested: bool = False) -> layer.Layer | None:
    """The layer `JailNextLayer` picks for a transparent TCP connection whose client sent `data` first (for
    `nested`, inside a CONNECT tunnel instead of at the top of the stack)."""
    client = tflow.tclient_conn()
    client.transport_protocol = "tcp"
    client.alpn = None
    context = Context(client, options.Options())
    context.server.address = ("198.18.0.1", 3128)
    modes.TransparentProxy(context)
    if nested:
        HttpLayer(context, HTTPMode.regular)
    nextlayer = layer.NextLayer(context)
    nextlayer.events.append(DataReceived(client, data))
    with taddons.context(JailNextLayer()) as tctx:
        tctx.master.addons.get("jailnextlayer").next_layer(nextlayer)
    return nextlayer.layer


@pytest.mark.parametrize(
    "data",
    [b"CONNECT api.example.com:443 HTTP/1.1\r\n\r\n", b"GET http://api.example.com/ HTTP/1.1\r\n\r\n"],
)
def test_a_proxy_form_first_request_is_served_as_an_explicit_proxy(data: bytes) -> None:
    """CONNECT and absolute-form request lines get mitmproxy's regular (explicit proxy) HTTP layer."""
    chosen = _choose(data)
    assert type(chosen) is RelayingHttpLayer and chosen.mode is HTTPMode.regular


def test_an_origin_form_request_stays_transparent() -> None:
    """An ordinary request is served as before: transparent HTTP, its destination the one the client dialled."""
    chosen = _choose(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
    assert type(chosen) is RelayingHttpLayer and chosen.mode is HTTPMode.transparent
    assert chosen in chosen.context.layers  # registered in its context as mitmproxy built it


def test_tls_is_left_to_mitmproxy() -> None:
    """A ClientHello is no request line: mitmproxy's own choice (TLS interception) stands."""
    chosen = _choose(bytes.fromhex("160301"))
    assert not isinstance(chosen, HttpLayer)


def test_a_partial_request_line_waits_for_more() -> None:
    """`CONN` could become a CONNECT: no layer yet, so the next bytes decide."""
    assert _choose(b"CONN") is None


def test_a_connect_inside_a_tunnel_is_not_served_as_a_proxy() -> None:
    """Only a connection's first request line can make it a proxy connection; a tunnel's content is a request
    to the CONNECT target (where mitmproxy's transparent HTTP layer refuses a nested CONNECT)."""
    chosen = _choose(b"CONNECT api.example.com:443 HTTP/1.1\r\n\r\n", nested=True)
    assert not (isinstance(chosen, HttpLayer) and chosen.mode is HTTPMode.regular)


# --- the patches ---------------------------------------------------------------------------------------------


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


WHAT_IMPORTING_PATCHES = """
import boundary.proxy.master
from mitmproxy import http
from mitmproxy.proxy import server
from mitmproxy.proxy.layers.http._http1 import Http1Client
print(Http1Client.send.__module__, server.ConnectionHandler.handle_connection.__module__)
print(http.MessageData.__post_init__.__module__)
"""


def test_importing_the_proxy_patches_nothing() -> None:
    """Importing the module leaves mitmproxy as it is: the patches are `start_proxy`'s to apply."""
    assert run_python(WHAT_IMPORTING_PATCHES).split() == [
        "mitmproxy.proxy.layers.http._http1",
        "mitmproxy.proxy.server",
        "mitmproxy.http",
    ]


def test_start_proxy_refuses_a_mitmproxy_the_patches_do_not_fit(
    ca: RunCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before anything of mitmproxy's runs: a RuntimeError naming what is missing, which the run shows as
    `boundary: the proxy could not start (...)`."""
    monkeypatch.delattr(HttpStream, "state_stream_response_body")
    sock = listening_socket()

    async def main() -> None:
        await _start_unused_proxy(sock, ca, tmp_path)

    try:
        missing = r"rely on: mitmproxy\.proxy\.layers\.http\.HttpStream\.state_stream_response_body"
        with pytest.raises(RuntimeError, match=missing), asyncio.Runner(loop_factory=GatedEventLoop) as runner:
            runner.run(main())
    finally:
        sock.close()
