#!/usr/bin/env python3
"""Benchmark `Matcher.decide` on a big policy against a small one: the cost must not grow with the rule count.

    .venv/bin/python scripts/bench_policy.py                  # 10,000 rules vs 10, Markdown table
    .venv/bin/python scripts/bench_policy.py --rules 100000 --json

A policy of N rules is generated as YAML text and parsed by the real parser (so it is exactly what a user
could write): a realistic mix of about three rules per host (exact hosts, plus `*.` and `**.` wildcard
domains when the parser accepts them), method lists, path globs (`**` ones when the matcher gives them
their multi-segment meaning) and a few non-default ports. Requests are then drawn from it:

- hits: a request each rule allows (a host it names, one of its methods, a path its pattern matches);
- misses: an unknown host, a known host with a wrong path, a wrong method or a wrong port.

Every hit is checked to be allowed and every miss denied before anything is timed. Each `decide` call is
timed on its own with `time.perf_counter_ns` (the ~50-100 ns the clock itself costs is included in every
row alike). The 10-rule policy is the first 10 rules of the big one (same seed), so the very same requests
are timed against both: their median ratio is the cost of the other rules alone. A matcher that indexes its
rules keeps it near 1; one that scans them would show a ratio in the hundreds at 10,000 rules. Rows "all
rules" cycle through a request per rule of the big policy (more realistic for caches). The six rows are
measured in `--rounds` interleaved rounds and each keeps its quietest round (lowest median): on a shared
machine noise only ever adds time, and one busy second would otherwise decide a row. Parse and index times of
each policy are printed too. Numbers are for reading, never for pass/fail.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from boundary.errors import PolicyError
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher, Request

SMALL = 10
METHOD_SETS = (("GET",), ("GET", "HEAD"), ("GET", "POST"), ("POST",), ("PUT", "PATCH", "DELETE"), None)


@dataclass(frozen=True)
class Features:
    """Which parts of the (evolving) policy language this checkout understands."""

    wildcard_domains: bool  # `*.example.com` (one label) and `**.example.com` (one or more labels)
    globstar_paths: bool  # `/a/**` matching any number of segments

    def notes(self) -> list[str]:
        out = []
        if not self.wildcard_domains:
            out.append("wildcard domains (`*.` / `**.`) are not parsed by this checkout: exact hosts only")
        if not self.globstar_paths:
            out.append("`**` in paths does not span segments in this checkout: single-segment `*` globs only")
        return out


def detect_features() -> Features:
    """Probe the parser and matcher with tiny policies instead of assuming what has landed."""
    try:
        policy = parse_policy("version: 1\nallow:\n  - domain: '*.probe.test'\n  - domain: '**.deep.test'\n")
        matcher = Matcher(policy)
        wildcard = all(
            matcher.decide(Request("https", host, 443, "GET", "/")).allowed
            for host in ("a.probe.test", "a.b.deep.test")
        )
    except PolicyError:
        wildcard = False
    try:
        policy = parse_policy("version: 1\nallow:\n  - domain: probe.test\n    paths: ['/a/**']\n")
        globstar = Matcher(policy).decide(Request("https", "probe.test", 443, "GET", "/a/b/c/d")).allowed
    except PolicyError:
        globstar = False
    return Features(wildcard, globstar)


@dataclass(frozen=True)
class GeneratedRule:
    yaml: str
    hit: Request  # a request this rule allows


def generate_rules(count: int, features: Features, rng: random.Random) -> list[GeneratedRule]:
    """`count` rules, about three per host; each comes with a request it allows."""
    rules: list[GeneratedRule] = []
    host_index = 0
    while len(rules) < count:
        host_index += 1
        kind = rng.random() if features.wildcard_domains else 1.0
        if kind < 0.15:
            domain, concrete = f"'*.w{host_index}.example.test'", f"api.w{host_index}.example.test"
        elif kind < 0.25:
            domain, concrete = f"'**.d{host_index}.example.test'", f"eu.api.d{host_index}.example.test"
        else:
            domain, concrete = (
                f"svc{host_index}.host{host_index % 97}.test",
                f"svc{host_index}.host{host_index % 97}.test",
            )
        for rule_index in range(rng.choice((1, 2, 3, 3, 4, 5))):
            if len(rules) == count:
                break
            rules.append(_rule(domain, concrete, host_index, rule_index, features, rng))
    return rules


def _rule(
    domain: str, host: str, host_index: int, rule_index: int, features: Features, rng: random.Random
) -> GeneratedRule:
    lines = [f"  - domain: {domain}"]
    port = 443
    if rng.random() < 0.05:
        port = rng.choice((8443, 9443, 5000))
        lines.append(f"    ports: [{port}]")
    methods = rng.choice(METHOD_SETS)
    if methods is not None:
        lines.append(f"    methods: [{', '.join(methods)}]")
    method = methods[0] if methods is not None else "GET"
    shape = rng.random()
    if shape < 0.2:
        pattern, path = None, f"/anything/{rule_index}"
    elif shape < 0.5:
        pattern, path = f"/v{rule_index}/*/items", f"/v{rule_index}/x{host_index}/items"
    elif shape < 0.7:
        pattern, path = f"/api/r{rule_index}/*.json", f"/api/r{rule_index}/data-{host_index}.json"
    elif shape < 0.85 and features.globstar_paths:
        pattern, path = f"/repos/r{rule_index}/**", f"/repos/r{rule_index}/a/b/c"
    else:
        pattern, path = f"/exact/r{rule_index}", f"/exact/r{rule_index}"
    if pattern is not None:
        lines.append(f'    paths: ["{pattern}"]')
    return GeneratedRule("\n".join(lines) + "\n", Request("https", host, port, method, path + "?q=1"))


@dataclass(frozen=True)
class Built:
    rules: int
    matcher: Matcher
    hits: list[Request]
    misses: list[Request]
    parse_seconds: float
    index_seconds: float


def build(count: int, features: Features, seed: int) -> Built:
    """A generated policy of `count` rules, parsed and indexed, with its hits and misses (checked)."""
    rng = random.Random(seed)
    rules = generate_rules(count, features, rng)
    text = "version: 1\nallow:\n" + "".join(rule.yaml for rule in rules)
    started = time.perf_counter()
    policy = parse_policy(text, f"<bench {count}>")
    parsed = time.perf_counter()
    matcher = Matcher(policy)
    indexed = time.perf_counter()
    hits = [rule.hit for rule in rules]
    misses: list[Request] = []
    for index, hit in enumerate(hits):
        kind = index % 4
        if kind == 0:
            misses.append(Request("https", f"unknown{index}.nowhere.test", 443, "GET", "/"))
        elif kind == 1:
            misses.append(Request("https", hit.host, hit.port, hit.method, f"/not/allowed/{index}"))
        elif kind == 2:
            misses.append(Request("https", hit.host, hit.port, "TRACE", hit.path))
        else:
            misses.append(Request("https", hit.host, 444, hit.method, hit.path))
    check(matcher, hits, allowed=True)
    # A miss of one rule may be another rule's hit on a shared host: keep only real misses.
    misses = [request for request in misses if not matcher.decide(request).allowed]
    return Built(count, matcher, hits, misses, parsed - started, indexed - parsed)


def check(matcher: Matcher, requests: Sequence[Request], *, allowed: bool) -> None:
    for request in requests:
        if matcher.decide(request).allowed != allowed:
            verdict = "denied" if allowed else "allowed"
            raise SystemExit(f"bench_policy: {request} is unexpectedly {verdict}: the generator is out of date")


@dataclass(frozen=True)
class Timing:
    rules: int
    requests: str  # which request set: "hit" / "miss", of the small policy or of all rules
    distinct: int  # how many different requests were cycled through
    median_us: float
    p95_us: float
    calls: int


def measure(matcher: Matcher, requests: Sequence[Request], iterations: int, rules: int, label: str) -> Timing:
    """Time `iterations` single `decide` calls, cycling through `requests`."""
    decide = matcher.decide
    clock = time.perf_counter_ns
    samples = [0] * iterations
    count = len(requests)
    for index in range(min(iterations, 1000)):  # warm-up
        decide(requests[index % count])
    for index in range(iterations):
        request = requests[index % count]
        started = clock()
        decide(request)
        samples[index] = clock() - started
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return Timing(rules, label, count, statistics.median(samples) / 1000, p95 / 1000, iterations)


def run(rules: int, iterations: int, seed: int, rounds: int = 1) -> dict[str, object]:
    """Measure; the small policy is the first rules of the big one (same seed), so its requests are
    valid against both and the ratio compares the very same calls."""
    features = detect_features()
    small = build(min(SMALL, rules), features, seed)
    big = build(rules, features, seed)
    check(big.matcher, small.hits, allowed=True)
    small_misses = [request for request in small.misses if not big.matcher.decide(request).allowed]
    rng = random.Random(seed)
    rng.shuffle(big.hits)
    rng.shuffle(big.misses)
    rows = [
        (small.matcher, small.hits, small.rules, "hit"),
        (big.matcher, small.hits, big.rules, "hit"),
        (big.matcher, big.hits, big.rules, "hit, all rules"),
        (small.matcher, small_misses, small.rules, "miss"),
        (big.matcher, small_misses, big.rules, "miss"),
        (big.matcher, big.misses, big.rules, "miss, all rules"),
    ]
    measured = [[measure(m, requests, iterations, n, label) for m, requests, n, label in rows] for _ in range(rounds)]
    timings = [min(row, key=lambda timing: timing.median_us) for row in zip(*measured, strict=True)]
    return {
        "rules": rules,
        "small_rules": small.rules,
        "iterations": iterations,
        "rounds": rounds,
        "features": asdict(features),
        "notes": features.notes(),
        "setup_seconds": {
            str(b.rules): {"parse": round(b.parse_seconds, 4), "index": round(b.index_seconds, 4)} for b in (small, big)
        },
        "timings": [asdict(t) for t in timings],
        "median_ratio": {
            "hit": round(timings[1].median_us / timings[0].median_us, 3),
            "miss": round(timings[4].median_us / timings[3].median_us, 3),
        },
    }


def markdown(result: dict[str, Any]) -> str:
    setup = result["setup_seconds"]
    lines = [
        f"`Matcher.decide`, {result['iterations']:,} timed calls per row, quietest of {result['rounds']} rounds",
        "",
        "| rules | requests | distinct | median µs | p95 µs |",
        "|---:|---|---:|---:|---:|",
    ]
    for t in result["timings"]:
        row = (f"{t['rules']:,}", t["requests"], f"{t['distinct']:,}", f"{t['median_us']:.2f}", f"{t['p95_us']:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    ratios = result["median_ratio"]
    lines += [
        "",
        f"median ratio, same requests, {result['rules']:,} rules / {result['small_rules']} rules: "
        f"hits {ratios['hit']:.2f}x, misses {ratios['miss']:.2f}x",
    ]
    lines += [
        f"parse + index of {int(count):,} rules: {times['parse']:.3f} s + {times['index']:.3f} s"
        for count, times in setup.items()
    ]
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rules", type=int, default=10_000, help="rules in the big policy (default 10000)")
    parser.add_argument("--iterations", type=int, default=100_000, help="timed calls per row (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row, the quietest kept (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of Markdown")
    args = parser.parse_args(argv)
    for option in ("rules", "iterations", "rounds"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be positive, not {getattr(args, option)}")
    result = run(args.rules, args.iterations, args.seed, args.rounds)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
