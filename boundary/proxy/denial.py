"""What a denied client is told: the 403's headers and its one-line body. Pure, rendered from the decision."""

from __future__ import annotations

import json

HEADER_DECISION = "X-Boundary-Decision"
HEADER_REASON = "X-Boundary-Reason"

# How to allow it, per reason; `{rule}` is a YAML flow-style rule that would have allowed the request.
_HINTS: dict[str, str] = {
    "no-matching-rule": "add to the policy's allow list: {rule}",
    "port-not-allowed": "add the port to a rule for this host: {rule}",
    "method-not-allowed": "add the method to a rule for this host: {rule}",
    "path-not-allowed": "add the path to a rule for this host: {rule}",
    "not-http": "allow this host and port without methods or paths: {rule}",
    "denied-by-rule": "change the policy's deny rule shown in the audit log; deny wins over allow",
    "query-not-allowed": "send the query the allow rule names, or widen its `query:`",
    "ip-literal": "connect by host name; rules cannot name IP addresses",
    "ambiguous-path": "send the path without encoded '/', '\\', NUL or '..' above the root",
    "host-mismatch": "the Host header must name the host the client connected to",
    "sni-mismatch": "the TLS server name (SNI) must name the host the client connected to",
    "malformed-header": "send each header on one line (no obs-fold, no CR or LF in a value)",
    "protocol-error": "send one valid Content-Length or Transfer-Encoding: chunked",
    "unknown-destination": "connect by a host name resolved through the jail's DNS",
    "internal-error": "this is a bug in boundary; the request was denied to stay safe",
}


def suggested_rule(host: str, port: int, method: str | None, path: str | None) -> str:
    parts = [f"domain: {host}"]
    if port not in (80, 443):
        parts.append(f"ports: [{port}]")
    if method is not None:
        parts.append(f"methods: [{method}]")
    if path is not None:
        parts.append(f"paths: [{json.dumps(path.split('?', 1)[0])}]")
    return "{" + ", ".join(parts) + "}"


def denial_text(reason: str, method: str | None, url: str, host: str | None, port: int, path: str | None) -> str:
    """One line, ending in a newline: what was denied, why, and how to allow it."""
    hint = _HINTS.get(reason, "see the audit log")
    rule = suggested_rule(host, port, method, path) if host else ""
    what = f"{method} {url}" if method else url
    return f"boundary denied {what} ({reason}); to allow it, {hint.format(rule=rule)}\n"
