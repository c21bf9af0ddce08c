"""Tools for policy authors, behind `boundary policy check|explain|test` (pure: files come in as text or
through a loader the caller passes).

Theory of operation. `explain` and `test` decide a URL without any proxy, so a URL must become exactly the
`Request` the proxy would hand the matcher. `parse_url` is hand-written, not `urllib.parse`: urllib strips
tabs and newlines, takes `\\` in the host differently from curl and browsers, and none of that may happen
here. The scheme gives the default port (http 80, https 443); the host goes to the matcher as written (it
normalizes case, the trailing dot and IDNA, and denies IP literals in any spelling); the path and query go
byte for byte as typed, so `/a/%2e%2e/b`, `//x` and `%2F` meet the matcher's normalization exactly as they
would through the proxy. Only what a client never sends is dropped: credentials (`user@`) and the fragment.

The proxy also checks the connection (an IP literal destination, SNI and Host naming different hosts); those
checks need a connection, so `explain` states the matcher's decision for the URL alone. Where deny rules apply,
it lists the readings of the path they were matched against (`path_readings`).

Output quotes input (URLs, paths, file names, rule ids) that may hold anything, lone surrogates from undecodable
bytes included: every line is made printable (`printable`: Python-style escapes for control, format and
surrogate characters), and JSON escapes the same characters as `\\uXXXX`, so nothing can fail to encode, and
nothing reaches a terminal as a control sequence.

A cases file for `test` is a YAML list of mappings, parsed as strictly as a policy: unknown and duplicate
keys, wrong types and bad URLs are `CasesError`s of the form `FILE:LINE: [N].key: message`, quoting the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final, Literal, NoReturn

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from boundary.errors import CasesError, PolicyError, UsageError
from boundary.policy.canon import AmbiguousPathError, is_ip_literal, normalize_host, normalize_path, path_readings
from boundary.policy.lint import lint
from boundary.policy.matcher import Decision, Matcher, Request
from boundary.policy.model import Policy, Rule
from boundary.policy.nodes import compose_yaml, is_str_node, node_line, show_node
from boundary.reasons import POLICY_REASONS, Reason

__all__ = [
    "Case",
    "CheckResult",
    "Explanation",
    "Outcome",
    "check",
    "explain",
    "parse_cases",
    "parse_url",
    "printable",
    "render_json",
    "render_outcomes",
    "render_text",
    "request_for",
    "run_cases",
]

DEFAULT_PORTS: Final = MappingProxyType({"http": 80, "https": 443})
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_AUTHORITY_END: Final = re.compile(r"[/?#]")
_PORT: Final = re.compile(r"[0-9]{1,5}")
# RFC 9110 5.6.2: what a client may put in the method slot of a request line.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


# ----------------------------------------------------------------------------------------------------------
# URL -> Request


def parse_url(url: str, method: str = "GET") -> Request:
    """The request the proxy would see for `METHOD URL`; raises ValueError saying what is wrong with it.

    The method is kept as written: the matcher compares methods exactly, as a server would.
    """
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"method {method!r} is not an HTTP method token")
    scheme_match = _SCHEME.match(url)
    if scheme_match is None:
        raise ValueError("expected an absolute http:// or https:// URL")
    scheme = scheme_match.group(1).lower()
    default_port = DEFAULT_PORTS.get(scheme)
    if default_port is None:
        raise ValueError(f"scheme {scheme_match.group(1)!r} is not http or https")
    rest = url[scheme_match.end() :]
    end = _AUTHORITY_END.search(rest)
    authority, target = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    target = target.partition("#")[0]  # clients never send the fragment
    host, port = _split_authority(authority, default_port)
    # A client sends "/" for an empty path ("https://h" and "https://h?q" ask for "/" and "/?q").
    return Request(scheme, host, port, method, target if target.startswith("/") else "/" + target)


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    if "\\" in authority:
        raise ValueError("backslash before the path (URL parsers disagree on where the host ends)")
    credentials, _, host_port = authority.rpartition("@")
    if "@" in credentials:
        raise ValueError("more than one '@' before the path (URL parsers disagree on which host is meant)")
    if host_port.startswith("["):
        close = host_port.find("]")
        if close < 0:
            raise ValueError("'[' without ']' in the host")
        host, after = host_port[: close + 1], host_port[close + 1 :]
        if after and not after.startswith(":"):
            raise ValueError(f"unexpected {after!r} after the IPv6 address")
        port_text = after[1:]
    else:
        host, _, port_text = host_port.partition(":")
    if not host:
        raise ValueError("no host")
    if not port_text:
        return host, default_port
    if not (_PORT.fullmatch(port_text) and 1 <= int(port_text) <= 65535):
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def request_for(method: str, url: str) -> Request:
    """`parse_url` for a command line: a bad URL or method is a UsageError quoting the URL."""
    try:
        return parse_url(url, method)
    except ValueError as e:
        raise UsageError(f"bad URL {url!r}: {e}") from e


# ----------------------------------------------------------------------------------------------------------
# explain


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision with the request in the form it was checked."""

    url: str  # as given
    request: Request  # as the proxy would see it (host and target as sent)
    decision: Decision
    host: str  # normalized; as written when it cannot be
    host_note: str | None  # why the host could not be normalized
    path: str | None  # the normalized target (the one forwarded if allowed); None when ambiguous
    path_note: str | None  # why the target is ambiguous, or that it is forwarded as sent
    readings: tuple[str, ...] = ()  # the path's readings deny rules were matched against; () if none applies


def explain(matcher: Matcher, request: Request, url: str) -> Explanation:
    decision = matcher.decide(request)
    host, host_note = _host_view(request.host)
    path, path_note = _path_view(decision, request.path or "")
    readings: tuple[str, ...] = ()
    if path is not None and path_note is None and matcher.deny_rules(request.host, request.port):
        readings = path_readings(path.partition("?")[0])  # an ambiguous path meets deny rules whatever it is
    return Explanation(url, request, decision, host, host_note, path, path_note, readings)


def _host_view(host: str) -> tuple[str, str | None]:
    if is_ip_literal(host):
        return host, "an IP literal: rules name hosts, so it is always denied"
    try:
        return normalize_host(host), None
    except ValueError as e:
        return host, f"not a valid host name: {e}"


def _path_view(decision: Decision, target: str) -> tuple[str | None, str | None]:
    try:
        return normalize_path(target), None
    except AmbiguousPathError as e:
        if decision.allowed:
            return decision.path, f"ambiguous ({e}), matched by a raw_paths rule: forwarded as sent"
        return None, f"ambiguous: {e}"


def _rule_name(rule: Rule | None) -> str | None:
    if rule is None:
        return None
    return rule.id if rule.id == rule.source else f"{rule.id} ({rule.source})"


def render_text(explanation: Explanation) -> str:
    """Aligned `field: value` lines, ending in a newline."""
    decision, request = explanation.decision, explanation.request
    if explanation.path is None:
        path = f"{request.path} (as sent; {explanation.path_note})"
    elif explanation.path_note:
        path = f"{explanation.path} ({explanation.path_note})"
    else:
        path = explanation.path + (" (forwarded upstream)" if decision.allowed else "")
    host = explanation.host + (f" ({explanation.host_note})" if explanation.host_note else "")
    fields = [
        ("decision", decision.verdict),
        ("reason", decision.reason),
        ("rule", _rule_name(decision.rule) or "none"),
        ("scheme", request.scheme),
        ("host", host),
        ("port", str(request.port)),
        ("method", request.method or ""),
        ("path", path),
    ]
    if len(explanation.readings) > 1:
        # Normalized paths hold no space, so ", " separates them unambiguously.
        fields.append(("readings", ", ".join(explanation.readings) + " (deny rules match each)"))
    return "".join(f"{name + ':':<10}{printable(value)}\n" for name, value in fields)


def render_json(explanation: Explanation) -> str:
    """One JSON object on one line, ending in a newline."""
    decision, request, rule = explanation.decision, explanation.request, explanation.decision.rule
    record = {
        "url": explanation.url,
        "decision": decision.verdict,
        "reason": decision.reason,
        "rule": rule.id if rule else None,
        "rule_source": rule.source if rule else None,
        "request": {
            "scheme": request.scheme,
            "host": explanation.host,
            "port": request.port,
            "method": request.method,
            "path": explanation.path,
            "target": request.path,
            "host_note": explanation.host_note,
            "path_note": explanation.path_note,
            "readings": list(explanation.readings),
        },
    }
    return _json_line(record)


# ----------------------------------------------------------------------------------------------------------
# Printing any input


def printable(text: str) -> str:
    """`text` with each character that does not print (controls, line breaks, format characters such as
    bidi overrides, lone surrogates from undecodable bytes, spaces other than ' ') as its Python escape
    (`\\x1b`, `\\u202e`, `\\udcff`): the result encodes as UTF-8 and shows on a terminal as what it is."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _json_line(record: object) -> str:
    """One line of JSON whose non-ASCII text stays readable but whose characters that do not print are
    `\\uXXXX` escapes (json.dumps leaves DEL, C1 controls, format characters and lone surrogates raw)."""
    text = json.dumps(record, ensure_ascii=False)
    if not text.isprintable():
        # Outside strings json.dumps writes only printable ASCII, so each such character is inside a string.
        text = "".join(char if char.isprintable() else _json_escape(char) for char in text)
    return text + "\n"


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


# ----------------------------------------------------------------------------------------------------------
# check


@dataclass(frozen=True, slots=True)
class CheckResult:
    text: str  # lines for the user, each ending in a newline
    ok: bool


def check(path: str, load: Callable[[str], Policy], *, strict: bool = False) -> CheckResult:
    """Validate and lint one policy file; `load` reads it (`boundary.policy.load.load_policy`)."""
    try:
        policy = load(path)
    except PolicyError as e:
        return CheckResult(f"{printable(str(e))}\n", ok=False)
    findings = lint(policy)
    lines = [f"{finding.source}: warning: {finding.message}" for finding in findings]
    rules = f"{_count(len(policy.rules), 'allow rule')}, {_count(len(policy.deny), 'deny rule')}"
    ok = not (strict and findings)
    if not ok:
        lines.append(f"{path}: {_count(len(findings), 'warning')}, fatal with --strict ({rules})")
    else:
        warnings = f", {_count(len(findings), 'warning')}" if findings else ""
        lines.append(f"{path}: OK ({rules}{warnings})")
    return CheckResult("".join(f"{printable(line)}\n" for line in lines), ok=ok)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# ----------------------------------------------------------------------------------------------------------
# test: cases


@dataclass(frozen=True, slots=True)
class Case:
    line: int  # where the case's mapping starts
    request: Request
    url: str  # as written
    expect: Literal["allow", "deny"]
    reason: str | None  # one of POLICY_REASONS (what the policy gives), if the case names one
    name: str | None


def _text(node: ScalarNode) -> str:
    if not node.value:
        raise ValueError("empty string")
    return str(node.value)


def _method(node: ScalarNode) -> str:
    if not _TOKEN.fullmatch(node.value):
        raise ValueError(f"{node.value!r} is not an HTTP method token")
    return str(node.value)


def _url(node: ScalarNode) -> str:
    try:
        parse_url(node.value)
    except ValueError as e:
        raise ValueError(f"bad URL {node.value!r}: {e}") from e
    return str(node.value)


def _expect(node: ScalarNode) -> str:
    if node.value not in ("allow", "deny"):
        raise ValueError(f"expected allow or deny, got {node.value!r}")
    return str(node.value)


def _reason(node: ScalarNode) -> str:
    if node.value not in POLICY_REASONS:
        raise ValueError(f"unknown reason {node.value!r} (known: {', '.join(POLICY_REASONS)})")
    return str(node.value)


# The keys a case may have, each with the reader of its (string) value; `url` and `expect` are required.
_CASE_KEYS: Final[Mapping[str, Callable[[ScalarNode], str]]] = MappingProxyType(
    {"name": _text, "method": _method, "url": _url, "expect": _expect, "reason": _reason}
)
_REQUIRED: Final = ("url", "expect")


def parse_cases(text: str, source: str) -> tuple[Case, ...]:
    """The cases of a cases file: a YAML list of `{url, expect, method, reason, name}` mappings.

    Raises CasesError `SOURCE:LINE: [N].key: message` on the first problem, quoting the value.
    """
    root = compose_yaml(text, lambda line, message: _fail(source, line, "", message))
    if root is None or not isinstance(root, SequenceNode):
        got = "nothing" if root is None else show_node(root)
        _fail(source, 1 if root is None else node_line(root), "", f"expected a list of cases, got {got}")
    if not root.value:
        _fail(source, node_line(root), "", "empty list: a cases file needs at least one case")
    return tuple(_case(item, source, f"[{index}]") for index, item in enumerate(root.value))


def _case(node: Node, source: str, at: str) -> Case:
    if not isinstance(node, MappingNode):
        _fail(source, node_line(node), at, f"expected a mapping with 'url' and 'expect', got {show_node(node)}")
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        if not is_str_node(key):
            _fail(source, node_line(key), at, f"expected a string key, got {show_node(key)}")
        name = str(key.value)
        if name in lines:
            _fail(source, node_line(key), at, f"duplicate key {name!r} (first on line {lines[name]})")
        reader = _CASE_KEYS.get(name)
        if reader is None:
            _fail(source, node_line(key), at, f"unknown key {name!r} (known: {', '.join(_CASE_KEYS)})")
        lines[name] = node_line(key)
        if not is_str_node(value):
            _fail(source, node_line(value), f"{at}.{name}", f"expected a string, got {show_node(value)}")
        try:
            values[name] = reader(value)
        except ValueError as e:
            _fail(source, node_line(value), f"{at}.{name}", str(e))
    for required in _REQUIRED:
        if required not in values:
            _fail(source, node_line(node), at, f"missing required key {required!r}")
    expect: Literal["allow", "deny"] = "allow" if values["expect"] == "allow" else "deny"
    reason = values.get("reason")
    if reason is not None and (reason == Reason.ALLOWED) != (expect == "allow"):
        _fail(source, lines["reason"], f"{at}.reason", f"reason {reason!r} contradicts 'expect: {expect}'")
    # Both were checked on their own above, so this cannot fail.
    request = replace(parse_url(values["url"]), method=values.get("method", "GET"))
    return Case(node_line(node), request, values["url"], expect, reason, values.get("name"))


def _fail(source: str, line: int, at: str, message: str) -> NoReturn:
    raise CasesError(f"{source}:{line}: {at}: {message}" if at else f"{source}:{line}: {message}")


# ----------------------------------------------------------------------------------------------------------
# test: running


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    decision: Decision

    @property
    def passed(self) -> bool:
        expected_reason = self.case.reason
        return self.decision.verdict == self.case.expect and expected_reason in (None, self.decision.reason)


def run_cases(matcher: Matcher, cases: Sequence[Case]) -> tuple[Outcome, ...]:
    return tuple(Outcome(case, matcher.decide(case.request)) for case in cases)


def render_outcomes(outcomes: Sequence[Outcome], source: str) -> str:
    """One line per failed case, `SOURCE:LINE: METHOD URL: expected X, got Y (...)`, then `N cases, M failed`."""
    lines = [printable(_failure(outcome, source)) + "\n" for outcome in outcomes if not outcome.passed]
    lines.append(f"{_count(len(outcomes), 'case')}, {len(lines)} failed\n")
    return "".join(lines)


def _failure(outcome: Outcome, source: str) -> str:
    case, decision = outcome.case, outcome.decision
    expected = case.expect + (f" ({case.reason})" if case.reason else "")
    rule = _rule_name(decision.rule)
    if decision.allowed:
        got = f"allow (rule {rule})"
    else:
        got = f"deny ({decision.reason}, rule {rule})" if rule else f"deny ({decision.reason})"
    named = f" [{case.name}]" if case.name else ""
    return f"{source}:{case.line}: {case.request.method} {case.url}: expected {expected}, got {got}{named}"
