"""Every reason a decision can give, in one table: the code the audit line, the `X-Boundary-Reason` header and
the 403 body show, the status the client gets, who decides it, how to allow what it refused, and the line
the docs show. Pure data; `denial` renders from it and a test holds the README and docs/policy.md to it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal


class Reason(StrEnum):
    """A decision's reason. A StrEnum: it is its code wherever a string goes (JSON, headers, comparisons)."""

    ALLOWED = "allowed"
    # the policy
    NO_MATCHING_RULE = "no-matching-rule"
    PORT_NOT_ALLOWED = "port-not-allowed"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    PATH_NOT_ALLOWED = "path-not-allowed"
    QUERY_NOT_ALLOWED = "query-not-allowed"
    DENIED_BY_RULE = "denied-by-rule"
    AMBIGUOUS_PATH = "ambiguous-path"
    IP_LITERAL = "ip-literal"
    INVALID_HOST = "invalid-host"
    NOT_HTTP = "not-http"
    # the proxy's identity checks
    HOST_MISMATCH = "host-mismatch"
    SNI_MISMATCH = "sni-mismatch"
    PROXY_AUTH_REQUIRED = "proxy-auth-required"
    # the proxy's protocol checks
    INVALID_METHOD = "invalid-method"
    MALFORMED_HEADER = "malformed-header"
    PROTOCOL_ERROR = "protocol-error"
    REQUEST_HEAD_TOO_LARGE = "request-head-too-large"
    TLS_ERROR = "tls-error"
    PROTOCOL_SWITCH = "protocol-switch"
    # the SSRF guard
    BLOCKED_ADDRESS = "blocked-address"
    # anything unforeseen
    INTERNAL_ERROR = "internal-error"


type Emitter = Literal["policy", "identity", "protocol", "ssrf-guard", "proxy"]


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    status: int | None  # what the client gets; None: its upstream's answer (allowed) or no answer at all
    emitter: Emitter
    hint: str  # how to allow it; `{rule}` is a YAML flow-style rule that would have allowed the request
    doc: str  # when it applies, as docs/policy.md says


REASONS: Final = MappingProxyType(
    {
        Reason.ALLOWED: ReasonInfo(
            None,
            "policy",
            "",
            "the first allow rule, in policy order (included documents first), that matches everything",
        ),
        Reason.NO_MATCHING_RULE: ReasonInfo(
            403,
            "policy",
            "add to the policy's allow list: {rule}",
            "no allow rule names the host (and no deny rule matched)",
        ),
        Reason.PORT_NOT_ALLOWED: ReasonInfo(
            403,
            "policy",
            "add the port to a rule for this host: {rule}",
            "allow rules name the host, but none on this port",
        ),
        Reason.METHOD_NOT_ALLOWED: ReasonInfo(
            403,
            "policy",
            "add the method to a rule for this host: {rule}",
            "no allow rule for the host and port lists the method",
        ),
        Reason.PATH_NOT_ALLOWED: ReasonInfo(
            403,
            "policy",
            "add the path to a rule for this host: {rule}",
            "no allow rule with the method matches the path",
        ),
        Reason.QUERY_NOT_ALLOWED: ReasonInfo(
            403,
            "policy",
            "send the query the allow rule names, or widen its `query:`",
            "rules matched the path, but not with their `query`",
        ),
        Reason.DENIED_BY_RULE: ReasonInfo(
            403,
            "policy",
            "change the policy's deny rule shown in the audit log; deny wins over allow",
            "a deny rule matches (checked before methods, paths and queries of allow rules)",
        ),
        Reason.AMBIGUOUS_PATH: ReasonInfo(
            403,
            "policy",
            "send the path without encoded '/', '\\', NUL or '..' above the root",
            "the target cannot be normalized and no `raw_paths` rule matches it",
        ),
        Reason.IP_LITERAL: ReasonInfo(
            403,
            "policy",
            "connect by host name; rules cannot name IP addresses",
            "the host is an IP address (any spelling `inet_aton` accepts, or IPv6)",
        ),
        Reason.INVALID_HOST: ReasonInfo(
            403,
            "policy",
            "connect by a valid host name (letters, digits, '-' and dots)",
            "the host is not a valid host name",
        ),
        Reason.NOT_HTTP: ReasonInfo(
            403,
            "policy",
            "allow this host and port without methods or paths: {rule}",
            "a non-HTTP stream, and every allow rule for the host and port restricts methods, paths or query",
        ),
        Reason.HOST_MISMATCH: ReasonInfo(
            403,
            "identity",
            "the Host header must name the host the client connected to",
            "`Host`, `:authority` or an absolute-form target names another host or port than the connection's",
        ),
        Reason.SNI_MISMATCH: ReasonInfo(
            403,
            "identity",
            "the TLS server name (SNI) must name the host the client connected to",
            "the TLS server name is not the host the client connected to",
        ),
        Reason.PROXY_AUTH_REQUIRED: ReasonInfo(
            407,
            "identity",
            "send Proxy-Authorization with the proxy's token (Basic with any user name, or Bearer)",
            "`boundary proxy --token-file`: a request to the proxy without its token",
        ),
        Reason.INVALID_METHOD: ReasonInfo(
            400,
            "protocol",
            "send a method that is an RFC 9110 token (letters, digits and !#$%&'*+-.^_`|~)",
            "the method is not an RFC 9110 token",
        ),
        Reason.MALFORMED_HEADER: ReasonInfo(
            400,
            "protocol",
            "send each header on one line, named by a token (no obs-fold, no CR, LF or NUL in a value)",
            "a field name that is not a token, a value with CR, LF or NUL",
        ),
        Reason.PROTOCOL_ERROR: ReasonInfo(
            400,
            "protocol",
            "send a valid HTTP/1.1 or HTTP/2 request with one Content-Length or Transfer-Encoding: chunked",
            "a head or frame that cannot be parsed (`http/1.1`, HTTP/0.9, Content-Length with Transfer-Encoding)",
        ),
        Reason.REQUEST_HEAD_TOO_LARGE: ReasonInfo(
            431,
            "protocol",
            "send a smaller request head, or raise the policy's `limits`",
            "the request head is over the policy's `limits` (bytes or header fields)",
        ),
        Reason.TLS_ERROR: ReasonInfo(
            None,
            "protocol",
            "trust the run's CA (boundary sets the usual variables) and speak TLS",
            "the client's TLS handshake failed or was no TLS at all; no answer",
        ),
        Reason.PROTOCOL_SWITCH: ReasonInfo(
            None,
            "protocol",
            "only WebSocket upgrades are relayed",
            "the upstream answered 101 to another protocol than WebSocket; the connection is closed",
        ),
        Reason.BLOCKED_ADDRESS: ReasonInfo(
            502,
            "ssrf-guard",
            "add the range to the policy's network.allow_private if the host is meant to be reached",
            "the allowed name led only to addresses the SSRF guard refuses",
        ),
        Reason.INTERNAL_ERROR: ReasonInfo(
            403,
            "proxy",
            "this is a bug in boundary; the request was denied to stay safe",
            "boundary failed to decide; it denied to stay safe",
        ),
    }
)

# The reasons the policy itself gives (`Matcher.decide`), in the order a decision is made.
POLICY_REASONS: Final = tuple(reason for reason, info in REASONS.items() if info.emitter == "policy")
