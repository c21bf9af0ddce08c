"""Specification of the mitmproxy addon: identity checks, policy decisions, 403s, audit lines, fail closed.

The hooks are called on real mitmproxy flows made by mitmproxy's own test factories (`mitmproxy.test.tflow`),
dressed as the transparent proxy sees them: the client connection's `sockname` and the server connection's
`address` are the original destination, a synthetic address from a real `FakeDnsTable`; `request.host` is that
same address. Requests to a proxy (CONNECT, absolute-form) come on a client connection that the `next_layer`
hook saw mitmproxy serve in regular mode, with host and port from the request target, as mitmproxy parses them.
Decisions come from a real `Matcher`, audit lines go to a real `AuditLog` file.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import connection, http, options, tcp
from mitmproxy import flow as mflow
from mitmproxy.proxy import layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow, tutils

from boundary.audit import AuditLog
from boundary.dns.fakedns import FakeDnsTable
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Decision, Matcher, Request
from boundary.proxy.addon import PolicyAddon
from boundary.proxy.gate import DialRefused, blocked_message
from boundary.proxy.ssrf import Refusal

POLICY = """\
version: 1
allow:
  - domain: api.example.com
    methods: [GET, HEAD]
    paths: ["/v1/*"]
  - domain: plain.example.com
  - domain: db.example.com
    ports: [5432]
"""
API_RULE = "p.yaml:3"
PLAIN_RULE = "p.yaml:6"
DB_RULE = "p.yaml:7"
RUN_ID = "testrun00001"
SAME = "<same as the destination>"
IP_LITERAL = "203.0.113.7"
PROXY = "proxy.example"  # where the agent thinks its proxy is
PROXY_PORT = 3128


# --- harness --------------------------------------------------------------------------------------------------


@dataclass
class Harness:
    addon: PolicyAddon
    table: FakeDnsTable
    log: AuditLog

    def lines(self) -> list[dict[str, Any]]:
        """The audit records written so far, without their timestamps."""
        records = [json.loads(line) for line in self.log.path.read_text().splitlines()]
        for record in records:
            assert record.pop("ts").endswith("Z")
        return records

    def sockname(self, destination: str, port: int) -> tuple[str, int]:
        """The connection's original destination: the name's synthetic address, or an IP literal as is."""
        try:
            return str(ipaddress.ip_address(destination)), port
        except ValueError:
            return str(self.table.address_for(destination)), port

    def http_flow(
        self,
        destination: str = "api.example.com",
        port: int = 443,
        *,
        tls: bool = True,
        sni: str | None = SAME,
        host: str | None = SAME,
        method: str = "GET",
        path: str = "/v1/models",
        http2: bool = False,
    ) -> http.HTTPFlow:
        """An HTTP flow as the transparent proxy sees it at `requestheaders`."""
        address, _ = self.sockname(destination, port)
        host_header = destination if host == SAME else host
        headers = http.Headers(host=host_header) if host_header is not None and not http2 else http.Headers()
        request = tutils.treq(
            host=address,
            port=port,
            scheme=b"https" if tls else b"http",
            authority=(host_header or "").encode() if http2 else b"",
            method=method.encode(),
            path=path.encode(),
            http_version=b"HTTP/2.0" if http2 else b"HTTP/1.1",
            headers=headers,
            content=b"",
        )
        flow = tflow.tflow(req=request)
        flow.client_conn.sockname = (address, port)
        flow.server_conn.address = (address, port)
        flow.client_conn.tls = tls
        flow.client_conn.sni = destination if sni == SAME else sni
        return flow

    def tcp_flow(
        self, destination: str = "db.example.com", port: int = 5432, *, tls: bool = False, sni: str | None = SAME
    ) -> tcp.TCPFlow:
        """A non-HTTP stream as the transparent proxy sees it at `tcp_start`."""
        flow = tflow.ttcpflow()
        flow.client_conn.sockname = self.sockname(destination, port)
        flow.server_conn.address = flow.client_conn.sockname
        flow.client_conn.tls = tls
        flow.client_conn.sni = destination if sni == SAME else sni
        return flow

    def proxy_client(self, proxy: str = PROXY) -> connection.Client:
        """A client connection to where the agent thinks its proxy is, that mitmproxy serves as an explicit
        proxy (what `proxy.JailNextLayer` decides for a proxy-form first request line)."""
        client = tflow.tclient_conn()
        client.sockname = client.peername = self.sockname(proxy, PROXY_PORT)
        client.tls = False
        client.sni = None
        nextlayer = layer.NextLayer(Context(client, options.Options()))
        nextlayer.layer = HttpLayer(nextlayer.context, HTTPMode.regular)
        self.addon.next_layer(nextlayer)
        return client

    def connect_flow(
        self, target: str = "api.example.com", port: int = 443, *, host: str | None = SAME
    ) -> http.HTTPFlow:
        """`CONNECT target:port` as mitmproxy's regular mode sees it at `http_connect`."""
        authority = f"[{target}]:{port}" if ":" in target else f"{target}:{port}"
        host_header = authority if host == SAME else host
        request = tutils.treq(
            method=b"CONNECT",
            host=target,
            port=port,
            scheme=b"",
            authority=authority.encode(),
            path=b"",
            headers=http.Headers(host=host_header) if host_header is not None else http.Headers(),
            content=b"",
        )
        flow = tflow.tflow(req=request)
        flow.client_conn = self.proxy_client()
        flow.server_conn.address = flow.client_conn.sockname
        return flow

    def absolute_flow(
        self,
        target: str = "api.example.com",
        port: int = 80,
        *,
        scheme: str = "http",
        host: str | None = SAME,
        method: str = "GET",
        path: str = "/v1/models",
        client: connection.Client | None = None,
    ) -> http.HTTPFlow:
        """`GET scheme://target:port/path` sent to a proxy, as regular mode has it at `requestheaders`: host,
        port and scheme from the URL, the target already reduced to origin-form."""
        host_header = target if host == SAME else host
        request = tutils.treq(
            host=target,
            port=port,
            scheme=scheme.encode(),
            authority=b"",
            method=method.encode(),
            path=path.encode(),
            headers=http.Headers(host=host_header) if host_header is not None else http.Headers(),
            content=b"",
        )
        flow = tflow.tflow(req=request)
        flow.client_conn = client or self.proxy_client()
        flow.server_conn.address = flow.client_conn.sockname
        return flow

    def tunnel_flow(self, connect: http.HTTPFlow, *, sni: str | None = SAME, host: str | None = SAME) -> http.HTTPFlow:
        """A request inside the tunnel an allowed CONNECT opened: a transparent flow whose server address is the
        one `http_connect` gave the target, on the proxy client's connection (now speaking TLS)."""
        target = connect.metadata["boundary.checked"].host
        flow = self.http_flow(target, connect.request.port, sni=sni, host=host)
        flow.client_conn = connect.client_conn
        flow.client_conn.tls = True
        flow.client_conn.sni = target if sni == SAME else sni
        flow.server_conn.address = (connect.request.host, connect.request.port)
        return flow

    def connect(self, flow: http.HTTPFlow | tcp.TCPFlow) -> str | None:
        """Ask `server_connect` for the flow's upstream connection; the error it set (None: allowed)."""
        data = ServerConnectionHookData(server=flow.server_conn, client=flow.client_conn)
        self.addon.server_connect(data)
        return data.server.error


def harness_with(tmp_path: Path, matcher: Matcher) -> Harness:
    table = FakeDnsTable()
    log = AuditLog(tmp_path / "audit.jsonl")
    return Harness(PolicyAddon(matcher, table, log, RUN_ID), table, log)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return harness_with(tmp_path, Matcher(parse_policy(POLICY, "p.yaml")))


def record(**fields: Any) -> dict[str, Any]:
    """An audit record (without `ts`): an allowed HTTPS GET to api.example.com unless overridden."""
    base: dict[str, Any] = {
        "run": RUN_ID,
        "decision": "allow",
        "rule": API_RULE,
        "reason": "allowed",
        "method": "GET",
        "scheme": "https",
        "host": "api.example.com",
        "port": 443,
        "path": "/v1/models",
        "status": 200,
    }
    return base | fields


# --- requestheaders: allowed --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"host": "API.Example.COM."},  # case and one trailing dot do not matter
        {"host": "api.example.com:443"},  # a port equal to the destination's
        {"sni": "API.EXAMPLE.COM"},
        {"http2": True},  # :authority instead of Host
        {"method": "HEAD", "path": "/v1/models?limit=1"},
        {"destination": "plain.example.com", "method": "DELETE", "path": "/anything"},
        {"destination": "plain.example.com", "port": 80, "tls": False, "sni": None},  # no SNI without TLS
        {"destination": "plain.example.com", "port": 80, "tls": False, "sni": "other.example.com"},
    ],
)
def test_allowed_request_is_streamed_through(harness: Harness, kwargs: dict[str, Any]) -> None:
    """A request whose destination, Host/:authority and SNI agree and that the policy allows gets no response
    from the addon: it goes upstream, streamed."""
    flow = harness.http_flow(**kwargs)
    harness.addon.requestheaders(flow)
    assert flow.response is None
    assert flow.request.stream is True


@pytest.mark.parametrize(
    ("path", "forwarded"),
    [
        ("/v1/models", "/v1/models"),
        ("/v1/./x", "/v1/x"),
        ("/v1//x", "/v1/x"),
        ("/v2/../v1/x", "/v1/x"),
        ("/v1/%2e%2e/v1/x", "/v1/x"),
        ("/v1/%61?q=%2F", "/v1/a?q=%2F"),
    ],
)
def test_the_checked_path_is_the_one_forwarded(harness: Harness, path: str, forwarded: str) -> None:
    """The request goes upstream with the normalized path the policy checked."""
    flow = harness.http_flow(path=path)
    harness.addon.requestheaders(flow)
    assert flow.response is None
    assert flow.request.path == forwarded


@pytest.mark.parametrize(
    ("kwargs", "forwarded"),
    [
        ({}, "api.example.com"),
        ({"host": "API.Example.COM"}, "api.example.com"),
        ({"host": "api.example.com."}, "api.example.com"),
        ({"host": "Api.Example.Com.:443"}, "api.example.com:443"),  # an explicit port stays
        ({"host": "API.EXAMPLE.COM", "http2": True}, "api.example.com"),  # :authority
    ],
)
def test_the_checked_host_is_the_one_forwarded(harness: Harness, kwargs: dict[str, Any], forwarded: str) -> None:
    """The request goes upstream with Host / `:authority` spelled as the canonical name the policy checked."""
    flow = harness.http_flow(**kwargs)
    harness.addon.requestheaders(flow)
    assert flow.response is None
    assert flow.request.host_header == forwarded
    if flow.request.is_http2:
        assert flow.request.authority == forwarded
    else:
        assert flow.request.headers.get_all("Host") == [forwarded]


@pytest.mark.parametrize(
    ("destination", "port", "sni", "tls"),
    [("api.example.com", 443, "API.EXAMPLE.COM", True), ("plain.example.com", 80, None, False)],
)
def test_upstream_tls_names_the_checked_host(
    harness: Harness, destination: str, port: int, sni: str | None, tls: bool
) -> None:
    """An upstream TLS connection sends the canonical name as SNI (and verifies the certificate for it), however
    the client spelled it; a plain connection gets no SNI."""
    flow = harness.http_flow(destination, port, sni=sni, tls=tls)
    harness.addon.requestheaders(flow)
    flow.server_conn.tls = tls
    flow.server_conn.sni = sni
    assert harness.connect(flow) is None
    assert flow.server_conn.sni == ("api.example.com" if tls else None)


def test_allowed_request_is_logged_when_the_response_starts(harness: Harness) -> None:
    """An allowed request writes nothing at first; its one line, with the status, comes at `responseheaders`."""
    flow = harness.http_flow(path="/v1/./models")
    harness.addon.requestheaders(flow)
    assert harness.lines() == []
    flow.response = tutils.tresp(status_code=201)
    harness.addon.responseheaders(flow)
    assert flow.response.stream is True
    assert harness.lines() == [record(path="/v1/models", status=201)]


def test_plain_http_is_logged_as_http(harness: Harness) -> None:
    """Without TLS the audit line says `http`, and the rule that allowed it."""
    flow = harness.http_flow("plain.example.com", 80, tls=False, method="POST", path="/submit")
    harness.addon.requestheaders(flow)
    flow.response = tutils.tresp(status_code=204)
    harness.addon.responseheaders(flow)
    assert harness.lines() == [
        record(
            rule=PLAIN_RULE, method="POST", scheme="http", host="plain.example.com", port=80, path="/submit", status=204
        )
    ]


def test_failed_upstream_is_logged_with_a_null_status_and_the_error(harness: Harness) -> None:
    """An allowed request that got no response: one allow line, status null, an `error` field saying why."""
    flow = harness.http_flow()
    harness.addon.requestheaders(flow)
    flow.error = mflow.Error("Connection refused")
    harness.addon.error(flow)
    assert harness.lines() == [record(status=None, error="Connection refused")]


def test_a_dial_the_ssrf_guard_refused_is_logged_as_a_denial(harness: Harness) -> None:
    """The policy allowed the request but the gate refused the address its name led to: one deny line with
    reason `blocked-address` and the gate's words in `error` (mitmproxy's 502 carries the same words)."""
    flow = harness.http_flow()
    harness.addon.requestheaders(flow)
    refused = DialRefused(
        "boundary: refusing to dial api.example.com:443: "
        + blocked_message([Refusal("127.0.0.1", "loopback", "127.0.0.0/8")])
    )
    flow.error = mflow.Error(str(refused))  # as mitmproxy words a failed dial
    harness.addon.error(flow)
    assert harness.lines() == [
        record(decision="deny", rule=None, reason="blocked-address", status=None, error=str(refused))
    ]


def test_an_error_after_the_response_started_adds_no_line(harness: Harness) -> None:
    """A flow is logged once: an error after `responseheaders` (say, the body broke off) writes nothing more."""
    flow = harness.http_flow()
    harness.addon.requestheaders(flow)
    flow.response = tutils.tresp(status_code=200)
    harness.addon.responseheaders(flow)
    flow.error = mflow.Error("peer closed")
    harness.addon.error(flow)
    assert harness.lines() == [record()]


def test_an_error_before_any_decision_writes_nothing(harness: Harness) -> None:
    """A flow that failed before `requestheaders` decided anything has no decision to log."""
    flow = harness.http_flow()
    flow.error = mflow.Error("client hung up")
    harness.addon.error(flow)
    assert harness.lines() == []


# --- requestheaders: denied -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason", "host", "port"),
    [
        ({"method": "POST"}, "method-not-allowed", "api.example.com", 443),
        ({"path": "/admin"}, "path-not-allowed", "api.example.com", 443),
        ({"path": "/v1/a%2Fb"}, "ambiguous-path", "api.example.com", 443),
        ({"path": "/../etc"}, "ambiguous-path", "api.example.com", 443),
        ({"destination": "other.example.com"}, "no-matching-rule", "other.example.com", 443),
        ({"port": 8443, "host": "api.example.com:8443"}, "port-not-allowed", "api.example.com", 8443),
        (
            {"destination": IP_LITERAL, "host": "api.example.com", "sni": "api.example.com"},
            "ip-literal",
            IP_LITERAL,
            443,
        ),
        ({"host": "plain.example.com"}, "host-mismatch", "api.example.com", 443),
        ({"host": None}, "host-mismatch", "api.example.com", 443),
        ({"host": "api.example.com:8443"}, "host-mismatch", "api.example.com", 443),
        ({"host": "api.example.com:https"}, "host-mismatch", "api.example.com", 443),
        ({"host": "[::1]:443"}, "host-mismatch", "api.example.com", 443),
        ({"host": "plain.example.com", "http2": True}, "host-mismatch", "api.example.com", 443),
        ({"sni": "plain.example.com"}, "sni-mismatch", "api.example.com", 443),
        ({"sni": None}, "sni-mismatch", "api.example.com", 443),
    ],
)
def test_denied_request_gets_a_403_that_says_why(
    harness: Harness, kwargs: dict[str, Any], reason: str, host: str, port: int
) -> None:
    """A denied request is answered by the addon: 403, `X-Boundary-Decision: deny`, `X-Boundary-Reason`, a
    one-line body; it is not streamed, and one deny line is logged at once."""
    flow = harness.http_flow(**kwargs)
    harness.addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Boundary-Decision"] == "deny"
    assert flow.response.headers["X-Boundary-Reason"] == reason
    body = flow.response.get_text()
    assert body is not None
    assert body.startswith("boundary denied ") and f"({reason})" in body and body.count("\n") == 1
    assert flow.request.stream is False
    expected = record(decision="deny", rule=None, reason=reason, host=host, port=port, status=403)
    assert harness.lines() == [expected | {"method": flow.request.method, "path": flow.request.path}]


def test_denial_body_names_the_request_and_a_rule_that_would_allow_it(harness: Harness) -> None:
    """The 403's body is the one line a human needs: what was denied, why, and how to allow it."""
    flow = harness.http_flow(path="/admin")
    harness.addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.get_text() == (
        "boundary denied GET https://api.example.com/admin (path-not-allowed); to allow it, add the path to a rule "
        'for this host: {domain: api.example.com, methods: [GET], paths: ["/admin"]}\n'
    )


def test_a_denied_flow_is_logged_once(harness: Harness) -> None:
    """Hooks that follow a denial (the 403's `responseheaders`, a later `error`) write no second line."""
    flow = harness.http_flow(path="/admin")
    harness.addon.requestheaders(flow)
    harness.addon.responseheaders(flow)
    flow.error = mflow.Error("client disconnected")
    harness.addon.error(flow)
    assert [line["decision"] for line in harness.lines()] == ["deny"]


# --- non-HTTP streams and upstream connections --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "decision", "reason", "rule", "scheme", "host"),
    [
        ({}, "allow", "allowed", DB_RULE, "tcp", "db.example.com"),
        ({"tls": True}, "allow", "allowed", DB_RULE, "tls", "db.example.com"),
        ({"destination": "api.example.com", "port": 443}, "deny", "not-http", None, "tcp", "api.example.com"),
        ({"port": 5433}, "deny", "port-not-allowed", None, "tcp", "db.example.com"),
        ({"destination": "other.example.com"}, "deny", "no-matching-rule", None, "tcp", "other.example.com"),
        ({"tls": True, "sni": "api.example.com"}, "deny", "sni-mismatch", None, "tls", "db.example.com"),
        ({"tls": True, "sni": None}, "deny", "sni-mismatch", None, "tls", "db.example.com"),
        ({"destination": IP_LITERAL}, "deny", "ip-literal", None, "tcp", IP_LITERAL),
    ],
)
def test_tcp_stream_decision_is_logged(
    harness: Harness, kwargs: dict[str, Any], decision: str, reason: str, rule: str | None, scheme: str, host: str
) -> None:
    """A non-HTTP stream is allowed only by a rule without methods or paths; one line, no method/path/status."""
    flow = harness.tcp_flow(**kwargs)
    harness.addon.tcp_start(flow)
    port = kwargs.get("port", 5432)
    assert harness.lines() == [
        record(decision=decision, rule=rule, reason=reason, method=None, scheme=scheme, host=host, port=port, path=None)
        | {"status": None}
    ]


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({}, True),
        ({"destination": "api.example.com", "port": 443}, False),  # its rule restricts methods: not-http
        ({"port": 5433}, False),
        ({"destination": IP_LITERAL}, False),
    ],
)
def test_only_an_allowed_stream_may_connect_upstream(harness: Harness, kwargs: dict[str, Any], allowed: bool) -> None:
    """After `tcp_start`, `server_connect` opens the upstream connection for an allowed stream only; for a
    denied one it sets `server.error`, which makes mitmproxy close the client without dialling."""
    flow = harness.tcp_flow(**kwargs)
    harness.addon.tcp_start(flow)
    error = harness.connect(flow)
    assert error is None if allowed else error == "boundary: upstream connection not allowed"


def test_no_upstream_connection_before_an_allowed_request(harness: Harness) -> None:
    """A client with no allowed request or stream yet gets no upstream connection, even to an allowed host."""
    assert harness.connect(harness.http_flow()) == "boundary: upstream connection not allowed"


def test_an_allowed_request_clears_its_client_until_it_disconnects(harness: Harness) -> None:
    """An allowed request lets its client connection go upstream; once the client is gone, that ends."""
    flow = harness.http_flow()
    harness.addon.requestheaders(flow)
    assert harness.connect(flow) is None
    harness.addon.client_disconnected(flow.client_conn)
    assert harness.connect(flow) == "boundary: upstream connection not allowed"


def test_a_denied_request_does_not_clear_its_client(harness: Harness) -> None:
    """A denied request never opens an upstream connection."""
    flow = harness.http_flow(path="/admin")
    harness.addon.requestheaders(flow)
    assert harness.connect(flow) == "boundary: upstream connection not allowed"


# --- requests to a proxy: CONNECT and absolute-form -----------------------------------------------------------


def test_an_allowed_connect_is_answered_by_mitmproxy_and_audited(harness: Harness) -> None:
    """An allowed CONNECT gets no response from the addon (mitmproxy answers 200); the tunnel's server address is
    the name's synthetic address, so mitmproxy dials it through the gate; one allow line, no rule (each request
    in the tunnel is decided on its own), no path."""
    flow = harness.connect_flow("API.Example.COM.", host="api.example.com:443")
    harness.addon.http_connect(flow)
    assert flow.response is None
    assert harness.table.name_for(flow.request.host) == "api.example.com"
    assert flow.request.port == 443
    assert harness.lines() == [record(rule=None, method="CONNECT", scheme="http", path=None, status=200)]
    assert harness.connect(flow) == "boundary: upstream connection not allowed"  # nothing is dialled for it


def test_a_connect_allowed_for_any_stream_names_the_rule(harness: Harness) -> None:
    """A target whose rule allows any stream (no methods, no paths) is logged with that rule."""
    harness.addon.http_connect(flow := harness.connect_flow("db.example.com", 5432))
    assert flow.response is None
    [line] = harness.lines()
    assert (line["decision"], line["rule"], line["host"], line["port"]) == ("allow", DB_RULE, "db.example.com", 5432)


@pytest.mark.parametrize(
    ("target", "port", "host", "reason", "logged_host"),
    [
        ("other.example.com", 443, SAME, "no-matching-rule", "other.example.com"),
        ("api.example.com", 8443, SAME, "port-not-allowed", "api.example.com"),
        (IP_LITERAL, 443, SAME, "ip-literal", IP_LITERAL),
        ("::1", 443, SAME, "ip-literal", "::1"),
        ("2130706433", 443, SAME, "ip-literal", "2130706433"),
        ("bad_name.example.com", 443, SAME, "invalid-host", "bad_name.example.com"),
        ("api.example.com", 443, "other.example.com:443", "host-mismatch", "api.example.com"),
        ("api.example.com", 443, "api.example.com:8443", "host-mismatch", "api.example.com"),
    ],
)
def test_a_denied_connect_gets_a_403_that_says_why(
    harness: Harness, target: str, port: int, host: str, reason: str, logged_host: str
) -> None:
    """A CONNECT to a target the policy does not allow is answered 403 with the X-Boundary headers, audited, and
    opens no tunnel: nothing is dialled, the connection stays a proxy connection."""
    flow = harness.connect_flow(target, port, host=host)
    harness.addon.http_connect(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Boundary-Decision"] == "deny"
    assert flow.response.headers["X-Boundary-Reason"] == reason
    assert flow.request.host == target  # not mapped to any address
    expected = record(
        decision="deny", rule=None, reason=reason, method="CONNECT", scheme="http", host=logged_host, port=port
    )
    assert harness.lines() == [expected | {"path": None, "status": 403}]
    assert harness.connect(flow) == "boundary: upstream connection not allowed"


def test_a_denied_connect_says_how_to_allow_the_destination(harness: Harness) -> None:
    """The 403's body names the CONNECT target and a rule for its host and port, not a method."""
    flow = harness.connect_flow("other.example.com", 8443)
    harness.addon.http_connect(flow)
    assert flow.response is not None
    assert flow.response.get_text() == (
        "boundary denied CONNECT other.example.com:8443 (no-matching-rule); to allow it, add to the policy's allow "
        "list: {domain: other.example.com, ports: [8443]}\n"
    )


@pytest.mark.parametrize(
    ("kwargs", "decision", "reason"),
    [
        ({}, "allow", "allowed"),
        ({"path": "/admin"}, "deny", "path-not-allowed"),
        ({"sni": "plain.example.com"}, "deny", "sni-mismatch"),
        ({"sni": None}, "deny", "sni-mismatch"),
        ({"host": "plain.example.com"}, "deny", "host-mismatch"),
        ({"host": PROXY}, "deny", "host-mismatch"),  # the proxy's own name is not the target
    ],
)
def test_requests_in_a_tunnel_are_checked_against_the_connect_target(
    harness: Harness, kwargs: dict[str, Any], decision: str, reason: str
) -> None:
    """Inside an allowed CONNECT's tunnel, SNI and Host must name the CONNECT host, and each request is decided
    and logged with that host; an allowed one may then dial the target, never the proxy's address."""
    connect = harness.connect_flow()
    harness.addon.http_connect(connect)
    path = kwargs.pop("path", "/v1/models")
    flow = harness.tunnel_flow(connect, **kwargs)
    flow.request.path = path
    harness.addon.requestheaders(flow)
    if decision == "allow":
        assert flow.response is None
        assert harness.connect(flow) is None
        flow.response = tutils.tresp(status_code=200)
        harness.addon.responseheaders(flow)
    else:
        assert flow.response is not None and flow.response.status_code == 403
        assert harness.connect(flow) == "boundary: upstream connection not allowed"
    [_, line] = harness.lines()
    assert (line["decision"], line["reason"], line["host"], line["port"]) == (decision, reason, "api.example.com", 443)
    assert line["scheme"] == "https"


def test_a_request_to_a_proxy_is_checked_by_its_url_and_sent_to_it(harness: Harness) -> None:
    """`GET http://plain.example.com/x` sent to the proxy is decided for plain.example.com:80, whatever address the
    agent dialled; it is dialled at that name's synthetic address, with the canonical Host."""
    flow = harness.absolute_flow("PLAIN.example.com", 80, host="plain.EXAMPLE.com.", method="POST", path="/x")
    harness.addon.requestheaders(flow)
    assert flow.response is None
    assert harness.table.name_for(flow.request.host) == "plain.example.com"
    assert (flow.request.port, flow.request.scheme) == (80, "http")
    assert flow.request.headers.get_all("Host") == ["plain.example.com"]
    flow.server_conn = connection.Server(address=(flow.request.host, flow.request.port))  # what mitmproxy dials
    assert harness.connect(flow) is None
    flow.response = tutils.tresp(status_code=201)
    harness.addon.responseheaders(flow)
    assert harness.lines() == [
        record(rule=PLAIN_RULE, method="POST", scheme="http", host="plain.example.com", port=80, path="/x", status=201)
    ]


@pytest.mark.parametrize(
    ("kwargs", "forwarded"),
    [
        ({"host": None}, "plain.example.com"),  # HTTP/1.0 may leave Host out: the URL names the host
        ({"host": None, "port": 8080}, "plain.example.com:8080"),
        ({"host": "plain.example.com:80"}, "plain.example.com:80"),
    ],
)
def test_a_request_to_a_proxy_gets_the_canonical_host(tmp_path: Path, kwargs: dict[str, Any], forwarded: str) -> None:
    """The Host sent upstream names the URL's host canonically, with the port if the client gave one (or, with
    no Host at all, if it is not the scheme's default)."""
    policy = "version: 1\nallow:\n  - domain: plain.example.com\n    ports: [80, 8080]\n"
    harness = harness_with(tmp_path, Matcher(parse_policy(policy, "q.yaml")))
    flow = harness.absolute_flow("plain.example.com", **kwargs)
    harness.addon.requestheaders(flow)
    assert flow.response is None
    assert flow.request.headers.get_all("Host") == [forwarded]


@pytest.mark.parametrize(
    ("kwargs", "reason", "host"),
    [
        ({"target": "other.example.com"}, "no-matching-rule", "other.example.com"),
        ({"target": IP_LITERAL, "host": IP_LITERAL}, "ip-literal", IP_LITERAL),
        ({"target": "127.1", "host": "127.1"}, "ip-literal", "127.1"),
        ({"host": "other.example.com"}, "host-mismatch", "api.example.com"),
        ({"host": "api.example.com:8080"}, "host-mismatch", "api.example.com"),
        ({"host": PROXY}, "host-mismatch", "api.example.com"),
        ({"scheme": "https", "port": 443, "method": "DELETE"}, "method-not-allowed", "api.example.com"),
    ],
)
def test_a_denied_request_to_a_proxy_gets_a_403(
    harness: Harness, kwargs: dict[str, Any], reason: str, host: str
) -> None:
    """A request to a proxy whose URL the policy does not allow, or whose Host disagrees with its URL, is
    answered 403 and logged with the URL's host; nothing is dialled."""
    flow = harness.absolute_flow(**kwargs)
    harness.addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.headers["X-Boundary-Reason"] == reason
    [line] = harness.lines()
    assert (line["decision"], line["reason"], line["host"]) == ("deny", reason, host)
    assert line["scheme"] == kwargs.get("scheme", "http")
    assert harness.connect(flow) == "boundary: upstream connection not allowed"


def test_a_proxy_client_stays_one_until_it_disconnects(harness: Harness) -> None:
    """Every request on a proxy connection names its own target; once the client is gone, its id means nothing."""
    client = harness.proxy_client()
    first = harness.absolute_flow("plain.example.com", client=client, path="/a")
    harness.addon.requestheaders(first)
    second = harness.absolute_flow("other.example.com", client=client, path="/b")
    harness.addon.requestheaders(second)
    assert first.response is None
    assert second.response is not None and second.response.status_code == 403
    assert [(line["host"], line["reason"]) for line in harness.lines()] == [("other.example.com", "no-matching-rule")]
    harness.addon.client_disconnected(client)
    later = harness.http_flow("plain.example.com", 80, tls=False, sni=None)
    later.client_conn = client  # the same id, now a transparent connection to plain.example.com:80
    later.client_conn.sockname = harness.sockname("plain.example.com", 80)
    harness.addon.requestheaders(later)
    assert later.response is None


# --- fail closed ---------------------------------------------------------------------------------------------


class BrokenMatcher(Matcher):
    """A matcher with a bug: every decision raises."""

    def decide(self, request: Request) -> Decision:
        raise RuntimeError("bug in decide")


class BrokenDestinationMatcher(Matcher):
    """A matcher with a bug in the destination check only: requests are decided, connections raise."""

    def allows_destination(self, host: str, port: int) -> bool:
        raise RuntimeError("bug in allows_destination")


@pytest.fixture
def broken(tmp_path: Path) -> Harness:
    return harness_with(tmp_path, BrokenMatcher(parse_policy(POLICY, "p.yaml")))


def test_a_bug_in_a_request_hook_denies_the_request(broken: Harness) -> None:
    """An exception in `requestheaders` denies with `internal-error` (403 and an audit line), never lets through."""
    flow = broken.http_flow()
    broken.addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Boundary-Reason"] == "internal-error"
    assert flow.request.stream is False
    [line] = broken.lines()
    assert (line["decision"], line["reason"], line["status"]) == ("deny", "internal-error", 403)
    assert broken.connect(flow) == "boundary: upstream connection not allowed"


def test_a_bug_in_tcp_start_denies_the_stream(broken: Harness) -> None:
    """An exception in `tcp_start` logs an `internal-error` denial and leaves the client without clearance."""
    flow = broken.tcp_flow()
    broken.addon.tcp_start(flow)
    [line] = broken.lines()
    assert (line["decision"], line["reason"], line["scheme"]) == ("deny", "internal-error", "tcp")
    assert broken.connect(flow) == "boundary: upstream connection not allowed"


def test_a_bug_in_http_connect_denies_the_connect(broken: Harness) -> None:
    """An exception while deciding a CONNECT answers it 403 `internal-error`: no tunnel, nothing dialled."""
    flow = broken.connect_flow()
    broken.addon.matcher = BrokenMatcher(parse_policy(POLICY, "p.yaml"))
    broken.addon.http_connect(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.response.headers["X-Boundary-Reason"] == "internal-error"
    [line] = broken.lines()
    assert (line["decision"], line["reason"], line["method"], line["path"]) == (
        "deny",
        "internal-error",
        "CONNECT",
        None,
    )


def test_a_bug_in_server_connect_refuses_the_connection(tmp_path: Path) -> None:
    """An exception in `server_connect` refuses the upstream connection, even for a client an allowed request
    cleared."""
    harness = harness_with(tmp_path, BrokenDestinationMatcher(parse_policy(POLICY, "p.yaml")))
    flow = harness.http_flow()
    harness.addon.requestheaders(flow)
    assert flow.response is None  # allowed
    assert harness.connect(flow) == "boundary: internal error"


def test_a_bug_in_responseheaders_replaces_the_response_with_a_403(harness: Harness) -> None:
    """An exception in `responseheaders` (here: no response to stream) denies the flow with `internal-error`."""
    flow = harness.http_flow()
    harness.addon.requestheaders(flow)
    harness.addon.responseheaders(flow)  # flow.response is None: the hook's assertion fails
    assert flow.response is not None
    assert flow.response.headers["X-Boundary-Reason"] == "internal-error"
    [line] = harness.lines()
    assert (line["decision"], line["reason"], line["status"]) == ("deny", "internal-error", 403)


def test_a_denial_that_cannot_be_logged_still_denies(harness: Harness) -> None:
    """When the audit log cannot be written, a denied request is still answered with a 403, not let through."""
    harness.log.close()
    flow = harness.http_flow(path="/admin")
    harness.addon.requestheaders(flow)
    assert flow.response is not None
    assert flow.response.status_code == 403
    assert flow.request.stream is False
    assert harness.connect(flow) == "boundary: upstream connection not allowed"


def test_a_flow_that_cannot_be_denied_is_killed(harness: Harness) -> None:
    """When even the 403 cannot be made (here: the request is gone), the flow is killed rather than let through."""
    flow = harness.http_flow()
    flow.request = None  # type: ignore[assignment]  # breaks both the hook and the 403 that would follow
    harness.addon.requestheaders(flow)
    assert flow.error is not None
    assert flow.error.msg == mflow.Error.KILLED_MESSAGE
    assert flow.response is None


# --- request targets, framing and protocol switches (red-team review) -----------------------------------------


@pytest.mark.parametrize(
    ("authority", "reason"),
    [
        ("denied.example.com", "host-mismatch"),
        ("denied.example.com:9999", "host-mismatch"),
        ("api.example.com:9999", "host-mismatch"),
        ("127.0.0.1", "host-mismatch"),
        ("API.Example.COM.", "allowed"),
        ("api.example.com:443", "allowed"),
    ],
)
def test_an_absolute_form_target_on_a_direct_connection_must_name_the_destination(
    harness: Harness, authority: str, reason: str
) -> None:
    """`GET https://<authority>/v1/models` with `Host: api.example.com` on a direct connection: an origin server
    routes by the request line's authority, not by Host, so it must name the destination's host and port; an
    allowed one goes upstream in origin-form, naming the host only in the canonical Host."""
    flow = harness.http_flow()
    flow.request.authority = authority
    harness.addon.requestheaders(flow)
    if reason == "allowed":
        assert flow.response is None
        assert (flow.request.authority, flow.request.host_header) == ("", "api.example.com")
        assert flow.request.path == "/v1/models"
    else:
        assert flow.response is not None and flow.response.headers["X-Boundary-Reason"] == reason
        assert harness.connect(flow) == "boundary: upstream connection not allowed"
        [line] = harness.lines()
        assert (line["decision"], line["reason"], line["host"]) == ("deny", reason, "api.example.com")


def test_a_denied_stream_is_killed_even_after_an_allowed_request_on_its_connection(harness: Harness) -> None:
    """An allowed request licenses its connection to dial that request's destination, not a later raw stream
    on the same connection (a CONNECT tunnel whose first bytes are not HTTP): the denied stream is killed, its
    upstream connection refused and its messages emptied."""
    request = harness.http_flow()
    harness.addon.requestheaders(request)
    assert harness.connect(request) is None
    stream = harness.tcp_flow("api.example.com", 443, tls=True)
    stream.client_conn = request.client_conn
    harness.addon.tcp_start(stream)
    assert stream.error is not None and stream.error.msg == mflow.Error.KILLED_MESSAGE
    assert harness.connect(stream) == "boundary: upstream connection not allowed"
    stream.messages.append(tcp.TCPMessage(True, b"POST /admin HTTP/1.1\r\n\r\n"))
    harness.addon.tcp_message(stream)
    assert stream.messages[-1].content == b""
    [line] = harness.lines()
    assert (line["decision"], line["reason"], line["scheme"]) == ("deny", "not-http", "tls")


def test_an_allowed_stream_dials_and_relays(harness: Harness) -> None:
    """A stream its own `tcp_start` allowed may dial, and its messages pass unchanged."""
    stream = harness.tcp_flow()
    harness.addon.tcp_start(stream)
    assert stream.error is None
    assert harness.connect(stream) is None
    stream.messages.append(tcp.TCPMessage(False, b"\x00\x01"))
    harness.addon.tcp_message(stream)
    assert stream.messages[-1].content == b"\x00\x01"


def test_keep_alive_requests_each_license_their_own_destination(harness: Harness) -> None:
    """Every allowed request on a connection may (re)dial its destination; a stream or request never allowed
    for a destination may not dial it, whatever the connection did before."""
    first, second = harness.http_flow(), harness.http_flow(path="/v1/other")
    second.client_conn = first.client_conn
    for flow in (first, second):
        harness.addon.requestheaders(flow)
        assert harness.connect(flow) is None
    elsewhere = harness.http_flow("plain.example.com")
    elsewhere.client_conn = first.client_conn
    assert harness.connect(elsewhere) == "boundary: upstream connection not allowed"


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ({"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA"}, {}),
        ({"Upgrade": "h2c", "Connection": "keep-alive, upgrade"}, {"Connection": "keep-alive"}),
        ({"Upgrade": "websocket, h2c", "Connection": "Upgrade"}, {}),
        ({"Upgrade": "TLS/1.2", "Connection": "Upgrade"}, {}),
        ({"Upgrade": "WebSocket", "Connection": "Upgrade"}, {"Upgrade": "WebSocket", "Connection": "Upgrade"}),
        ({"Connection": "close"}, {"Connection": "close"}),
    ],
)
def test_an_upgrade_to_anything_but_websocket_is_stripped(
    harness: Harness, headers: dict[str, str], kept: dict[str, str]
) -> None:
    """An allowed request goes upstream without `Upgrade` (and its `Connection` token, `HTTP2-Settings`) unless it
    asks for WebSocket alone: after a 101, h2c or any other protocol would run unchecked."""
    flow = harness.http_flow()
    flow.request.headers.update(headers)
    harness.addon.requestheaders(flow)
    assert flow.response is None
    forwarded = {n.decode(): v.decode() for n, v in flow.request.headers.fields if n.lower() != b"host"}
    assert forwarded == kept


def test_a_switch_to_anything_but_websocket_kills_the_flow(harness: Harness) -> None:
    """An upstream that answers `101` to a protocol other than WebSocket (asked for or not) would leave an
    unchecked stream: the flow is killed and audited as a denial."""
    flow = harness.http_flow("plain.example.com", 80, tls=False, sni=None, path="/")
    harness.addon.requestheaders(flow)
    flow.response = tutils.tresp(status_code=101, headers=http.Headers(upgrade="h2c", connection="Upgrade"))
    harness.addon.responseheaders(flow)
    assert flow.error is not None and flow.error.msg == mflow.Error.KILLED_MESSAGE
    [line] = harness.lines()
    assert (line["decision"], line["reason"], line["status"]) == ("deny", "protocol-switch", None)
    assert line["error"] == "upstream switched protocols to 'h2c'; connection closed"


def test_a_websocket_switch_goes_through(harness: Harness) -> None:
    """A WebSocket handshake the policy allowed is answered 101 as usual and logged with that status."""
    flow = harness.http_flow("plain.example.com", 80, tls=False, sni=None, path="/ws")
    flow.request.headers.update({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"})
    harness.addon.requestheaders(flow)
    flow.response = tutils.tresp(status_code=101, headers=http.Headers(upgrade="websocket", connection="Upgrade"))
    harness.addon.responseheaders(flow)
    assert flow.error is None
    [line] = harness.lines()
    assert (line["decision"], line["status"]) == ("allow", 101)


def test_a_websocket_switch_without_version_13_is_a_protocol_switch(harness: Harness) -> None:
    """mitmproxy takes a 101 over as WebSocket only when version 13 was asked for; any other "websocket" 101
    would be relayed as a raw stream, so it is killed and audited like any other switch."""
    flow = harness.http_flow("plain.example.com", 80, tls=False, sni=None, path="/ws")
    flow.request.headers.update({"Upgrade": "websocket", "Connection": "Upgrade"})
    harness.addon.requestheaders(flow)
    flow.response = tutils.tresp(status_code=101, headers=http.Headers(upgrade="websocket", connection="Upgrade"))
    harness.addon.responseheaders(flow)
    assert flow.error is not None and flow.error.msg == mflow.Error.KILLED_MESSAGE
    [line] = harness.lines()
    assert (line["decision"], line["reason"]) == ("deny", "protocol-switch")


def test_websocket_messages_are_not_kept_after_relay(harness: Harness) -> None:
    """mitmproxy appends every message of a WebSocket to its flow for the connection's life; the hook empties
    the list so a long-lived socket's memory stays flat (the relay sends its own reference)."""
    flow = tflow.twebsocketflow()
    assert flow.websocket is not None and flow.websocket.messages
    harness.addon.websocket_message(flow)
    assert flow.websocket.messages == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([(b"X-A", b"y\r\n Transfer-Encoding: chunked")], "malformed-header"),  # obs-fold as mitmproxy keeps it
        ([(b"X-A", b"y\n")], "malformed-header"),
        ([(b"X-A", b"y\r")], "malformed-header"),
        ([(b"Content-Length", b"0, 44")], "protocol-error"),
        ([(b"Transfer-Encoding", b"xchunked")], "protocol-error"),
    ],
)
def test_a_request_no_server_should_see_gets_a_400(
    harness: Harness, headers: list[tuple[bytes, bytes]], reason: str
) -> None:
    """Folded header lines (RFC 9112 §5.2: a proxy must reject or unfold them) and framing mitmproxy refuses are
    answered 400 with the reason and audited as denials, before anything is dialled."""
    flow = harness.http_flow()
    flow.request.headers.fields = (*flow.request.headers.fields, *headers)
    harness.addon.requestheaders(flow)
    assert flow.response is not None
    assert (flow.response.status_code, flow.response.headers["X-Boundary-Reason"]) == (400, reason)
    assert harness.connect(flow) == "boundary: upstream connection not allowed"
    [line] = harness.lines()
    assert (line["decision"], line["reason"], line["status"]) == ("deny", reason, 400)
