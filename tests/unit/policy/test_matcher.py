"""Specification of request decisions: which requests a policy allows, why others are denied, and the path
that is forwarded."""

import re
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.policy.canon import (
    _PLAIN_PATH,
    _PLAIN_QUERY,
    _normalize_path_fully,
    has_one_segment_reading,
    normalize_host,
    other_slash,
    path_readings,
    query_readings,
    segment_readings,
)
from boundary.policy.load import parse_policy
from boundary.policy.matcher import AmbiguousPathError, Decision, Matcher, Request, deny, normalize_path
from boundary.policy.model import DEFAULT_PORTS, Policy, Rule
from boundary.reasons import POLICY_REASONS, Reason
from tests.support.tools import repo_root

POLICY_TEXT = """\
version: 1
allow:
  - domain: open.example
  - domain: api.example
    methods: [GET, HEAD]
    paths: ["/hello", "/v1/*", "/public/*", "/a/b", "/docs/"]
  - domain: api.example
    methods: [POST]
    paths: ["/v1/upload"]
  - domain: alt.example
    ports: [8443]
  - domain: bücher.de
  - domain: git.example
    ports: [443]
    methods: [GET]
  - domain: git.example
    ports: [22]
  - domain: locked.example
    ports: [443]
    methods: [GET]
    paths: ["/ok"]
"""
# The line each rule starts on, by name, so the tables below say which rule allowed a request.
OPEN, API_READ, API_UPLOAD, ALT, BUECHER, GIT_HTTP, GIT_SSH, LOCKED = 3, 4, 7, 10, 12, 13, 16, 18
POLICY = parse_policy(POLICY_TEXT)
MATCHER = Matcher(POLICY)


def http(host: str, path: str = "/", method: str = "GET", port: int = 443) -> Request:
    return Request("https" if port == 443 else "http", host, port, method, path)


def stream(host: str, port: int = 443) -> Request:
    return Request("tcp", host, port, None, None)


ALLOWED = [
    # host spellings
    pytest.param(http("open.example"), OPEN, "/", id="exact-host"),
    pytest.param(http("OPEN.Example"), OPEN, "/", id="host-case"),
    pytest.param(http("open.example."), OPEN, "/", id="host-trailing-dot"),
    pytest.param(http("xn--bcher-kva.de"), BUECHER, "/", id="punycode-host"),
    pytest.param(http("bücher.de"), BUECHER, "/", id="unicode-host"),
    pytest.param(http("XN--BCHER-KVA.DE."), BUECHER, "/", id="punycode-host-upper-dot"),
    # ports
    pytest.param(http("open.example", port=80), OPEN, "/", id="default-port-80"),
    pytest.param(http("open.example", port=443), OPEN, "/", id="default-port-443"),
    pytest.param(http("alt.example", port=8443), ALT, "/", id="explicit-port"),
    # methods: any when unrestricted, and listed ones
    pytest.param(http("open.example", method="DELETE"), OPEN, "/", id="any-method"),
    pytest.param(http("open.example", method="BREW"), OPEN, "/", id="any-method-even-unknown"),
    pytest.param(http("api.example", "/hello", "HEAD"), API_READ, "/hello", id="listed-method"),
    pytest.param(http("api.example", "/v1/upload", "POST"), API_UPLOAD, "/v1/upload", id="second-rule-same-host"),
    # paths
    pytest.param(http("api.example", "/hello"), API_READ, "/hello", id="literal-path"),
    pytest.param(http("api.example", "/v1/users"), API_READ, "/v1/users", id="star-path"),
    pytest.param(http("api.example", "/v1/"), API_READ, "/v1/", id="star-matches-empty"),
    pytest.param(http("api.example", "/docs/"), API_READ, "/docs/", id="trailing-slash-literal"),
    # the query is ignored for matching and forwarded as sent
    pytest.param(http("api.example", "/hello?x=1&y=/../z"), API_READ, "/hello?x=1&y=/../z", id="query"),
    pytest.param(http("api.example", "/hello?"), API_READ, "/hello?", id="empty-query"),
    pytest.param(http("api.example", "/hello?a\\b"), API_READ, "/hello?a\\b", id="backslash-in-query"),
    # spellings that normalize onto an allowed path are allowed, and forwarded normalized
    pytest.param(http("api.example", "/a/./b"), API_READ, "/a/b", id="dot-segment"),
    pytest.param(http("api.example", "//a//b"), API_READ, "/a/b", id="repeated-slashes"),
    pytest.param(http("api.example", "/x/../hello"), API_READ, "/hello", id="dot-dot-inside-root"),
    pytest.param(http("api.example", "/%68ello"), API_READ, "/hello", id="escaped-unreserved"),
    pytest.param(http("api.example", "/v1/x/%2e%2E/users"), API_READ, "/v1/users", id="escaped-dots-inside"),
    pytest.param(http("api.example", "/v1/caf%c3%a9"), API_READ, "/v1/caf%C3%A9", id="escape-case"),
    pytest.param(http("api.example", "/docs//."), API_READ, "/docs/", id="collapsed-then-dot"),
]


@pytest.mark.parametrize(("request_", "line", "forwarded"), ALLOWED)
def test_allowed_requests(request_: Request, line: int, forwarded: str) -> None:
    """These requests are allowed by the rule on `line`, and the normalized target is what gets forwarded."""
    decision = MATCHER.decide(request_)
    assert decision == Decision("allow", Reason.ALLOWED, decision.rule, forwarded)
    assert decision.rule is not None
    assert decision.rule.source == f"<string>:{line}"


DENIED = [
    # hosts
    pytest.param(http("unknown.example"), Reason.NO_MATCHING_RULE, id="unknown-host"),
    pytest.param(http("sub.open.example"), Reason.NO_MATCHING_RULE, id="subdomain-not-implied"),
    pytest.param(http("open.example.."), Reason.INVALID_HOST, id="two-trailing-dots"),
    pytest.param(http(""), Reason.INVALID_HOST, id="empty-host"),
    pytest.param(http("open example"), Reason.INVALID_HOST, id="space-in-host"),
    pytest.param(http("open.example:443"), Reason.INVALID_HOST, id="host-with-port"),
    pytest.param(http("open_example"), Reason.INVALID_HOST, id="underscore"),
    pytest.param(http("\uff4f\uff50\uff45\uff4e.example"), Reason.INVALID_HOST, id="fullwidth-host"),
    pytest.param(http("1.2.3.4.5"), Reason.INVALID_HOST, id="numeric-last-label"),
    # IP literals, every spelling
    pytest.param(http("127.0.0.1"), Reason.IP_LITERAL, id="ipv4"),
    pytest.param(http("127.1"), Reason.IP_LITERAL, id="ipv4-short"),
    pytest.param(http("0x7f.0.0.1"), Reason.IP_LITERAL, id="ipv4-hex"),
    pytest.param(http("2130706433"), Reason.IP_LITERAL, id="ipv4-integer"),
    pytest.param(http("017700000001"), Reason.IP_LITERAL, id="ipv4-octal"),
    pytest.param(http("127.0.0.1."), Reason.IP_LITERAL, id="ipv4-trailing-dot"),
    pytest.param(http("::1"), Reason.IP_LITERAL, id="ipv6"),
    pytest.param(http("[::1]"), Reason.IP_LITERAL, id="ipv6-brackets"),
    pytest.param(http("[::ffff:7f00:1]"), Reason.IP_LITERAL, id="ipv4-mapped-ipv6"),
    # ports
    pytest.param(http("open.example", port=8080), Reason.PORT_NOT_ALLOWED, id="port-outside-default"),
    pytest.param(http("alt.example", port=443), Reason.PORT_NOT_ALLOWED, id="explicit-ports-replace-default"),
    pytest.param(http("open.example", port=0), Reason.PORT_NOT_ALLOWED, id="port-zero"),
    # methods: listed ones only, compared exactly
    pytest.param(http("api.example", "/hello", "DELETE"), Reason.METHOD_NOT_ALLOWED, id="unlisted-method"),
    pytest.param(http("api.example", "/hello", "get"), Reason.METHOD_NOT_ALLOWED, id="method-case"),
    # paths
    pytest.param(http("api.example", "/hello", "POST"), Reason.PATH_NOT_ALLOWED, id="method-of-other-rule"),
    pytest.param(http("api.example", "/goodbye"), Reason.PATH_NOT_ALLOWED, id="unlisted-path"),
    pytest.param(http("api.example", "/hello/"), Reason.PATH_NOT_ALLOWED, id="extra-slash"),
    pytest.param(http("api.example", "/HELLO"), Reason.PATH_NOT_ALLOWED, id="path-case"),
    pytest.param(http("api.example", "/v1/a/b"), Reason.PATH_NOT_ALLOWED, id="star-one-segment"),
    pytest.param(http("api.example", "/hello%3F"), Reason.PATH_NOT_ALLOWED, id="escaped-question-mark"),
    # bypass spellings: each normalizes away from the allowed prefix, or is ambiguous
    pytest.param(http("api.example", "/public/../secret"), Reason.PATH_NOT_ALLOWED, id="dot-dot"),
    pytest.param(http("api.example", "/public/%2e%2e/secret"), Reason.PATH_NOT_ALLOWED, id="escaped-dot-dot"),
    pytest.param(http("api.example", "/public/.%2E/secret"), Reason.PATH_NOT_ALLOWED, id="half-escaped"),
    pytest.param(http("api.example", "//secret"), Reason.PATH_NOT_ALLOWED, id="double-slash"),
    pytest.param(http("api.example", "/public/./../secret"), Reason.PATH_NOT_ALLOWED, id="dot-then-dot-dot"),
    pytest.param(http("api.example", "/a/../secret"), Reason.PATH_NOT_ALLOWED, id="a-dot-dot-secret"),
    pytest.param(http("api.example", "/%2e%2e/secret"), Reason.AMBIGUOUS_PATH, id="escaped-above-root"),
    pytest.param(http("api.example", "/%2E%2e/"), Reason.AMBIGUOUS_PATH, id="mixed-case-above-root"),
    pytest.param(http("api.example", "/../public/x"), Reason.AMBIGUOUS_PATH, id="above-root"),
    pytest.param(http("api.example", "/public/x/../../.."), Reason.AMBIGUOUS_PATH, id="climbs-out"),
    pytest.param(http("api.example", "/public/a%2Fb"), Reason.AMBIGUOUS_PATH, id="encoded-slash"),
    pytest.param(http("api.example", "/public/a%2f..%2f..%2fsecret"), Reason.AMBIGUOUS_PATH, id="encoded-slashes"),
    pytest.param(http("api.example", "/public/a%5Cb"), Reason.AMBIGUOUS_PATH, id="encoded-backslash"),
    pytest.param(http("api.example", "/public\\..\\secret"), Reason.AMBIGUOUS_PATH, id="backslash"),
    pytest.param(http("api.example", "/public/x%00"), Reason.AMBIGUOUS_PATH, id="encoded-nul"),
    pytest.param(http("api.example", "/public/x\x00"), Reason.AMBIGUOUS_PATH, id="nul"),
    pytest.param(http("api.example", "/public/..;/secret"), Reason.AMBIGUOUS_PATH, id="dot-dot-params"),
    pytest.param(http("api.example", "/public/..%3B"), Reason.AMBIGUOUS_PATH, id="dot-dot-encoded-params"),
    pytest.param(http("api.example", "/public/.%3bx"), Reason.AMBIGUOUS_PATH, id="dot-encoded-params-lower"),
    pytest.param(http("api.example", "/public/x#/../../secret"), Reason.AMBIGUOUS_PATH, id="fragment"),
    pytest.param(http("api.example", "/public/x y"), Reason.AMBIGUOUS_PATH, id="space"),
    pytest.param(http("api.example", "/public/\u2024\u2024"), Reason.AMBIGUOUS_PATH, id="non-ascii"),
    pytest.param(http("api.example", "/public/%zz"), Reason.AMBIGUOUS_PATH, id="invalid-escape"),
    pytest.param(http("api.example", "*", "OPTIONS"), Reason.AMBIGUOUS_PATH, id="asterisk-form"),
    pytest.param(http("api.example", "http://api.example/hello"), Reason.AMBIGUOUS_PATH, id="absolute-form"),
    pytest.param(http("api.example", ""), Reason.AMBIGUOUS_PATH, id="empty-target"),
    pytest.param(Request("https", "api.example", 443, "GET", None), Reason.AMBIGUOUS_PATH, id="no-target"),
    pytest.param(http("open.example", "/../x"), Reason.AMBIGUOUS_PATH, id="ambiguous-even-if-any-path"),
]


@pytest.mark.parametrize(("request_", "reason"), DENIED)
def test_denied_requests(request_: Request, reason: str) -> None:
    """These requests are denied for this reason, with no rule and no path attached."""
    assert MATCHER.decide(request_) == deny(reason)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        pytest.param(http("locked.example", "/nope", "POST", 80), Reason.PORT_NOT_ALLOWED, id="all-wrong"),
        pytest.param(http("locked.example", "/ok", "GET", 80), Reason.PORT_NOT_ALLOWED, id="port-wrong"),
        pytest.param(http("locked.example", "/nope", "POST"), Reason.METHOD_NOT_ALLOWED, id="method-and-path"),
        pytest.param(http("locked.example", "/ok", "POST"), Reason.METHOD_NOT_ALLOWED, id="method-wrong"),
        pytest.param(http("locked.example", "/nope", "GET"), Reason.PATH_NOT_ALLOWED, id="path-wrong"),
        pytest.param(http("locked.example", "/../ok", "POST"), Reason.AMBIGUOUS_PATH, id="ambiguous-first"),
    ],
)
def test_deny_reason_is_the_most_specific(request_: Request, reason: str) -> None:
    """The reason names the first check that failed: port, then an ambiguous target, then method, then path."""
    assert MATCHER.decide(request_).reason == reason


@pytest.mark.parametrize(
    ("request_", "decision"),
    [
        pytest.param(stream("open.example"), ("allow", OPEN), id="unrestricted-rule"),
        pytest.param(stream("git.example", 22), ("allow", GIT_SSH), id="unrestricted-rule-on-its-port"),
        pytest.param(stream("git.example", 443), ("deny", Reason.NOT_HTTP), id="method-restricted-rule"),
        pytest.param(stream("api.example"), ("deny", Reason.NOT_HTTP), id="path-restricted-rules"),
        pytest.param(stream("open.example", 22), ("deny", Reason.PORT_NOT_ALLOWED), id="wrong-port"),
        pytest.param(stream("unknown.example"), ("deny", Reason.NO_MATCHING_RULE), id="unknown-host"),
        pytest.param(stream("10.0.0.1"), ("deny", Reason.IP_LITERAL), id="ip"),
    ],
)
def test_non_http_streams(request_: Request, decision: tuple[str, object]) -> None:
    """A stream with no method is allowed only by a rule restricting neither methods nor paths."""
    result = MATCHER.decide(request_)
    verdict, detail = decision
    if verdict == "allow":
        assert result.allowed
        assert result.reason == Reason.ALLOWED
        assert result.rule is not None
        assert result.rule.source == f"<string>:{detail}"
        assert result.path is None
    else:
        assert result == deny(str(detail))


def test_http_on_a_port_of_an_unrestricted_rule_allows_any_method() -> None:
    """A rule without methods or paths allows HTTP too, whatever the method."""
    decision = MATCHER.decide(http("git.example", "/repo.git/info/refs", "POST", 22))
    assert decision.allowed
    assert decision.rule is not None
    assert decision.rule.source == f"<string>:{GIT_SSH}"


def test_first_matching_rule_in_file_order_wins() -> None:
    """When several rules allow a request, the decision names the earliest."""
    policy = parse_policy("version: 1\nallow:\n  - domain: a.example\n    methods: [GET]\n  - domain: a.example\n")
    decision = Matcher(policy).decide(http("a.example"))
    assert decision.rule is policy.rules[0]


def test_empty_policy_denies_everything() -> None:
    """With no rules, every host is unknown."""
    assert Matcher(parse_policy("version: 1\n")).decide(http("open.example")) == deny(Reason.NO_MATCHING_RULE)


def test_matcher_keeps_its_policy() -> None:
    """The policy a matcher decides by stays reachable for audit and reload."""
    assert MATCHER.policy is POLICY


def test_decision_allowed_property() -> None:
    """`allowed` is true exactly for the allow verdict; `deny` builds a bare deny."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1")
    assert Decision("allow", Reason.ALLOWED, rule, "/").allowed
    assert not deny(Reason.NOT_HTTP).allowed
    assert deny(Reason.NOT_HTTP) == Decision("deny", Reason.NOT_HTTP, None, None)


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("open.example", 443, True),
        ("open.example", 80, True),
        ("OPEN.EXAMPLE.", 443, True),
        ("open.example", 8080, False),
        ("alt.example", 8443, True),
        ("alt.example", 443, False),
        ("git.example", 443, True),  # methods are checked later, on the request
        ("git.example", 22, True),
        ("git.example", 80, False),
        ("bücher.de", 443, True),
        ("unknown.example", 443, False),
        ("127.0.0.1", 443, False),
        ("[::1]", 443, False),
        ("bad host", 443, False),
    ],
)
def test_allows_destination(host: str, port: int, allowed: bool) -> None:
    """The dial gate: some rule names this host with this port."""
    assert MATCHER.allows_destination(host, port) is allowed


# ---------------------------------------------------------------------------------------------------------------
# normalize_path


@pytest.mark.parametrize(
    ("target", "normal"),
    [
        ("/", "/"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("//a//b", "/a/b"),
        ("/a//../b", "/b"),  # slashes collapse first, as nginx's merge_slashes does
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/a/", "/a/"),
        ("/%2e/a", "/a"),
        ("/a/%2e%2E", "/"),
        ("/%7Euser", "/~user"),
        ("/%41%2d%5f%2E%7e", "/A-_.~"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/%25", "/%25"),
        ("/a%3f", "/a%3F"),
        ("/a;b/c;d=1", "/a;b/c;d=1"),
        ("/v1/*", "/v1/*"),
        ("/a/../b?x", "/b?x"),
        ("/a?", "/a?"),
        ("/a?b=%2F&c=../x?y", "/a?b=%2F&c=../x?y"),
    ],
)
def test_normalize_path(target: str, normal: str) -> None:
    """Canonical form: unreserved escapes decoded, others upper-cased, slashes collapsed, dot segments gone."""
    assert normalize_path(target) == normal


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("", "does not start with '/'"),
        ("*", "does not start with '/'"),
        ("a/b", "does not start with '/'"),
        ("?x", "does not start with '/'"),
        ("http://h/a", "does not start with '/'"),
        ("/a\\b", "backslash"),
        ("/a%5Cb", "encoded '\\'"),
        ("/a%5cb", "encoded '\\'"),
        ("/a%2Fb", "encoded '/'"),
        ("/a%2fb", "encoded '/'"),
        ("/a%00", "encoded NUL"),
        ("/a\x00", "control, space or non-ASCII character"),
        ("/a b", "control, space or non-ASCII character"),
        ("/a\tb", "control, space or non-ASCII character"),
        ("/a\x7f", "control, space or non-ASCII character"),
        ("/caf\u00e9", "control, space or non-ASCII character"),
        ("/a?q=\u00e9", "control, space or non-ASCII character"),
        ("/a#b", "fragment '#' in request target"),
        ("/%", "invalid percent-escape"),
        ("/%4", "invalid percent-escape"),
        ("/%zz", "invalid percent-escape"),
        ("/..", "'..' climbs above the root"),
        ("/a/../..", "'..' climbs above the root"),
        ("/%2e%2e/secret", "'..' climbs above the root"),
        ("/..;/x", "dot segment with parameters"),
        ("/a/.;x", "dot segment with parameters"),
        # A server decoding '%3B' before cutting ';params' reads these as '..' and '.' too.
        ("/a/..%3B/x", "dot segment with parameters"),
        ("/a/..%3bx/y", "dot segment with parameters"),
        ("/a/.%3B", "dot segment with parameters"),
        ("/a/%2e%2E%3B/x", "dot segment with parameters"),
    ],
)
def test_normalize_path_refuses_ambiguous_targets(target: str, why: str) -> None:
    """Targets servers may read in more than one way raise AmbiguousPathError saying why."""
    with pytest.raises(AmbiguousPathError) as raised:
        normalize_path(target)
    assert str(raised.value) == why


# ---------------------------------------------------------------------------------------------------------------
# Properties

# Targets built from the pieces that matter to normalization, so Hypothesis explores the edge cases.
TOKENS = ["/", "/", ".", "..", "%2e", "%2E", "%2f", "%5c", "%00", "%41", "%7e", "%c3%A9", "%", "%4"]
TOKENS += ["a", "b", "v1", "hello", "public", "upload", ";", "?", "~", "*", "=", "\\", "#", " "]
TARGETS = st.lists(st.sampled_from(TOKENS), max_size=12).map(lambda tokens: "/" + "".join(tokens))
# Targets from pieces that never make a target ambiguous on their own (under a prefix deep enough for a few '..').
SAFE_TOKENS = ["/", "/", ".", "..", "%2e", "%2E", "%41", "%7e", "%c3%A9", "a", "v1", "hello", "public", ";", "~", "*"]
SAFE_TARGETS = st.lists(st.sampled_from(SAFE_TOKENS), max_size=10).map(lambda tokens: "/p/q/r/" + "".join(tokens))
HOSTS = st.sampled_from(["open.example", "api.example", "git.example", "xn--bcher-kva.de", "unknown.example"])
METHODS = st.one_of(st.none(), st.sampled_from(["GET", "HEAD", "POST", "DELETE", "get"]), st.text(max_size=8))


@given(
    host=st.one_of(st.text(), HOSTS),
    port=st.integers(min_value=-1, max_value=70000),
    method=METHODS,
    path=st.one_of(st.none(), st.text(), TARGETS),
)
def test_decide_never_raises(host: str, port: int, method: str | None, path: str | None) -> None:
    """Any request at all gets a decision with a known reason; an allow always names its rule."""
    decision = MATCHER.decide(Request("https", host, port, method, path))
    assert decision.reason in POLICY_REASONS
    assert decision.allowed == (decision.reason == Reason.ALLOWED) == (decision.rule is not None)
    assert isinstance(MATCHER.allows_destination(host, port), bool)


VISIBLE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)).map(lambda text: "/" + text)


@given(target=st.one_of(TARGETS, SAFE_TARGETS, VISIBLE))
def test_the_fast_path_for_plain_targets_agrees_with_full_normalization(target: str) -> None:
    """`normalize_path` returns targets it recognises as already canonical unchanged, without the full work:
    for each of them, the full normalization gives that very target."""
    path, question, query = target.partition("?")
    if _PLAIN_PATH.fullmatch(path) and _PLAIN_QUERY.fullmatch(query):
        assert normalize_path(target) == target == _normalize_path_fully(target, path, question, query)


@given(target=st.one_of(TARGETS, SAFE_TARGETS, VISIBLE))
def test_normalize_path_is_idempotent(target: str) -> None:
    """What normalize_path returns is already in normal form (ambiguous targets have none)."""
    try:
        normal = normalize_path(target)
    except AmbiguousPathError:
        return
    assert normalize_path(normal) == normal


@given(target=st.one_of(TARGETS, SAFE_TARGETS), host=HOSTS, method=st.sampled_from(["GET", "POST"]))
def test_a_target_and_its_normal_form_get_the_same_decision(target: str, host: str, method: str) -> None:
    """Deciding on a spelling or on its normalization gives the same decision (ambiguous ones have none)."""
    try:
        normal = normalize_path(target)
    except AmbiguousPathError:
        return
    assert MATCHER.decide(http(host, target, method)) == MATCHER.decide(http(host, normal, method))


SEGMENTS = st.lists(st.sampled_from(["hello", "v1", "users", "public", "a", "b", "x", "upload", "docs"]), max_size=4)


@st.composite
def respelled(draw: st.DrawFn) -> tuple[str, str]:
    """A plain path and a different spelling of it: escaped letters, lower-case hex, extra slashes and dots."""
    segments = draw(SEGMENTS)
    plain = "/" + "/".join(segments)
    parts = []
    for segment in segments:
        letters = "".join(f"%{ord(c):02x}" if draw(st.booleans()) else c for c in segment)
        detour = draw(st.sampled_from(["", "./", "zz/../", "/", "%2e/", "zz/%2E%2e/"]))
        parts.append(detour + letters)
    return plain, "/" + "/".join(parts)


@given(spellings=respelled(), host=HOSTS)
def test_two_spellings_of_a_path_get_the_same_decision(spellings: tuple[str, str], host: str) -> None:
    """Spellings that normalize alike are decided alike (and forward the same path)."""
    plain, other = spellings
    assert normalize_path(other) == normalize_path(plain)
    assert MATCHER.decide(http(host, other)) == MATCHER.decide(http(host, plain))


@given(host=HOSTS, flips=st.lists(st.booleans(), min_size=20, max_size=20), dot=st.booleans())
def test_two_spellings_of_a_host_get_the_same_decision(host: str, flips: list[bool], dot: bool) -> None:
    """Host case and one trailing dot never change a decision."""
    spelled = "".join(c.upper() if flip else c for c, flip in zip(host, flips, strict=False)) + ("." if dot else "")
    assert MATCHER.decide(http(spelled, "/hello")) == MATCHER.decide(http(host, "/hello"))
    assert MATCHER.decide(stream(spelled)) == MATCHER.decide(stream(host))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The reference semantics of a path pattern: a whole `**` segment is `(/[^/]*)*` (any number of segments,
    zero included), any other '*' is `[^/]*`, everything else literal."""
    first, *rest = pattern.split("/")
    regex = _star_regex(first)
    for segment in rest:
        regex += "(?:/[^/]*)*" if segment == "**" else "/" + _star_regex(segment)
    return re.compile(regex)


def _star_regex(segment: str) -> str:
    return "[^/]*".join(re.escape(part) for part in segment.split("*"))


@given(
    pattern=st.text(alphabet="ab*/", max_size=10).map(lambda s: "/" + s),
    path=st.text(alphabet="ab/", max_size=10).map(lambda s: "/" + s),
)
def test_path_patterns_match_like_the_reference_regex(pattern: str, path: str) -> None:
    """A rule with one path pattern allows exactly the paths the reference regex of that pattern matches."""
    rule = Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1")
    decision = Matcher(Policy((rule,), "t")).decide(http("a.example", path))
    normal = normalize_path(path)
    expected = glob_regex(pattern).fullmatch(normal) is not None
    assert decision.allowed is expected


# ---------------------------------------------------------------------------------------------------------------
# The policy language: wildcards, deny rules, `**`, query, raw paths

RICH_TEXT = """\
version: 1
allow:
  - domain: '*.svc.example'                     # SUB
  - domain: '**.zone.example'                   # APEX
    methods: [GET]
  - domains: [multi.example, '*.multi.example'] # MULTI
    ports: [443]
  - domain: files.example                       # FILES
    paths: ['/pub/**', '/**/*.txt']
  - domain: git.example                         # GIT_REFS
    methods: [GET]
    paths: ['/*/*/info/refs']
    query: {service: git-upload-pack}
  - domain: raw.example                         # RAW
    raw_paths: true
    paths: ['/api/projects/group%2Fproject/**', '/plain/*']
  - domain: open.example                        # OPEN
  - domain: q.example                           # Q_ANY
    query: {v: '1*'}
deny:
  - domain: open.example                        # DENY_ADMIN
    paths: ['/admin/**']
  - domain: '**.zone.example'                   # DENY_TOKEN
    query: {token: '*'}
  - domain: bad.svc.example                     # DENY_BAD
  - domain: raw.example                         # DENY_RAW_DELETE
    methods: [DELETE]
  - domain: open.example                        # DENY_PORT
    ports: [8080]
"""
RICH = parse_policy(RICH_TEXT)
RICH_MATCHER = Matcher(RICH)


def at(marker: str) -> str:
    """The source of the rule whose line in RICH_TEXT carries `# marker`."""
    (line,) = [n for n, text in enumerate(RICH_TEXT.splitlines(), 1) if text.endswith(f"# {marker}")]
    return f"<string>:{line}"


RICH_ALLOWED = [
    pytest.param(http("a.svc.example"), "SUB", "/", id="one-label-under"),
    pytest.param(http("x.y.svc.example"), "SUB", "/", id="two-labels-under"),
    pytest.param(http("A.SVC.Example."), "SUB", "/", id="wildcard-host-spelling"),
    pytest.param(http("zone.example"), "APEX", "/", id="apex-of-double-star"),
    pytest.param(http("a.b.zone.example"), "APEX", "/", id="under-double-star"),
    pytest.param(http("multi.example"), "MULTI", "/", id="domains-first"),
    pytest.param(http("a.multi.example"), "MULTI", "/", id="domains-second"),
    pytest.param(http("files.example", "/pub"), "FILES", "/pub", id="span-matches-zero-segments"),
    pytest.param(http("files.example", "/pub/"), "FILES", "/pub/", id="span-matches-empty-segment"),
    pytest.param(http("files.example", "/pub/a/b/c"), "FILES", "/pub/a/b/c", id="span-matches-many"),
    pytest.param(http("files.example", "/a/b/readme.txt"), "FILES", "/a/b/readme.txt", id="leading-span"),
    pytest.param(http("files.example", "/readme.txt"), "FILES", "/readme.txt", id="leading-span-empty"),
    pytest.param(http("files.example", "/x/../pub/./a"), "FILES", "/pub/a", id="span-after-normalization"),
    pytest.param(
        http("git.example", "/o/r.git/info/refs?service=git-upload-pack"),
        "GIT_REFS",
        "/o/r.git/info/refs?service=git-upload-pack",
        id="query-match",
    ),
    pytest.param(
        http("git.example", "/o/r/info/refs?x=1&service=git%2dupload-pack"),
        "GIT_REFS",
        "/o/r/info/refs?x=1&service=git%2dupload-pack",
        id="query-decoded-other-params-ok",
    ),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/raw/x?ref=main"),
        "RAW",
        "/api/projects/group%2Fproject/raw/x?ref=main",
        id="raw-forwarded-as-sent",
    ),
    pytest.param(
        http("raw.example", "/api/projects/group%2fproject"),
        "RAW",
        "/api/projects/group%2fproject",
        id="raw-escape-case",
    ),
    pytest.param(http("raw.example", "/plain/%7e"), "RAW", "/plain/~", id="raw-rule-normal-path-normalized"),
    pytest.param(
        http("raw.example", '/api/projects/group%2Fproject/a"b{c}?q="'),
        "RAW",
        '/api/projects/group%2Fproject/a%22b%7Bc%7D?q="',
        id="raw-forwarded-with-disallowed-characters-encoded",
    ),
    pytest.param(http("open.example", "/public"), "OPEN", "/public", id="deny-of-other-path"),
    pytest.param(http("open.example", "/administrator"), "OPEN", "/administrator", id="deny-by-segments"),
    pytest.param(http("zone.example", "/?tokens=1"), "APEX", "/?tokens=1", id="deny-query-other-name"),
    pytest.param(http("q.example", "/?v=1&v=12"), "Q_ANY", "/?v=1&v=12", id="every-value-matches"),
]


@pytest.mark.parametrize(("request_", "marker", "forwarded"), RICH_ALLOWED)
def test_rich_allowed(request_: Request, marker: str, forwarded: str) -> None:
    """These requests are allowed by the marked rule, forwarding this target."""
    decision = RICH_MATCHER.decide(request_)
    assert (decision.verdict, decision.reason, decision.path) == ("allow", Reason.ALLOWED, forwarded)
    assert decision.rule is not None
    assert decision.rule.source == at(marker)


RICH_DENIED = [
    pytest.param(http("svc.example"), Reason.NO_MATCHING_RULE, None, id="single-star-never-the-apex"),
    pytest.param(http("xsvc.example"), Reason.NO_MATCHING_RULE, None, id="label-boundary"),
    pytest.param(http("svc.example.evil"), Reason.NO_MATCHING_RULE, None, id="suffix-is-not-prefix"),
    pytest.param(http("bad.svc.example"), Reason.DENIED_BY_RULE, "DENY_BAD", id="deny-wins-over-wildcard"),
    pytest.param(http("zone.example", method="POST"), Reason.METHOD_NOT_ALLOWED, None, id="apex-method"),
    pytest.param(http("a.zone.example", "/?token=x"), Reason.DENIED_BY_RULE, "DENY_TOKEN", id="deny-query"),
    pytest.param(http("zone.example", "/?token"), Reason.DENIED_BY_RULE, "DENY_TOKEN", id="deny-query-no-value"),
    pytest.param(
        http("zone.example", "/?x=1;token=1"), Reason.DENIED_BY_RULE, "DENY_TOKEN", id="deny-query-any-reading"
    ),
    pytest.param(
        http("zone.example", "/?token=x", "POST"), Reason.DENIED_BY_RULE, "DENY_TOKEN", id="deny-before-method"
    ),
    pytest.param(http("multi.example", port=80), Reason.PORT_NOT_ALLOWED, None, id="domains-port"),
    pytest.param(http("files.example", "/pubx"), Reason.PATH_NOT_ALLOWED, None, id="span-by-segment"),
    pytest.param(http("files.example", "/a.txt/x"), Reason.PATH_NOT_ALLOWED, None, id="span-then-literal-last"),
    pytest.param(http("git.example", "/o/r/info/refs"), Reason.QUERY_NOT_ALLOWED, None, id="query-missing"),
    pytest.param(
        http("git.example", "/o/r/info/refs?service=git-receive-pack"),
        Reason.QUERY_NOT_ALLOWED,
        None,
        id="query-other-value",
    ),
    pytest.param(
        http("git.example", "/o/r/info/refs?service=git-upload-pack&service=git-receive-pack"),
        Reason.QUERY_NOT_ALLOWED,
        None,
        id="query-every-value-must-match",
    ),
    pytest.param(
        http("git.example", "/o/r/info/refs?service=git-upload-pack;x=y"),
        Reason.QUERY_NOT_ALLOWED,
        None,
        id="query-every-reading-must-match",
    ),
    pytest.param(http("q.example", "/?v=1&v=2"), Reason.QUERY_NOT_ALLOWED, None, id="query-one-bad-value"),
    pytest.param(http("q.example", "/?v=1+"), Reason.ALLOWED, "Q_ANY", id="query-plus-both-readings-match"),
    pytest.param(
        http("git.example", "/o/info/refs?service=git-upload-pack"),
        Reason.PATH_NOT_ALLOWED,
        None,
        id="path-before-query",
    ),
    pytest.param(http("open.example", "/admin"), Reason.DENIED_BY_RULE, "DENY_ADMIN", id="deny-span-zero"),
    pytest.param(http("open.example", "/admin/x/y"), Reason.DENIED_BY_RULE, "DENY_ADMIN", id="deny-span"),
    pytest.param(http("open.example", "/x/../admin/"), Reason.DENIED_BY_RULE, "DENY_ADMIN", id="deny-normalized"),
    pytest.param(http("open.example", "/%61dmin"), Reason.DENIED_BY_RULE, "DENY_ADMIN", id="deny-escaped"),
    pytest.param(http("open.example", "//admin//x"), Reason.DENIED_BY_RULE, "DENY_ADMIN", id="deny-slashes"),
    pytest.param(http("open.example", port=8080), Reason.DENIED_BY_RULE, "DENY_PORT", id="deny-on-unallowed-port"),
    pytest.param(http("open.example", "/a%2Fb"), Reason.AMBIGUOUS_PATH, None, id="ambiguous-without-raw"),
    pytest.param(http("raw.example", "/api/projects/other%2Fx"), Reason.AMBIGUOUS_PATH, None, id="raw-no-match"),
    pytest.param(http("raw.example", "/plain/a%2Fb"), Reason.AMBIGUOUS_PATH, None, id="raw-star-not-encoded-slash"),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/../../../x"),
        Reason.AMBIGUOUS_PATH,
        None,
        id="raw-span-not-dot-dot",
    ),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/x#y"), Reason.AMBIGUOUS_PATH, None, id="raw-fragment"
    ),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/x", "DELETE"),
        Reason.DENIED_BY_RULE,
        "DENY_RAW_DELETE",
        id="deny-wins-over-raw",
    ),
    pytest.param(
        http("raw.example", "/plain/%zz", "DELETE"),
        Reason.DENIED_BY_RULE,
        "DENY_RAW_DELETE",
        id="deny-wins-over-raw-star",
    ),
    pytest.param(http("raw.example", "/plain/%zz", "POST"), Reason.ALLOWED, "RAW", id="raw-invalid-escape-literal"),
    pytest.param(http("raw.example", "/plain/..%3b"), Reason.AMBIGUOUS_PATH, None, id="raw-star-not-dot-dot-params"),
]


@pytest.mark.parametrize(("request_", "reason", "marker"), RICH_DENIED)
def test_rich_decisions(request_: Request, reason: str, marker: str | None) -> None:
    """These requests get this reason; a deny rule that matched (or the allowing rule) is named."""
    decision = RICH_MATCHER.decide(request_)
    assert decision.reason == reason
    if marker is None:
        assert decision == deny(reason)
    else:
        assert decision.rule is not None
        assert decision.rule.source == at(marker)


@pytest.mark.parametrize(
    ("request_", "reason", "marker"),
    [
        pytest.param(stream("a.svc.example"), Reason.ALLOWED, "SUB", id="wildcard-stream"),
        pytest.param(stream("bad.svc.example"), Reason.DENIED_BY_RULE, "DENY_BAD", id="denied-host"),
        # A deny rule restricting paths cannot check a stream, so it denies it.
        pytest.param(stream("open.example"), Reason.DENIED_BY_RULE, "DENY_ADMIN", id="deny-with-paths"),
        pytest.param(stream("zone.example"), Reason.DENIED_BY_RULE, "DENY_TOKEN", id="deny-with-query"),
        pytest.param(stream("q.example"), Reason.NOT_HTTP, None, id="query-rule-no-stream"),
        pytest.param(stream("raw.example", 22), Reason.DENIED_BY_RULE, "DENY_RAW_DELETE", id="deny-every-port"),
        pytest.param(stream("files.example", 22), Reason.PORT_NOT_ALLOWED, None, id="port"),
        pytest.param(stream("nothing.example"), Reason.NO_MATCHING_RULE, None, id="unknown"),
    ],
)
def test_rich_streams(request_: Request, reason: str, marker: str | None) -> None:
    """Streams: any deny rule for the host and port denies; only an unconditional allow rule allows."""
    decision = RICH_MATCHER.decide(request_)
    assert decision.reason == reason
    assert (decision.rule.source if decision.rule else None) == (at(marker) if marker else None)


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("a.svc.example", 443, True),
        ("svc.example", 443, False),
        ("bad.svc.example", 443, False),  # an unconditional deny rule closes the dial
        ("open.example", 443, True),  # a deny rule with paths leaves it to each request
        ("open.example", 8080, False),
        ("raw.example", 443, True),  # a deny rule with methods too
        ("zone.example", 80, True),
        ("a.multi.example", 443, True),
        ("a.multi.example", 80, False),
    ],
)
def test_rich_allows_destination(host: str, port: int, allowed: bool) -> None:
    """The dial gate knows wildcards and unconditional deny rules."""
    assert RICH_MATCHER.allows_destination(host, port) is allowed


def test_deny_rule_for_every_port_closes_every_dial() -> None:
    """A deny rule without ports or conditions closes the host on every port."""
    matcher = Matcher(parse_policy("version: 1\nallow:\n  - domain: '**.a.test'\ndeny:\n  - domain: b.a.test\n"))
    assert matcher.allows_destination("c.a.test", 443)
    assert not matcher.allows_destination("b.a.test", 443)
    assert not matcher.allows_destination("b.a.test", 80)


def test_first_rule_in_policy_order_wins_across_exact_and_wildcard() -> None:
    """Rules found through different index keys still decide in policy order."""
    policy = parse_policy(
        "version: 1\nallow:\n"
        "  - {domain: '*.example.org', methods: [GET]}\n"
        "  - domain: a.example.org\n"
        "  - {domains: [a.example.org, '**.a.example.org'], methods: [PUT]}\n"
    )
    matcher = Matcher(policy)
    assert matcher.decide(http("a.example.org")).rule is policy.rules[0]
    assert matcher.decide(http("a.example.org", method="POST")).rule is policy.rules[1]
    assert matcher.decide(http("x.a.example.org", method="PUT")).rule is policy.rules[2]


def test_every_host_rule() -> None:
    """`*` (with allow_broad) names every host; deny rules still win."""
    policy = parse_policy(
        "version: 1\nallow:\n  - {domain: '*', allow_broad: true, methods: [GET]}\ndeny:\n  - domain: '**.evil.test'\n"
    )
    matcher = Matcher(policy)
    assert matcher.decide(http("anything.example")).allowed
    assert matcher.decide(http("localhost")).allowed
    assert matcher.decide(http("evil.test")).reason == Reason.DENIED_BY_RULE
    assert matcher.decide(http("a.evil.test")).reason == Reason.DENIED_BY_RULE


def test_presets_through_the_matcher() -> None:
    """A preset included by a policy decides like rules written in it, and a push names the deny rule."""
    matcher = Matcher(parse_policy("version: 1\ninclude: [preset:github-readonly]\n"))
    push = matcher.decide(http("github.com", "/o/r.git/git-receive-pack", "POST"))
    assert (push.reason, push.rule.id if push.rule else None) == (Reason.DENIED_BY_RULE, "preset:github-readonly/5")
    fetch = matcher.decide(http("github.com", "/o/r.git/info/refs?service=git-upload-pack"))
    assert (fetch.reason, fetch.rule.id if fetch.rule else None) == (Reason.ALLOWED, "preset:github-readonly/1")


# ---------------------------------------------------------------------------------------------------------------
# Properties of the rich policy, and the index against a brute-force reference

RICH_HOSTS = st.sampled_from(
    [
        *("a.svc.example", "bad.svc.example", "zone.example", "multi.example", "files.example", "git.example"),
        *("raw.example", "open.example", "q.example", "svc.example", "x.y.zone.example"),
    ]
)
RICH_TARGETS = st.one_of(
    TARGETS,
    st.lists(
        st.sampled_from([*TOKENS, "pub", "admin", "info", "refs", "x.txt", "%2F", "group", "project"]), max_size=10
    )
    .map(lambda tokens: "/" + "".join(tokens))
    .flatmap(lambda path: st.sampled_from([path, path + "?service=git-upload-pack", path + "?token=1&v=1+"])),
)


@given(
    host=st.one_of(st.text(), RICH_HOSTS),
    port=st.integers(min_value=-1, max_value=70000),
    method=METHODS,
    path=st.one_of(st.none(), st.text(), RICH_TARGETS),
)
def test_rich_decide_never_raises(host: str, port: int, method: str | None, path: str | None) -> None:
    """Any request gets a known reason; a decision names a rule exactly when it is an allow or a rule's deny."""
    decision = RICH_MATCHER.decide(Request("https", host, port, method, path))
    assert decision.reason in POLICY_REASONS
    assert decision.allowed == (decision.reason == Reason.ALLOWED)
    assert (decision.rule is not None) == (decision.reason in (Reason.ALLOWED, Reason.DENIED_BY_RULE))
    if decision.rule is not None:
        assert decision.rule.action == ("allow" if decision.allowed else "deny")
    assert isinstance(RICH_MATCHER.allows_destination(host, port), bool)


@given(target=st.one_of(RICH_TARGETS, SAFE_TARGETS), host=RICH_HOSTS, method=st.sampled_from(["GET", "POST", "DELETE"]))
def test_rich_target_and_its_normal_form_get_the_same_decision(target: str, host: str, method: str) -> None:
    """With wildcards, deny rules, `**` and queries too, a spelling decides like its normal form."""
    try:
        normal = normalize_path(target)
    except AmbiguousPathError:
        return
    assert RICH_MATCHER.decide(http(host, target, method)) == RICH_MATCHER.decide(http(host, normal, method))


@given(spellings=respelled(), host=RICH_HOSTS, flips=st.lists(st.booleans(), min_size=20, max_size=20))
def test_rich_spellings_of_path_and_host_get_the_same_decision(
    spellings: tuple[str, str], host: str, flips: list[bool]
) -> None:
    """Escapes, dot segments, slashes and host case never change a decision under wildcards and deny rules."""
    plain, other = spellings
    spelled = "".join(c.upper() if flip else c for c, flip in zip(host, flips, strict=False)) + "."
    assert RICH_MATCHER.decide(http(spelled, other)) == RICH_MATCHER.decide(http(host, plain))


REF_DOMAINS = ["a.test", "*.a.test", "**.a.test", "b.a.test", "*.b.a.test", "c.test", "*", "**.test", "**"]
REF_PATHS = ["/x", "/x/*", "/x/**", "/**/y", "/*", "/**", "/x/", "/x/y"]


@st.composite
def reference_rules(draw: st.DrawFn, action: Literal["allow", "deny"]) -> list[Rule]:
    rules = []
    for index in range(draw(st.integers(0, 5))):
        domains = tuple(dict.fromkeys(draw(st.lists(st.sampled_from(REF_DOMAINS), min_size=1, max_size=2))))
        ports = draw(st.sampled_from([frozenset({80, 443}), frozenset({443}), frozenset({8080}), None]))
        if action == "allow" and ports is None:
            ports = DEFAULT_PORTS
        methods = draw(st.sampled_from([None, frozenset({"GET"}), frozenset({"GET", "POST"})]))
        paths = draw(st.one_of(st.none(), st.lists(st.sampled_from(REF_PATHS), min_size=1, max_size=2).map(tuple)))
        query = draw(st.sampled_from([None, (("q", "1"),), (("q", "*"),)]))
        rules.append(
            Rule(domains[0], ports, methods, paths, f"{action}:{index}", domains=domains, query=query, action=action)
        )
    return rules


def reference_decision(policy: Policy, request: Request) -> tuple[str, Rule | None]:
    """Deny wins, else the first allow rule in policy order; a plain scan over every rule."""
    host = normalize_host(request.host)
    assert request.path is not None and request.method is not None
    path, _, query = normalize_path(request.path).partition("?")
    readings = query_readings(query)

    def matches(rule: Rule, loose: bool) -> bool:
        # A deny rule (loose) matches any reading of the path, an allow rule the path as forwarded.
        paths = path_readings(path) if loose else (path,)
        return (
            rule.matches_host(host)
            and (rule.ports is None or request.port in rule.ports)
            and (rule.methods is None or request.method in rule.methods)
            and any(rule.matches_path(reading) for reading in paths)
            and rule.matches_query(readings, loose=loose)
        )

    for rule in policy.deny:
        if matches(rule, loose=True):
            return "deny", rule
    for rule in policy.rules:
        if matches(rule, loose=False):
            return "allow", rule
    return "deny", None


@given(
    allow=reference_rules("allow"),
    deny_=reference_rules("deny"),
    host=st.sampled_from(["a.test", "b.a.test", "x.b.a.test", "c.test", "d.c.test", "z.test", "other"]),
    port=st.sampled_from([80, 443, 8080]),
    method=st.sampled_from(["GET", "POST"]),
    target=st.sampled_from(
        [
            *("/", "/x", "/x/y", "/x/y/z", "/y", "/a/y", "/x?q=1", "/x?q=2", "/x/y?q=1&q=2"),
            *("/x/", "/x;p", "/x%3Bp/y", "/x;p/y/", "/;p/y", "/x%3bp?q=1"),
        ]
    ),
)
def test_index_agrees_with_a_scan(
    allow: list[Rule], deny_: list[Rule], host: str, port: int, method: str, target: str
) -> None:
    """The host index finds exactly what scanning every rule finds: same verdict, same rule."""
    policy = Policy(tuple(allow), "ref", tuple(deny_))
    decision = Matcher(policy).decide(http(host, target, method, port))
    assert (decision.verdict, decision.rule) == reference_decision(policy, http(host, target, method, port))


# ---------------------------------------------------------------------------------------------------------------
# Deny rules match every reading a server may give the path; allow rules match the path as forwarded

READINGS_TEXT = """\
version: 1
allow:
  - domain: open.example                        # OPEN
  - domain: api.example                         # API
    paths: ['/v1', '/public/**', '/files/*']
deny:
  - domain: open.example                        # ADMIN
    paths: ['/admin/**']
  - domain: open.example                        # SECRET
    paths: ['/secret']
  - domain: open.example                        # DIR
    paths: ['/dir/']
  - domain: open.example                        # ONE_UNDER
    paths: ['/one/*']
  - domain: open.example                        # JSON
    paths: ['/v2/*.json']
  - domain: open.example                        # AT
    paths: ['/users/me@home']
"""
READINGS_MATCHER = Matcher(parse_policy(READINGS_TEXT))


def at_line(marker: str) -> str:
    """The source of the rule whose line in READINGS_TEXT carries `# marker`."""
    (line,) = [n for n, text in enumerate(READINGS_TEXT.splitlines(), 1) if text.endswith(f"# {marker}")]
    return f"<string>:{line}"


DENIED_IN_EVERY_READING = [
    # Servlet containers cut ';params' off each segment before routing (some after decoding '%3B').
    ("/admin;x/users", "ADMIN"),
    ("/admin;/", "ADMIN"),
    ("/admin;x", "ADMIN"),
    ("/admin;jsessionid=1/users/1", "ADMIN"),
    ("/admin%3B/", "ADMIN"),
    ("/admin%3b/", "ADMIN"),
    ("/admin%3bx/users", "ADMIN"),
    ("/;x/admin", "ADMIN"),  # the emptied segment collapses, as '//' does
    ("/secret;x", "SECRET"),
    ("/secret;x/", "SECRET"),
    ("/secret%3Bjsessionid=1", "SECRET"),
    ("/v2/a.json;v=1", "JSON"),
    # Most frameworks route a path with and without its trailing slash to one handler.
    ("/secret/", "SECRET"),
    ("/dir", "DIR"),
    ("/dir;x", "DIR"),
    ("/one", "ONE_UNDER"),  # '/one/' is under '/one/*' ('*' matches the empty segment)
    ("/one/x/", "ONE_UNDER"),
    ("/v2/a.json/", "JSON"),
    # Servers decode the escapes of characters a segment may hold raw.
    ("/users/me%40home", "AT"),
    ("/users/me%40home/", "AT"),
]


@pytest.mark.parametrize(("path", "marker"), DENIED_IN_EVERY_READING)
def test_a_deny_rule_matches_every_reading_of_the_path(path: str, marker: str) -> None:
    """Each of these paths reaches the denied resource on some server; the deny rule denies it."""
    decision = READINGS_MATCHER.decide(http("open.example", path))
    assert (decision.reason, decision.rule.source if decision.rule else None) == (
        Reason.DENIED_BY_RULE,
        at_line(marker),
    )


@pytest.mark.parametrize(
    "path",
    [
        *("/", "/administrator", "/admin-x;/", "/x;admin", "/%3B", "/public;x/y"),
        *("/secrets", "/secret/x", "/secret.txt", "/s;ecret", "/dir/x", "/dirs", "/one/x/y", "/on;e"),
        *("/v2/a.jsonx", "/v2/a/b.json", "/users/me%40work", "/users/me@home/x"),
    ],
)
def test_paths_no_reading_of_which_is_denied_stay_allowed(path: str) -> None:
    """Readings widen deny rules only: these paths are allowed, and forwarded as normalized (never a reading)."""
    decision = READINGS_MATCHER.decide(http("open.example", path))
    assert (decision.reason, decision.path) == (Reason.ALLOWED, path)
    assert decision.rule is not None and decision.rule.source == at_line("OPEN")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/v1", Reason.ALLOWED),
        ("/v1/", Reason.PATH_NOT_ALLOWED),  # as before readings: '/v1' names one path
        ("/v1;x", Reason.PATH_NOT_ALLOWED),
        ("/v1%3Bx", Reason.PATH_NOT_ALLOWED),
        ("/public/x", Reason.ALLOWED),
        ("/public;x/y", Reason.PATH_NOT_ALLOWED),
        ("/public%3B/y", Reason.PATH_NOT_ALLOWED),
        ("/public;x/../admin", Reason.PATH_NOT_ALLOWED),  # normalized to /admin
        ("/public/..%3B/admin", Reason.AMBIGUOUS_PATH),  # '..;' once '%3B' is decoded
        ("/files/a", Reason.ALLOWED),
        ("/files", Reason.PATH_NOT_ALLOWED),
        ("/files/a/", Reason.PATH_NOT_ALLOWED),
    ],
)
def test_an_allow_rule_matches_the_path_as_forwarded_only(path: str, reason: str) -> None:
    """Allow rules never match a reading: what they allow is exactly what the server is sent."""
    assert READINGS_MATCHER.decide(http("api.example", path)).reason == reason


@pytest.mark.parametrize(
    ("path", "readings"),
    [
        ("/", ("/",)),
        ("/secret", ("/secret", "/secret/")),
        ("/secret/", ("/secret/", "/secret")),
        ("/caf%C3%A9/x%20y", ("/caf%C3%A9/x%20y", "/caf%C3%A9/x%20y/")),  # no escape of a segment character
        ("/admin;x/users", ("/admin;x/users", "/admin/users", "/admin;x/users/", "/admin/users/")),
        ("/;x", ("/;x", "/", "/;x/")),
        ("/;x/admin", ("/;x/admin", "/admin", "/;x/admin/", "/admin/")),
        (
            "/admin%3B/",
            ("/admin%3B/", "/admin;/", "/admin/", "/admin%3B", "/admin;", "/admin"),
        ),
        # Tomcat cuts ';params' before decoding, so '/a/c;d' is a reading of its own.
        (
            "/a;b/c%3Bd",
            tuple(
                reading + slash
                for slash in ("", "/")
                for reading in ("/a;b/c%3Bd", "/a/c%3Bd", "/a;b/c;d", "/a/c", "/a/c;d")
            ),
        ),
        ("/users/me%40home", ("/users/me%40home", "/users/me@home", "/users/me%40home/", "/users/me@home/")),
    ],
)
def test_path_readings(path: str, readings: tuple[str, ...]) -> None:
    """The path first, then parameters cut, escapes decoded, both orders; then each with the other slash."""
    assert path_readings(path) == readings


READING_SEGMENTS = ["a", "b", "a;x", "b;", ";x", "a%3Bx", "%3b", "a%40b", "a@b", "x%20y", "..%2E"]


@st.composite
def reading_targets(draw: st.DrawFn) -> str:
    """A target of segments with parameters, encoded ';' and '@', maybe a trailing slash."""
    segments = draw(st.lists(st.sampled_from(READING_SEGMENTS), max_size=4))
    return "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))


@given(target=reading_targets())
def test_every_reading_is_a_normal_path_without_dot_segments(target: str) -> None:
    """Readings are normal forms (so patterns can match them), the path comes first, and none climbs."""
    try:
        path = normalize_path(target)
    except AmbiguousPathError:
        return
    readings = path_readings(path)
    assert readings[0] == path and len(set(readings)) == len(readings)
    for reading in readings:
        assert normalize_path(reading) == reading
        assert not {".", ".."} & set(reading.split("/"))
    assert set(readings) == {*segment_readings(path), *map(other_slash, segment_readings(path))}
    assert has_one_segment_reading(path) == (segment_readings(path) == (path,))


DENY_SEGMENTS = ["a", "b", "*", "**", "a*", "*b"]


@st.composite
def deny_patterns(draw: st.DrawFn) -> str:
    segments = draw(st.lists(st.sampled_from(DENY_SEGMENTS), min_size=1, max_size=3))
    return "/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))


@given(patterns=st.lists(deny_patterns(), min_size=1, max_size=2), target=reading_targets())
def test_a_deny_rule_denies_exactly_when_its_paths_match_a_reading(patterns: list[str], target: str) -> None:
    """The matcher's precomputed slash twins and set lookups agree with matching each reading in turn."""
    try:
        path = normalize_path(target)
    except AmbiguousPathError:
        return
    denier = Rule("a.example", None, None, tuple(patterns), "deny:1", action="deny")
    policy = Policy((Rule("a.example", DEFAULT_PORTS, None, None, "allow:1"),), "t", (denier,))
    decision = Matcher(policy).decide(http("a.example", target))
    expected = any(denier.matches_path(reading) for reading in path_readings(path))
    assert decision.reason == (Reason.DENIED_BY_RULE if expected else Reason.ALLOWED)


@pytest.mark.parametrize("reason", POLICY_REASONS)
def test_docs_explain_every_reason(reason: str) -> None:
    """docs/policy.md explains every reason a decision can carry."""
    text = (repo_root() / "docs" / "policy.md").read_text(encoding="utf-8")
    assert f"| `{reason}` |" in text
