"""The decision core: `Matcher(policy).decide(Request) -> Decision` (pure, no I/O).

Theory of operation. A request is first brought into canonical form: the host through `normalize_host`
(IP literals and invalid names are denied outright, since a policy can only name hosts), the request target
through `normalize_path` (anything a server could read two ways is `ambiguous-path`, unless a `raw_paths`
rule matches it as sent).

Finding the rules for a host never scans the policy. `Matcher` builds two dicts once: `_at` maps a host to the
rules naming exactly it (`example.com`, and `**.example.com` for its apex), `_under` maps a suffix to the rules
naming the hosts strictly under it (`*.example.com`, `**.example.com`; `*` and `**` under the empty
suffix). A request looks up its host in `_at` and each of its label suffixes in `_under`: O(labels) dict
lookups, whatever the number of rules. Allow and deny rules live in the same buckets.

Deny wins: a deny rule matching the request denies it (`denied-by-rule`, naming the rule) whatever allows it.
What a deny rule cannot check counts as a match, so it fails closed: a non-HTTP stream matches a deny rule
for its host and port whatever the rule's methods, paths and query, and an ambiguous target matches whatever
its paths. Its paths match any reading a server may give the path (`path_readings`: ';params' cut, '%3B'
decoded, with or without the trailing slash; see `_DenyPaths`), as its query matches any reading of the
query; an allow rule matches the path as forwarded, nothing more. Otherwise the allow rules are narrowed by
port, then method, then path, then query, and the first survivor in policy order allows the request. When
none survives, the deny reason names the step that emptied the set, so an audit line says *why*. An allowed
HTTP decision carries the target to forward: the normalized one (the server sees exactly what was checked),
or for a raw match the target as sent.

A stream that is not HTTP (method None) carries no method, path or query, so only a rule that restricts none
of them may allow it.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from boundary.policy.canon import (
    AmbiguousPathError,
    QueryReading,
    encode_disallowed_characters,
    has_one_segment_reading,
    is_canonical_host,
    is_ip_literal,
    normalize_host,
    normalize_path,
    other_slash,
    query_readings,
    raw_target_matchable,
    segment_readings,
)
from boundary.policy.model import Policy, Rule
from boundary.policy.patterns import domain_pattern_parts
from boundary.reasons import Reason

__all__ = [
    "AmbiguousPathError",
    "Decision",
    "Matcher",
    "Request",
    "deny",
    "normalize_path",
]


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
    reason: Reason
    rule: Rule | None = None  # the rule that allowed it, or the deny rule that denied it
    path: str | None = None  # target to forward (allowed HTTP requests only)

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


def deny(reason: Reason) -> Decision:
    return Decision("deny", reason)


@dataclass(frozen=True, slots=True)
class _Bucket:
    """The rules of one index key, in policy order, with what the dial gate needs precomputed."""

    allow: tuple[tuple[int, Rule], ...]  # (position in the policy, rule)
    deny: tuple[tuple[int, Rule], ...]
    allow_ports: frozenset[int]
    blocked_ports: frozenset[int] | None  # ports an unconditional deny rule closes; None = every port


def _bucket(allow: list[tuple[int, Rule]], deny_: list[tuple[int, Rule]]) -> _Bucket:
    blocked: set[int] = set()
    for _, rule in deny_:
        if rule.unconditional:
            if rule.ports is None:
                return _Bucket(tuple(allow), tuple(deny_), _ports(allow), None)
            blocked |= rule.ports
    return _Bucket(tuple(allow), tuple(deny_), _ports(allow), frozenset(blocked))


def _ports(entries: Iterable[tuple[int, Rule]]) -> frozenset[int]:
    return frozenset(port for _, rule in entries if rule.ports is not None for port in rule.ports)


_MAX_REMEMBERED_DESTINATIONS: Final = 65536


class _DenyPaths:
    """A deny rule's paths, matched against every `path_readings` of a request's path: the
    `segment_readings`, each with either trailing slash.

    The other slash is paid for once, here: a pattern gets its *slash twin* (`/secret` -> `/secret/`, `/a/` ->
    `/a`, `/v1/*.json` -> `/v1/*.json/`) or needs none (`/admin/**`: the span takes or leaves the last ''), and
    a path is only tried against the patterns that may match a path ending as it does, so twins cost nothing.
    Only a pattern whose last segment may be empty (`/a/*`, `/a/*/`) has no exact twin: then a path is also
    tried with its other slash. Patterns without '*' (and their twins) are a set lookup.
    """

    __slots__ = ("_literals", "_other_slash", "_slashed", "_unslashed", "match_path")

    def __init__(self, rule: Rule, paths: tuple[str, ...]) -> None:
        patterns: list[str] = []
        self._other_slash = False  # some pattern has no exact twin
        for pattern in paths:
            twins = _slash_twins(pattern)
            self._other_slash = self._other_slash or twins is None
            patterns += [pattern, *(twins or ())]
        self._literals = frozenset(pattern for pattern in patterns if "*" not in pattern)
        stars = [pattern for pattern in patterns if "*" in pattern]
        # The '*' patterns that may match a path ending in '/' (a last '*' may match ''), and ending otherwise.
        slashed = tuple(pattern for pattern in stars if pattern.endswith(("/", "*")))
        unslashed = tuple(pattern for pattern in stars if not pattern.endswith("/"))
        self._slashed = replace(rule, paths=slashed) if slashed else None
        self._unslashed = (
            self._slashed if unslashed == slashed else replace(rule, paths=unslashed) if unslashed else None
        )
        # Whether one path (a reading) matches: `match_one`, or for the commonest shapes a quicker equivalent.
        self.match_path: Callable[[str], bool] = self.match_one if self._other_slash else self._match_as_written
        if not self._other_slash and not self._literals and self._slashed and self._slashed is self._unslashed:
            self.match_path = self._slashed.matches_path  # spans only ('/admin/**'): one match, as without readings
        elif not self._other_slash and not stars:
            self.match_path = self._literals.__contains__

    def match(self, readings: Iterable[str]) -> bool:
        return any(map(self.match_path, readings))

    def match_one(self, path: str) -> bool:
        return self._match_as_written(path) or (self._other_slash and self._match_as_written(other_slash(path)))

    def _match_as_written(self, path: str) -> bool:
        if path in self._literals:
            return True
        globs = self._slashed if path.endswith("/") else self._unslashed
        return globs is not None and globs.matches_path(path)


def _slash_twins(pattern: str) -> tuple[str, ...] | None:
    """The patterns that match a path exactly when `pattern` matches it with the other trailing slash, or None
    when no pattern can (its last segment may be empty). Reasoning on segments (a path has no empty segment but
    its last): the last segment of a path is taken by the pattern's last segment unless that is '**'."""
    segments = pattern.split("/")
    last = segments[-1]
    if pattern == "/":
        return ()  # no other path has '/' as its other-slash form
    if last == "**":
        while segments[-1] == "**":
            segments.pop()
        return () if len(segments) == 1 or _never_empty(segments[-1]) else None
    if last == "":
        return (pattern[:-1],) if _never_empty(segments[-2]) else None
    return (pattern + "/",) if _never_empty(last) else None


def _never_empty(segment_pattern: str) -> bool:
    """Whether a segment pattern cannot match an empty segment: it has a literal character (not only '*'s)."""
    return bool(segment_pattern.strip("*"))


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The rules for one destination (host, port), in policy order."""

    allows: tuple[Rule, ...]
    denies: tuple[Rule, ...]
    unknown: Decision  # the decision when no allow rule is left
    deny_checks: tuple[tuple[Rule, _DenyPaths | None], ...]  # each deny rule with its paths (None: any path)


class Matcher:
    """Decides requests against one policy; build once per policy (it indexes the rules by host)."""

    __slots__ = ("_at", "_candidates_by_destination", "_deny_paths", "_under", "policy")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        at: dict[str, tuple[list[tuple[int, Rule]], list[tuple[int, Rule]]]] = {}
        under: dict[str, tuple[list[tuple[int, Rule]], list[tuple[int, Rule]]]] = {}
        # Deny rules are numbered after the allow rules; only the order within each list matters.
        numbered = [*enumerate(policy.rules), *enumerate(policy.deny, start=len(policy.rules))]
        for position, rule in numbered:
            side = 0 if rule.action == "allow" else 1
            for pattern in rule.domains:
                kind, suffix = domain_pattern_parts(pattern)
                if kind != "sub":
                    _add(at, suffix, side, position, rule)
                if kind != "exact":
                    _add(under, suffix, side, position, rule)
        self._at = {key: _bucket(*lists) for key, lists in at.items()}
        self._under = {key: _bucket(*lists) for key, lists in under.items()}
        self._candidates_by_destination: dict[tuple[str, int], _Candidates | Decision] = {}
        # By identity: the policy keeps its rules alive, and a rule's fields need not be hashable.
        self._deny_paths = {
            id(rule): None if rule.paths is None else _DenyPaths(rule, rule.paths)
            for _, rule in numbered
            if rule.action != "allow"
        }

    def _buckets(self, host: str) -> list[_Bucket]:
        """The buckets of every index key naming `host`: O(number of labels) dict lookups."""
        buckets = []
        bucket = self._at.get(host)
        if bucket is not None:
            buckets.append(bucket)
        dot = host.find(".")
        while dot >= 0:
            bucket = self._under.get(host[dot + 1 :])
            if bucket is not None:
                buckets.append(bucket)
            dot = host.find(".", dot + 1)
        bucket = self._under.get("")
        if bucket is not None:
            buckets.append(bucket)
        return buckets

    def _candidates(self, host: str, port: int) -> _Candidates | Decision:
        """The rules that could decide a request to `host`:`port`, remembered per destination (an agent talks
        to few of them, many times); a `Decision` for a host no rule can name."""
        key = (host, port)
        found = self._candidates_by_destination.get(key)
        if found is not None:
            return found
        canonical = _host_key(host)
        if isinstance(canonical, Decision):
            found = canonical
        else:
            buckets = self._buckets(canonical)
            allow_all = _merged(bucket.allow for bucket in buckets)
            deny_all = _merged(bucket.deny for bucket in buckets)
            denies = tuple(rule for rule in deny_all if rule.ports is None or port in rule.ports)
            found = _Candidates(
                allows=tuple(rule for rule in allow_all if rule.ports is not None and port in rule.ports),
                denies=denies,
                # The reason when nothing allows the request before its method is even looked at.
                unknown=deny(Reason.PORT_NOT_ALLOWED if allow_all else Reason.NO_MATCHING_RULE),
                deny_checks=tuple((rule, self._deny_paths[id(rule)]) for rule in denies),
            )
        if len(self._candidates_by_destination) >= _MAX_REMEMBERED_DESTINATIONS:
            self._candidates_by_destination.clear()  # bounded memory whatever the client asks for
        self._candidates_by_destination[key] = found
        return found

    def decide(self, request: Request) -> Decision:
        candidates = self._candidates(request.host, request.port)
        if isinstance(candidates, Decision):
            return candidates
        allows, denies, unknown = candidates.allows, candidates.denies, candidates.unknown
        if request.method is None:
            if denies:
                return Decision("deny", Reason.DENIED_BY_RULE, denies[0])
            if not allows:
                return unknown
            for rule in allows:
                if rule.unconditional:
                    return Decision("allow", Reason.ALLOWED, rule)
            return deny(Reason.NOT_HTTP)
        if not allows and not denies:
            return unknown
        if request.path is None:
            return deny(Reason.AMBIGUOUS_PATH)
        try:
            target = normalize_path(request.path)
        except AmbiguousPathError:
            return self._decide_raw(request.method, request.path, allows, denies)
        path, _, query_text = target.partition("?")
        query = _Query(query_text)
        method = request.method
        if denies:
            # The common case, one segment reading: only the trailing slash may read otherwise.
            if ";" not in path and ("%" not in path or has_one_segment_reading(path)):
                for rule, paths in candidates.deny_checks:
                    if (
                        _method_ok(rule, method)
                        and (paths is None or paths.match_path(path))
                        and query.satisfies(rule, loose=True)
                    ):
                        return Decision("deny", Reason.DENIED_BY_RULE, rule)
            else:
                denier = _denier(candidates.deny_checks, method, segment_readings(path), query)
                if denier is not None:
                    return Decision("deny", Reason.DENIED_BY_RULE, denier)
        if not allows:
            return unknown
        # Methods are compared exactly: "get" is not GET to every server, and any mismatch only denies.
        by_method = [rule for rule in allows if _method_ok(rule, method)]
        if not by_method:
            return deny(Reason.METHOD_NOT_ALLOWED)
        by_path = [rule for rule in by_method if rule.matches_path(path)]
        if not by_path:
            return deny(Reason.PATH_NOT_ALLOWED)
        for rule in by_path:
            if query.satisfies(rule):
                return Decision("allow", Reason.ALLOWED, rule, target)
        return deny(Reason.QUERY_NOT_ALLOWED)

    @staticmethod
    def _decide_raw(method: str, target: str, allows: Sequence[Rule], denies: Sequence[Rule]) -> Decision:
        """A target normalize_path refused: only a `raw_paths` rule may allow it, matched as sent, and then
        every deny rule for the host, port and method counts as matching its path."""
        if not raw_target_matchable(target):
            return deny(Reason.AMBIGUOUS_PATH)
        raw_path, question, query_text = target.partition("?")
        # Patterns hold these characters encoded; the server gets the target as matched.
        path = encode_disallowed_characters(raw_path)
        target = path + question + query_text
        query = _Query(query_text)
        for rule in allows:
            if _method_ok(rule, method) and rule.matches_raw_path(path) and query.satisfies(rule):
                for denier in denies:
                    if _method_ok(denier, method) and query.satisfies(denier, loose=True):
                        return Decision("deny", Reason.DENIED_BY_RULE, denier)
                return Decision("allow", Reason.ALLOWED, rule, target)
        return deny(Reason.AMBIGUOUS_PATH)

    def deny_rules(self, host: str, port: int) -> tuple[Rule, ...]:
        """The deny rules `decide` checks first for a request to `host`:`port`, in policy order."""
        candidates = self._candidates(host, port)
        return () if isinstance(candidates, Decision) else candidates.denies

    def allows_destination(self, host: str, port: int) -> bool:
        """The dial gate: some allow rule for `host` has `port`, and no deny rule without methods, paths or
        query closes it (methods, paths and queries are checked later, on each request)."""
        key = _host_key(host)
        if not isinstance(key, str):
            return False
        buckets = self._buckets(key)
        if any(bucket.blocked_ports is None or port in bucket.blocked_ports for bucket in buckets):
            return False
        return any(port in bucket.allow_ports for bucket in buckets)


def _add(
    index: dict[str, tuple[list[tuple[int, Rule]], list[tuple[int, Rule]]]],
    key: str,
    side: int,
    position: int,
    rule: Rule,
) -> None:
    entries = index.setdefault(key, ([], []))[side]
    if not entries or entries[-1][0] != position:  # one entry per rule, even if several patterns land here
        entries.append((position, rule))


def _merged(lists: Iterable[Sequence[tuple[int, Rule]]]) -> list[Rule]:
    """The rules of several buckets in policy order, each once (a rule may sit in several buckets)."""
    by_position = {position: rule for entries in lists for position, rule in entries}
    return [by_position[position] for position in sorted(by_position)]


def _method_ok(rule: Rule, method: str) -> bool:
    return rule.methods is None or method in rule.methods


class _Query:
    """A request's query string, read (`query_readings`) only if a rule with `query` asks."""

    __slots__ = ("_readings", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._readings: tuple[QueryReading, ...] | None = None

    def satisfies(self, rule: Rule, *, loose: bool = False) -> bool:
        if rule.query is None:
            return True
        if self._readings is None:
            self._readings = query_readings(self.text)
        return rule.matches_query(self._readings, loose=loose)


def _denier(
    deny_checks: Iterable[tuple[Rule, _DenyPaths | None]], method: str, readings: Sequence[str], query: _Query
) -> Rule | None:
    """The first deny rule matching the method, one of the path's `segment_readings` and (loosely) the query."""
    for rule, paths in deny_checks:
        if _method_ok(rule, method) and (paths is None or paths.match(readings)) and query.satisfies(rule, loose=True):
            return rule
    return None


def _host_key(host: str) -> str | Decision:
    """The normalized host, or the deny decision for a host no rule can name."""
    if is_canonical_host(host):
        return host
    if is_ip_literal(host):
        return deny(Reason.IP_LITERAL)
    try:
        return normalize_host(host)
    except ValueError:
        return deny(Reason.INVALID_HOST)
