"""The mitmproxy addon: who is the client talking to, is it allowed, and one audit line per decision.

Identity: the jail's fake DNS gave each name its own synthetic address, so the connection's original
destination names the host. The Host header / `:authority` and, under TLS, the SNI must name that same host;
a destination that is not a synthetic address is an IP literal. Only then does the policy decide.

mitmproxy's addon manager logs and swallows exceptions raised in hooks, which would let a flow through: every
hook here runs under `_fail_closed`, which denies the flow on any exception.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from mitmproxy import connection, http, tcp
from mitmproxy.proxy import server_hooks

from boundary import audit, denial
from boundary.fakedns import FakeDnsTable
from boundary.gate import BLOCKED_ADDRESS, is_blocked_address
from boundary.matcher import Decision, Matcher, Request, deny

logger = logging.getLogger(__name__)

REASON_HOST_MISMATCH = "host-mismatch"
REASON_SNI_MISMATCH = "sni-mismatch"
REASON_IP_LITERAL = "ip-literal"
REASON_INTERNAL_ERROR = "internal-error"

_DECISION = "boundary.decision"
_LOGGED = "boundary.logged"

F = TypeVar("F", bound=Callable[..., None])


def _fail_closed[F: Callable[..., None]](hook: F) -> F:
    @functools.wraps(hook)
    def guarded(self: PolicyAddon, subject: Any) -> None:
        try:
            hook(self, subject)
        except Exception:
            logger.exception("boundary: policy hook %s failed; denying", hook.__name__)
            self.deny_on_error(subject)

    return guarded  # type: ignore[return-value]


def split_host_header(value: str) -> tuple[str, int | None]:
    """`example.com:8443` -> ("example.com", 8443); `[::1]:80` -> ("::1", 80); no port -> None."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if port_text.isdigit():
        return host, int(port_text)
    return (host if port_text == "" else value), None


def _scheme(client: connection.Client, *, http: bool = True) -> str:
    if http:
        return "https" if client.tls else "http"
    return "tls" if client.tls else "tcp"


def _same_host(a: str | None, b: str) -> bool:
    return a is not None and a.lower().rstrip(".") == b


class PolicyAddon:
    def __init__(self, matcher: Matcher, table: FakeDnsTable, log: audit.AuditLog, run_id: str) -> None:
        self.matcher = matcher
        self.table = table
        self.log = log
        self.run_id = run_id
        # Client connections with at least one allowed request or stream. Only these may open an upstream
        # connection: mitmproxy asks to connect even after a denied `tcp_start`, and may connect early for
        # protocols where the server speaks first.
        self._cleared_clients: set[str] = set()

    # --- identity ------------------------------------------------------------------------------------------

    def _destination(self, client: connection.Client) -> tuple[str | None, int]:
        """(name the jail resolved, port) of the connection's original destination; name None = IP literal."""
        address, port = client.sockname[0], client.sockname[1]
        return self.table.name_for(address), port

    def _http_decision(self, flow: http.HTTPFlow) -> tuple[Decision, str | None, int]:
        name, port = self._destination(flow.client_conn)
        if name is None:
            return deny(REASON_IP_LITERAL), flow.client_conn.sockname[0], port
        if flow.client_conn.tls and not _same_host(flow.client_conn.sni, name):
            return deny(REASON_SNI_MISMATCH), name, port
        host_header = flow.request.host_header
        header_host, header_port = split_host_header(host_header) if host_header else (None, None)
        if not _same_host(header_host, name) or header_port not in (None, port):
            return deny(REASON_HOST_MISMATCH), name, port
        request = Request(_scheme(flow.client_conn), name, port, flow.request.method, flow.request.path)
        return self.matcher.decide(request), name, port

    # --- hooks ---------------------------------------------------------------------------------------------

    @_fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        decision, host, port = self._http_decision(flow)
        flow.metadata[_DECISION] = (decision, host, port)
        if decision.allowed:
            self._cleared_clients.add(flow.client_conn.id)
            if decision.path is not None and decision.path != flow.request.path:
                flow.request.path = decision.path  # forward exactly what was checked
            flow.request.stream = True
        else:
            self._respond_denied(flow, decision, host, port)

    @_fail_closed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Without this, SSE and other streamed bodies would only reach the client when they end.
        assert flow.response is not None
        flow.response.stream = True
        self._log_flow(flow, flow.response.status_code)

    def error(self, flow: http.HTTPFlow) -> None:
        try:
            message = flow.error.msg if flow.error else None
            if message and is_blocked_address(message) and _DECISION in flow.metadata:
                # The policy allowed the request, but the gate refused the address its name led to: a denial.
                _, host, port = flow.metadata[_DECISION]
                flow.metadata[_DECISION] = (deny(BLOCKED_ADDRESS), host, port)
            self._log_flow(flow, None, error=message)
        except Exception:
            logger.exception("boundary: audit of a failed flow failed")

    @_fail_closed
    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        name, port = self._destination(flow.client_conn)
        if name is None:
            decision = deny(REASON_IP_LITERAL)
        elif flow.client_conn.tls and not _same_host(flow.client_conn.sni, name):
            decision = deny(REASON_SNI_MISMATCH)
        else:
            decision = self.matcher.decide(Request(_scheme(flow.client_conn, http=False), name, port, None, None))
        host = name if name is not None else flow.client_conn.sockname[0]
        self._write(decision, scheme=_scheme(flow.client_conn, http=False), host=host, port=port)
        if decision.allowed:
            self._cleared_clients.add(flow.client_conn.id)

    @_fail_closed
    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Second line: whatever asked for an upstream connection, the destination must be allowed."""
        name, port = self._destination(data.client)
        cleared = data.client.id in self._cleared_clients
        if not cleared or name is None or not self.matcher.allows_destination(name, port):
            data.server.error = "boundary: upstream connection not allowed"

    def client_disconnected(self, client: connection.Client) -> None:
        self._cleared_clients.discard(client.id)

    # --- fail closed ---------------------------------------------------------------------------------------

    def deny_on_error(self, subject: Any) -> None:
        decision = deny(REASON_INTERNAL_ERROR)
        try:
            if isinstance(subject, http.HTTPFlow):
                host, port = subject.request.host, subject.request.port
                self._respond_denied(subject, decision, host, port)
            elif isinstance(subject, tcp.TCPFlow):
                self._cleared_clients.discard(subject.client_conn.id)
                self._write(decision, scheme="tcp")
            elif isinstance(subject, server_hooks.ServerConnectionHookData):
                subject.server.error = "boundary: internal error"
        except Exception:
            logger.exception("boundary: could not deny after an internal error; killing the connection")
            if isinstance(subject, http.HTTPFlow | tcp.TCPFlow):
                subject.kill()

    # --- rendering -----------------------------------------------------------------------------------------

    def _respond_denied(self, flow: http.HTTPFlow, decision: Decision, host: str | None, port: int) -> None:
        path = flow.request.path
        url = f"{_scheme(flow.client_conn)}://{host}{'' if port in (80, 443) else f':{port}'}{path}"
        body = denial.denial_text(decision.reason, flow.request.method, url, host, port, path)
        flow.response = http.Response.make(
            403,
            body.encode(),
            {
                "Content-Type": "text/plain; charset=utf-8",
                denial.HEADER_DECISION: "deny",
                denial.HEADER_REASON: decision.reason,
            },
        )
        flow.metadata[_DECISION] = (decision, host, port)
        self._log_flow(flow, 403)

    def _log_flow(self, flow: http.HTTPFlow, status: int | None, error: str | None = None) -> None:
        if flow.metadata.get(_LOGGED) or _DECISION not in flow.metadata:
            return
        flow.metadata[_LOGGED] = True
        decision, host, port = flow.metadata[_DECISION]
        extra = {"error": error} if error else {}
        self._write(
            decision,
            method=flow.request.method,
            scheme=_scheme(flow.client_conn),
            host=host,
            port=port,
            path=flow.request.path,
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
                **request,  # type: ignore[arg-type]
            )
        )
