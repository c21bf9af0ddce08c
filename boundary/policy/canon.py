"""Canonical forms: what a request names, brought into the one form rules are written in (pure).

Hosts (`normalize_host`, `is_ip_literal`), method and field-name tokens, request targets (`normalize_path`,
the deny rules' `path_readings`, raw matching of what normalization refuses) and query strings
(`query_readings`). The parser checks that a policy names things in these forms, and the matcher brings every
request into them before comparing. Anything with more than one plausible reading is refused, or, where
refusing is impossible (a query string, a path's parameters), read every plausible way: an allow rule must
match all readings, a deny rule any of them.
"""

from __future__ import annotations

import encodings.idna
import ipaddress
import re
import socket
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Final
from urllib.parse import unquote, unquote_plus

# ----------------------------------------------------------------------------------------------------------
# Host names

# IDNA treats these as label separators too; a client given "a。b" looks up "a.b".
IDNA_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
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
    name = host.translate(IDNA_DOTS).lower()
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
RAW_MARK: Final = "\x01"


def raw_target_matchable(target: str) -> bool:
    """Whether a target normalize_path refuses may still be matched raw: visible ASCII from '/', no fragment."""
    return target.startswith("/") and "#" not in target and _VISIBLE_ASCII.fullmatch(target) is not None


def raw_segments(path: str) -> list[str]:
    segments = []
    for segment in path.split("/"):
        for index, piece in enumerate(_RAW_TOKEN.split(segment)):
            if index % 2:  # a separator-like token
                segments.append(RAW_MARK + piece.upper())
            elif _ENCODED_DOT.sub(".", _RAW_PARAMETERS.sub("", piece)) in (".", ".."):
                segments.append(RAW_MARK + piece)
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
