"""Specification of request decisions: which requests a policy allows, why others are denied, and the path
that is forwarded."""

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from boundary.matcher import (
    REASON_ALLOWED,
    REASON_AMBIGUOUS_PATH,
    REASON_INVALID_HOST,
    REASON_IP_LITERAL,
    REASON_METHOD_NOT_ALLOWED,
    REASON_NO_MATCHING_RULE,
    REASON_NOT_HTTP,
    REASON_PATH_NOT_ALLOWED,
    REASON_PORT_NOT_ALLOWED,
    REASONS,
    AmbiguousPathError,
    Decision,
    Matcher,
    Request,
    deny,
    normalize_path,
)
from boundary.policy import DEFAULT_PORTS, Policy, Rule, parse_policy

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


@given(target=st.one_of(TARGETS, st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E))))
def test_normalize_path_is_idempotent(target: str) -> None:
    """What normalize_path returns is already in normal form."""
    try:
        normal = normalize_path(target)
    except AmbiguousPathError:
        assume(False)
    assert normalize_path(normal) == normal


@given(target=TARGETS, host=HOSTS, method=st.sampled_from(["GET", "POST"]))
def test_a_target_and_its_normal_form_get_the_same_decision(target: str, host: str, method: str) -> None:
    """Deciding on a spelling or on its normalization gives the same decision."""
    try:
        normal = normalize_path(target)
    except AmbiguousPathError:
        assume(False)
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


def star_regex(pattern: str) -> re.Pattern[str]:
    """The reference semantics of a path pattern: '*' is `[^/]*`, everything else literal."""
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")))


@given(
    pattern=st.text(alphabet="ab*/", max_size=10).map(lambda s: "/" + s),
    path=st.text(alphabet="ab/", max_size=10).map(lambda s: "/" + s),
)
def test_path_patterns_match_like_the_reference_regex(pattern: str, path: str) -> None:
    """A rule with one path pattern allows exactly the paths the `[^/]*` regex of that pattern matches."""
    rule = Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1")
    decision = Matcher(Policy((rule,), "t")).decide(http("a.example", path))
    normal = normalize_path(path)
    expected = star_regex(pattern).fullmatch(normal) is not None
    assert decision.allowed is expected
