"""Patterns rules are written in: domain patterns (`example.com`, `*.example.com`, `**.example.com`, and
which of them are too broad) and path and value globs (`*` within a segment, `**` segments), pre-split so a
match is a linear scan (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from boundary.policy.canon import IDNA_DOTS, RAW_MARK, normalize_host

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
    text = text.translate(IDNA_DOTS)
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
# Path and value patterns

# A pattern pre-split into segments, each split at its '*'s (a linear scan per segment; a regex with several
# '[^/]*' per segment backtracks polynomially on a hostile path). None stands for a whole-segment '**'.
type GlobParts = tuple[str, ...]
type _Glob = tuple[GlobParts | None, ...]
_SPAN: Final = "**"


# (the glob if it has no '**'; its prefix if its only '**' is the last segment, the commonest shape; the glob)
type CompiledGlob = tuple[tuple[GlobParts, ...] | None, tuple[GlobParts, ...] | None, _Glob]


def compile_glob(segments: Sequence[str]) -> CompiledGlob:
    glob = tuple(None if segment == _SPAN else tuple(segment.split("*")) for segment in segments)
    flat = tuple(parts for parts in glob if parts is not None)
    if len(flat) == len(glob):
        return flat, None, glob
    return None, (flat if len(flat) == len(glob) - 1 and glob[-1] is None else None), glob


def glob_matches(compiled: CompiledGlob, segments: Sequence[str]) -> bool:
    flat, prefix, glob = compiled
    if flat is not None:
        return len(flat) == len(segments) and all(map(_segment_matches, flat, segments))
    if prefix is not None:
        return (
            len(segments) >= len(prefix)
            and all(map(_segment_matches, prefix, segments))
            and not any(segment.startswith(RAW_MARK) for segment in segments[len(prefix) :])
        )
    # '**' matches any run of segments, so track every pattern position a prefix of the path can reach.
    size = len(glob)
    states = _skip_spans({0}, glob)
    for segment in segments:
        plain = not segment.startswith(RAW_MARK)
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


def _segment_matches(parts: GlobParts, segment: str) -> bool:
    if len(parts) == 1:
        return segment == parts[0]
    return not segment.startswith(RAW_MARK) and star_matches(parts, segment)


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
