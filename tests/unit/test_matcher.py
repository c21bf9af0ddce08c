"""Specification of request decisions: which requests a policy allows, why others are denied, and the path
that is forwarded."""

import re
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.matcher import (
    REASON_ALLOWED,
    REASON_AMBIGUOUS_PATH,
    REASON_DENIED_BY_RULE,
    REASON_INVALID_HOST,
    REASON_IP_LITERAL,
    REASON_METHOD_NOT_ALLOWED,
    REASON_NO_MATCHING_RULE,
    REASON_NOT_HTTP,
    REASON_PATH_NOT_ALLOWED,
    REASON_PORT_NOT_ALLOWED,
    REASON_QUERY_NOT_ALLOWED,
    REASONS,
    AmbiguousPathError,
    Decision,
    Matcher,
    Request,
    deny,
    normalize_path,
)
from boundary.policy import (
    _PLAIN_PATH,
    _PLAIN_QUERY,
    DEFAULT_PORTS,
    Policy,
    Rule,
    _normalize_path_fully,
    normalize_host,
    parse_policy,
    query_readings,
)

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
    assert decision == Decision("allow", REASON_ALLOWED, decision.rule, forwarded)
    assert decision.rule is not None
    assert decision.rule.source == f"<string>:{line}"


DENIED = [
    # hosts
    pytest.param(http("unknown.example"), REASON_NO_MATCHING_RULE, id="unknown-host"),
    pytest.param(http("sub.open.example"), REASON_NO_MATCHING_RULE, id="subdomain-not-implied"),
    pytest.param(http("open.example.."), REASON_INVALID_HOST, id="two-trailing-dots"),
    pytest.param(http(""), REASON_INVALID_HOST, id="empty-host"),
    pytest.param(http("open example"), REASON_INVALID_HOST, id="space-in-host"),
    pytest.param(http("open.example:443"), REASON_INVALID_HOST, id="host-with-port"),
    pytest.param(http("open_example"), REASON_INVALID_HOST, id="underscore"),
    pytest.param(http("\uff4f\uff50\uff45\uff4e.example"), REASON_INVALID_HOST, id="fullwidth-host"),
    pytest.param(http("1.2.3.4.5"), REASON_INVALID_HOST, id="numeric-last-label"),
    # IP literals, every spelling
    pytest.param(http("127.0.0.1"), REASON_IP_LITERAL, id="ipv4"),
    pytest.param(http("127.1"), REASON_IP_LITERAL, id="ipv4-short"),
    pytest.param(http("0x7f.0.0.1"), REASON_IP_LITERAL, id="ipv4-hex"),
    pytest.param(http("2130706433"), REASON_IP_LITERAL, id="ipv4-integer"),
    pytest.param(http("017700000001"), REASON_IP_LITERAL, id="ipv4-octal"),
    pytest.param(http("127.0.0.1."), REASON_IP_LITERAL, id="ipv4-trailing-dot"),
    pytest.param(http("::1"), REASON_IP_LITERAL, id="ipv6"),
    pytest.param(http("[::1]"), REASON_IP_LITERAL, id="ipv6-brackets"),
    pytest.param(http("[::ffff:7f00:1]"), REASON_IP_LITERAL, id="ipv4-mapped-ipv6"),
    # ports
    pytest.param(http("open.example", port=8080), REASON_PORT_NOT_ALLOWED, id="port-outside-default"),
    pytest.param(http("alt.example", port=443), REASON_PORT_NOT_ALLOWED, id="explicit-ports-replace-default"),
    pytest.param(http("open.example", port=0), REASON_PORT_NOT_ALLOWED, id="port-zero"),
    # methods: listed ones only, compared exactly
    pytest.param(http("api.example", "/hello", "DELETE"), REASON_METHOD_NOT_ALLOWED, id="unlisted-method"),
    pytest.param(http("api.example", "/hello", "get"), REASON_METHOD_NOT_ALLOWED, id="method-case"),
    # paths
    pytest.param(http("api.example", "/hello", "POST"), REASON_PATH_NOT_ALLOWED, id="method-of-other-rule"),
    pytest.param(http("api.example", "/goodbye"), REASON_PATH_NOT_ALLOWED, id="unlisted-path"),
    pytest.param(http("api.example", "/hello/"), REASON_PATH_NOT_ALLOWED, id="extra-slash"),
    pytest.param(http("api.example", "/HELLO"), REASON_PATH_NOT_ALLOWED, id="path-case"),
    pytest.param(http("api.example", "/v1/a/b"), REASON_PATH_NOT_ALLOWED, id="star-one-segment"),
    pytest.param(http("api.example", "/hello%3F"), REASON_PATH_NOT_ALLOWED, id="escaped-question-mark"),
    # bypass spellings: each normalizes away from the allowed prefix, or is ambiguous
    pytest.param(http("api.example", "/public/../secret"), REASON_PATH_NOT_ALLOWED, id="dot-dot"),
    pytest.param(http("api.example", "/public/%2e%2e/secret"), REASON_PATH_NOT_ALLOWED, id="escaped-dot-dot"),
    pytest.param(http("api.example", "/public/.%2E/secret"), REASON_PATH_NOT_ALLOWED, id="half-escaped"),
    pytest.param(http("api.example", "//secret"), REASON_PATH_NOT_ALLOWED, id="double-slash"),
    pytest.param(http("api.example", "/public/./../secret"), REASON_PATH_NOT_ALLOWED, id="dot-then-dot-dot"),
    pytest.param(http("api.example", "/a/../secret"), REASON_PATH_NOT_ALLOWED, id="a-dot-dot-secret"),
    pytest.param(http("api.example", "/%2e%2e/secret"), REASON_AMBIGUOUS_PATH, id="escaped-above-root"),
    pytest.param(http("api.example", "/%2E%2e/"), REASON_AMBIGUOUS_PATH, id="mixed-case-above-root"),
    pytest.param(http("api.example", "/../public/x"), REASON_AMBIGUOUS_PATH, id="above-root"),
    pytest.param(http("api.example", "/public/x/../../.."), REASON_AMBIGUOUS_PATH, id="climbs-out"),
    pytest.param(http("api.example", "/public/a%2Fb"), REASON_AMBIGUOUS_PATH, id="encoded-slash"),
    pytest.param(http("api.example", "/public/a%2f..%2f..%2fsecret"), REASON_AMBIGUOUS_PATH, id="encoded-slashes"),
    pytest.param(http("api.example", "/public/a%5Cb"), REASON_AMBIGUOUS_PATH, id="encoded-backslash"),
    pytest.param(http("api.example", "/public\\..\\secret"), REASON_AMBIGUOUS_PATH, id="backslash"),
    pytest.param(http("api.example", "/public/x%00"), REASON_AMBIGUOUS_PATH, id="encoded-nul"),
    pytest.param(http("api.example", "/public/x\x00"), REASON_AMBIGUOUS_PATH, id="nul"),
    pytest.param(http("api.example", "/public/..;/secret"), REASON_AMBIGUOUS_PATH, id="dot-dot-params"),
    pytest.param(http("api.example", "/public/x#/../../secret"), REASON_AMBIGUOUS_PATH, id="fragment"),
    pytest.param(http("api.example", "/public/x y"), REASON_AMBIGUOUS_PATH, id="space"),
    pytest.param(http("api.example", "/public/\u2024\u2024"), REASON_AMBIGUOUS_PATH, id="non-ascii"),
    pytest.param(http("api.example", "/public/%zz"), REASON_AMBIGUOUS_PATH, id="invalid-escape"),
    pytest.param(http("api.example", "*", "OPTIONS"), REASON_AMBIGUOUS_PATH, id="asterisk-form"),
    pytest.param(http("api.example", "http://api.example/hello"), REASON_AMBIGUOUS_PATH, id="absolute-form"),
    pytest.param(http("api.example", ""), REASON_AMBIGUOUS_PATH, id="empty-target"),
    pytest.param(Request("https", "api.example", 443, "GET", None), REASON_AMBIGUOUS_PATH, id="no-target"),
    pytest.param(http("open.example", "/../x"), REASON_AMBIGUOUS_PATH, id="ambiguous-even-if-any-path"),
]


@pytest.mark.parametrize(("request_", "reason"), DENIED)
def test_denied_requests(request_: Request, reason: str) -> None:
    """These requests are denied for this reason, with no rule and no path attached."""
    assert MATCHER.decide(request_) == deny(reason)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        pytest.param(http("locked.example", "/nope", "POST", 80), REASON_PORT_NOT_ALLOWED, id="all-wrong"),
        pytest.param(http("locked.example", "/ok", "GET", 80), REASON_PORT_NOT_ALLOWED, id="port-wrong"),
        pytest.param(http("locked.example", "/nope", "POST"), REASON_METHOD_NOT_ALLOWED, id="method-and-path"),
        pytest.param(http("locked.example", "/ok", "POST"), REASON_METHOD_NOT_ALLOWED, id="method-wrong"),
        pytest.param(http("locked.example", "/nope", "GET"), REASON_PATH_NOT_ALLOWED, id="path-wrong"),
        pytest.param(http("locked.example", "/../ok", "POST"), REASON_AMBIGUOUS_PATH, id="ambiguous-first"),
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
        pytest.param(stream("git.example", 443), ("deny", REASON_NOT_HTTP), id="method-restricted-rule"),
        pytest.param(stream("api.example"), ("deny", REASON_NOT_HTTP), id="path-restricted-rules"),
        pytest.param(stream("open.example", 22), ("deny", REASON_PORT_NOT_ALLOWED), id="wrong-port"),
        pytest.param(stream("unknown.example"), ("deny", REASON_NO_MATCHING_RULE), id="unknown-host"),
        pytest.param(stream("10.0.0.1"), ("deny", REASON_IP_LITERAL), id="ip"),
    ],
)
def test_non_http_streams(request_: Request, decision: tuple[str, object]) -> None:
    """A stream with no method is allowed only by a rule restricting neither methods nor paths."""
    result = MATCHER.decide(request_)
    verdict, detail = decision
    if verdict == "allow":
        assert result.allowed
        assert result.reason == REASON_ALLOWED
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
    assert Matcher(parse_policy("version: 1\n")).decide(http("open.example")) == deny(REASON_NO_MATCHING_RULE)


def test_matcher_keeps_its_policy() -> None:
    """The policy a matcher decides by stays reachable for audit and reload."""
    assert MATCHER.policy is POLICY


def test_decision_allowed_property() -> None:
    """`allowed` is true exactly for the allow verdict; `deny` builds a bare deny."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1")
    assert Decision("allow", REASON_ALLOWED, rule, "/").allowed
    assert not deny(REASON_NOT_HTTP).allowed
    assert deny(REASON_NOT_HTTP) == Decision("deny", REASON_NOT_HTTP, None, None)


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
    assert decision.reason in REASONS
    assert decision.allowed == (decision.reason == REASON_ALLOWED) == (decision.rule is not None)
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
    pytest.param(http("open.example", "/public"), "OPEN", "/public", id="deny-of-other-path"),
    pytest.param(http("open.example", "/administrator"), "OPEN", "/administrator", id="deny-by-segments"),
    pytest.param(http("zone.example", "/?tokens=1"), "APEX", "/?tokens=1", id="deny-query-other-name"),
    pytest.param(http("q.example", "/?v=1&v=12"), "Q_ANY", "/?v=1&v=12", id="every-value-matches"),
]


@pytest.mark.parametrize(("request_", "marker", "forwarded"), RICH_ALLOWED)
def test_rich_allowed(request_: Request, marker: str, forwarded: str) -> None:
    """These requests are allowed by the marked rule, forwarding this target."""
    decision = RICH_MATCHER.decide(request_)
    assert (decision.verdict, decision.reason, decision.path) == ("allow", REASON_ALLOWED, forwarded)
    assert decision.rule is not None
    assert decision.rule.source == at(marker)


RICH_DENIED = [
    pytest.param(http("svc.example"), REASON_NO_MATCHING_RULE, None, id="single-star-never-the-apex"),
    pytest.param(http("xsvc.example"), REASON_NO_MATCHING_RULE, None, id="label-boundary"),
    pytest.param(http("svc.example.evil"), REASON_NO_MATCHING_RULE, None, id="suffix-is-not-prefix"),
    pytest.param(http("bad.svc.example"), REASON_DENIED_BY_RULE, "DENY_BAD", id="deny-wins-over-wildcard"),
    pytest.param(http("zone.example", method="POST"), REASON_METHOD_NOT_ALLOWED, None, id="apex-method"),
    pytest.param(http("a.zone.example", "/?token=x"), REASON_DENIED_BY_RULE, "DENY_TOKEN", id="deny-query"),
    pytest.param(http("zone.example", "/?token"), REASON_DENIED_BY_RULE, "DENY_TOKEN", id="deny-query-no-value"),
    pytest.param(
        http("zone.example", "/?x=1;token=1"), REASON_DENIED_BY_RULE, "DENY_TOKEN", id="deny-query-any-reading"
    ),
    pytest.param(
        http("zone.example", "/?token=x", "POST"), REASON_DENIED_BY_RULE, "DENY_TOKEN", id="deny-before-method"
    ),
    pytest.param(http("multi.example", port=80), REASON_PORT_NOT_ALLOWED, None, id="domains-port"),
    pytest.param(http("files.example", "/pubx"), REASON_PATH_NOT_ALLOWED, None, id="span-by-segment"),
    pytest.param(http("files.example", "/a.txt/x"), REASON_PATH_NOT_ALLOWED, None, id="span-then-literal-last"),
    pytest.param(http("git.example", "/o/r/info/refs"), REASON_QUERY_NOT_ALLOWED, None, id="query-missing"),
    pytest.param(
        http("git.example", "/o/r/info/refs?service=git-receive-pack"),
        REASON_QUERY_NOT_ALLOWED,
        None,
        id="query-other-value",
    ),
    pytest.param(
        http("git.example", "/o/r/info/refs?service=git-upload-pack&service=git-receive-pack"),
        REASON_QUERY_NOT_ALLOWED,
        None,
        id="query-every-value-must-match",
    ),
    pytest.param(
        http("git.example", "/o/r/info/refs?service=git-upload-pack;x=y"),
        REASON_QUERY_NOT_ALLOWED,
        None,
        id="query-every-reading-must-match",
    ),
    pytest.param(http("q.example", "/?v=1&v=2"), REASON_QUERY_NOT_ALLOWED, None, id="query-one-bad-value"),
    pytest.param(http("q.example", "/?v=1+"), REASON_ALLOWED, "Q_ANY", id="query-plus-both-readings-match"),
    pytest.param(
        http("git.example", "/o/info/refs?service=git-upload-pack"),
        REASON_PATH_NOT_ALLOWED,
        None,
        id="path-before-query",
    ),
    pytest.param(http("open.example", "/admin"), REASON_DENIED_BY_RULE, "DENY_ADMIN", id="deny-span-zero"),
    pytest.param(http("open.example", "/admin/x/y"), REASON_DENIED_BY_RULE, "DENY_ADMIN", id="deny-span"),
    pytest.param(http("open.example", "/x/../admin/"), REASON_DENIED_BY_RULE, "DENY_ADMIN", id="deny-normalized"),
    pytest.param(http("open.example", "/%61dmin"), REASON_DENIED_BY_RULE, "DENY_ADMIN", id="deny-escaped"),
    pytest.param(http("open.example", "//admin//x"), REASON_DENIED_BY_RULE, "DENY_ADMIN", id="deny-slashes"),
    pytest.param(http("open.example", port=8080), REASON_DENIED_BY_RULE, "DENY_PORT", id="deny-on-unallowed-port"),
    pytest.param(http("open.example", "/a%2Fb"), REASON_AMBIGUOUS_PATH, None, id="ambiguous-without-raw"),
    pytest.param(http("raw.example", "/api/projects/other%2Fx"), REASON_AMBIGUOUS_PATH, None, id="raw-no-match"),
    pytest.param(http("raw.example", "/plain/a%2Fb"), REASON_AMBIGUOUS_PATH, None, id="raw-star-not-encoded-slash"),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/../../../x"),
        REASON_AMBIGUOUS_PATH,
        None,
        id="raw-span-not-dot-dot",
    ),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/x#y"), REASON_AMBIGUOUS_PATH, None, id="raw-fragment"
    ),
    pytest.param(
        http("raw.example", "/api/projects/group%2Fproject/x", "DELETE"),
        REASON_DENIED_BY_RULE,
        "DENY_RAW_DELETE",
        id="deny-wins-over-raw",
    ),
    pytest.param(
        http("raw.example", "/plain/%zz", "DELETE"),
        REASON_DENIED_BY_RULE,
        "DENY_RAW_DELETE",
        id="deny-wins-over-raw-star",
    ),
    pytest.param(http("raw.example", "/plain/%zz", "POST"), REASON_ALLOWED, "RAW", id="raw-invalid-escape-literal"),
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
        pytest.param(stream("a.svc.example"), REASON_ALLOWED, "SUB", id="wildcard-stream"),
        pytest.param(stream("bad.svc.example"), REASON_DENIED_BY_RULE, "DENY_BAD", id="denied-host"),
        # A deny rule restricting paths cannot check a stream, so it denies it.
        pytest.param(stream("open.example"), REASON_DENIED_BY_RULE, "DENY_ADMIN", id="deny-with-paths"),
        pytest.param(stream("zone.example"), REASON_DENIED_BY_RULE, "DENY_TOKEN", id="deny-with-query"),
        pytest.param(stream("q.example"), REASON_NOT_HTTP, None, id="query-rule-no-stream"),
        pytest.param(stream("raw.example", 22), REASON_DENIED_BY_RULE, "DENY_RAW_DELETE", id="deny-every-port"),
        pytest.param(stream("files.example", 22), REASON_PORT_NOT_ALLOWED, None, id="port"),
        pytest.param(stream("nothing.example"), REASON_NO_MATCHING_RULE, None, id="unknown"),
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
    assert matcher.decide(http("evil.test")).reason == REASON_DENIED_BY_RULE
    assert matcher.decide(http("a.evil.test")).reason == REASON_DENIED_BY_RULE


def test_presets_through_the_matcher() -> None:
    """A preset included by a policy decides like rules written in it, and a push names the deny rule."""
    matcher = Matcher(parse_policy("version: 1\ninclude: [preset:github-readonly]\n"))
    push = matcher.decide(http("github.com", "/o/r.git/git-receive-pack", "POST"))
    assert (push.reason, push.rule.id if push.rule else None) == (REASON_DENIED_BY_RULE, "preset:github-readonly/5")
    fetch = matcher.decide(http("github.com", "/o/r.git/info/refs?service=git-upload-pack"))
    assert (fetch.reason, fetch.rule.id if fetch.rule else None) == (REASON_ALLOWED, "preset:github-readonly/1")


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
    assert decision.reason in REASONS
    assert decision.allowed == (decision.reason == REASON_ALLOWED)
    assert (decision.rule is not None) == (decision.reason in (REASON_ALLOWED, REASON_DENIED_BY_RULE))
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
REF_PATHS = ["/x", "/x/*", "/x/**", "/**/y", "/*", "/**"]


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
        return (
            rule.matches_host(host)
            and (rule.ports is None or request.port in rule.ports)
            and (rule.methods is None or request.method in rule.methods)
            and rule.matches_path(path)
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
    target=st.sampled_from(["/", "/x", "/x/y", "/x/y/z", "/y", "/a/y", "/x?q=1", "/x?q=2", "/x/y?q=1&q=2"]),
)
def test_index_agrees_with_a_scan(
    allow: list[Rule], deny_: list[Rule], host: str, port: int, method: str, target: str
) -> None:
    """The host index finds exactly what scanning every rule finds: same verdict, same rule."""
    policy = Policy(tuple(allow), "ref", tuple(deny_))
    decision = Matcher(policy).decide(http(host, target, method, port))
    assert (decision.verdict, decision.rule) == reference_decision(policy, http(host, target, method, port))


@pytest.mark.parametrize("reason", REASONS)
def test_docs_explain_every_reason(reason: str) -> None:
    """docs/policy.md explains every reason a decision can carry."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    assert f"| `{reason}` |" in text
