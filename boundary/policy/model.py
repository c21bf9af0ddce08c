"""The parsed policy: frozen `Rule`s, `Limits` and the `Policy` that holds them (pure).

Everything the hot path needs is computed when a rule is built, once: hosts normalized, methods upper-cased,
path and query patterns pre-split for matching.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from boundary.policy.canon import QueryReading, raw_segments
from boundary.policy.patterns import (
    CompiledGlob,
    GlobParts,
    compile_glob,
    domain_pattern_matches,
    glob_matches,
    star_matches,
)

DEFAULT_PORTS: Final[frozenset[int]] = frozenset({80, 443})
KNOWN_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
ANY_METHOD: Final = "*"

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
    _globs: tuple[CompiledGlob, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _raw_globs: tuple[CompiledGlob, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _query_globs: tuple[tuple[str, GlobParts], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.source)
        if not self.domains:
            object.__setattr__(self, "domains", (self.domain,))
        if self.paths is not None:
            globs = tuple(compile_glob(pattern.split("/")) for pattern in self.paths)
            object.__setattr__(self, "_globs", globs)
            if self.raw_paths:
                raw_globs = tuple(compile_glob(raw_segments(pattern)) for pattern in self.paths)
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
        return any(glob_matches(glob, segments) for glob in self._globs)

    def matches_raw_path(self, path: str) -> bool:
        """Whether a `raw_paths` rule admits a path normalize_path refused (as sent, without the query; see
        `raw_target_matchable`). Wildcards never match an encoded '/', '\\' or NUL, a '\\', or a dot segment."""
        if not self.raw_paths:
            return False
        if self._raw_globs is None:
            return True
        segments = raw_segments(path)
        return any(glob_matches(glob, segments) for glob in self._raw_globs)

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
