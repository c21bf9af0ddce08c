"""Tests of the local upstream servers (tests/support/upstreams.py) with real sockets and real clients.

Every client connects to 127.0.0.1; test names are mapped with curl's ``--resolve`` or given as the TLS
``server_hostname``, never resolved.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import resource
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import websocket
from tests.support.upstreams import (
    MAX_RECORDED_BODY,
    SMUGGLED_RESPONSE,
    Exchange,
    TestCA,
    Upstream,
    pattern,
    start_canary,
    start_http_upstream,
    start_https_upstream,
)

NAMES = ("allowed.test", "denied.test", "api.anthropic.com")
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@pytest.fixture
def https(ca: TestCA) -> Iterator[Upstream]:
    with start_https_upstream(ca, NAMES) as up:
        yield up


@pytest.fixture
def plain() -> Iterator[Upstream]:
    with start_http_upstream() as up:
        yield up


def curl(up: Upstream, ca_pem: Path | None, name: str, path: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run curl against ``up`` with ``name`` mapped to 127.0.0.1; no proxy, no config file."""
    assert CURL is not None
    argv = [CURL, "-q", "-sS", "--fail-with-body", "--max-time", "60", "--noproxy", "*"]
    argv += ["--resolve", up.curl_resolve(name)]
    if ca_pem is not None:
        argv += ["--cacert", str(ca_pem)]
    argv += [*args, up.url_for(name, path)]
    return subprocess.run(argv, capture_output=True, timeout=120, check=False)


def tls_connect(ca: TestCA, up: Upstream, name: str) -> ssl.SSLSocket:
    """A TLS connection to ``up`` at 127.0.0.1 with ``name`` as SNI, verified against the test CA."""
    raw = socket.create_connection(("127.0.0.1", up.port), timeout=30)
    return ca.client_context().wrap_socket(raw, server_hostname=name)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ------------------------------------------------------------------------------------------------ the CA


def test_ca_pem_is_world_readable(ca: TestCA, tmp_path: Path) -> None:
    """write_ca_pem writes the CA certificate mode 0644 in a 0755 directory (readable by user nobody)."""
    path = ca.write_ca_pem(tmp_path / "certs")
    assert path.read_bytes() == ca.cert_pem
    assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_certificate_is_valid_for_every_name(ca: TestCA, https: Upstream) -> None:
    """The upstream's certificate verifies for each name it was issued for."""
    for name in NAMES:
        with tls_connect(ca, https, name) as conn:
            assert conn.version() is not None


def test_certificate_is_rejected_for_other_names(ca: TestCA, https: Upstream) -> None:
    """A client verifying a name the certificate was not issued for fails the handshake."""
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(ca, https, "other.test")


# ------------------------------------------------------------------------------------------- basic routes


@needs_curl
def test_hello_names_the_requested_host(https: Upstream, ca_pem: Path) -> None:
    """GET /hello answers ``hello from <Host without port>``."""
    done = curl(https, ca_pem, "allowed.test", "/hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello from allowed.test\n"


def test_https_records_sni_host_and_raw_target(ca: TestCA, https: Upstream) -> None:
    """A TLS request is recorded with the SNI, the Host header and the raw request target."""
    with tls_connect(ca, https, "denied.test") as conn:
        conn.sendall(b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: denied.test:1234\r\nConnection: close\r\n\r\n")
        reply = b"".join(iter(lambda: conn.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 200 ")
    [req] = https.requests
    assert (req.method, req.path, req.host, req.sni, req.tls) == (
        "GET",
        "/a/b?x=1&y=%20",
        "denied.test:1234",
        "denied.test",
        True,
    )
    assert req.header("connection") == "close"


def test_http_echo_reports_request(plain: Upstream) -> None:
    """Any other path answers a JSON echo of method, raw path, Host and body length."""
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    conn.request("PUT", "/some/where?q=1", body=b"12345", headers={"Host": "allowed.test"})
    resp = conn.getresponse()
    echo = json.loads(resp.read())
    conn.close()
    assert resp.status == 200
    assert echo == {
        "method": "PUT",
        "path": "/some/where?q=1",
        "host": "allowed.test",
        "body_len": 5,
        "sni": None,
    }
    [req] = plain.requests
    assert (req.body, req.body_len, req.tls, req.sni) == (b"12345", 5, False, None)


def test_absolute_form_target_is_recorded_verbatim(plain: Upstream) -> None:
    """The request target is recorded exactly as sent, even in absolute form."""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=30) as conn:
        conn.sendall(b"GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
        b"".join(iter(lambda: conn.recv(65536), b""))
    assert [r.path for r in plain.requests] == ["http://allowed.test/x"]


def test_head_gets_headers_without_body(plain: Upstream) -> None:
    """HEAD /hello answers the GET headers (with Content-Length) and no body."""
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    conn.request("HEAD", "/hello", headers={"Host": "allowed.test"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Length") == str(len(b"hello from allowed.test\n"))
    assert resp.read() == b""
    conn.close()


# ------------------------------------------------------------------------------ connections and keep-alive


def test_keep_alive_serves_several_requests_on_one_connection(ca: TestCA, https: Upstream) -> None:
    """Requests sent one after another on a kept-alive connection share one conn_id."""
    conn = http.client.HTTPConnection("127.0.0.1", https.port, timeout=30)
    conn.sock = tls_connect(ca, https, "allowed.test")  # already connected: http.client reuses it
    for i in range(3):
        conn.request("GET", f"/n{i}", headers={"Host": "allowed.test"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    conn.close()
    reqs = https.requests
    assert [r.path for r in reqs] == ["/n0", "/n1", "/n2"]
    assert len({r.conn_id for r in reqs}) == 1


def test_connection_close_ends_the_connection(plain: Upstream) -> None:
    """``Connection: close`` gets a ``Connection: close`` answer and the server closes the socket."""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=30) as conn:
        conn.sendall(b"GET /hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        reply = b"".join(iter(lambda: conn.recv(65536), b""))  # returns only once the server closes
    assert b"\r\nConnection: close\r\n" in reply
    assert reply.endswith(b"hello from a.test\n")


def test_serves_connections_concurrently(plain: Upstream) -> None:
    """While two streams are held open (gated), a third connection is still answered."""
    held = [socket.create_connection(("127.0.0.1", plain.port), timeout=30) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"GET /sse?n=2&gate=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert wait_for(lambda: plain.sse_events_sent == 2)
        conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
        conn.request("GET", "/hello", headers={"Host": "third.test"})
        assert conn.getresponse().read() == b"hello from third.test\n"
        conn.close()
        assert plain.sse_events_sent == 2  # the held streams are still open
    finally:
        plain.release_sse()
        for sock in held:
            sock.close()


# ---------------------------------------------------------------------------------------------- streaming


@needs_curl
def test_sse_first_event_arrives_before_the_server_finishes(https: Upstream, ca_pem: Path) -> None:
    """curl receives event 0 of a gated /sse while the server has sent only that one event."""
    assert CURL is not None
    argv = [CURL, "-q", "-sSN", "--max-time", "60", "--noproxy", "*", "--cacert", str(ca_pem)]
    argv += [
        "--resolve",
        https.curl_resolve("allowed.test"),
        https.url_for("allowed.test", "/sse?n=4&gate=1"),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(4)]
        sent_when_first_arrived = https.sse_events_sent
        https.release_sse()
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first == [b"id: 0\n", b"event: tick\n", b"data: event 0\n", b"\n"]
    assert sent_when_first_arrived == 1
    assert proc.returncode == 0, err
    assert [line for line in rest.splitlines() if line.startswith(b"data:")] == [
        b"data: event 1",
        b"data: event 2",
        b"data: event 3",
    ]


def test_sse_headers_and_paced_events(plain: Upstream) -> None:
    """/sse?n=3&interval=.. answers text/event-stream, chunked, with the n events in order."""
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    conn.request("GET", "/sse?n=3&interval=0.01", headers={"Host": "a.test"})
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert [line for line in body.splitlines() if line.startswith("data:")] == [
        "data: event 0",
        "data: event 1",
        "data: event 2",
    ]
    assert plain.sse_events_sent == 3


def test_chunked_sends_one_chunk_per_piece(plain: Upstream) -> None:
    """/chunked?n=4 answers with chunked encoding, one ``chunk <i>`` line per chunk."""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=30) as conn:
        conn.sendall(b"GET /chunked?n=4 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        reply = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked" in head
    chunks = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]
    assert chunks == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n", b"chunk 3\n"]


@needs_curl
def test_big_streams_without_holding_the_body(plain: Upstream) -> None:
    """/big?mb=256 delivers 256 MiB of zeros while the server's peak memory grows far less than that."""
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    done = curl(plain, None, "big.test", "/big?mb=256", "-o", "/dev/null", "-w", "%{size_download}")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 256 << 20
    assert grown_mib < 64


@needs_curl
def test_big_body_is_zeros(ca: TestCA, https: Upstream, ca_pem: Path) -> None:
    """/big?mb=1 over TLS is exactly 1 MiB of zero bytes."""
    done = curl(https, ca_pem, "allowed.test", "/big?mb=1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == bytes(1 << 20)


def test_pattern_differs_in_every_block() -> None:
    """Every 32-byte block of the pattern is distinct, so a lost, doubled or moved piece changes the bytes."""
    data = pattern(32 * 1000 + 5)
    blocks = {data[i : i + 32] for i in range(0, 32 * 1000, 32)}
    assert len(data) == 32 * 1000 + 5 and len(blocks) == 1000
    assert pattern(100) == data[:100]


@pytest.mark.parametrize(
    ("framing", "header"),
    [
        ("length", b"\r\nContent-Length: 300032"),
        ("close", b"\r\nConnection: close"),
        ("chunked", b"\r\nTransfer-Encoding: chunked"),
    ],
)
def test_pattern_route_frames_the_body_as_asked(plain: Upstream, framing: str, header: bytes) -> None:
    """/pattern?kb=N&framing=F: the first N KiB of the pattern, sized, close-delimited or chunked."""
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    conn.request("GET", f"/pattern?kb=293&framing={framing}", headers={"Host": "a.test"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    head = "".join(f"\r\n{name}: {value}" for name, value in response.getheaders()).encode()
    assert header in head
    assert (b"Content-Length" in head) == (framing == "length")
    assert body == pattern(293 * 1024)


def test_pattern_route_cuts_the_body_short_when_asked(plain: Upstream) -> None:
    """/pattern?kb=N&sent_kb=M: the head promises N KiB; M KiB come, then the connection closes."""
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    conn.request("GET", "/pattern?kb=300&sent_kb=100", headers={"Host": "a.test"})
    response = conn.getresponse()
    assert response.getheader("Content-Length") == str(300 * 1024)
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == pattern(100 * 1024)
    conn.close()


def test_pattern_route_smuggles_a_response_after_the_body_when_asked(plain: Upstream) -> None:
    """/pattern?kb=N&smuggle=1: the body as promised, then a whole response nobody asked for."""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=30) as conn:
        conn.sendall(b"GET /pattern?kb=300&smuggle=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        received = b""
        while not received.endswith(SMUGGLED_RESPONSE):
            data = conn.recv(1 << 16)
            assert data, received[-100:]
            received += data
    head, _, rest = received.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % (300 * 1024) in head
    assert rest == pattern(300 * 1024) + SMUGGLED_RESPONSE


def test_pattern_route_refuses_an_unknown_framing(plain: Upstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    conn.request("GET", "/pattern?framing=gzip", headers={"Host": "a.test"})
    response = conn.getresponse()
    assert (response.status, response.read()) == (400, b"unknown framing 'gzip'\n")
    conn.close()


# ----------------------------------------------------------------------------------------------- uploads


@needs_curl
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_answers_length_and_sha256(https: Upstream, ca_pem: Path, tmp_path: Path, chunked: bool) -> None:
    """POST /upload reads the body streamed and answers its length and sha256 (Content-Length or chunked)."""
    data = os.urandom(3 << 20)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    done = curl(https, ca_pem, "allowed.test", "/upload", "--data-binary", f"@{src}", *extra)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    [req] = https.requests
    assert req.body_len == len(data)
    assert req.body == data[:MAX_RECORDED_BODY]


def test_upload_reads_slowly_when_asked(plain: Upstream) -> None:
    """POST /upload?pause_ms=N: each 64 KiB read is followed by N ms of sleep (8 reads, 10 ms: >= 80 ms)."""
    data = pattern(512 * 1024)
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
    started = time.monotonic()
    conn.request("POST", "/upload?pause_ms=10", body=data, headers={"Host": "a.test"})
    answer = json.loads(conn.getresponse().read())
    assert time.monotonic() - started >= 0.08
    assert answer == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    conn.close()


def test_upload_leaves_mid_body_when_asked(plain: Upstream) -> None:
    """POST /upload?read_kb=N: N KiB read, then the connection closes with no answer (without the knob the
    upstream would wait for the rest of the promised MiB, and the read would time out)."""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=10) as conn:
        conn.sendall(b"POST /upload?read_kb=128 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1048576\r\n\r\n")
        conn.sendall(pattern(128 * 1024))
        assert conn.recv(100) == b""


# ------------------------------------------------------------------------------------- handlers, life cycle


def test_custom_handler_error_answers_500_and_is_recorded() -> None:
    """A handler that raises gets the client a 500 and leaves the exception in ``errors``."""

    async def broken(ex: Exchange) -> None:
        raise RuntimeError("boom")

    with start_http_upstream(handler=broken) as up:
        conn = http.client.HTTPConnection("127.0.0.1", up.port, timeout=30)
        conn.request("GET", "/x", headers={"Host": "a.test"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 500
        assert len(up.errors) == 1
        assert "boom" in up.errors[0]


def test_close_stops_listening() -> None:
    """After close() the port refuses connections, and a second close() is harmless."""
    up = start_http_upstream()
    port = up.port
    up.close()
    up.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_servers_refuse_non_loopback_addresses() -> None:
    """Binding anything but a loopback address is refused."""
    with pytest.raises(ValueError, match="loopback"):
        start_http_upstream(host="0.0.0.0")


# ------------------------------------------------------------------------------------------------- canary


def test_canary_records_connection_and_first_bytes() -> None:
    """The canary records an accepted connection and the first bytes the peer sent."""
    with start_canary() as canary:
        with socket.create_connection(("127.0.0.1", canary.port), timeout=30) as conn:
            conn.sendall(b"GET /escape HTTP/1.1\r\n\r\n")
            assert wait_for(lambda: canary.hits != [] and canary.hits[0].first_bytes != b"")
            local_port = conn.getsockname()[1]
        [hit] = canary.hits
        assert hit.first_bytes == b"GET /escape HTTP/1.1\r\n\r\n"
        assert hit.peer == ("127.0.0.1", local_port)


def test_canary_records_silent_connections() -> None:
    """A connection that sends nothing is still recorded (with empty first bytes)."""
    with start_canary() as canary:
        with socket.create_connection(("127.0.0.1", canary.port), timeout=30):
            assert wait_for(lambda: len(canary.hits) == 1)
        assert canary.hits[0].first_bytes == b""


def test_canary_without_connections_has_no_hits() -> None:
    """A canary nobody connected to reports no hits."""
    with start_canary() as canary:
        assert canary.port > 0
        assert canary.hits == []


def test_requests_snapshot_is_safe_to_read_while_serving(plain: Upstream) -> None:
    """Reading ``requests`` from another thread while requests arrive never fails and ends complete."""
    stop = threading.Event()
    seen: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(len(plain.requests))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=30)
        for i in range(50):
            conn.request("GET", f"/r{i}", headers={"Host": "a.test"})
            conn.getresponse().read()
        conn.close()
    finally:
        stop.set()
        thread.join()
    assert [r.path for r in plain.requests] == [f"/r{i}" for i in range(50)]
    assert seen == sorted(seen)


# ------------------------------------------------------------------------------------------ the /ws route


def _ws(upstream: Upstream, ca: TestCA | None = None) -> websocket.WebSocketClient:
    scheme = "wss" if ca is not None else "ws"
    return websocket.WebSocketClient.connect(
        f"{scheme}://allowed.test/ws",
        address=("127.0.0.1", upstream.port),
        context=ca.client_context() if ca is not None else None,
    )


def test_ws_handshake_answers_101_with_the_accept_key(plain: Upstream) -> None:
    with socket.create_connection(("127.0.0.1", plain.port), timeout=10) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: allowed.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head  # RFC 6455 §1.3's example
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    (recorded,) = plain.requests
    assert (recorded.method, recorded.path, recorded.header("upgrade")) == ("GET", "/ws", "websocket")


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_ws_echoes_messages_pings_and_the_close(ca: TestCA, https: Upstream, plain: Upstream, tls: bool) -> None:
    upstream = https if tls else plain
    client = _ws(upstream, ca if tls else None)
    try:
        assert client.status == 101
        big = os.urandom(70_000)
        client.send(websocket.BINARY, big)
        assert client.receive() == (websocket.BINARY, big)
        client.send(websocket.TEXT, "héllo".encode()[:3], fin=False)  # a fragment may end inside a character
        client.send(websocket.CONTINUATION, "héllo".encode()[3:])
        assert client.receive() == (websocket.TEXT, "héllo".encode())
        client.send(websocket.PING, b"are you there")
        assert client.receive() == (websocket.PONG, b"are you there")
        client.send(websocket.CLOSE, websocket.close_payload(1000, "bye"))
        assert client.receive() == (websocket.CLOSE, websocket.close_payload(1000))
        with pytest.raises(ConnectionError):
            client.receive()  # and the server closed the connection
    finally:
        client.close()
    assert upstream.websocket_messages == [(websocket.BINARY, big), (websocket.TEXT, "héllo".encode())]
    assert upstream.errors == []


def test_ws_answers_an_unmasked_frame_with_close_1002(plain: Upstream) -> None:
    client = _ws(plain)
    try:
        client._sock.sendall(websocket.encode_frame(websocket.TEXT, b"unmasked"))
        assert client.receive() == (websocket.CLOSE, websocket.close_payload(1002, "unmasked frame"))
    finally:
        client.close()
    assert plain.websocket_messages == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},  # no key
        {"Upgrade": "h2c", "Connection": "Upgrade", "Sec-WebSocket-Key": "x", "Sec-WebSocket-Version": "13"},
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "x", "Sec-WebSocket-Version": "8"},
    ],
)
def test_ws_without_a_valid_handshake_is_400(plain: Upstream, headers: dict[str, str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=10)
    conn.request("GET", "/ws", headers=headers)
    response = conn.getresponse()
    assert (response.status, response.read()) == (400, b"not a websocket handshake\n")
    conn.close()
    assert plain.websocket_messages == []
