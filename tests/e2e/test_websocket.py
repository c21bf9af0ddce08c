"""WebSocket through boundary: an allowed handshake is audited once and its messages flow both ways intact; a
denied one gets the 403 and never reaches the upstream; any other `Upgrade` is stripped before it goes upstream.

The client (tests/support/websocket.py) runs inside the jail with the venv's Python and masks its frames as a
client must; the upstream's `/ws` route echoes each message and records what it received.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Jailer, JailRun
from tests.support import websocket
from tests.support.tools import venv_python
from tests.support.upstreams import Upstream

POLICY = """\
version: 1
allow:
  - domain: allowed.test
    methods: [GET]
    paths: ["/ws", "/hello"]
"""

# Around the 7-bit and 16-bit length encodings, past 64 KiB, 1 MiB, a message in three frames, a ping.
SPECS = [
    "text:10",
    "binary:0",
    "binary:125",
    "binary:126",
    "text:65535",
    "binary:65536",
    "binary:70000",
    "fragmented:100001",
    "ping",
    "binary:1048576",
]


def _ws_client(jail: Jailer, url: str, *specs: str) -> tuple[JailRun, dict[str, Any]]:
    run = jail.run([str(venv_python()), websocket.__file__, url, *specs], policy=POLICY)
    assert run.result.returncode == 0, run.stderr
    return run, json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scheme", ["wss", "ws"])
def test_websocket_messages_echo_exactly_and_the_handshake_is_audited_once(jail: Jailer, scheme: str) -> None:
    upstream = jail.https if scheme == "wss" else jail.http
    received_before = len(upstream.websocket_messages)
    run, out = _ws_client(jail, f"{scheme}://allowed.test/ws", *SPECS)

    assert out["status"] == 101
    assert [r["spec"] for r in out["results"]] == SPECS
    assert all(r["echo"] for r in out["results"]), out["results"]
    assert (out["close"], out["eof"]) == (1000, True)
    # The upstream got each data message exactly as the client sent it (the proxy re-masks them).
    sent = [(r["size"], r["sha256"]) for r in out["results"] if r["spec"] != "ping"]
    got = [(len(p), hashlib.sha256(p).hexdigest()) for _, p in upstream.websocket_messages[received_before:]]
    assert got == sent

    lines = [line for line in run.audit if line["path"] == "/ws"]
    assert len(lines) == 1, run.audit
    line = lines[0]
    assert (line["decision"], line["reason"], line["method"], line["status"]) == ("allow", "allowed", "GET", 101)
    assert (line["scheme"], line["host"]) == ("https" if scheme == "wss" else "http", "allowed.test")


@pytest.mark.parametrize(
    ("host", "path", "reason"),
    [("allowed.test", "/private-ws", "path-not-allowed"), ("denied.test", "/ws", "no-matching-rule")],
)
def test_a_denied_websocket_handshake_gets_403_and_reaches_no_upstream(
    jail: Jailer, host: str, path: str, reason: str
) -> None:
    tag = uuid.uuid4().hex  # the query marks this run's request among the session upstream's
    run, out = _ws_client(jail, f"wss://{host}{path}?t={tag}", "text:10")

    assert (out["status"], out["reason"]) == (403, reason)
    assert "results" not in out
    assert not [r for r in jail.https.requests if tag in r.path]
    assert [(a["decision"], a["reason"], a["path"], a["status"]) for a in run.audit] == [
        ("deny", reason, f"{path}?t={tag}", 403)
    ]


def _hello_requests(upstream: Upstream, tag: str) -> list[dict[str, str]]:
    return [{k.lower(): v for k, v in r.headers} for r in upstream.requests if r.path == f"/hello?t={tag}"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_h2c_upgrade_reaches_the_upstream_without_its_upgrade_headers(jail: Jailer, scheme: str) -> None:
    """curl --http2 over plain HTTP asks for h2c (Upgrade, HTTP2-Settings, Connection: Upgrade, HTTP2-Settings);
    over HTTPS the same headers are sent by hand."""
    upstream = jail.http if scheme == "http" else jail.https
    tag = uuid.uuid4().hex
    url = f"{scheme}://allowed.test/hello?t={tag}"
    if scheme == "http":
        command = ["curl", "-sS", "--max-time", "20", "--http2", url]
    else:
        asked = ["Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA"]
        command = ["curl", "-sS", "--max-time", "20", "--http1.1", *(f"-H{h}" for h in asked), url]
    run = jail.run(command, policy=POLICY)

    assert run.result.returncode == 0, run.stderr
    assert run.stdout == "hello from allowed.test\n"
    (headers,) = _hello_requests(upstream, tag)
    assert "upgrade" not in headers and "http2-settings" not in headers, headers
    assert "upgrade" not in headers.get("connection", "").lower(), headers
    assert [(a["decision"], a["status"]) for a in run.audit] == [("allow", 200)]
