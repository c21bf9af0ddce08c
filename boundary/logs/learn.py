"""Learn: audit logs -> a commented YAML policy that allows what the runs did, and no more (pure).

One rule per host, port and set of paths, listing the methods that used exactly those paths: a method seen on
one path only is never allowed on another ("a new method on a known path" stays denied). Paths are kept as
seen (without the query), generalized to `parent/*` only where two or more siblings of one parent were seen:
`/v1/*` from `/v1/a` and `/v1/b`, never `**`, never from one path. A raw stream the policy allowed becomes a
rule without methods and paths for its host and port. Hosts that are IP literals are never written (rules
cannot name them; the lines are reported). The result parses, and `boundary policy check --strict` finds
nothing to say about it.

What is learned: the lines a policy allowed (`allow`) and those audit mode would have denied (`would-deny`,
once that mode exists); denials are what the policy meant to refuse, and lines the proxy refused for identity
or protocol reasons say nothing about what the workload needs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from boundary.logs.read import Record
from boundary.policy.canon import is_ip_literal
from boundary.policy.matcher import Matcher

LEARNED_DECISIONS = frozenset({"allow", "would-deny"})


@dataclass(frozen=True, slots=True)
class Learned:
    text: str  # the policy, YAML with comments
    requests: int  # lines learned from
    skipped: tuple[str, ...]  # why lines were not learned from (one entry per kind, with its count)


@dataclass(slots=True)
class _Seen:
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(self, when: datetime) -> None:
        self.count += 1
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last


def generalize(paths: Iterable[str]) -> list[str]:
    """Paths as patterns: siblings (two or more last segments under one parent, none of them empty) become
    `parent/*`; every other path stays as it is. Sorted, each once."""
    by_parent: defaultdict[str, set[str]] = defaultdict(set)
    for path in set(paths):
        parent, _, last = path.rpartition("/")
        by_parent[parent].add(last)
    patterns: set[str] = set()
    for parent, lasts in by_parent.items():
        if len(lasts) >= 2 and "" not in lasts:
            patterns.add(f"{parent}/*")
        else:
            patterns.update(f"{parent}/{last}" for last in lasts)
    return sorted(patterns)


def learn(records: Iterable[Record], sources: Sequence[str], *, merge: str | None = None,
          known: Matcher | None = None) -> Learned:  # fmt: skip
    """The policy allowing what `records` did. With `merge` (a policy file, `known` its matcher), the output
    includes it and learns only what it does not already allow."""
    streams: dict[tuple[str, int], _Seen] = {}
    paths: defaultdict[tuple[str, int, str], dict[str, _Seen]] = defaultdict(dict)
    skipped: defaultdict[str, int] = defaultdict(int)
    learned = 0
    for record in records:
        if record.decision not in LEARNED_DECISIONS:
            continue
        if record.host is None or record.port is None or record.method == "CONNECT":
            skipped["lines without a destination or for a tunnel (CONNECT)"] += 1
            continue
        if is_ip_literal(record.host):
            skipped[f"requests to IP addresses, which rules cannot name ({record.host})"] += 1
            continue
        if known is not None and known.decide(record.request()).allowed:
            continue
        learned += 1
        if record.method is None:
            streams.setdefault((record.host, record.port), _Seen()).add(record.ts)
        else:
            path = (record.path or "/").partition("?")[0]
            paths[(record.host, record.port, record.method)].setdefault(path, _Seen()).add(record.ts)
    rules = _rules(streams, paths)
    header = [f"# Learned by `boundary learn` from {', '.join(sources)}: {learned} requests."]
    header.append("# Review it before you enforce it: it allows what the runs did, no more.")
    lines = [*header, "version: 1"]
    if merge is not None:
        lines.append(f"include: [{json.dumps(merge)}]  # what it allowed already stays allowed")
    lines.append("allow:" if rules else "allow: []")
    lines.extend(rules)
    return Learned("\n".join(lines) + "\n", learned, tuple(f"{n} {why}" for why, n in sorted(skipped.items())))


def _rules(streams: dict[tuple[str, int], _Seen], paths: dict[tuple[str, int, str], dict[str, _Seen]]) -> list[str]:
    # (host, port, patterns) -> methods, and what was seen of them
    grouped: defaultdict[tuple[str, int, tuple[str, ...]], list[tuple[str, _Seen]]] = defaultdict(list)
    for (host, port, method), seen_paths in paths.items():
        grouped[(host, port, tuple(generalize(seen_paths)))].append((method, _merged(seen_paths.values())))
    out: list[str] = []
    keys = sorted({(h, p) for h, p, _ in grouped} | set(streams))
    for host, port in keys:
        if (host, port) in streams:
            out += _rule(host, port, None, None, [streams[(host, port)]])
        for (h, p, patterns), methods in sorted(grouped.items()):
            if (h, p) == (host, port) and (host, port) not in streams:
                out += _rule(host, port, sorted(m for m, _ in methods), patterns, [s for _, s in methods])
    return out


def _merged(seen: Iterable[_Seen]) -> _Seen:
    kinds = list(seen)
    firsts = [s.first for s in kinds if s.first is not None]
    lasts = [s.last for s in kinds if s.last is not None]
    return _Seen(sum(s.count for s in kinds), min(firsts, default=None), max(lasts, default=None))


def _rule(host: str, port: int, methods: list[str] | None, patterns: Sequence[str] | None,
          seen: list[_Seen]) -> list[str]:  # fmt: skip
    total = _merged(seen)
    assert total.first is not None and total.last is not None
    lines = [f"  # {total.count} requests, first {_time(total.first)}, last {_time(total.last)}"]
    lines.append(f"  - domain: {host}")
    lines.append(f"    ports: [{port}]")
    if methods is not None:
        lines.append(f"    methods: [{', '.join(methods)}]")
    if patterns is not None:
        lines.append(f"    paths: [{', '.join(json.dumps(p) for p in patterns)}]")
    return lines


def _time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
