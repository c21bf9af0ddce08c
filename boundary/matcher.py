"""The decision core: `Matcher(policy).decide(Request) -> Decision` (pure, no I/O).

Theory of operation. A request is first brought into canonical form: the host through `normalize_host`
(IP literals and invalid names are denied outright, since a policy can only name hosts), the request target
through `normalize_path` (anything a server could read two ways is denied as `ambiguous-path`). The host
selects the rules naming it from a dict built once per policy; those are narrowed by port, then method, then
path, and the first survivor in file order allows the request. When none survives, the deny reason names the
step that emptied the set, so an audit line says *why*. An allowed HTTP decision carries the normalized
target, which is what gets forwarded: the server sees exactly what was checked.

A stream that is not HTTP (method None) carries no method or path to check, so only a rule that restricts
neither may allow it.
"""

from dataclasses import dataclass
from typing import Final, Literal

from boundary.policy import AmbiguousPathError, Policy, Rule, is_ip_literal, normalize_host, normalize_path

__all__ = [
    "REASONS",
    "REASON_ALLOWED",
    "REASON_AMBIGUOUS_PATH",
    "REASON_INVALID_HOST",
    "REASON_IP_LITERAL",
    "REASON_METHOD_NOT_ALLOWED",
    "REASON_NOT_HTTP",
    "REASON_NO_MATCHING_RULE",
    "REASON_PATH_NOT_ALLOWED",
    "REASON_PORT_NOT_ALLOWED",
    "AmbiguousPathError",
    "Decision",
    "Matcher",
    "Request",
    "deny",
    "normalize_path",
]

REASON_ALLOWED: Final = "allowed"
REASON_NO_MATCHING_RULE: Final = "no-matching-rule"  # no rule names the host
REASON_PORT_NOT_ALLOWED: Final = "port-not-allowed"
REASON_METHOD_NOT_ALLOWED: Final = "method-not-allowed"
REASON_PATH_NOT_ALLOWED: Final = "path-not-allowed"
REASON_AMBIGUOUS_PATH: Final = "ambiguous-path"
REASON_IP_LITERAL: Final = "ip-literal"
REASON_NOT_HTTP: Final = "not-http"  # a raw stream to a host whose rules for the port restrict methods/paths
REASON_INVALID_HOST: Final = "invalid-host"
REASONS: Final = (
    REASON_ALLOWED,
    REASON_NO_MATCHING_RULE,
    REASON_PORT_NOT_ALLOWED,
    REASON_METHOD_NOT_ALLOWED,
    REASON_PATH_NOT_ALLOWED,
    REASON_AMBIGUOUS_PATH,
    REASON_IP_LITERAL,
    REASON_NOT_HTTP,
    REASON_INVALID_HOST,
)


@dataclass(frozen=True, slots=True)
class Request:
    scheme: str  # "http" | "https" | "tcp"
    host: str  # as the client named it, without a port
    port: int
    method: str | None  # None for a non-HTTP stream
    path: str | None  # request target as sent (path + optional ?query); None for a non-HTTP stream


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Literal["allow", "deny"]
    reason: str  # one of REASONS
    rule: Rule | None = None  # the rule that allowed it
    path: str | None = None  # normalized target to forward (allowed HTTP requests only)

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


def deny(reason: str) -> Decision:
    return Decision("deny", reason)


class Matcher:
    """Decides requests against one policy; build once per policy (it indexes the rules by host)."""

    __slots__ = ("_ports", "_rules", "policy")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        rules: dict[str, list[Rule]] = {}
        for rule in policy.rules:
            rules.setdefault(rule.domain, []).append(rule)
        self._rules = {host: tuple(host_rules) for host, host_rules in rules.items()}
        self._ports = {
            host: frozenset().union(*(rule.ports for rule in host_rules)) for host, host_rules in rules.items()
        }

    def decide(self, request: Request) -> Decision:
        host = _host_key(request.host)
        if isinstance(host, Decision):
            return host
        rules = self._rules.get(host)
        if rules is None:
            return deny(REASON_NO_MATCHING_RULE)
        rules = tuple(rule for rule in rules if request.port in rule.ports)
        if not rules:
            return deny(REASON_PORT_NOT_ALLOWED)
        if request.method is None:
            for rule in rules:
                if rule.methods is None and rule.paths is None:
                    return Decision("allow", REASON_ALLOWED, rule)
            return deny(REASON_NOT_HTTP)
        if request.path is None:
            return deny(REASON_AMBIGUOUS_PATH)
        try:
            target = normalize_path(request.path)
        except AmbiguousPathError:
            return deny(REASON_AMBIGUOUS_PATH)
        # Methods are compared exactly: "get" is not GET to every server, and any mismatch only denies.
        rules = tuple(rule for rule in rules if rule.methods is None or request.method in rule.methods)
        if not rules:
            return deny(REASON_METHOD_NOT_ALLOWED)
        path = target.partition("?")[0]
        for rule in rules:
            if rule.matches_path(path):
                return Decision("allow", REASON_ALLOWED, rule, target)
        return deny(REASON_PATH_NOT_ALLOWED)

    def allows_destination(self, host: str, port: int) -> bool:
        """Whether some rule for `host` allows `port` (the dial gate; methods and paths are checked later)."""
        key = _host_key(host)
        return isinstance(key, str) and port in self._ports.get(key, ())


def _host_key(host: str) -> str | Decision:
    """The normalized host, or the deny decision for a host no rule can name."""
    if is_ip_literal(host):
        return deny(REASON_IP_LITERAL)
    try:
        return normalize_host(host)
    except ValueError:
        return deny(REASON_INVALID_HOST)
