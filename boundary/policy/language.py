"""The policy language as data: the value types of its keys and the tables `POLICY_TABLE`, `RULE_TABLE`,
`DENY_RULE_TABLE`, `SETTINGS_TABLE`, `NETWORK_TABLE` and `LIMITS_TABLE` (pure).

The parser (`load`) walks a document's nodes against these tables, and `schema` renders the very same tables
as JSON Schema, so the two cannot drift apart.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from boundary.policy.canon import (
    AmbiguousPathError,
    encode_disallowed_characters,
    is_ip_literal,
    normalize_path,
    raw_target_matchable,
)
from boundary.policy.model import (
    ANY_METHOD,
    DEFAULT_PORTS,
    DEFAULT_REQUEST_HEAD,
    DEFAULT_REQUEST_HEADERS,
    KNOWN_METHODS,
    REQUEST_HEAD_RANGE,
    REQUEST_HEADERS_RANGE,
    IPNetwork,
    Limits,
    Rule,
)
from boundary.policy.nodes import (
    DECIMAL,
    FLOAT_TAG,
    INT_TAG,
    RULE_ID_PATTERN,
    STR_TAG,
    BoundedIntType,
    CommentType,
    Document,
    Fields,
    FlagType,
    Key,
    ListType,
    Table,
    ValueType,
    VersionType,
    is_null_node,
    is_str_node,
    node_line,
    show_node,
)
from boundary.policy.patterns import broad_reason, normalize_domain_pattern
from boundary.policy.presets import PRESET_PREFIX, PRESETS


class IdType(ValueType[str]):
    def parse(self, fields: Fields, node: Node, at: str) -> str:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected an id (a string), got {show_node(node)}")
        text = str(node.value)
        if not RULE_ID_PATTERN.fullmatch(text):
            rule = "letters, digits and '._:/@+-', starting with a letter or digit, at most 100 characters"
            fields.doc.fail(node_line(node), at, f"invalid id {show_node(node)}: {rule}")
        if text.startswith(PRESET_PREFIX) and not fields.doc.preset:
            fields.doc.fail(
                node_line(node), at, f"invalid id {show_node(node)}: {PRESET_PREFIX!r} is reserved for presets"
            )
        return text

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{RULE_ID_PATTERN.pattern}$", "not": {"pattern": f"^{PRESET_PREFIX}"}}


class PortType(ValueType[int]):
    def parse(self, fields: Fields, node: Node, at: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == INT_TAG and DECIMAL.fullmatch(node.value)):
            fields.doc.fail(node_line(node), at, f"expected a port number, got {show_node(node)}")
        port = int(node.value)
        if not 1 <= port <= 65535:
            fields.doc.fail(node_line(node), at, f"port {port} out of range (1-65535)")
        return port

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": 65535}


class MethodType(ValueType[str]):
    def parse(self, fields: Fields, node: Node, at: str) -> str:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected a method name, got {show_node(node)}")
        method = str(node.value).upper()
        if method != ANY_METHOD and method not in KNOWN_METHODS:
            fields.doc.fail(node_line(node), at, f"unknown method {show_node(node)}")
        return method

    def schema(self) -> dict[str, Any]:
        # Case-insensitive, and JSON Schema's regexes have no flags: spell each letter as a class.
        spellings = ["".join(f"[{c}{c.lower()}]" for c in method) for method in sorted(KNOWN_METHODS)]
        return {"type": "string", "pattern": "^(?:\\*|" + "|".join(spellings) + ")$"}


class HostPatternType(ValueType[str]):
    def parse(self, fields: Fields, node: Node, at: str) -> str:
        # A bare 2130706433 or 127.1 is an int or a float to YAML, and still an address to inet_aton.
        if not (isinstance(node, ScalarNode) and node.tag in (STR_TAG, INT_TAG, FLOAT_TAG)):
            fields.doc.fail(node_line(node), at, f"expected a host name, got {show_node(node)}")
        text = str(node.value)
        if is_ip_literal(text):
            fields.doc.fail(node_line(node), at, f"IP addresses cannot be named yet: {show_node(node)}")
        try:
            pattern = normalize_domain_pattern(text)
        except ValueError as e:
            fields.doc.fail(node_line(node), at, f"invalid host name {show_node(node)}: {e}")
        reason = broad_reason(pattern)
        # A deny rule may be as broad as it likes: denying too much never opens a hole.
        if reason and fields.action == "allow" and not fields.get(_ALLOW_BROAD):
            hint = "add 'allow_broad: true' to the rule if you mean it"
            fields.doc.fail(node_line(node), at, f"over-broad domain {show_node(node)}: {reason} ({hint})")
        return pattern

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^(?:\*\*?|(?:\*\*?\.)?[^*\s/:@]+)$"}


class PathPatternType(ValueType[str]):
    def parse(self, fields: Fields, node: Node, at: str) -> str:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected a path pattern, got {show_node(node)}")
        pattern = encode_disallowed_characters(str(node.value))  # as requests are, so '/a"b' matches
        if not pattern.startswith("/"):
            fields.doc.fail(node_line(node), at, f"path must start with '/': {show_node(node)}")
        if "?" in pattern:
            fields.doc.fail(node_line(node), at, f"path cannot contain a query: {show_node(node)}")
        raw = bool(fields.get(_RAW_PATHS))
        try:
            normal = normalize_path(pattern)
        except AmbiguousPathError as e:
            if raw and raw_target_matchable(pattern):
                return pattern
            hint = "" if raw else " (only a rule with 'raw_paths: true' may name it)"
            fields.doc.fail(node_line(node), at, f"ambiguous path {show_node(node)}: {e}{hint}")
        if normal != pattern:
            # Requests are normalized before matching, so this pattern could never match as written.
            fields.doc.fail(node_line(node), at, f"path {show_node(node)} is not in normal form (write {normal!r})")
        return pattern

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^/[^?#]*$"}


class MethodsType(ValueType[frozenset[str] | None]):
    """A list of methods; `["*"]` means any method, the same as leaving `methods` out (None)."""

    _list: Final = ListType(MethodType(), "methods", "omit 'methods' to allow any method")

    def parse(self, fields: Fields, node: Node, at: str) -> frozenset[str] | None:
        methods = frozenset(self._list.parse(fields, node, at))
        if ANY_METHOD not in methods:
            return methods
        if len(methods) > 1:
            fields.doc.fail(node_line(node), at, "'*' (any method) cannot be combined with other methods")
        return None

    def schema(self) -> dict[str, Any]:
        return self._list.schema()


class QueryType(ValueType[tuple[tuple[str, str], ...]]):
    def parse(self, fields: Fields, node: Node, at: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(node, MappingNode):
            fields.doc.fail(
                node_line(node), at, f"expected a mapping of parameter names to patterns, got {show_node(node)}"
            )
        if not node.value:
            fields.doc.fail(node_line(node), at, "empty mapping (omit 'query' to ignore the query string)")
        pairs: list[tuple[str, str]] = []
        first_seen: dict[str, int] = {}
        for key, value in node.value:
            if not (is_str_node(key) and key.value):
                fields.doc.fail(node_line(key), at, f"expected a parameter name, got {show_node(key)}")
            name = str(key.value)
            if name in first_seen:
                fields.doc.fail(node_line(key), at, f"duplicate parameter {name!r} (first on line {first_seen[name]})")
            first_seen[name] = node_line(key)
            if not is_str_node(value):
                problem = f"expected a value pattern (a string; quote numbers), got {show_node(value)}"
                fields.doc.fail(node_line(value), f"{at}.{name}", problem)
            pairs.append((name, str(value.value)))
        return tuple(pairs)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"minLength": 1},
            "additionalProperties": {"type": "string"},
        }


@dataclass(frozen=True, slots=True)
class Include:
    reference: str  # as written: a file name, or preset:NAME
    line: int
    at: str


class IncludeType(ValueType[Include]):
    def parse(self, fields: Fields, node: Node, at: str) -> Include:
        if not (is_str_node(node) and node.value):
            fields.doc.fail(node_line(node), at, f"expected a file name or 'preset:NAME', got {show_node(node)}")
        reference = str(node.value)
        if reference.startswith(PRESET_PREFIX) and reference.removeprefix(PRESET_PREFIX) not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            fields.doc.fail(node_line(node), at, f"unknown preset {show_node(node)} (known presets: {known})")
        return Include(reference, node_line(node), at)

    def schema(self) -> dict[str, Any]:
        presets = [
            {"const": PRESETS[name].source, "description": PRESETS[name].description} for name in sorted(PRESETS)
        ]
        a_file = {"not": {"pattern": f"^{PRESET_PREFIX}"}, "description": "A policy file, relative to this one."}
        return {"type": "string", "minLength": 1, "anyOf": [*presets, a_file]}


@dataclass(frozen=True, slots=True)
class _Settings:
    ports: frozenset[int] | None


class SettingsType(ValueType[_Settings]):
    def parse(self, fields: Fields, node: Node, at: str) -> _Settings:
        settings = SETTINGS_TABLE.read(fields.doc, node, at)
        ports = settings.get(_DEFAULT_PORTS)
        return _Settings(ports=None if ports is None else frozenset(ports))

    def schema(self) -> dict[str, Any]:
        return SETTINGS_TABLE.schema()


class NetworkRangeType(ValueType[IPNetwork]):
    def parse(self, fields: Fields, node: Node, at: str) -> IPNetwork:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected an address range such as 10.0.0.0/8, got {show_node(node)}")
        text = str(node.value)
        try:
            return ipaddress.ip_network(text)
        except ValueError:
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                problem = "expected an IPv4 or IPv6 address or CIDR range such as 10.0.0.0/8 or fd00::/8"
                fields.doc.fail(node_line(node), at, f"invalid address range {show_node(node)}: {problem}")
            fields.doc.fail(
                node_line(node), at, f"invalid address range {show_node(node)}: host bits set (write '{network}')"
            )

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[0-9A-Fa-f.:]+(?:/[0-9]{1,3})?$"}


@dataclass(frozen=True, slots=True)
class _Network:
    allow_private: tuple[IPNetwork, ...]


class NetworkType(ValueType[_Network]):
    def parse(self, fields: Fields, node: Node, at: str) -> _Network:
        network = NETWORK_TABLE.read(fields.doc, node, at)
        return _Network(allow_private=network.get(_ALLOW_PRIVATE) or ())

    def schema(self) -> dict[str, Any]:
        return NETWORK_TABLE.schema()


class LimitsType(ValueType[Limits]):
    def parse(self, fields: Fields, node: Node, at: str) -> Limits:
        if fields.doc.included:
            fields.doc.fail(node_line(node), at, "limits apply to the whole run: set them in the top policy file")
        limits = LIMITS_TABLE.read(fields.doc, node, at)
        head = limits.get(_REQUEST_HEAD)
        headers = limits.get(_REQUEST_HEADERS)
        return Limits(
            request_head=DEFAULT_REQUEST_HEAD if head is None else head,
            request_headers=DEFAULT_REQUEST_HEADERS if headers is None else headers,
        )

    def schema(self) -> dict[str, Any]:
        return LIMITS_TABLE.schema()


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """A parsed rule and where it came from, until its id is checked against every other rule's."""

    rule: Rule
    doc: Document
    at: str
    line: int  # of the explicit `id`, else of the rule
    explicit_id: bool


@dataclass(frozen=True, slots=True)
class RuleListType(ValueType[tuple[RuleEntry, ...]]):
    table: Table

    def parse(self, fields: Fields, node: Node, at: str) -> tuple[RuleEntry, ...]:
        if is_null_node(node):
            return ()
        if not isinstance(node, SequenceNode):
            fields.doc.fail(node_line(node), at, f"expected a list of rules, got {show_node(node)}")
        return tuple(
            _build_rule(self.table.read(fields.doc, item, f"{at}[{index}]"), fields)
            for index, item in enumerate(node.value)
        )

    def schema(self) -> dict[str, Any]:
        return {"type": ["array", "null"], "items": self.table.schema()}


def _build_rule(fields: Fields, top: Fields) -> RuleEntry:
    """A Rule from a rule mapping whose keys all parsed; `top` is the document's top-level mapping."""
    action = fields.action or "allow"
    domain = fields.get(_DOMAIN)
    domains = (domain,) if domain is not None else tuple(dict.fromkeys(fields.get(_DOMAINS) or ()))
    ports: frozenset[int] | None
    listed = fields.get(_PORTS)
    if listed is not None:
        ports = frozenset(listed)
    elif action == "deny":
        ports = None  # a deny rule is about the host, whatever the port
    else:
        settings = top.get(_DEFAULTS)
        ports = settings.ports if settings is not None and settings.ports is not None else DEFAULT_PORTS
    explicit_id = fields.get(_RULE_ID)
    rule = Rule(
        domain=domains[0],
        ports=ports,
        methods=fields.get(_METHODS),
        paths=fields.get(_PATHS),
        source=f"{fields.doc.source}:{fields.line}",
        id=explicit_id or fields.doc.default_id(fields.line),
        domains=domains,
        query=fields.get(_QUERY),
        raw_paths=bool(fields.get(_RAW_PATHS)),
        allow_broad=bool(fields.get(_ALLOW_BROAD)),
        action=action,
        comment=fields.get(_COMMENT),
    )
    line = fields.line_of(_RULE_ID.name) if explicit_id else fields.line
    return RuleEntry(rule, fields.doc, fields.at, line, explicit_id is not None)


# --- the tables ----------------------------------------------------------------------------------------------

_DOMAIN: Final = Key(
    "domain",
    HostPatternType(),
    "The host this rule is about. `example.com`: exactly that host (case, one trailing dot and the IDNA "
    "spelling do not matter). `*.example.com`: any name under it, never example.com itself. "
    "`**.example.com`: example.com and any name under it. A wildcard over a public suffix (`*.com`, "
    "`**.co.uk`, `*.github.io`) or alone (`*`, `**`) needs `allow_broad: true`. IP addresses cannot be named. "
    "Give either `domain` or `domains`.",
)
_DOMAINS: Final = Key(
    "domains",
    ListType(HostPatternType(), "host names", "name at least one host"),
    "Several hosts for one rule, each written like `domain`. Give either `domain` or `domains`.",
)
_PORTS: Final = Key(
    "ports",
    ListType(PortType(), "ports", "omit 'ports' for the default 80 and 443"),
    "TCP ports. An allow rule without `ports` gets `defaults.ports` of its file, else [80, 443]; a deny rule "
    "without `ports` applies to every port.",
)
_METHODS: Final = Key(
    "methods",
    MethodsType(),
    'HTTP methods, in any case. Omitted or `"*"` (quoted): any method. Only a rule without `methods`, '
    "`paths` and `query` decides non-HTTP streams.",
)
_PATHS: Final = Key(
    "paths",
    ListType(PathPatternType(), "paths", "omit 'paths' to allow any path"),
    "Path patterns, matched against the normalized path without the query. `*` matches within one segment; a "
    "whole `**` segment matches any number of segments (`/a/**` matches /a, /a/ and /a/b/c); everything else "
    "is literal. Omitted: any path.",
)
_QUERY: Final = Key(
    "query",
    QueryType(),
    "Query parameters the request must carry: name -> value pattern, where `*` matches any run of characters. "
    "Compared percent-decoded; other parameters are allowed. An allow rule needs every value of each named "
    "parameter to match, a deny rule any one. Omitted: the query string is ignored.",
)
_RAW_PATHS: Final = Key(
    "raw_paths",
    FlagType(),
    "Allow rules only. Also let `paths` match targets that normalization refuses as ambiguous (an encoded '/', "
    "'\\' or NUL, '..' above the root, ...), compared as sent. Wildcards never match those characters or dot "
    "segments: write them literally. Risky: the server, not boundary, decides what `%2F` means there.",
)
_ALLOW_BROAD: Final = Key(
    "allow_broad",
    FlagType(),
    "Allow rules only. Accept over-broad domain patterns: a wildcard over a public suffix, or every host.",
)
_RULE_ID: Final = Key(
    "id",
    IdType(),
    "The name audit lines and 403 replies show for this rule (default: FILE:LINE). Unique across the policy "
    "and everything it includes; `preset:` is reserved.",
)
_COMMENT: Final = Key("comment", CommentType(), "Free text for readers of the policy; ignored.")

RULE_TABLE: Final = Table(
    keys=(_DOMAIN, _DOMAINS, _PORTS, _METHODS, _PATHS, _QUERY, _RAW_PATHS, _ALLOW_BROAD, _RULE_ID, _COMMENT),
    expected="a mapping with 'domain'",
    action="allow",
    exactly_one=("domain", "domains"),
)
DENY_RULE_TABLE: Final = Table(
    keys=tuple(key for key in RULE_TABLE.keys if key not in (_RAW_PATHS, _ALLOW_BROAD)),
    expected="a mapping with 'domain'",
    action="deny",
    exactly_one=("domain", "domains"),
    elsewhere=MappingProxyType(
        {
            "raw_paths": "deny rules always apply to ambiguous paths: their paths are taken to match",
            "allow_broad": "deny rules may be as broad as they like",
        }
    ),
)

_DEFAULT_PORTS: Final = Key(
    "ports",
    ListType(PortType(), "ports", "omit 'ports' for the built-in 80 and 443"),
    "The ports of this file's allow rules that name none (built-in default: [80, 443]).",
)
SETTINGS_TABLE: Final = Table(keys=(_DEFAULT_PORTS,), expected="a mapping of settings")

_ALLOW_PRIVATE: Final = Key(
    "allow_private",
    ListType(NetworkRangeType(), "address ranges"),
    "Address ranges (`10.0.0.0/8`, `fd00::/8`, or one address) the proxy may dial although they are not public: "
    "loopback, private, link-local, the host's own addresses, ... For names the proxy resolves itself, not "
    "for `--resolve` answers, which are always trusted. Applies to the whole run, included files too.",
)
NETWORK_TABLE: Final = Table(keys=(_ALLOW_PRIVATE,), expected="a mapping of network settings")

_REQUEST_HEAD: Final = Key(
    "request_head",
    BoundedIntType("a size in bytes", *REQUEST_HEAD_RANGE, sizes=True),
    "The largest request head the proxy reads, in bytes (or `KiB`, `MiB`): the request line and every header "
    f"field, HTTP/2 header lists too (default {DEFAULT_REQUEST_HEAD}). A larger head is refused with 431 "
    "and an audit line (`request-head-too-large`).",
)
_REQUEST_HEADERS: Final = Key(
    "request_headers",
    BoundedIntType("a number of header fields", *REQUEST_HEADERS_RANGE),
    f"The most header fields one request head may have (default {DEFAULT_REQUEST_HEADERS}); more: 431.",
)
LIMITS_TABLE: Final = Table(keys=(_REQUEST_HEAD, _REQUEST_HEADERS), expected="a mapping of limits")

_VERSION: Final = Key("version", VersionType(), "The format version: 1.", required=True)
INCLUDE_KEY: Final = Key(
    "include",
    ListType(IncludeType(), "files or presets", nullable=True),
    "Other policy documents whose rules come before this file's: a path relative to this file, or "
    f"`preset:NAME` for a built-in preset ({', '.join(sorted(PRESETS))}). Each document is included once; a "
    "cycle is an error. An included file keeps its own `defaults`.",
)
_DEFAULTS: Final = Key(
    "defaults", SettingsType(), "Settings for the rules of this file (not of the files it includes)."
)
NETWORK_KEY: Final = Key(
    "network",
    NetworkType(),
    "The proxy's guard on the addresses it dials (SSRF guard): a name it resolves must lead to a public "
    "address unless `allow_private` opens the range.",
)
ALLOW_KEY: Final = Key(
    "allow",
    RuleListType(RULE_TABLE),
    "Rules that allow requests. A request is allowed when an allow rule matches it and no deny rule does; "
    "anything else is denied.",
)
DENY_KEY: Final = Key(
    "deny",
    RuleListType(DENY_RULE_TABLE),
    "Rules that deny requests. A matching deny rule wins over every allow rule.",
)
LIMITS_KEY: Final = Key(
    "limits",
    LimitsType(),
    "What the proxy holds in memory for one request. For the whole run: only in the top policy file.",
)
POLICY_TABLE: Final = Table(
    keys=(_VERSION, INCLUDE_KEY, _DEFAULTS, NETWORK_KEY, LIMITS_KEY, ALLOW_KEY, DENY_KEY),
    expected="a mapping with 'version' and 'allow'",
)
