"""Policy files: strict YAML text -> a frozen, validated `Policy` (pure; only `load_policy` touches a file).

Theory of operation. The YAML is *composed*, not loaded: we walk PyYAML's node graph ourselves so every value
keeps its line number and duplicate keys (which a plain load silently collapses to the last one) are caught.
Each node is checked against a fixed schema and the first problem raises `PolicyError` in the form
`FILE:LINE: key.path: message`, quoting the offending value. Everything the hot path needs is computed here,
once: hosts normalized, methods upper-cased, path patterns pre-split for matching.

The canonical forms of hosts (`normalize_host`, `is_ip_literal`) and request targets (`normalize_path`) live
here too: the parser must check that a policy names things in canonical form, and the matcher brings every
request into that same form before comparing. Anything with more than one plausible reading is refused.
"""

import encodings.idna
import ipaddress
import os
import re
import socket
import string
from dataclasses import dataclass, field
from typing import Final, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from boundary.errors import PolicyError

__all__ = [
    "DEFAULT_PORTS",
    "KNOWN_METHODS",
    "AmbiguousPathError",
    "Policy",
    "Rule",
    "is_ip_literal",
    "load_policy",
    "normalize_host",
    "normalize_path",
    "parse_policy",
]

DEFAULT_PORTS: Final[frozenset[int]] = frozenset({80, 443})
KNOWN_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

# ----------------------------------------------------------------------------------------------------------
# Host names

# IDNA treats these as label separators too; a client given "a。b" looks up "a.b".
_IDNA_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LDH_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# WHATWG URL parsers treat a host whose last label looks numeric as IPv4 (and reject it if it is not); no real
# top-level domain is numeric, so such a name can only be a confusion.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")


def normalize_host(host: str) -> str:
    """Canonical form of a host name: lower-case, one trailing dot stripped, IDNA labels as punycode.

    Raises ValueError for anything that is not a valid DNS host name. Non-ASCII labels must survive an IDNA
    round trip unchanged (after lower-casing): a label that IDNA 2003 would silently remap (`faß` -> `fass`)
    is refused, since IDNA 2008 clients would visit a different name; write such names as `xn--` punycode.
    """
    name = host.translate(_IDNA_DOTS).lower()
    name = name.removesuffix(".")
    if not name:
        raise ValueError("empty host name")
    labels = [_ascii_label(label) for label in name.split(".")]
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise ValueError(f"last label {labels[-1]!r} is numeric")
    result = ".".join(labels)
    if len(result) > 253:
        raise ValueError("longer than 253 characters")
    return result


def _ascii_label(label: str) -> str:
    if not label:
        raise ValueError("empty label")
    if label.isascii():
        ascii_label = label
    else:
        try:
            ascii_label = encodings.idna.ToASCII(label).decode("ascii")
            round_trip = encodings.idna.ToUnicode(ascii_label)
        except UnicodeError as e:
            raise ValueError(f"label {label!r} is not valid IDNA") from e
        if round_trip != label:
            raise ValueError(f"label {label!r} is not in IDNA normal form (IDNA 2003 maps it to {round_trip!r})")
    if len(ascii_label) > 63:
        raise ValueError(f"label {ascii_label!r} is longer than 63 characters")
    if not _LDH_LABEL.fullmatch(ascii_label):
        raise ValueError(f"label {ascii_label!r} must be letters, digits and inner hyphens")
    return ascii_label


def is_ip_literal(host: str) -> bool:
    """Whether `host` names an IP address: IPv6 (bracketed or not) or any IPv4 spelling `inet_aton` accepts.

    `inet_aton` is what glibc's resolver uses for numeric hosts, so `127.1`, `0x7f.0.0.1` and `2130706433`
    all reach 127.0.0.1 without ever asking DNS.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            return False
        return True
    try:
        socket.inet_aton(bare.removesuffix("."))
    except (OSError, ValueError):  # ValueError: embedded NUL or non-ASCII
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# Request targets

_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
# A request-target is visible ASCII only (RFC 9112 3.2); servers disagree on what anything else means.
_VISIBLE_ASCII: Final = re.compile(r"[!-~]*")
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})?")
_SLASHES: Final = re.compile(r"//+")
# Escapes a server may decode *before* splitting the path, changing which segments there are.
_SPLITTING_ESCAPES: Final = {"%2F": "encoded '/'", "%5C": "encoded '\\'", "%00": "encoded NUL"}


class AmbiguousPathError(ValueError):
    """A request target that servers could read in more than one way; it is always denied."""


def normalize_path(target: str) -> str:
    """Canonical form of a request target (`/path?query`); raises AmbiguousPathError.

    Unreserved percent-escapes are decoded, the others upper-cased, repeated slashes collapsed and dot
    segments removed (RFC 3986 5.2.4). The query is kept verbatim. The result is what gets matched *and*
    forwarded, so the upstream server sees exactly the path that was checked.
    """
    if not _VISIBLE_ASCII.fullmatch(target):
        raise AmbiguousPathError("control, space or non-ASCII character")
    if "#" in target:
        raise AmbiguousPathError("fragment '#' in request target")
    path, question, query = target.partition("?")
    if not path.startswith("/"):
        raise AmbiguousPathError("does not start with '/'")
    if "\\" in path:
        raise AmbiguousPathError("backslash")
    path = _SLASHES.sub("/", _ESCAPE.sub(_canonical_escape, path))
    return _remove_dot_segments(path) + question + query


def _canonical_escape(match: re.Match[str]) -> str:
    hex_digits = match.group(1)
    if hex_digits is None:
        raise AmbiguousPathError("invalid percent-escape")
    char = chr(int(hex_digits, 16))
    if char in _UNRESERVED:
        return char
    escape = "%" + hex_digits.upper()
    if escape in _SPLITTING_ESCAPES:
        raise AmbiguousPathError(_SPLITTING_ESCAPES[escape])
    return escape


def _remove_dot_segments(path: str) -> str:
    kept: list[str] = []
    ends_in_dot = False  # "/a/b/.." is the directory "/a/", with its slash
    for segment in path[1:].split("/"):
        if ";" in segment and segment.partition(";")[0] in (".", ".."):
            # Servlet containers drop ";params" and then resolve "..;" as "..".
            raise AmbiguousPathError("dot segment with parameters")
        ends_in_dot = segment in (".", "..")
        if segment == "..":
            if not kept:
                raise AmbiguousPathError("'..' climbs above the root")
            kept.pop()
        elif segment != ".":
            kept.append(segment)
    result = "/" + "/".join(kept)
    return result + "/" if ends_in_dot and kept else result


# ----------------------------------------------------------------------------------------------------------
# The policy objects

# A path pattern pre-split into segments, each split at its '*'s: matching is then a linear scan per segment
# (a regex with several '[^/]*' per segment backtracks polynomially on a hostile path).
type _Glob = tuple[tuple[str, ...], ...]


def _compile_glob(pattern: str) -> _Glob:
    return tuple(tuple(segment.split("*")) for segment in pattern.split("/"))


def _glob_matches(glob: _Glob, segments: list[str]) -> bool:
    return len(glob) == len(segments) and all(map(_segment_matches, glob, segments))


def _segment_matches(parts: tuple[str, ...], segment: str) -> bool:
    if len(parts) == 1:
        return segment == parts[0]
    head, *middle, tail = parts
    if len(segment) < len(head) + len(tail) or not (segment.startswith(head) and segment.endswith(tail)):
        return False
    # '*' only stands for "anything", so taking each literal at its leftmost place never loses a match.
    position, end = len(head), len(segment) - len(tail)
    for literal in middle:
        found = segment.find(literal, position, end)
        if found < 0:
            return False
        position = found + len(literal)
    return True


@dataclass(frozen=True, slots=True)
class Rule:
    """One `allow` entry. `parse_policy` validates and normalizes every field; build one directly only from
    values already in that form."""

    domain: str  # normalized host (`normalize_host`)
    ports: frozenset[int]
    methods: frozenset[str] | None  # upper-case; None = any method
    paths: tuple[str, ...] | None  # patterns as written ('*' = within one segment); None = any path
    source: str  # "FILE:LINE" where the rule starts
    _globs: tuple[_Glob, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.paths is not None:
            object.__setattr__(self, "_globs", tuple(_compile_glob(pattern) for pattern in self.paths))

    @property
    def id(self) -> str:
        """Stable name for audit lines and headers."""
        return self.source

    def matches_path(self, path: str) -> bool:
        """Whether this rule's path patterns admit `path` (already normalized, without the query)."""
        if self._globs is None:
            return True
        segments = path.split("/")
        return any(_glob_matches(glob, segments) for glob in self._globs)


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    source: str  # file name as given


# ----------------------------------------------------------------------------------------------------------
# Parsing

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
_NULL: Final = "tag:yaml.org,2002:null"
_TOP_KEYS: Final = ("version", "allow")
_RULE_KEYS: Final = ("domain", "methods", "paths", "ports")
# YAML 1.1 also reads 0755, 0x1bb, 1_000 and 4:20 as integers; a port is written in plain decimal.
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Parse policy YAML; raises PolicyError `SOURCE:LINE: key.path: message` on the first problem."""
    return _Parser(source).policy(text)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a policy file; an unreadable file is a PolicyError too."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig") as file:
            text = file.read()
    except OSError as e:
        raise PolicyError(f"{name}: cannot read policy: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise PolicyError(f"{name}: cannot read policy: not UTF-8 text (byte {e.start})") from e
    return parse_policy(text, name)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _show(node: Node) -> str:
    """The value as the author wrote it: strings quoted, other scalars bare, collections by kind."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if node.tag == _STR:
        return repr(node.value)
    if node.tag == _NULL:
        return "null"
    return str(node.value)


def _is_str(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, line: int, key_path: str, message: str) -> NoReturn:
        where = f"{self.source}:{line}: {key_path}: " if key_path else f"{self.source}:{line}: "
        raise PolicyError(where + message)

    def policy(self, text: str) -> Policy:
        root = self.compose(text)
        if root is None or _is_null(root):
            self.fail(1, "", "empty policy (expected 'version: 1')")
        fields = self.mapping(root, "", "a mapping with 'version' and 'allow'", _TOP_KEYS)
        version = fields.get("version")
        if version is None:
            self.fail(_line(root), "", "missing required key 'version'")
        if not (isinstance(version, ScalarNode) and version.tag == _INT and version.value == "1"):
            self.fail(_line(version), "version", f"unsupported version {_show(version)} (expected 1)")
        allow = fields.get("allow")
        if allow is None or _is_null(allow):
            return Policy(rules=(), source=self.source)
        if not isinstance(allow, SequenceNode):
            self.fail(_line(allow), "allow", f"expected a list of rules, got {_show(allow)}")
        rules = tuple(self.rule(node, f"allow[{index}]") for index, node in enumerate(allow.value))
        return Policy(rules=rules, source=self.source)

    def compose(self, text: str) -> Node | None:
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or e.context
            if e.problem and e.context:
                problem = f"{e.problem} ({e.context})"
            self.fail(mark.line + 1 if mark else 1, "", f"invalid YAML: {problem}")
        except yaml.reader.ReaderError as e:
            line = text.count("\n", 0, e.position) + 1
            self.fail(line, "", f"invalid YAML: unacceptable character #x{e.character:04x}: {e.reason}")
        except RecursionError:  # the composer recurses once per nesting level
            self.fail(1, "", "invalid YAML: nested too deeply")

    def mapping(self, node: Node, key_path: str, expected: str, known: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            self.fail(_line(node), key_path, f"expected {expected}, got {_show(node)}")
        fields: dict[str, Node] = {}
        first_seen: dict[str, int] = {}
        for key, value in node.value:
            if not _is_str(key):
                self.fail(_line(key), key_path, f"expected a string key, got {_show(key)}")
            name = key.value
            if name in first_seen:
                self.fail(_line(key), key_path, f"duplicate key {name!r} (first on line {first_seen[name]})")
            if name not in known:
                self.fail(_line(key), key_path, f"unknown key {name!r}")
            first_seen[name] = _line(key)
            fields[name] = value
        return fields

    def rule(self, node: Node, key_path: str) -> Rule:
        fields = self.mapping(node, key_path, "a mapping with 'domain'", _RULE_KEYS)
        domain = fields.get("domain")
        if domain is None:
            self.fail(_line(node), key_path, "missing required key 'domain'")
        methods, paths, ports = fields.get("methods"), fields.get("paths"), fields.get("ports")
        return Rule(
            domain=self.domain(domain, f"{key_path}.domain"),
            ports=DEFAULT_PORTS if ports is None else self.ports(ports, f"{key_path}.ports"),
            methods=None if methods is None else self.methods(methods, f"{key_path}.methods"),
            paths=None if paths is None else self.paths(paths, f"{key_path}.paths"),
            source=f"{self.source}:{_line(node)}",
        )

    def domain(self, node: Node, key_path: str) -> str:
        # A bare 2130706433 or 127.1 is an int or a float to YAML, and still an address to inet_aton.
        if not (isinstance(node, ScalarNode) and node.tag in (_STR, _INT, _FLOAT)):
            self.fail(_line(node), key_path, f"expected a host name, got {_show(node)}")
        text = node.value
        if "*" in text:
            self.fail(_line(node), key_path, f"wildcard domains are not supported yet: {_show(node)}")
        if is_ip_literal(text):
            self.fail(_line(node), key_path, f"IP addresses cannot be named yet: {_show(node)}")
        try:
            return normalize_host(text)
        except ValueError as e:
            self.fail(_line(node), key_path, f"invalid host name {_show(node)}: {e}")

    def items(self, node: Node, key_path: str, what: str, omitted: str) -> list[Node]:
        if not isinstance(node, SequenceNode):
            self.fail(_line(node), key_path, f"expected a list of {what}, got {_show(node)}")
        if not node.value:
            self.fail(_line(node), key_path, f"empty list ({omitted})")
        items: list[Node] = node.value
        return items

    def methods(self, node: Node, key_path: str) -> frozenset[str]:
        methods = set()
        for item in self.items(node, key_path, "methods", "omit 'methods' to allow any method"):
            if not _is_str(item):
                self.fail(_line(item), key_path, f"expected a method name, got {_show(item)}")
            method = item.value.upper()
            if method not in KNOWN_METHODS:
                self.fail(_line(item), key_path, f"unknown method {_show(item)}")
            methods.add(method)
        return frozenset(methods)

    def ports(self, node: Node, key_path: str) -> frozenset[int]:
        ports = set()
        for item in self.items(node, key_path, "ports", "omit 'ports' for the default 80 and 443"):
            if not (isinstance(item, ScalarNode) and item.tag == _INT and _DECIMAL.fullmatch(item.value)):
                self.fail(_line(item), key_path, f"expected a port number, got {_show(item)}")
            port = int(item.value)
            if not 1 <= port <= 65535:
                self.fail(_line(item), key_path, f"port {port} out of range (1-65535)")
            ports.add(port)
        return frozenset(ports)

    def paths(self, node: Node, key_path: str) -> tuple[str, ...]:
        paths = []
        for item in self.items(node, key_path, "paths", "omit 'paths' to allow any path"):
            if not _is_str(item):
                self.fail(_line(item), key_path, f"expected a path pattern, got {_show(item)}")
            pattern: str = item.value
            if not pattern.startswith("/"):
                self.fail(_line(item), key_path, f"path must start with '/': {_show(item)}")
            if "?" in pattern:
                self.fail(_line(item), key_path, f"path cannot contain a query: {_show(item)}")
            try:
                normal = normalize_path(pattern)
            except AmbiguousPathError as e:
                self.fail(_line(item), key_path, f"ambiguous path {_show(item)}: {e}")
            if normal != pattern:
                # Requests are normalized before matching, so this pattern could never match as written.
                self.fail(_line(item), key_path, f"path {_show(item)} is not in normal form (write {normal!r})")
            paths.append(pattern)
        return tuple(paths)
