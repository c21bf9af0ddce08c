"""The mitmproxy addon: who is the client talking to, is it allowed, and one audit line per decision.

Identity: the jail's fake DNS gave each name its own synthetic address, so the connection's original
destination names the host. The Host header / `:authority` and, under TLS, the SNI must name that same host;
a destination that is not a synthetic address is an IP literal. Only then does the policy decide.

Requests to a proxy: an agent with `HTTPS_PROXY`/`HTTP_PROXY` in its environment dials that proxy, and the
jail redirects the connection here like any other. Such a connection starts with `CONNECT host:port` or an
absolute-form request line (`GET http://host/path`); `proxy.JailNextLayer` serves it as an explicit proxy
(mitmproxy's regular mode). The address the agent dialled is where it *thinks* a proxy is, nothing more: it is
neither checked nor dialled, may be any name or IP literal, and appears in no audit line. The identity is the
request's target instead: the CONNECT host:port, or the absolute URL's host and port, checked like a
destination (IP literals denied, the policy decides; a `Host` header must agree). An allowed CONNECT gets a 200
and its tunnel is served exactly like a transparent connection to that target (TLS intercepted, SNI and Host
checked against the CONNECT host, every request decided and audited); a denied one gets the 403. The checked
name is mapped to its synthetic address, so mitmproxy dials it through the same gate.

What goes upstream is what was checked: the Host header / `:authority` is rewritten to the canonical name
(keeping an explicit port), the upstream TLS SNI is the canonical name, and an HTTP/1 request goes in origin-form
(an absolute-form target on a direct connection must name the destination, then its authority is dropped: an
origin server routes by it, not by Host). Header values holding CR or LF (obs-fold) are refused, and so is every
protocol switch but WebSocket: `Upgrade` is stripped from requests, a non-WebSocket `101` kills the flow.

Upstream dials: an allowed request licenses its client connection to dial that request's destination; a raw
stream dials only if its own `tcp_start` allowed it. A denied stream is killed: never dialled, and nothing it
sends or receives is relayed.

mitmproxy's addon manager logs and swallows exceptions raised in hooks, which would let a flow through: every
hook here runs under `_fail_closed`, which denies the flow on any exception.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from mitmproxy import connection, http, tcp
from mitmproxy.proxy import layer, server_hooks
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode
from mitmproxy.tls import TlsData

from boundary import audit
from boundary.dns.fakedns import FakeDnsTable
from boundary.policy.matcher import Decision, Matcher, Request, deny
from boundary.policy.model import DEFAULT_REQUEST_HEAD, DEFAULT_REQUEST_HEADERS
from boundary.proxy import denial, identity, protocol
from boundary.proxy.gate import is_blocked_address
from boundary.proxy.patches import framing
from boundary.reasons import REASONS, Reason

logger = logging.getLogger(__name__)


_CHECKED = "boundary.checked"


@dataclass(frozen=True, slots=True)
class Checked:
    """What a request hook decided of a flow, for the hooks after it: the one entry boundary keeps in
    `flow.metadata`, replaced (never changed) when a later hook turns the decision into a denial."""

    decision: Decision
    host: str | None
    port: int
    scheme: str | None = None  # None: the client connection's
    logged: bool = False  # its audit line is written


def _checked(flow: http.HTTPFlow) -> Checked | None:
    return flow.metadata.get(_CHECKED)


def _note(flow: http.HTTPFlow, checked: Checked) -> None:
    flow.metadata[_CHECKED] = checked


def _scheme_of(flow: http.HTTPFlow) -> str:
    checked = _checked(flow)
    return (checked.scheme if checked else None) or _scheme(flow.client_conn)


def _denied(flow: http.HTTPFlow, reason: Reason) -> None:
    """A later hook's denial of a flow a request hook decided: its decision replaced, the rest kept."""
    checked = _checked(flow)
    assert checked is not None
    _note(flow, dataclasses.replace(checked, decision=deny(reason)))


F = TypeVar("F", bound=Callable[..., None])


def _fail_closed[F: Callable[..., None]](hook: F) -> F:
    @functools.wraps(hook)
    def guarded(self: PolicyAddon, subject: Any) -> None:
        try:
            hook(self, subject)
        except Exception:
            logger.exception("boundary: policy hook %s failed; denying", hook.__name__)
            self.deny_on_error(subject)

    return guarded  # type: ignore[return-value]  # wraps() keeps the signature; mypy cannot see it is F


def _scheme(client: connection.Client, *, http: bool = True) -> str:
    if http:
        return "https" if client.tls else "http"
    return "tls" if client.tls else "tcp"


@dataclass
class _Clearance:
    """What one client connection may dial upstream."""

    destinations: set[tuple[str, int]] = field(default_factory=set)  # of its allowed requests
    streams: dict[str, bool] = field(default_factory=dict)  # server connection id -> its stream's decision


class PolicyAddon:
    def __init__(
        self, matcher: Matcher, table: FakeDnsTable, log: audit.AuditLog, run_id: str, *, proxy_token: str | None = None
    ) -> None:
        self.matcher = matcher
        self.proxy_token = proxy_token  # None: requests to the proxy need no Proxy-Authorization
        self.table = table
        self.log = log
        self.run_id = run_id
        # Per client connection, the upstream connections it may open: mitmproxy asks to connect even after a
        # denied `tcp_start`. Per destination and per stream, so that an allowed request on a connection
        # cannot license a later raw stream on it (say, inside a CONNECT tunnel).
        self._clearance: dict[str, _Clearance] = {}
        # Client connections served as an explicit proxy whose requests name their own target (see the module
        # doc). A connection leaves this set when an allowed CONNECT turns it into a tunnel.
        self._proxy_clients: set[str] = set()

    # --- identity ------------------------------------------------------------------------------------------

    def _destination(self, server: connection.Server) -> tuple[str | None, int, str]:
        """(name, port, address) of the connection's destination; name None = IP literal.

        The destination is mitmproxy's server address: the original destination of a transparent connection,
        or the synthetic address `http_connect` gave an allowed CONNECT's target.
        """
        address, port = (str(server.address[0]), server.address[1]) if server.address else ("", 0)
        return self.table.name_for(address), port, address

    def _http_decision(self, flow: http.HTTPFlow) -> tuple[Decision, str, str | None, int]:
        """(decision, scheme, host, port) of a request; host is the canonical name unless the decision denies."""
        if flow.client_conn.id in self._proxy_clients:
            return self._proxy_request_decision(flow)
        scheme = _scheme(flow.client_conn)
        name, port, address = self._destination(flow.server_conn)
        refused = identity.check_direct(
            name,
            port,
            sni=flow.client_conn.sni,
            tls=bool(flow.client_conn.tls),
            host_header=flow.request.host_header,
            # HTTP/1 absolute-form (`GET https://other/ HTTP/1.1`): the origin server would route by it.
            authority=None if protocol.is_multiplexed(flow.request) else flow.request.authority,
        )
        if refused is not None:
            return refused, scheme, name if name is not None else address, port
        assert name is not None
        request = Request(scheme, name, port, flow.request.method, flow.request.path)
        return self.matcher.decide(request), scheme, name, port

    def _proxy_request_decision(self, flow: http.HTTPFlow) -> tuple[Decision, str, str | None, int]:
        """A request to a proxy: mitmproxy took host and port from the absolute URL (or, for origin-form, from
        Host); a Host header that is present must agree. Without one, the URL alone names the host."""
        scheme, target, port = flow.request.scheme, flow.request.host, flow.request.port
        name, refused = identity.check_target(target, port, flow.request.host_header)
        refused = self._unauthorized(flow) or refused
        if refused is not None or name is None:
            return refused or identity.unnamed(target), scheme, name or target, port
        request = Request(scheme, name, port, flow.request.method, flow.request.path)
        return self.matcher.decide(request), scheme, name, port

    def _unauthorized(self, flow: http.HTTPFlow) -> Decision | None:
        """A request to the proxy without its token, when it has one (`boundary proxy --token-file`)."""
        if self.proxy_token is None:
            return None
        if identity.proxy_authorized(flow.request.headers.get("Proxy-Authorization"), self.proxy_token):
            return None
        return deny(Reason.PROXY_AUTH_REQUIRED)

    def _connect_decision(self, flow: http.HTTPFlow) -> tuple[Decision, str, int]:
        """A CONNECT opens a tunnel to host:port; what is sent through it is decided request by request, so
        here the destination alone counts (like the dial gate), with the rule if one allows any stream."""
        target, port = flow.request.host, flow.request.port
        name, refused = identity.check_target(target, port, flow.request.host_header)
        refused = self._unauthorized(flow) or refused
        if refused is not None or name is None:
            return refused or identity.unnamed(target), name or target, port
        stream = self.matcher.decide(Request("tcp", name, port, None, None))
        if not stream.allowed and self.matcher.allows_destination(name, port):
            return Decision("allow", Reason.ALLOWED), name, port
        return stream, name, port

    def _forward_as_checked(self, flow: http.HTTPFlow, name: str, port: int) -> None:
        """Rewrite Host / `:authority` to the canonical name (an explicit port stays); a proxy request is dialled
        at the name's synthetic address, so it goes through the gate like any other."""
        header = flow.request.host_header
        if header is None:
            default = 443 if flow.request.scheme == "https" else 80
            canonical = name if port == default else f"{name}:{port}"
        else:
            _, header_port = identity.split_host_header(header)
            canonical = name if header_port is None else f"{name}:{header_port}"
        if header != canonical:
            flow.request.host_header = canonical
        if not protocol.is_multiplexed(flow.request):
            flow.request.authority = ""  # origin-form: the checked path and the canonical Host, nothing else
        if flow.client_conn.id in self._proxy_clients:
            # Credentials for the proxy are not the upstream's to see (mitmproxy's own auth addon is not loaded).
            flow.request.headers.pop("Proxy-Authorization", None)
            # `data.host`: the `host` setter would also rewrite the Host header to the address.
            flow.request.data.host = str(self.table.address_for(name))

    # --- hooks ---------------------------------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        """The request-head limits the patched layers read (`boundary.proxy.patches.framing`); `start_proxy` sets the
        policy's."""
        loader.add_option(framing.OPTION_REQUEST_HEAD, int, DEFAULT_REQUEST_HEAD, "Largest request head (bytes).")
        loader.add_option(framing.OPTION_REQUEST_HEADERS, int, DEFAULT_REQUEST_HEADERS, "Most request header fields.")

    def request_refused(self, refused: framing.Refusal) -> None:
        """A request head mitmproxy's layers refused before any HTTP hook: too large, or not understood."""
        try:
            name, port, address = self._destination(refused.server)
            self._write(
                deny(refused.reason),
                scheme=_scheme(refused.client),
                host=name if name is not None else address or None,
                port=port or None,
                status=refused.status,
                error=refused.error,
            )
        except Exception:
            logger.exception("boundary: audit of a refused request failed; closing the connection")
            refused.client.error = "boundary: audit failed"

    def tls_failed_client(self, data: TlsData) -> None:
        """The client's TLS handshake failed (a record that is not TLS, a client that does not trust the run's
        CA, ...): nothing was decided, and nothing went upstream, but the refusal gets its line."""
        try:
            server = data.context.server
            name, port, address = self._destination(server)
            self._write(
                deny(Reason.TLS_ERROR),
                scheme="tls",
                host=name if name is not None else address or None,
                port=port or None,
                error=data.conn.error or "TLS handshake failed",
            )
        except Exception:
            logger.exception("boundary: audit of a failed TLS handshake failed")

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Note which client connections mitmproxy serves as an explicit proxy (`proxy.JailNextLayer` decides).
        Should this fail, the proxy's own address would count as the destination, which Host never matches."""
        chosen = nextlayer.layer
        if isinstance(chosen, HttpLayer) and chosen.mode is HTTPMode.regular:
            self._proxy_clients.add(nextlayer.context.client.id)

    @_fail_closed
    def http_connect(self, flow: http.HTTPFlow) -> None:
        decision, host, port = self._connect_decision(flow)
        _note(flow, Checked(decision, host, port, "http"))
        if not decision.allowed:
            self._respond_denied(flow, decision, host, port)
            return
        # mitmproxy makes this the tunnel's server address: the name's synthetic address, as if the jail had
        # resolved it, so the tunnel is checked, gated and dialled like a transparent connection to it.
        flow.request.data.host = str(self.table.address_for(host))
        self._proxy_clients.discard(flow.client_conn.id)
        self._log_flow(flow, 200)

    @_fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        decision, scheme, host, port = self._http_decision(flow)
        if flow.error is not None:
            # mitmproxy's own checks refused the head (e.g. Content-Length with Transfer-Encoding) and will
            # answer 400 itself once this hook returns: the line says so, whatever the policy would have said.
            _note(flow, Checked(deny(protocol.refusal_reason(flow.error.msg)), host, port, scheme))
            self._log_flow(flow, 400, error=flow.error.msg)
            return
        # A request no server should see is refused as such (400), whatever the policy says of how it reads.
        decision = protocol.malformed(flow.request, self.matcher.policy.limits.request_headers) or decision
        _note(flow, Checked(decision, host, port, scheme))
        refused = REASONS[decision.reason]
        if refused.emitter == "protocol" and refused.status is not None:
            # Refused as a request no server should see: 400 (or 431), with the reason's own status.
            self._respond_denied(flow, decision, host, port, status=refused.status)
        elif decision.allowed:
            assert host is not None
            self._forward_as_checked(flow, host, port)
            protocol.strip_upgrade(flow.request.headers)
            self._clearance_of(flow.client_conn).destinations.add((flow.request.host, flow.request.port))
            if decision.path is not None and decision.path != flow.request.path:
                flow.request.path = decision.path  # forward exactly what was checked
            method = flow.request.data.method
            if method != method.upper():
                flow.request.data.method = method.upper()  # the method checked is the upper-cased one
            flow.request.stream = True
        else:
            self._respond_denied(flow, decision, host, port)

    @_fail_closed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        if flow.response.status_code == 101 and not protocol.is_websocket_switch(flow):
            # mitmproxy would relay whatever follows as a raw stream (h2c: HTTP/2 to any path) unchecked.
            _denied(flow, Reason.PROTOCOL_SWITCH)
            upgrade = flow.response.headers.get("Upgrade")
            self._log_flow(flow, None, error=f"upstream switched protocols to {upgrade!r}; connection closed")
            flow.kill()
            return
        # Without this, SSE and other streamed bodies would only reach the client when they end.
        flow.response.stream = True
        self._log_flow(flow, flow.response.status_code)

    @_fail_closed
    def websocket_message(self, flow: http.HTTPFlow) -> None:
        # mitmproxy keeps every message of a WebSocket for the connection's life; the relay needs none once this
        # hook returns (it sends its own reference), so memory stays flat on a long-lived socket.
        assert flow.websocket is not None
        flow.websocket.messages.clear()

    def error(self, flow: http.HTTPFlow) -> None:
        try:
            message = flow.error.msg if flow.error else None
            if message and is_blocked_address(message) and _checked(flow) is not None:
                # The policy allowed the request, but the gate refused the address its name led to: a denial.
                _denied(flow, Reason.BLOCKED_ADDRESS)
            self._log_flow(flow, None, error=message)
        except Exception:
            logger.exception("boundary: audit of a failed flow failed")

    @_fail_closed
    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        name, port, address = self._destination(flow.server_conn)
        scheme = _scheme(flow.client_conn, http=False)
        if name is None:
            decision = deny(Reason.IP_LITERAL)
        elif flow.client_conn.tls and not identity.same_host(flow.client_conn.sni, name):
            decision = deny(Reason.SNI_MISMATCH)
        else:
            decision = self.matcher.decide(Request(scheme, name, port, None, None))
        host = name if name is not None else address
        self._clearance_of(flow.client_conn).streams[flow.server_conn.id] = decision.allowed
        self._write(decision, scheme=scheme, host=host, port=port)
        if not decision.allowed:
            flow.kill()

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        """mitmproxy's TCP layer relays even a killed flow (after a protocol switch it is already connected):
        a denied stream's messages are emptied, in both directions."""
        clearance = self._clearance.get(flow.client_conn.id)  # per message: look up, never create
        if clearance is None or not clearance.streams.get(flow.server_conn.id, False):
            flow.messages[-1].content = b""

    @_fail_closed
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Second line: whatever asked for an upstream connection, the address it dials must be allowed."""
        name, port, address = self._destination(data.server)
        may_dial = self._may_dial(data.client, data.server, address, port)
        if not may_dial or name is None or not self.matcher.allows_destination(name, port):
            data.server.error = "boundary: upstream connection not allowed"
        elif data.server.tls:
            data.server.sni = name  # however the client spelled it (and mitmproxy's IP for a proxy request)

    def client_disconnected(self, client: connection.Client) -> None:
        self._clearance.pop(client.id, None)
        self._proxy_clients.discard(client.id)

    def _clearance_of(self, client: connection.Client) -> _Clearance:
        # Not `setdefault(id, _Clearance())`: that builds a throwaway set and dict on every call.
        clearance = self._clearance.get(client.id)
        if clearance is None:
            clearance = self._clearance[client.id] = _Clearance()
        return clearance

    def _may_dial(self, client: connection.Client, server: connection.Server, address: str, port: int) -> bool:
        """A raw stream's connection by its own decision; any other by an allowed request to the destination."""
        clearance = self._clearance.get(client.id)
        if clearance is None:
            return False
        stream = clearance.streams.get(server.id)
        return stream if stream is not None else (address, port) in clearance.destinations

    # --- fail closed ---------------------------------------------------------------------------------------

    def deny_on_error(self, subject: Any) -> None:
        decision = deny(Reason.INTERNAL_ERROR)
        try:
            if isinstance(subject, http.HTTPFlow):
                host, port = subject.request.host, subject.request.port
                self._respond_denied(subject, decision, host, port)
            elif isinstance(subject, tcp.TCPFlow):
                self._clearance_of(subject.client_conn).streams[subject.server_conn.id] = False
                self._write(decision, scheme="tcp")
                subject.kill()
            elif isinstance(subject, server_hooks.ServerConnectionHookData):
                subject.server.error = "boundary: internal error"
        except Exception:
            logger.exception("boundary: could not deny after an internal error; killing the connection")
            if isinstance(subject, http.HTTPFlow | tcp.TCPFlow):
                subject.kill()

    # --- rendering -----------------------------------------------------------------------------------------

    def _respond_denied(
        self, flow: http.HTTPFlow, decision: Decision, host: str | None, port: int, *, status: int = 403
    ) -> None:
        extra = {}
        if decision.reason is Reason.PROXY_AUTH_REQUIRED:
            status, extra = 407, {"Proxy-Authenticate": 'Basic realm="boundary"'}
        if flow.request.method == "CONNECT":
            # The hint names the destination only: CONNECT is no method a rule lists.
            body = denial.denial_text(decision.reason, None, f"CONNECT {host}:{port}", host, port, None)
        else:
            path = flow.request.path
            scheme = _scheme_of(flow)
            url = f"{scheme}://{host}{'' if port in (80, 443) else f':{port}'}{path}"
            body = denial.denial_text(decision.reason, flow.request.method, url, host, port, path)
        flow.response = http.Response.make(
            status,
            body.encode(),
            {
                "Content-Type": "text/plain; charset=utf-8",
                denial.HEADER_DECISION: "deny",
                denial.HEADER_REASON: decision.reason,
                **extra,
            },
        )
        earlier = _checked(flow)
        _note(flow, Checked(decision, host, port, earlier.scheme if earlier else None))
        self._log_flow(flow, status)

    def _log_flow(self, flow: http.HTTPFlow, status: int | None, error: str | None = None) -> None:
        checked = _checked(flow)
        if checked is None or checked.logged:
            return
        _note(flow, dataclasses.replace(checked, logged=True))
        decision = checked.decision
        extra = {"error": error} if error else {}
        self._write(
            decision,
            method=protocol.audited_method(flow.request, decision),
            scheme=_scheme_of(flow),
            host=checked.host,
            port=checked.port,
            path=None if flow.request.method == "CONNECT" else flow.request.path,
            status=status,
            **extra,
        )

    def _write(self, decision: Decision, **fields: str | int | None) -> None:
        """One audit line; `fields` are the request's (see `audit.render`), absent ones are null."""
        request = {"method": None, "host": None, "port": None, "path": None, "status": None} | fields
        self.log.write(
            audit.render(
                ts=datetime.now(UTC),
                run=self.run_id,
                decision=decision.verdict,
                rule=decision.rule.id if decision.rule else None,
                reason=decision.reason,
                **request,  # type: ignore[arg-type]  # one dict of str | int | None for typed keywords
            )
        )
