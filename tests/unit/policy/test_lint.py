"""Specification of policy lint: which rules can never matter, reported only when that is certain."""

from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boundary.policy.lint import Finding, covers, lint
from boundary.policy.load import load_policy, parse_policy
from boundary.policy.matcher import Matcher, Request
from boundary.policy.model import DEFAULT_PORTS, Policy, Rule
from tests.support.tools import repo_root

POLICIES = sorted((repo_root() / "policies").glob("*.yaml"))


def allow(*rules: str) -> str:
    """A document whose allow rules (flow mappings, one a line) start on line 3."""
    return "version: 1\nallow:\n" + "".join(f"  - {rule}\n" for rule in rules)


def allow_deny(allow_rules: list[str], deny_rules: list[str]) -> str:
    """Allow rules from line 3, then `deny:`, then deny rules."""
    return allow(*allow_rules) + "deny:\n" + "".join(f"  - {rule}\n" for rule in deny_rules)


def dup(line: int, other: int) -> tuple[int, str]:
    return line, f"duplicates rule <string>:{other}; one of them can go"


def shadowed(line: int, other: int) -> tuple[int, str]:
    return line, f"never decides a request: rule <string>:{other} comes first and matches all it matches"


def dead(line: int, other: int) -> tuple[int, str]:
    return line, f"never allows anything: deny rule <string>:{other} denies all it allows"


FINDINGS = [
    # duplicates: the same matching semantics, however spelled
    pytest.param(allow("{domain: a.test}", "{domain: a.test}"), [dup(4, 3)], id="identical"),
    pytest.param(
        allow("{domain: A.test., methods: [GET, get], ports: [443, 80]}", "{domain: a.test, methods: [GET]}"),
        [dup(4, 3)],
        id="spelled-differently",
    ),
    pytest.param(
        allow("{domains: [a.test, b.test], paths: ['/x', '/y']}", "{domains: [b.test, a.test], paths: ['/y', '/x']}"),
        [dup(4, 3)],
        id="lists-in-another-order",
    ),
    pytest.param(allow("{domain: a.test, methods: ['*']}", "{domain: a.test}"), [dup(4, 3)], id="any-method"),
    # `/**` is not "no paths": only a rule without paths lets a non-HTTP stream through.
    pytest.param(allow("{domain: a.test, paths: ['/**']}", "{domain: a.test}"), [], id="any-path-is-http-only"),
    pytest.param(
        allow("{domain: a.test, comment: one, id: first}", "{domain: a.test, comment: two}"),
        [(4, "duplicates rule first (<string>:3); one of them can go")],
        id="ids-and-comments-do-not-matter",
    ),
    # shadowed: an earlier rule matches everything a later one does
    pytest.param(
        allow("{domain: '**.a.test'}", "{domain: b.a.test, methods: [GET]}"), [shadowed(4, 3)], id="wide-host"
    ),
    pytest.param(allow("{domain: a.test, methods: [GET]}", "{domain: a.test}"), [], id="later-is-wider"),
    pytest.param(allow("{domain: a.test}", "{domain: a.test, ports: [443]}"), [shadowed(4, 3)], id="fewer-ports"),
    pytest.param(allow("{domain: a.test, ports: [443]}", "{domain: a.test}"), [], id="more-ports"),
    pytest.param(allow("{domain: a.test, methods: [GET, POST]}", "{domain: a.test, methods: [GET]}"), [shadowed(4, 3)]),
    # hosts
    pytest.param(allow("{domain: '*.a.test'}", "{domain: x.a.test}"), [shadowed(4, 3)], id="sub-covers-host-under"),
    pytest.param(allow("{domain: '*.a.test'}", "{domain: a.test}"), [], id="sub-not-apex"),
    pytest.param(allow("{domain: '*.a.test'}", "{domain: '*.b.a.test'}"), [shadowed(4, 3)], id="sub-covers-deeper-sub"),
    pytest.param(
        allow("{domain: '*.a.test'}", "{domain: '**.b.a.test'}"), [shadowed(4, 3)], id="sub-covers-deeper-apex"
    ),
    pytest.param(allow("{domain: '*.a.test'}", "{domain: '**.a.test'}"), [], id="sub-not-same-apex"),
    pytest.param(allow("{domain: '**.a.test'}", "{domain: '*.a.test'}"), [shadowed(4, 3)], id="apex-covers-sub"),
    pytest.param(allow("{domain: '**.a.test'}", "{domain: a.test}"), [shadowed(4, 3)], id="apex-covers-apex-host"),
    pytest.param(allow("{domain: '**.a.test'}", "{domain: xa.test}"), [], id="label-boundary"),
    pytest.param(allow("{domain: a.test}", "{domain: '*.a.test'}"), [], id="host-never-covers-wildcard"),
    pytest.param(
        allow("{domain: '*', allow_broad: true}", "{domain: '**', allow_broad: true}", "{domain: '*.x.test'}"),
        [dup(4, 3), shadowed(5, 3)],
        id="every-host",
    ),
    pytest.param(allow("{domains: [a.test, b.test]}", "{domain: b.test}"), [shadowed(4, 3)], id="one-of-domains"),
    pytest.param(allow("{domain: a.test}", "{domains: [a.test, b.test]}"), [], id="not-all-domains"),
    # paths
    pytest.param(
        allow("{domain: a.test, paths: ['/a/**']}", "{domain: a.test, paths: ['/a', '/a/', '/a/b/*']}"),
        [shadowed(4, 3)],
        id="span-covers-prefix",
    ),
    pytest.param(
        allow("{domain: a.test, paths: ['/a/**']}", "{domain: a.test, paths: ['/ab']}"), [], id="span-segment"
    ),
    pytest.param(
        allow("{domain: a.test, paths: ['/*/x/**']}", "{domain: a.test, paths: ['/v1/x/y/**']}"),
        [shadowed(4, 3)],
        id="star-then-span",
    ),
    pytest.param(
        allow("{domain: a.test, paths: ['/a/b/**']}", "{domain: a.test, paths: ['/a/**']}"), [], id="shorter-span"
    ),
    pytest.param(allow("{domain: a.test, paths: ['/a/b/**']}", "{domain: a.test, paths: ['/a']}"), [], id="too-short"),
    pytest.param(allow("{domain: a.test, paths: ['/*']}", "{domain: a.test, paths: ['/x', '/y*']}"), [shadowed(4, 3)]),
    pytest.param(allow("{domain: a.test, paths: ['/x*']}", "{domain: a.test, paths: ['/xy']}"), [shadowed(4, 3)]),
    pytest.param(allow("{domain: a.test, paths: ['/x*']}", "{domain: a.test, paths: ['/x*y']}"), [], id="star-in-both"),
    pytest.param(
        allow("{domain: a.test, paths: ['/a/*']}", "{domain: a.test, paths: ['/a/**']}"), [], id="star-no-span"
    ),
    pytest.param(allow("{domain: a.test, paths: ['/**/x']}", "{domain: a.test, paths: ['/x']}"), [], id="inner-span"),
    pytest.param(allow("{domain: a.test, paths: ['/**/x']}", "{domain: a.test, paths: ['/**/x']}"), [dup(4, 3)]),
    pytest.param(allow("{domain: a.test, paths: ['/a']}", "{domain: a.test}"), [], id="paths-vs-any"),
    pytest.param(allow("{domain: a.test, paths: ['/a/*']}", "{domain: a.test, paths: ['/a/b/c']}"), [], id="depth"),
    # query
    pytest.param(
        allow("{domain: a.test, query: {q: '*'}}", "{domain: a.test, query: {q: '1', r: '2'}}"),
        [shadowed(4, 3)],
        id="query-fewer-names-wider-values",
    ),
    pytest.param(allow("{domain: a.test}", "{domain: a.test, query: {q: '1'}}"), [shadowed(4, 3)], id="no-query-wider"),
    pytest.param(allow("{domain: a.test, query: {q: '1'}}", "{domain: a.test}"), [], id="query-narrower"),
    pytest.param(allow("{domain: a.test, query: {q: '1'}}", "{domain: a.test, query: {r: '1'}}"), [], id="other-name"),
    pytest.param(allow("{domain: a.test, query: {q: 'a*'}}", "{domain: a.test, query: {q: 'ab'}}"), [shadowed(4, 3)]),
    # raw paths
    pytest.param(allow("{domain: a.test}", "{domain: a.test, raw_paths: true}"), [], id="raw-is-wider"),
    pytest.param(allow("{domain: a.test, raw_paths: true}", "{domain: a.test}"), [shadowed(4, 3)], id="raw-covers"),
    pytest.param(
        allow("{domain: a.test, raw_paths: true}", "{domain: a.test, raw_paths: true, paths: ['/a%2F']}"),
        [shadowed(4, 3)],
        id="raw-any-path",
    ),
    pytest.param(
        allow("{domain: a.test, raw_paths: true, paths: ['/**']}", "{domain: a.test, raw_paths: true, paths: ['/x']}"),
        [],
        id="raw-patterns-only-by-equality",
    ),
    # dead: covered by a deny rule
    pytest.param(allow_deny(["{domain: b.a.test}"], ["{domain: '**.a.test'}"]), [dead(3, 5)], id="denied-host"),
    pytest.param(allow_deny(["{domain: a.test, ports: [22]}"], ["{domain: a.test}"]), [dead(3, 5)], id="deny-any-port"),
    pytest.param(allow_deny(["{domain: a.test}"], ["{domain: a.test, ports: [443]}"]), [], id="deny-one-port"),
    pytest.param(allow_deny(["{domain: a.test, methods: [GET]}"], ["{domain: a.test, methods: [POST]}"]), []),
    pytest.param(
        allow_deny(["{domain: a.test, paths: ['/admin/x']}"], ["{domain: a.test, paths: ['/admin/**']}"]),
        [dead(3, 5)],
        id="denied-path",
    ),
    pytest.param(
        allow_deny(["{domain: a.test, raw_paths: true, paths: ['/x/**']}"], ["{domain: a.test, paths: ['/x/**']}"]),
        [dead(3, 5)],
        id="deny-covers-raw-matches-too",
    ),
    pytest.param(
        allow_deny(["{domain: a.test, query: {token: x}}"], ["{domain: a.test, query: {token: '*'}}"]),
        [dead(3, 5)],
        id="denied-query",
    ),
    pytest.param(allow_deny(["{domain: a.test}"], ["{domain: a.test, query: {token: '*'}}"]), [], id="query-not-all"),
    # deny duplicates
    pytest.param(
        allow_deny([], ["{domain: a.test}", "{domain: A.TEST.}", "{domain: a.test, methods: [GET]}"]),
        [(5, "duplicates deny rule <string>:4; one of them can go")],
        id="deny-duplicates",
    ),
    # allow_broad without anything broad
    pytest.param(
        allow("{domain: a.test, allow_broad: true}", "{domains: [b.test, '*.com'], allow_broad: true}"),
        [(3, "'allow_broad: true' has no effect: no domain of this rule is over-broad")],
        id="useless-allow-broad",
    ),
    # several findings, in rule order
    pytest.param(
        allow_deny(["{domain: a.test}", "{domain: a.test}"], ["{domain: a.test}"]),
        [dead(3, 6), dup(4, 3), dead(4, 6)],
        id="several",
    ),
]


@pytest.mark.parametrize(("text", "expected"), FINDINGS)
def test_findings(text: str, expected: list[tuple[int, str]]) -> None:
    """Lint reports exactly these (line, message) warnings, each about the rule on that line."""
    findings = lint(parse_policy(text))
    assert [(int(f.source.rpartition(":")[2]), f.message) for f in findings] == expected
    assert all(f.severity == "warning" for f in findings)


def test_finding_fields() -> None:
    """A finding names the rule's source and id."""
    (finding,) = lint(parse_policy(allow("{domain: a.test}", "{domain: a.test, id: again}"), "p.yaml"))
    assert finding == Finding("warning", "p.yaml:4", "duplicates rule p.yaml:3; one of them can go", "again")


@pytest.mark.parametrize("path", POLICIES, ids=lambda path: path.name)
def test_example_policies_are_clean(path: Path) -> None:
    """The example policies shipped in policies/ have nothing to lint."""
    assert lint(load_policy(path)) == []


def test_lint_across_includes() -> None:
    """A user rule repeating a preset's is a duplicate of the preset rule, which comes first."""
    (finding,) = lint(
        parse_policy("version: 1\ninclude: [preset:openai]\nallow:\n  - {domain: api.openai.com, ports: [443]}\n")
    )
    assert finding.message == "duplicates rule preset:openai/1 (preset:openai:3); one of them can go"


# ---------------------------------------------------------------------------------------------------------------
# covers() is sound: whatever it claims, the matcher confirms

DOMAINS = ["a.test", "b.a.test", "*.a.test", "**.a.test", "*.b.a.test", "**.test", "c.test", "*"]
PATHS = ["/x", "/x/*", "/x/**", "/**/y", "/*", "/**", "/x/y", "/*/y", "/x*"]


@st.composite
def rules(draw: st.DrawFn, action: Literal["allow", "deny"]) -> Rule:
    domains = tuple(dict.fromkeys(draw(st.lists(st.sampled_from(DOMAINS), min_size=1, max_size=2))))
    ports = draw(st.sampled_from([DEFAULT_PORTS, frozenset({443}), frozenset({8080}), None]))
    if action == "allow" and ports is None:
        ports = DEFAULT_PORTS
    paths = draw(st.one_of(st.none(), st.lists(st.sampled_from(PATHS), min_size=1, max_size=2).map(tuple)))
    return Rule(
        domains[0],
        ports,
        draw(st.sampled_from([None, frozenset({"GET"}), frozenset({"GET", "POST"})])),
        paths,
        f"{action}:1",
        domains=domains,
        query=draw(st.sampled_from([None, (("q", "1"),), (("q", "*"),), (("q", "1*"), ("r", "*"))])),
        raw_paths=action == "allow" and draw(st.booleans()),
        action=action,
    )


REQUESTS = st.builds(
    Request,
    scheme=st.just("https"),
    host=st.sampled_from(["a.test", "b.a.test", "x.b.a.test", "x.a.test", "c.test", "test", "z.other"]),
    port=st.sampled_from([80, 443, 8080]),
    method=st.sampled_from([None, "GET", "POST"]),
    path=st.sampled_from(
        ["/", "/x", "/x/y", "/x/y/z", "/y", "/xy", "/x?q=1", "/x?q=12&r=", "/x?q=2", "/x%2Fy", "/x/..%2F"]
    ),
)


# covers() holds for about a quarter of random pairs, and b allows the request in a few percent of those.
@settings(max_examples=600)
@given(a=rules("allow"), b=rules("allow"), request_=REQUESTS)
def test_covering_allow_rule_allows_what_the_covered_one_allows(a: Rule, b: Rule, request_: Request) -> None:
    """If covers(a, b), every request b alone allows, a alone allows."""
    if covers(a, b) and Matcher(Policy((b,), "t")).decide(request_).allowed:
        assert Matcher(Policy((a,), "t")).decide(request_).allowed


@settings(max_examples=300)
@given(a=rules("deny"), b=rules("allow"), request_=REQUESTS)
def test_covering_deny_rule_leaves_nothing_allowed(a: Rule, b: Rule, request_: Request) -> None:
    """If a deny rule covers an allow rule, that allow rule allows nothing at all."""
    if covers(a, b):
        assert not Matcher(Policy((b,), "t", (a,))).decide(request_).allowed


def test_many_distinct_rules_have_no_findings() -> None:
    """Rules for distinct hosts, and a later rule wider than an earlier one, are not reported."""
    text = allow(*(f"{{domain: h{n}.example.com, paths: ['/v{n}/*']}}" for n in range(300)), "{domain: h7.example.com}")
    findings = lint(parse_policy(text))
    assert findings == []
