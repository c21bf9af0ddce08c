"""Policy files: strict YAML text -> a frozen, validated `Policy` (pure; only `load_policy` touches files).

Theory of operation. The YAML is *composed*, not loaded: we walk PyYAML's node graph ourselves so every value
keeps its line number and duplicate keys (which a plain load silently collapses to the last one) are caught.
The language is data: `POLICY_TABLE`, `RULE_TABLE`, `DENY_RULE_TABLE` and `SETTINGS_TABLE` list every key
with its value type and description. The parser walks the nodes against those tables, and `boundary.schema`
renders the very same tables as JSON Schema, so the two cannot drift apart. The first problem raises
`PolicyError` in the form `FILE:LINE: key.path: message`, quoting the offending value; a problem inside an
included file names that file and line. Everything the hot path needs is computed here, once: hosts
normalized, methods upper-cased, path and query patterns pre-split for matching.

Includes are resolved by a loader callback (`load_policy` passes one that reads files relative to the
including file; `parse_policy` alone stays pure) and presets (`include: [preset:NAME]`) come from
`boundary.presets`. Included rules come before the including file's own rules; each document is included
once, and a document that includes itself, directly or not, is an error naming the cycle.

The canonical forms of hosts (`normalize_host`, `is_ip_literal`), domain patterns (`normalize_domain_pattern`)
and request targets (`normalize_path`, `query_readings`) live here too: the parser must check that a policy
names things in canonical form, and the matcher brings every request into that same form before comparing.
Anything with more than one plausible reading is refused, or, where refusing is impossible (a query string),
read every plausible way: an allow rule must match all readings, a deny rule any of them.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import os
import re
import socket
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn, TypeGuard, cast
from urllib.parse import unquote, unquote_plus

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from boundary.errors import BoundaryError, PolicyError
from boundary.presets import PRESET_PREFIX, PRESETS

__all__ = [
    "DEFAULT_PORTS",
    "DENY_RULE_TABLE",
    "KNOWN_METHODS",
    "NETWORK_TABLE",
    "POLICY_TABLE",
    "PUBLIC_SUFFIXES",
    "RULE_TABLE",
    "SETTINGS_TABLE",
    "AmbiguousPathError",
    "DomainKind",
    "IPNetwork",
    "IncludeLoader",
    "Key",
    "Policy",
    "Rule",
    "Table",
    "ValueType",
    "broad_reason",
    "compose_yaml",
    "domain_pattern_matches",
    "domain_pattern_parts",
    "encode_disallowed_characters",
    "has_one_segment_reading",
    "is_canonical_host",
    "is_ip_literal",
    "is_str_node",
    "load_policy",
    "node_line",
    "normalize_domain_pattern",
    "normalize_host",
    "normalize_path",
    "other_slash",
    "parse_policy",
    "path_readings",
    "query_readings",
    "raw_target_matchable",
    "read_text",
    "segment_readings",
    "show_node",
    "star_matches",
]

DEFAULT_PORTS: Final[frozenset[int]] = frozenset({80, 443})
KNOWN_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
ANY_METHOD: Final = "*"

# Suffixes under which anyone can register or create a name: a wildcard over one of them lets an agent reach
# hosts its owner never vetted (someone's bucket, someone's pages site). A small built-in list, not the
# Public Suffix List: single-label suffixes (`com`, `io`, ...) are caught by counting labels, so only
# multi-label ones need naming here.
PUBLIC_SUFFIXES: Final[frozenset[str]] = frozenset(
    {
        # country-code second levels
        "co.uk", "org.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "ac.uk", "gov.uk", "sch.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au", "id.au",
        "co.nz", "net.nz", "org.nz", "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "co.kr", "or.kr",
        "com.cn", "net.cn", "org.cn", "com.hk", "com.tw", "com.sg", "com.my", "co.in", "net.in", "org.in",
        "co.za", "org.za", "com.br", "net.br", "org.br", "com.mx", "com.ar", "com.tr", "co.il", "com.ua",
        # hosting and storage platforms that give every customer a name of their own
        "github.io", "githubusercontent.com", "gitlab.io", "bitbucket.io", "pages.dev", "workers.dev", "r2.dev",
        "vercel.app", "netlify.app", "herokuapp.com", "fly.dev", "onrender.com", "web.app", "firebaseapp.com",
        "appspot.com", "blogspot.com", "cloudfront.net", "amazonaws.com", "s3.amazonaws.com",
        "elasticbeanstalk.com", "azurewebsites.net", "cloudapp.net", "blob.core.windows.net",
        "web.core.windows.net", "azureedge.net", "trafficmanager.net", "storage.googleapis.com",
        "googleusercontent.com", "readthedocs.io", "ngrok.io", "ngrok.app", "ngrok-free.app",
        "trycloudflare.com", "deno.dev", "replit.dev", "repl.co", "glitch.me", "surge.sh", "loca.lt",
    }
)  # fmt: skip

# ----------------------------------------------------------------------------------------------------------
# Host names

# IDNA treats these as label separators too; a client given "a。b" looks up "a.b".
_IDNA_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LDH_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
# WHATWG URL parsers treat a host whose last label looks numeric as IPv4 (and reject it if it is not); no real
# top-level domain is numeric, so such a name can only be a confusion.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")


# A host already in normalize_host's output form: lower-case LDH labels. Checked first, since nearly every
# request names its host this way and the full path (IDNA, inet_aton) costs several times more.
_CANONICAL_HOST: Final = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def is_canonical_host(host: str) -> bool:
    """Whether `host` is its own `normalize_host` form and no IP literal (a fast check; False may still be
    a valid host in another spelling)."""
    return (
        len(host) <= 253
        and _CANONICAL_HOST.fullmatch(host) is not None
        and _NUMERIC_LABEL.fullmatch(host.rpartition(".")[2]) is None
    )


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
# Domain patterns

# exact: that host; sub: the hosts under the suffix (one or more labels more), never the suffix itself;
# apex: the suffix and the hosts under it. An empty suffix (`*`, `**`) stands for every host.
type DomainKind = Literal["exact", "sub", "apex"]

_WILDCARDS: Final = ("*", "**")


def normalize_domain_pattern(text: str) -> str:
    """Canonical form of a rule's domain; raises ValueError.

    `example.com` (that host, in `normalize_host` form), `*.example.com` (hosts under it, never the apex),
    `**.example.com` (the apex and hosts under it), `*` and `**` (every host). A wildcard is always a whole
    first label; its suffix is a host name in canonical form (IDNA as punycode).
    """
    text = text.translate(_IDNA_DOTS)
    if text in _WILDCARDS:
        return text
    head, dot, rest = text.partition(".")
    if head in _WILDCARDS and dot and "*" not in rest:
        return f"{head}.{normalize_host(rest)}"
    if "*" in text:
        raise ValueError("'*' and '**' may only form the whole first label, as in '*.example.com'")
    return normalize_host(text)


def domain_pattern_parts(pattern: str) -> tuple[DomainKind, str]:
    """(kind, suffix) of a canonical domain pattern: `**.a.b` -> ("apex", "a.b"); `*` -> ("sub", "")."""
    if pattern.startswith("**"):
        return "apex", pattern[3:]
    if pattern.startswith("*"):
        return "sub", pattern[2:]
    return "exact", pattern


def domain_pattern_matches(pattern: str, host: str) -> bool:
    """Whether a canonical domain pattern names `host` (already normalized). The matcher uses an index instead;
    this is the reference the index must agree with."""
    kind, suffix = domain_pattern_parts(pattern)
    if kind == "exact":
        return host == pattern
    return not suffix or host.endswith("." + suffix) or (kind == "apex" and host == suffix)


def broad_reason(pattern: str) -> str | None:
    """Why a canonical domain pattern is over-broad (it reaches names anyone can register), or None."""
    kind, suffix = domain_pattern_parts(pattern)
    if kind == "exact":
        return None
    if not suffix:
        return "it matches every host"
    if "." not in suffix:
        return f"it matches every name under the top-level domain {suffix!r}"
    if suffix in PUBLIC_SUFFIXES:
        return f"{suffix!r} is a public suffix, under which anyone can have a name"
    return None


# ----------------------------------------------------------------------------------------------------------
# Request heads

# RFC 9110 5.6.2: a method and a field name are tokens. Anything else is written verbatim into an HTTP/1 head
# (an h2 `:method` of `GET /admin?` becomes the request line `GET /admin? /ok HTTP/1.1`, a field name `Host `
# is another field to one server and Host to the next): one request read two ways.
TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
TOKEN_BYTES: Final = re.compile(TOKEN.pattern.encode())


# ----------------------------------------------------------------------------------------------------------
# Request targets

_UNRESERVED: Final = frozenset(string.ascii_letters + string.digits + "-._~")
# A request-target is visible ASCII only (RFC 9112 3.2); servers disagree on what anything else means.
_VISIBLE_ASCII: Final = re.compile(r"[!-~]*")
# A percent-escape, or a character encode_disallowed_characters writes as one (one pass does both).
_ESCAPE_OR_DISALLOWED: Final = re.compile(r'%([0-9A-Fa-f]{2})?|["<>\[\]^`{|}]')
_SLASHES: Final = re.compile(r"//+")
# Visible characters RFC 3986 never allows raw in a path (gen-delims '[' ']' and the ones it excludes); servers
# decode their escapes, so '/a"b' and '/a%22b' are one resource: normalize_path writes them escaped.
_DISALLOWED_IN_PATH: Final = re.compile(r'["<>\[\]^`{|}]')
# Paths normalize_path leaves as they are, recognised in one match: segments of unreserved and sub-delim
# characters that do not start with '.' (so no dot segment), no empty segment, no escape; a visible query
# without '#'.
_PLAIN_PATH: Final = re.compile(r"(?:/[A-Za-z0-9\-_~!$&'()*+,;=:@][A-Za-z0-9\-._~!$&'()*+,;=:@]*)+/?|/")
_PLAIN_QUERY: Final = re.compile(r"[!-\"$-~]*")
# Escapes a server may decode *before* splitting the path, changing which segments there are.
_SPLITTING_ESCAPES: Final = {"%2F": "encoded '/'", "%5C": "encoded '\\'", "%00": "encoded NUL"}


class AmbiguousPathError(ValueError):
    """A request target that servers could read in more than one way; it is always denied."""


def normalize_path(target: str) -> str:
    """Canonical form of a request target (`/path?query`); raises AmbiguousPathError.

    Unreserved percent-escapes are decoded, the others upper-cased, characters a path may not hold raw
    (`encode_disallowed_characters`) encoded, repeated slashes collapsed and dot segments removed (RFC 3986
    5.2.4). The query is kept verbatim: query rules match decoded values, so `"` and `%22` read alike there, and
    a client's query stays byte for byte what it sent (it may be signed). The result is what gets matched *and*
    forwarded, so the upstream server sees exactly the path that was checked.
    """
    path, question, query = target.partition("?")
    if _PLAIN_PATH.fullmatch(path) and _PLAIN_QUERY.fullmatch(query):
        return target  # the common case, already canonical: no escape, no empty or dot segment
    return _normalize_path_fully(target, path, question, query)


def _normalize_path_fully(target: str, path: str, question: str, query: str) -> str:
    if not _VISIBLE_ASCII.fullmatch(target):
        raise AmbiguousPathError("control, space or non-ASCII character")
    if "#" in target:
        raise AmbiguousPathError("fragment '#' in request target")
    if not path.startswith("/"):
        raise AmbiguousPathError("does not start with '/'")
    if "\\" in path:
        raise AmbiguousPathError("backslash")
    path = _SLASHES.sub("/", _ESCAPE_OR_DISALLOWED.sub(_canonical_escape, path))
    return _remove_dot_segments(path) + question + query


def encode_disallowed_characters(path: str) -> str:
    """`path` with the visible characters RFC 3986 does not allow raw in a path (`"<>[]^`{|}`) percent-encoded,
    as normalize_path writes them; path patterns go through it too, so `/a"b` names what `/a%22b` names."""
    if _DISALLOWED_IN_PATH.search(path) is None:
        return path
    return _DISALLOWED_IN_PATH.sub(_encoded, path)


def _encoded(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


def _canonical_escape(match: re.Match[str]) -> str:
    hex_digits = match.group(1)
    if hex_digits is None:
        if match.group() != "%":
            return _encoded(match)
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
        if (";" in segment or "%3B" in segment) and _cut_parameters(segment) in (".", ".."):
            # Servlet containers drop ";params" (some after decoding '%3B') and then resolve "..;" as "..".
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


# Deny readings. A server may route a path otherwise than as written: servlet containers (Tomcat, Jetty,
# Undertow) cut ";params" off each segment, some after decoding '%3B'; servers decode the escapes of the
# characters a segment may also hold raw (sub-delims, ':', '@'); most frameworks route '/a' and '/a/' to one
# handler. An allow rule must match the path as written (what is forwarded), but a deny rule matches every
# reading, so a denied resource stays denied whichever way the server reads it.
_PARAMETERS: Final = re.compile(r";[^/]*")
_SEGMENT_CHAR_ESCAPE: Final = re.compile(r"%(2[146-9A-C]|3[ABD]|40)")  # ! $ & ' ( ) * + , : ; = @


def path_readings(path: str) -> tuple[str, ...]:
    """Every path a server may route a normalized path (without the query) to, `path` first, each once: the
    `segment_readings`, then each with its trailing slash removed or added (`other_slash`)."""
    readings = segment_readings(path)
    return tuple(dict.fromkeys((*readings, *map(other_slash, readings))))


def segment_readings(path: str) -> tuple[str, ...]:
    """The readings of a normalized path's segments, `path` first: as written, ';params' cut, escapes decoded,
    decoded then cut, cut then decoded. Cutting may empty a segment; repeated slashes then collapse, as in
    normalize_path, which has already refused a dot segment with parameters ('..;', '.%3B')."""
    if has_one_segment_reading(path):
        return (path,)
    cut, decoded = _cut_all_parameters(path), _decode_segment_chars(path)
    if decoded == path:
        return (path, cut)
    return tuple(dict.fromkeys((path, cut, decoded, _cut_all_parameters(decoded), _decode_segment_chars(cut))))


def has_one_segment_reading(path: str) -> bool:
    """Whether `segment_readings(path)` is just `(path,)`: no ';' and no escape a server decodes to one of the
    characters a segment may hold raw (so '%20' or '%C3%A9' alone keeps a path plain)."""
    if ";" in path:
        return False
    if "%2" not in path and "%3" not in path and "%40" not in path:  # the common case, quicker than the regex
        return True
    return _SEGMENT_CHAR_ESCAPE.search(path) is None


def other_slash(path: str) -> str:
    """The path with its trailing slash removed, or added ('/' stays as it is)."""
    if path == "/":
        return path
    return path[:-1] if path.endswith("/") else path + "/"


def _cut_all_parameters(path: str) -> str:
    return _SLASHES.sub("/", _PARAMETERS.sub("", path)) if ";" in path else path


def _cut_parameters(segment: str) -> str:
    """A segment without its ';params', '%3B' read as ';'."""
    return segment.replace("%3B", ";").partition(";")[0]


def _decode_segment_chars(path: str) -> str:
    if "%" not in path:
        return path
    return _SEGMENT_CHAR_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), path)


# Raw matching (rules with `raw_paths: true`) of targets normalize_path refuses. The raw path is cut into
# segments at '/' *and* at each token a server may turn into a separator or a climb: an encoded '/', '\' or
# NUL, a backslash, and a '.' or '..' segment (also '%2e', and with ';params' or '%3Bparams'). Those tokens
# become segments of their own, marked with a byte no request target or pattern can contain, and a wildcard
# never matches a marked segment: whatever could move the request elsewhere on the server must be written
# literally.
_RAW_TOKEN: Final = re.compile(r"(%2[Ff]|%5[Cc]|%00|\\)")
_ENCODED_DOT: Final = re.compile(r"%2[Ee]")
_RAW_PARAMETERS: Final = re.compile(r"(?:;|%3[Bb]).*")
_MARK: Final = "\x01"


def raw_target_matchable(target: str) -> bool:
    """Whether a target normalize_path refuses may still be matched raw: visible ASCII from '/', no fragment."""
    return target.startswith("/") and "#" not in target and _VISIBLE_ASCII.fullmatch(target) is not None


def _raw_segments(path: str) -> list[str]:
    segments = []
    for segment in path.split("/"):
        for index, piece in enumerate(_RAW_TOKEN.split(segment)):
            if index % 2:  # a separator-like token
                segments.append(_MARK + piece.upper())
            elif _ENCODED_DOT.sub(".", _RAW_PARAMETERS.sub("", piece)) in (".", ".."):
                segments.append(_MARK + piece)
            else:
                segments.append(piece)
    return segments


# ----------------------------------------------------------------------------------------------------------
# Query strings

type QueryReading = Mapping[str, Sequence[str]]
_AMPERSAND: Final = re.compile("&")
_AMPERSAND_OR_SEMICOLON: Final = re.compile("[&;]")


def query_readings(query: str) -> tuple[QueryReading, ...]:
    """Every plausible reading of a query string: parameter name -> values, names and values percent-decoded.

    Servers disagree on two points, so each is read both ways when it arises: '+' is a space
    (form encoding) or a plus sign, and ';' separates parameters (old CGI) or is data. A parameter without '='
    has the empty value; invalid escapes stay as written; bytes that are not UTF-8 decode to lone surrogates,
    so different bytes never compare equal.
    """
    separators = [_AMPERSAND, _AMPERSAND_OR_SEMICOLON] if ";" in query else [_AMPERSAND]
    decoders: list[Callable[[str], str]] = [_decode, _decode_plus] if "+" in query else [_decode]
    readings: list[QueryReading] = []
    for separator in separators:
        pairs = [piece.partition("=") for piece in separator.split(query) if piece]
        for decode in decoders:
            reading: dict[str, list[str]] = {}
            for name, _, value in pairs:
                reading.setdefault(decode(name), []).append(decode(value))
            readings.append(reading)
    return tuple(readings)


def _decode(text: str) -> str:
    return unquote(text, errors="surrogateescape")


def _decode_plus(text: str) -> str:
    return unquote_plus(text, errors="surrogateescape")


# ----------------------------------------------------------------------------------------------------------
# Path and value patterns

# A pattern pre-split into segments, each split at its '*'s (a linear scan per segment; a regex with several
# '[^/]*' per segment backtracks polynomially on a hostile path). None stands for a whole-segment '**'.
type _Parts = tuple[str, ...]
type _Glob = tuple[_Parts | None, ...]
_SPAN: Final = "**"


# (the glob if it has no '**'; its prefix if its only '**' is the last segment, the commonest shape; the glob)
type _Compiled = tuple[tuple[_Parts, ...] | None, tuple[_Parts, ...] | None, _Glob]


def _compile_glob(segments: Sequence[str]) -> _Compiled:
    glob = tuple(None if segment == _SPAN else tuple(segment.split("*")) for segment in segments)
    flat = tuple(parts for parts in glob if parts is not None)
    if len(flat) == len(glob):
        return flat, None, glob
    return None, (flat if len(flat) == len(glob) - 1 and glob[-1] is None else None), glob


def _glob_matches(compiled: _Compiled, segments: Sequence[str]) -> bool:
    flat, prefix, glob = compiled
    if flat is not None:
        return len(flat) == len(segments) and all(map(_segment_matches, flat, segments))
    if prefix is not None:
        return (
            len(segments) >= len(prefix)
            and all(map(_segment_matches, prefix, segments))
            and not any(segment.startswith(_MARK) for segment in segments[len(prefix) :])
        )
    # '**' matches any run of segments, so track every pattern position a prefix of the path can reach.
    size = len(glob)
    states = _skip_spans({0}, glob)
    for segment in segments:
        plain = not segment.startswith(_MARK)
        following = set()
        for position in states:
            if position < size:
                parts = glob[position]
                if parts is None:
                    if plain:
                        following.add(position)
                elif _segment_matches(parts, segment):
                    following.add(position + 1)
        if not following:
            return False
        states = _skip_spans(following, glob)
    return size in states


def _skip_spans(states: set[int], glob: _Glob) -> set[int]:
    """The states plus every position reachable by letting '**' match nothing."""
    reached = set(states)
    for position in sorted(states):
        while position < len(glob) and glob[position] is None:
            position += 1
            reached.add(position)
    return reached


def _segment_matches(parts: _Parts, segment: str) -> bool:
    if len(parts) == 1:
        return segment == parts[0]
    return not segment.startswith(_MARK) and star_matches(parts, segment)


def star_matches(parts: Sequence[str], text: str) -> bool:
    """Whether `text` is the literal parts in order with anything between them: `parts` is a pattern split at
    its '*'s, and '*' matches any run of characters (path patterns apply it within one segment)."""
    if len(parts) == 1:
        return text == parts[0]
    head, *middle, tail = parts
    if len(text) < len(head) + len(tail) or not (text.startswith(head) and text.endswith(tail)):
        return False
    # '*' only stands for "anything", so taking each literal at its leftmost place never loses a match.
    position, end = len(head), len(text) - len(tail)
    for literal in middle:
        found = text.find(literal, position, end)
        if found < 0:
            return False
        position = found + len(literal)
    return True


# ----------------------------------------------------------------------------------------------------------
# The policy objects


@dataclass(frozen=True, slots=True)
class Rule:
    """One `allow` or `deny` entry. `parse_policy` validates and normalizes every field; build one directly only
    from values already in that form. Only `domain` ... `source` are needed; the rest default to what a rule
    that does not mention them means."""

    domain: str  # the first domain pattern (`normalize_domain_pattern`); all of them are in `domains`
    ports: frozenset[int] | None  # None = every port (a deny rule without `ports`)
    methods: frozenset[str] | None  # upper-case; None = any method
    paths: tuple[str, ...] | None  # patterns as written ('*' within a segment, '**' segments); None = any
    source: str  # "FILE:LINE" where the rule starts
    id: str = ""  # shown in audit lines and 403s; "" = `source`
    domains: tuple[str, ...] = ()  # every domain pattern; () = (domain,)
    query: tuple[tuple[str, str], ...] | None = None  # (parameter, value pattern) pairs; None = any query
    raw_paths: bool = False  # may match ambiguous targets raw
    allow_broad: bool = False  # over-broad domain patterns accepted on purpose
    action: Literal["allow", "deny"] = "allow"
    comment: str | None = None
    _globs: tuple[_Compiled, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _raw_globs: tuple[_Compiled, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _query_globs: tuple[tuple[str, _Parts], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.source)
        if not self.domains:
            object.__setattr__(self, "domains", (self.domain,))
        if self.paths is not None:
            globs = tuple(_compile_glob(pattern.split("/")) for pattern in self.paths)
            object.__setattr__(self, "_globs", globs)
            if self.raw_paths:
                raw_globs = tuple(_compile_glob(_raw_segments(pattern)) for pattern in self.paths)
                object.__setattr__(self, "_raw_globs", raw_globs)
        if self.query is not None:
            object.__setattr__(self, "_query_globs", tuple((n, tuple(v.split("*"))) for n, v in self.query))

    @property
    def unconditional(self) -> bool:
        """Whether the rule names only hosts and ports, so it decides non-HTTP streams too."""
        return self.methods is None and self.paths is None and self.query is None

    def matches_host(self, host: str) -> bool:
        """Whether one of the domain patterns names `host` (normalized)."""
        return any(domain_pattern_matches(pattern, host) for pattern in self.domains)

    def matches_path(self, path: str) -> bool:
        """Whether this rule's path patterns admit `path` (already normalized, without the query)."""
        if self._globs is None:
            return True
        segments = path.split("/")
        return any(_glob_matches(glob, segments) for glob in self._globs)

    def matches_raw_path(self, path: str) -> bool:
        """Whether a `raw_paths` rule admits a path normalize_path refused (as sent, without the query; see
        `raw_target_matchable`). Wildcards never match an encoded '/', '\\' or NUL, a '\\', or a dot segment."""
        if not self.raw_paths:
            return False
        if self._raw_globs is None:
            return True
        segments = _raw_segments(path)
        return any(_glob_matches(glob, segments) for glob in self._raw_globs)

    def matches_query(self, readings: Sequence[QueryReading], *, loose: bool = False) -> bool:
        """Whether the query (its `query_readings`) satisfies this rule's `query`.

        Strict (allow rules): in every reading, each named parameter is present and every one of its values
        matches. Loose (deny rules): in some reading, each named parameter has some value that matches.
        """
        if self.query is None:
            return True
        if loose:
            return any(
                all(
                    any(star_matches(glob, value) for value in reading.get(name, ()))
                    for name, glob in self._query_globs
                )
                for reading in readings
            )
        return all(
            all(
                bool(values := reading.get(name, ())) and all(star_matches(glob, value) for value in values)
                for name, glob in self._query_globs
            )
            for reading in readings
        )


type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# What a request head may hold before the proxy refuses it with 431 (`limits:`): the request line and every
# field, each counted with its CRLF; h2 header lists are held to the same bytes (as HPACK counts them).
DEFAULT_REQUEST_HEAD: Final = 65536
DEFAULT_REQUEST_HEADERS: Final = 256
REQUEST_HEAD_RANGE: Final = (4096, 16 * 1024 * 1024)
REQUEST_HEADERS_RANGE: Final = (1, 10000)


@dataclass(frozen=True, slots=True)
class Limits:
    """The policy's `limits`: what the proxy holds in memory for one request head."""

    request_head: int = DEFAULT_REQUEST_HEAD  # bytes
    request_headers: int = DEFAULT_REQUEST_HEADERS  # header fields


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]  # the allow rules, in decision order: included documents' first
    source: str  # file name as given
    deny: tuple[Rule, ...] = ()  # the deny rules, in the same order
    includes: tuple[str, ...] = ()  # every document included (file names, `preset:NAME`), in order
    allow_private: tuple[IPNetwork, ...] = ()  # `network.allow_private` of every document, in order
    limits: Limits = Limits()  # the top document's `limits`


# ----------------------------------------------------------------------------------------------------------
# The language as data: value types and key tables

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
_BOOL: Final = "tag:yaml.org,2002:bool"
_NULL: Final = "tag:yaml.org,2002:null"
# YAML 1.1 also reads 0755, 0x1bb, 1_000 and 4:20 as integers; a port is written in plain decimal.
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")
_MAX_INCLUDE_DEPTH: Final = 16

# load(reference as written, source of the including document) -> (source of the included document, its text).
# The returned source names the document in errors and rule sources, and identifies it for include-once and
# cycle detection. May raise OSError or UnicodeDecodeError.
type IncludeLoader = Callable[[str, str], tuple[str, str]]


class ValueType[T](ABC):
    """How one YAML value is checked and converted (`parse`), and the JSON Schema that describes it."""

    @abstractmethod
    def parse(self, fields: _Fields, node: Node, at: str) -> T:
        """The value of `node` at key path `at`; `fields` holds the enclosing mapping and its document."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12) of what `parse` accepts; a superset where JSON Schema cannot say more."""


@dataclass(frozen=True, slots=True)
class Key[T]:
    """One key of a mapping: its name, value type and the description editors and docs show."""

    name: str
    type: ValueType[T]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """The keys a mapping may have. Unknown and duplicate keys are errors; keys are parsed in table order."""

    keys: tuple[Key[Any], ...]
    expected: str  # what an error calls a value that is no mapping: "a mapping with 'domain'"
    action: Literal["allow", "deny"] | None = None  # for rule tables
    exactly_one: tuple[str, ...] = ()  # keys of which exactly one must be given
    elsewhere: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # key -> why not here

    def read(self, doc: _Doc, node: Node, at: str) -> _Fields:
        if not isinstance(node, MappingNode):
            doc.fail(node_line(node), at, f"expected {self.expected}, got {show_node(node)}")
        names = {key.name for key in self.keys}
        nodes: dict[str, Node] = {}
        first_seen: dict[str, int] = {}
        for key, value in node.value:
            if not is_str_node(key):
                doc.fail(node_line(key), at, f"expected a string key, got {show_node(key)}")
            name = key.value
            if name in first_seen:
                doc.fail(node_line(key), at, f"duplicate key {name!r} (first on line {first_seen[name]})")
            if name not in names:
                hint = f" ({self.elsewhere[name]})" if name in self.elsewhere else ""
                doc.fail(node_line(key), at, f"unknown key {name!r}{hint}")
            first_seen[name] = node_line(key)
            nodes[name] = value
        for required in self.keys:
            if required.required and required.name not in nodes:
                doc.fail(node_line(node), at, f"missing required key {required.name!r}")
        if self.exactly_one:
            given = sorted((first_seen[name], name) for name in self.exactly_one if name in nodes)
            if not given:
                doc.fail(node_line(node), at, "missing required key " + " or ".join(map(repr, self.exactly_one)))
            if len(given) > 1:
                doc.fail(given[1][0], at, "use only one of " + " and ".join(repr(name) for _, name in given))
        fields = _Fields(doc, nodes, at, node_line(node), self.action)
        for key in self.keys:
            fields.get(key)
        return fields

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {key.name: {"description": key.description, **key.type.schema()} for key in self.keys},
            "additionalProperties": False,
        }
        required = [key.name for key in self.keys if key.required]
        if required:
            schema["required"] = required
        if self.exactly_one:
            schema["oneOf"] = [{"required": [name]} for name in self.exactly_one]
        return schema


class _Doc:
    """One document being parsed: its source name and how its errors read."""

    __slots__ = ("included", "preset", "rules_seen", "source")

    def __init__(self, source: str, *, preset: bool, included: bool) -> None:
        self.source = source
        self.preset = preset
        self.included = included
        self.rules_seen = 0

    def fail(self, line: int, at: str, message: str) -> NoReturn:
        where = f"{self.source}:{line}: {at}: " if at else f"{self.source}:{line}: "
        raise PolicyError(where + message)

    def default_id(self, line: int) -> str:
        """FILE:LINE of the rule; in a preset, `preset:NAME/N` for its N-th rule."""
        self.rules_seen += 1
        return f"{self.source}/{self.rules_seen}" if self.preset else f"{self.source}:{line}"

    def compose(self, text: str) -> Node | None:
        return compose_yaml(text, lambda line, message: self.fail(line, "", message))


class _Fields:
    """The keys of one mapping node, each parsed on first use: a key's type may consult its siblings."""

    __slots__ = ("_nodes", "_values", "action", "at", "doc", "line")

    def __init__(
        self, doc: _Doc, nodes: dict[str, Node], at: str, line: int, action: Literal["allow", "deny"] | None
    ) -> None:
        self.doc = doc
        self.at = at
        self.line = line
        self.action = action
        self._nodes = nodes
        self._values: dict[str, object] = {}

    def get[T](self, key: Key[T]) -> T | None:
        if key.name in self._values:
            return cast("T", self._values[key.name])
        node = self._nodes.get(key.name)
        if node is None:
            return None
        value = key.type.parse(self, node, f"{self.at}.{key.name}" if self.at else key.name)
        self._values[key.name] = value
        return value

    def line_of(self, name: str) -> int:
        return node_line(self._nodes[name])


# YAML nodes, shared with `policytool` (cases files)


def compose_yaml(text: str, fail: Callable[[int, str], NoReturn]) -> Node | None:
    """The node tree of `text` (None if it holds no document); invalid YAML is `fail(line, message)`."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context
        if e.problem and e.context:
            problem = f"{e.problem} ({e.context})"
        fail(mark.line + 1 if mark else 1, f"invalid YAML: {problem}")
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        fail(line, f"invalid YAML: unacceptable character #x{e.character:04x}: {e.reason}")
    except RecursionError:  # the composer recurses once per nesting level
        fail(1, "invalid YAML: nested too deeply")


def node_line(node: Node) -> int:
    """The 1-based line where `node` starts."""
    return int(node.start_mark.line) + 1


def show_node(node: Node) -> str:
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


def is_str_node(node: Node) -> TypeGuard[ScalarNode]:
    """A string scalar, quoted or not (YAML 1.1 reads `yes`, `1` and `~` as other types)."""
    return isinstance(node, ScalarNode) and node.tag == _STR


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


class VersionType(ValueType[int]):
    def parse(self, fields: _Fields, node: Node, at: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == _INT and node.value == "1"):
            fields.doc.fail(node_line(node), at, f"unsupported version {show_node(node)} (expected 1)")
        return 1

    def schema(self) -> dict[str, Any]:
        return {"const": 1}


class FlagType(ValueType[bool]):
    def parse(self, fields: _Fields, node: Node, at: str) -> bool:
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            fields.doc.fail(node_line(node), at, f"expected true or false, got {show_node(node)}")
        return str(node.value).lower() in ("true", "yes", "on")

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class CommentType(ValueType[str]):
    def parse(self, fields: _Fields, node: Node, at: str) -> str:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected a comment (a string), got {show_node(node)}")
        return str(node.value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


class IdType(ValueType[str]):
    def parse(self, fields: _Fields, node: Node, at: str) -> str:
        if not is_str_node(node):
            fields.doc.fail(node_line(node), at, f"expected an id (a string), got {show_node(node)}")
        text = str(node.value)
        if not _ID.fullmatch(text):
            rule = "letters, digits and '._:/@+-', starting with a letter or digit, at most 100 characters"
            fields.doc.fail(node_line(node), at, f"invalid id {show_node(node)}: {rule}")
        if text.startswith(PRESET_PREFIX) and not fields.doc.preset:
            fields.doc.fail(
                node_line(node), at, f"invalid id {show_node(node)}: {PRESET_PREFIX!r} is reserved for presets"
            )
        return text

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{_ID.pattern}$", "not": {"pattern": f"^{PRESET_PREFIX}"}}


class PortType(ValueType[int]):
    def parse(self, fields: _Fields, node: Node, at: str) -> int:
        if not (isinstance(node, ScalarNode) and node.tag == _INT and _DECIMAL.fullmatch(node.value)):
            fields.doc.fail(node_line(node), at, f"expected a port number, got {show_node(node)}")
        port = int(node.value)
        if not 1 <= port <= 65535:
            fields.doc.fail(node_line(node), at, f"port {port} out of range (1-65535)")
        return port

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": 65535}


class MethodType(ValueType[str]):
    def parse(self, fields: _Fields, node: Node, at: str) -> str:
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
    def parse(self, fields: _Fields, node: Node, at: str) -> str:
        # A bare 2130706433 or 127.1 is an int or a float to YAML, and still an address to inet_aton.
        if not (isinstance(node, ScalarNode) and node.tag in (_STR, _INT, _FLOAT)):
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
    def parse(self, fields: _Fields, node: Node, at: str) -> str:
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


@dataclass(frozen=True, slots=True)
class ListType[T](ValueType[tuple[T, ...]]):
    item: ValueType[T]
    what: str  # "methods": "expected a list of methods"
    omitted: str | None = None  # why an empty list is refused ("omit 'x' to ..."); None: empty is fine
    nullable: bool = False  # whether `key:` with no value means the empty list

    def parse(self, fields: _Fields, node: Node, at: str) -> tuple[T, ...]:
        if self.nullable and _is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            fields.doc.fail(node_line(node), at, f"expected a list of {self.what}, got {show_node(node)}")
        if not node.value and self.omitted:
            fields.doc.fail(node_line(node), at, f"empty list ({self.omitted})")
        return tuple(self.item.parse(fields, item, at) for item in node.value)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": ["array", "null"] if self.nullable else "array", "items": self.item.schema()}
        if self.omitted:
            schema["minItems"] = 1
        return schema


class MethodsType(ValueType[frozenset[str] | None]):
    """A list of methods; `["*"]` means any method, the same as leaving `methods` out (None)."""

    _list: Final = ListType(MethodType(), "methods", "omit 'methods' to allow any method")

    def parse(self, fields: _Fields, node: Node, at: str) -> frozenset[str] | None:
        methods = frozenset(self._list.parse(fields, node, at))
        if ANY_METHOD not in methods:
            return methods
        if len(methods) > 1:
            fields.doc.fail(node_line(node), at, "'*' (any method) cannot be combined with other methods")
        return None

    def schema(self) -> dict[str, Any]:
        return self._list.schema()


class QueryType(ValueType[tuple[tuple[str, str], ...]]):
    def parse(self, fields: _Fields, node: Node, at: str) -> tuple[tuple[str, str], ...]:
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
class _Include:
    reference: str  # as written: a file name, or preset:NAME
    line: int
    at: str


class IncludeType(ValueType[_Include]):
    def parse(self, fields: _Fields, node: Node, at: str) -> _Include:
        if not (is_str_node(node) and node.value):
            fields.doc.fail(node_line(node), at, f"expected a file name or 'preset:NAME', got {show_node(node)}")
        reference = str(node.value)
        if reference.startswith(PRESET_PREFIX) and reference.removeprefix(PRESET_PREFIX) not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            fields.doc.fail(node_line(node), at, f"unknown preset {show_node(node)} (known presets: {known})")
        return _Include(reference, node_line(node), at)

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
    def parse(self, fields: _Fields, node: Node, at: str) -> _Settings:
        settings = SETTINGS_TABLE.read(fields.doc, node, at)
        ports = settings.get(_DEFAULT_PORTS)
        return _Settings(ports=None if ports is None else frozenset(ports))

    def schema(self) -> dict[str, Any]:
        return SETTINGS_TABLE.schema()


class NetworkRangeType(ValueType[IPNetwork]):
    def parse(self, fields: _Fields, node: Node, at: str) -> IPNetwork:
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
    def parse(self, fields: _Fields, node: Node, at: str) -> _Network:
        network = NETWORK_TABLE.read(fields.doc, node, at)
        return _Network(allow_private=network.get(_ALLOW_PRIVATE) or ())

    def schema(self) -> dict[str, Any]:
        return NETWORK_TABLE.schema()


_SIZE: Final = re.compile(r"(0|[1-9][0-9]*) ?(KiB|MiB)?")
_SIZE_UNITS: Final = {None: 1, "KiB": 1024, "MiB": 1024 * 1024}


@dataclass(frozen=True, slots=True)
class BoundedIntType(ValueType[int]):
    """A whole number in [low, high], in plain decimal; `sizes`: also a string with a KiB or MiB suffix."""

    what: str  # "a size in bytes"
    low: int
    high: int
    sizes: bool = False

    def parse(self, fields: _Fields, node: Node, at: str) -> int:
        match = None
        if isinstance(node, ScalarNode) and (node.tag == _INT or (self.sizes and node.tag == _STR)):
            match = _SIZE.fullmatch(node.value)
        if match is None:
            example = "65536 or 64KiB" if self.sizes else str(self.low)
            fields.doc.fail(node_line(node), at, f"expected {self.what} such as {example}, got {show_node(node)}")
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
        if not self.low <= value <= self.high:
            fields.doc.fail(node_line(node), at, f"{show_node(node)} out of range ({self.low}-{self.high})")
        return value

    def schema(self) -> dict[str, Any]:
        number = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if not self.sizes:
            return number
        return {"anyOf": [number, {"type": "string", "pattern": f"^{_SIZE.pattern}$"}]}


class LimitsType(ValueType[Limits]):
    def parse(self, fields: _Fields, node: Node, at: str) -> Limits:
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
class _Entry:
    """A parsed rule and where it came from, until its id is checked against every other rule's."""

    rule: Rule
    doc: _Doc
    at: str
    line: int  # of the explicit `id`, else of the rule
    explicit_id: bool


@dataclass(frozen=True, slots=True)
class RuleListType(ValueType[tuple[_Entry, ...]]):
    table: Table

    def parse(self, fields: _Fields, node: Node, at: str) -> tuple[_Entry, ...]:
        if _is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            fields.doc.fail(node_line(node), at, f"expected a list of rules, got {show_node(node)}")
        return tuple(
            _build_rule(self.table.read(fields.doc, item, f"{at}[{index}]"), fields)
            for index, item in enumerate(node.value)
        )

    def schema(self) -> dict[str, Any]:
        return {"type": ["array", "null"], "items": self.table.schema()}


def _build_rule(fields: _Fields, top: _Fields) -> _Entry:
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
    return _Entry(rule, fields.doc, fields.at, line, explicit_id is not None)


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
_INCLUDE: Final = Key(
    "include",
    ListType(IncludeType(), "files or presets", nullable=True),
    "Other policy documents whose rules come before this file's: a path relative to this file, or "
    f"`preset:NAME` for a built-in preset ({', '.join(sorted(PRESETS))}). Each document is included once; a "
    "cycle is an error. An included file keeps its own `defaults`.",
)
_DEFAULTS: Final = Key(
    "defaults", SettingsType(), "Settings for the rules of this file (not of the files it includes)."
)
_NETWORK: Final = Key(
    "network",
    NetworkType(),
    "The proxy's guard on the addresses it dials (SSRF guard): a name it resolves must lead to a public "
    "address unless `allow_private` opens the range.",
)
_ALLOW: Final = Key(
    "allow",
    RuleListType(RULE_TABLE),
    "Rules that allow requests. A request is allowed when an allow rule matches it and no deny rule does; "
    "anything else is denied.",
)
_DENY: Final = Key(
    "deny",
    RuleListType(DENY_RULE_TABLE),
    "Rules that deny requests. A matching deny rule wins over every allow rule.",
)
_LIMITS: Final = Key(
    "limits",
    LimitsType(),
    "What the proxy holds in memory for one request. For the whole run: only in the top policy file.",
)
POLICY_TABLE: Final = Table(
    keys=(_VERSION, _INCLUDE, _DEFAULTS, _NETWORK, _LIMITS, _ALLOW, _DENY),
    expected="a mapping with 'version' and 'allow'",
)


# ----------------------------------------------------------------------------------------------------------
# Parsing


def parse_policy(text: str, source: str = "<string>", load: IncludeLoader | None = None) -> Policy:
    """Parse policy YAML; raises PolicyError `SOURCE:LINE: key.path: message` on the first problem.

    `load` resolves file includes (see `IncludeLoader`); without it only presets can be included. Pure as
    long as `load` is.
    """
    return _Assembler(load).policy(text, source, source)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and parse a policy file and the files it includes (relative to the including file's directory);
    an unreadable file is a PolicyError too."""
    name = os.fspath(path)
    text = read_text(name, "policy", PolicyError)
    return _Assembler(_read_include).policy(text, name, os.path.normpath(name))


def read_text(name: str, what: str, error: type[BoundaryError]) -> str:
    """The text of the UTF-8 file `name` (a BOM dropped); unreadable, it raises `error`
    `NAME: cannot read WHAT: why`."""
    try:
        return _read_utf8(name)
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{name}: cannot read {what}: {_read_problem(e)}") from e


def _read_utf8(name: str) -> str:
    with open(name, encoding="utf-8-sig") as file:
        return file.read()


def _read_problem(e: OSError | UnicodeDecodeError) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte {e.start})"
    return str(e.strerror or e)


def _read_include(reference: str, including: str) -> tuple[str, str]:
    name = os.path.normpath(os.path.join(os.path.dirname(including), reference))
    return name, _read_utf8(name)


class _Assembler:
    """Collects the rules of a document and, depth first, of everything it includes."""

    def __init__(self, load: IncludeLoader | None) -> None:
        self.load = load
        self.allow: list[Rule] = []
        self.deny: list[Rule] = []
        self.ids: dict[str, Rule] = {}
        self.stack: list[tuple[str, str]] = []  # (identity, source) of the documents being parsed
        self.done: set[str] = set()
        self.includes: list[str] = []
        self.allow_private: dict[IPNetwork, None] = {}
        self.limits = Limits()

    def policy(self, text: str, source: str, identity: str) -> Policy:
        self.document(text, source, identity, preset=False)
        return Policy(
            tuple(self.allow),
            source,
            tuple(self.deny),
            tuple(self.includes),
            tuple(self.allow_private),
            self.limits,
        )

    def document(self, text: str, source: str, identity: str, *, preset: bool) -> None:
        doc = _Doc(source, preset=preset, included=bool(self.stack))
        root = doc.compose(text)
        if root is None or _is_null(root):
            doc.fail(1, "", "empty policy (expected 'version: 1')")
        self.stack.append((identity, source))
        fields = POLICY_TABLE.read(doc, root, "")
        for include in fields.get(_INCLUDE) or ():
            self.include(doc, include)
        for entry in (*(fields.get(_ALLOW) or ()), *(fields.get(_DENY) or ())):
            self.add(entry)
        network = fields.get(_NETWORK)
        self.allow_private.update(dict.fromkeys(network.allow_private if network else ()))
        self.limits = fields.get(_LIMITS) or self.limits
        self.stack.pop()
        self.done.add(identity)

    def include(self, doc: _Doc, include: _Include) -> None:
        reference = include.reference
        if reference.startswith(PRESET_PREFIX):
            preset = PRESETS[reference.removeprefix(PRESET_PREFIX)]
            source, text, is_preset = preset.source, preset.text, True
        else:
            if self.load is None:
                doc.fail(include.line, include.at, f"cannot include {reference!r}: no file loader (use load_policy)")
            try:
                source, text = self.load(reference, doc.source)
            except (OSError, UnicodeDecodeError) as e:
                doc.fail(include.line, include.at, f"cannot read {reference!r}: {_read_problem(e)}")
            is_preset = False
        identities = [identity for identity, _ in self.stack]
        if source in identities:
            cycle = [name for _, name in self.stack[identities.index(source) :]]
            doc.fail(include.line, include.at, "cycle: " + " -> ".join([*cycle, source]))
        if source in self.done:
            return  # included once already (a diamond, not a cycle)
        if len(self.stack) >= _MAX_INCLUDE_DEPTH:
            doc.fail(include.line, include.at, f"includes nested more than {_MAX_INCLUDE_DEPTH} deep")
        self.includes.append(source)
        self.document(text, source, source, preset=is_preset)

    def add(self, entry: _Entry) -> None:
        rule = entry.rule
        other = self.ids.get(rule.id)
        if other is not None:
            at = f"{entry.at}.id" if entry.explicit_id else entry.at
            entry.doc.fail(entry.line, at, f"duplicate id {rule.id!r} (also the id of the rule at {other.source})")
        self.ids[rule.id] = rule
        (self.allow if rule.action == "allow" else self.deny).append(rule)
