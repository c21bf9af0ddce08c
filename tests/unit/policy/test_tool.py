"""Specification of the policy authors' tools: a URL as the proxy sees it, explanations, check, test cases."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.errors import CasesError, UsageError
from boundary.policy.load import load_policy, parse_policy
from boundary.policy.matcher import Matcher, Request
from boundary.policy.tool import (
    Case,
    check,
    explain,
    parse_cases,
    parse_url,
    render_json,
    render_outcomes,
    render_text,
    request_for,
    run_cases,
)
from boundary.reasons import POLICY_REASONS
from tests.support.bypass import POLICY as BYPASS_POLICY
from tests.support.bypass import SPELLINGS, Denied, Spelling

POLICY = """\
version: 1
allow:
  - domain: api.example
    id: api-read
    methods: [GET]
    paths: ["/v1/*"]
  - domain: raw.example
    raw_paths: true
    paths: ["/a%2Fb"]
deny:
  - domain: api.example
    paths: ["/v1/admin"]
"""
MATCHER = Matcher(parse_policy(POLICY, "p.yaml"))


# --- URL -> Request -----------------------------------------------------------------------------------------

URLS = [
    # scheme and default ports
    ("https://api.example/v1/x", Request("https", "api.example", 443, "GET", "/v1/x")),
    ("http://api.example/v1/x", Request("http", "api.example", 80, "GET", "/v1/x")),
    ("HTTPS://api.example/", Request("https", "api.example", 443, "GET", "/")),
    # explicit ports, and an empty one (the default, as curl and browsers read it)
    ("https://api.example:8443/", Request("https", "api.example", 8443, "GET", "/")),
    ("http://api.example:443/", Request("http", "api.example", 443, "GET", "/")),
    ("https://api.example:/", Request("https", "api.example", 443, "GET", "/")),
    # the host as written: the matcher normalizes it
    ("https://API.Example./", Request("https", "API.Example.", 443, "GET", "/")),
    ("https://bücher.de/", Request("https", "bücher.de", 443, "GET", "/")),
    ("https://0x7f.0.0.1/", Request("https", "0x7f.0.0.1", 443, "GET", "/")),
    ("https://[::1]:8443/", Request("https", "[::1]", 8443, "GET", "/")),
    ("https://[::1]/", Request("https", "[::1]", 443, "GET", "/")),
    # the target byte for byte: nothing decoded, resolved or collapsed
    ("https://h.example/a/%2e%2e/b", Request("https", "h.example", 443, "GET", "/a/%2e%2e/b")),
    ("https://h.example//x", Request("https", "h.example", 443, "GET", "//x")),
    ("https://h.example/a%2Fb", Request("https", "h.example", 443, "GET", "/a%2Fb")),
    ("https://h.example/a/../b?x=%2e;y", Request("https", "h.example", 443, "GET", "/a/../b?x=%2e;y")),
    ("https://h.example/a\\b", Request("https", "h.example", 443, "GET", "/a\\b")),
    ("https://h.example/a b", Request("https", "h.example", 443, "GET", "/a b")),
    # what a client adds or drops: "/" for no path, no fragment, no credentials
    ("https://h.example", Request("https", "h.example", 443, "GET", "/")),
    ("https://h.example?q=1", Request("https", "h.example", 443, "GET", "/?q=1")),
    ("https://h.example/a#frag", Request("https", "h.example", 443, "GET", "/a")),
    ("https://h.example#frag", Request("https", "h.example", 443, "GET", "/")),
    ("https://user:pw@h.example/", Request("https", "h.example", 443, "GET", "/")),
]


@pytest.mark.parametrize(("url", "request_"), URLS, ids=[url for url, _ in URLS])
def test_a_url_becomes_the_request_the_proxy_sees(url: str, request_: Request) -> None:
    """Scheme and default port from the URL, the host as written, the target exactly as typed."""
    assert parse_url(url) == request_


BAD_URLS = [
    ("api.example/v1", "expected an absolute http:// or https:// URL"),
    ("/v1/x", "expected an absolute http:// or https:// URL"),
    (" https://api.example/", "expected an absolute http:// or https:// URL"),
    ("ftp://api.example/", "scheme 'ftp' is not http or https"),
    ("https:///v1", "no host"),
    ("https://:443/", "no host"),
    ("https://api.example:0/", "port '0' is not a number from 1 to 65535"),
    ("https://api.example:65536/", "port '65536' is not a number from 1 to 65535"),
    ("https://api.example:44x/", "port '44x' is not a number from 1 to 65535"),
    ("https://api.example:1:2/", "port '1:2' is not a number from 1 to 65535"),
    ("https://[::1/", "'[' without ']' in the host"),
    ("https://[::1]x/", "unexpected 'x' after the IPv6 address"),
    ("https://a@b@c.example/", "more than one '@' before the path (URL parsers disagree on which host is meant)"),
    ("https://a.example\\@b.example/", "backslash before the path (URL parsers disagree on where the host ends)"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS, ids=[url for url, _ in BAD_URLS])
def test_a_url_the_proxy_could_not_see_is_refused(url: str, message: str) -> None:
    """What is not an http(s) URL with one clear host and a valid port is an error saying why."""
    with pytest.raises(ValueError) as caught:
        parse_url(url)
    assert str(caught.value) == message


@pytest.mark.parametrize("method", ["GET", "get", "PROPFIND", "M-SEARCH"])
def test_the_method_is_kept_as_written(method: str) -> None:
    """The matcher compares methods exactly, as a server does, so `-X get` is explained as `get`."""
    assert parse_url("https://h.example/", method).method == method


@pytest.mark.parametrize("method", ["", "GE T", "GET\n", "GÉT"])
def test_a_method_that_is_no_http_token_is_refused(method: str) -> None:
    with pytest.raises(ValueError, match="is not an HTTP method token"):
        parse_url("https://h.example/", method)


def test_request_for_quotes_the_url_in_a_usage_error() -> None:
    """On the command line a bad URL is a UsageError (exit 2) quoting it."""
    with pytest.raises(UsageError) as caught:
        request_for("GET", "ftp://x.example/")
    assert str(caught.value) == "bad URL 'ftp://x.example/': scheme 'ftp' is not http or https"


@given(st.text(max_size=60), st.sampled_from(["GET", "get", "POST", "X Y"]))
def test_explaining_any_text_either_renders_or_is_a_value_error(url: str, method: str) -> None:
    """No input makes the tools crash: a URL parses (and then explains and renders) or is a ValueError."""
    for candidate in (url, "https://" + url, "http://api.example/" + url):
        try:
            request = parse_url(candidate, method)
        except ValueError:
            continue
        explanation = explain(MATCHER, request, candidate)
        assert render_text(explanation).startswith(f"decision: {explanation.decision.verdict}\n")
        assert json.loads(render_json(explanation))["reason"] == explanation.decision.reason


@given(st.text(st.characters(codec="ascii", exclude_characters="#"), max_size=40))
def test_the_target_reaches_the_matcher_exactly_as_typed(path: str) -> None:
    """Whatever follows the host (but a fragment) is the request target, byte for byte."""
    assert parse_url("https://api.example/" + path).path == "/" + path


# --- explain: the bypass spellings --------------------------------------------------------------------------

BYPASS_MATCHER = Matcher(parse_policy(BYPASS_POLICY, "bypass.yaml"))


@pytest.mark.parametrize("spelling", [pytest.param(s, id=s.id) for s in SPELLINGS])
def test_explain_gives_every_bypass_spelling_the_decision_of_its_canonical_form(spelling: Spelling) -> None:
    """The table tests/e2e/test_bypass.py runs through a real jail: explain agrees with the proxy on each
    spelling, and an allowed one shows the normalized path that is forwarded."""
    explanation = explain(BYPASS_MATCHER, parse_url(spelling.url, spelling.method), spelling.url)
    decision = explanation.decision
    if isinstance(spelling.expected, Denied):
        assert (decision.verdict, decision.reason) == ("deny", spelling.expected.reason)
    else:
        assert (decision.verdict, decision.path, explanation.path) == ("allow",) + (spelling.expected.forwarded,) * 2


# --- explain: rendering -------------------------------------------------------------------------------------


def explained(url: str, method: str = "GET") -> str:
    return render_text(explain(MATCHER, parse_url(url, method), url))


def test_explain_text_of_an_allowed_request_names_the_rule_and_the_forwarded_path() -> None:
    assert explained("https://API.example./v1/./x?q=1") == (
        "decision: allow\n"
        "reason:   allowed\n"
        "rule:     api-read (p.yaml:3)\n"
        "scheme:   https\n"
        "host:     api.example\n"
        "port:     443\n"
        "method:   GET\n"
        "path:     /v1/x?q=1 (forwarded upstream)\n"
        "readings: /v1/x, /v1/x/ (deny rules match each)\n"
    )


def test_explain_text_of_a_deny_rule_names_it_by_file_and_line() -> None:
    """A rule without an id is named by FILE:LINE; the path shown is the normalized one that was checked."""
    text = explained("http://api.example/v1/%61dmin")
    assert text.splitlines()[:3] == ["decision: deny", "reason:   denied-by-rule", "rule:     p.yaml:11"]
    assert "port:     80\n" in text
    assert text.endswith("path:     /v1/admin\nreadings: /v1/admin, /v1/admin/ (deny rules match each)\n")


def test_explain_text_of_an_ambiguous_path_says_why() -> None:
    text = explained("https://api.example/v1/a%2Fb")
    assert text.splitlines()[:3] == ["decision: deny", "reason:   ambiguous-path", "rule:     none"]
    assert text.endswith("path:     /v1/a%2Fb (as sent; ambiguous: encoded '/')\n")


def test_explain_text_of_a_raw_match_says_it_is_forwarded_as_sent() -> None:
    text = explained("https://raw.example/a%2fb")
    assert text.startswith("decision: allow\nreason:   allowed\nrule:     p.yaml:7\n")
    assert text.endswith("path:     /a%2fb (ambiguous (encoded '/'), matched by a raw_paths rule: forwarded as sent)\n")


@pytest.mark.parametrize(
    ("url", "host_line"),
    [
        ("https://2130706433/", "host:     2130706433 (an IP literal: rules name hosts, so it is always denied)"),
        ("https://a_b.example/", "host:     a_b.example (not a valid host name: label 'a_b' must be letters, "),
    ],
)
def test_explain_text_says_why_a_host_is_not_normalized(url: str, host_line: str) -> None:
    assert f"\n{host_line}" in explained(url)


def test_explain_json_is_one_object_with_decision_rule_and_request() -> None:
    url = "https://API.example/v1/%2e%2e/v1/x"
    text = render_json(explain(MATCHER, parse_url(url), url))
    assert text.endswith("}\n") and text.count("\n") == 1
    assert json.loads(text) == {
        "url": url,
        "decision": "allow",
        "reason": "allowed",
        "rule": "api-read",
        "rule_source": "p.yaml:3",
        "request": {
            "scheme": "https",
            "host": "api.example",
            "port": 443,
            "method": "GET",
            "path": "/v1/x",
            "target": "/v1/%2e%2e/v1/x",
            "host_note": None,
            "path_note": None,
            "readings": ["/v1/x", "/v1/x/"],
        },
    }


def test_explain_json_of_a_denial_has_null_rule_and_path() -> None:
    url = "https://127.1/%2F"
    record = json.loads(render_json(explain(MATCHER, parse_url(url, "POST"), url)))
    assert (record["decision"], record["reason"], record["rule"], record["rule_source"]) == (
        "deny",
        "ip-literal",
        None,
        None,
    )
    assert (record["request"]["method"], record["request"]["path"], record["request"]["path_note"]) == (
        "POST",
        None,
        "ambiguous: encoded '/'",
    )


# --- explain: the readings deny rules were matched against -----------------------------------------------


def test_explain_text_lists_the_readings_that_met_the_deny_rules() -> None:
    """A path with ';params' is denied by the rule its reading without them meets; explain lists every reading."""
    text = explained("https://api.example/v1/admin;jsessionid=1")
    assert text.splitlines()[:3] == ["decision: deny", "reason:   denied-by-rule", "rule:     p.yaml:11"]
    assert text.endswith(
        "path:     /v1/admin;jsessionid=1\n"
        "readings: /v1/admin;jsessionid=1, /v1/admin, /v1/admin;jsessionid=1/, /v1/admin/ (deny rules match each)\n"
    )


def test_explain_json_lists_the_readings_with_an_encoded_semicolon() -> None:
    url = "https://api.example/v1/admin%3b/"
    request = json.loads(render_json(explain(MATCHER, parse_url(url), url)))["request"]
    assert (request["path"], request["readings"]) == (
        "/v1/admin%3B/",
        ["/v1/admin%3B/", "/v1/admin;/", "/v1/admin/", "/v1/admin%3B", "/v1/admin;", "/v1/admin"],
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://raw.example/a;x", id="no-deny-rule-for-the-host"),
        pytest.param("https://api.example/v1/a%2Fb", id="ambiguous-path-meets-deny-rules-whatever-it-is"),
    ],
)
def test_explain_lists_no_readings_when_no_deny_rule_matched_against_them(url: str) -> None:
    explanation = explain(MATCHER, parse_url(url), url)
    assert "readings:" not in render_text(explanation)
    assert json.loads(render_json(explanation))["request"]["readings"] == []


# --- output: any input prints -------------------------------------------------------------------------------

# Input that cannot be written as is: a lone surrogate (from bytes that are not UTF-8, as in argv), ESC (a
# terminal control sequence), a bidi override, DEL and a C1 control.
UNPRINTABLE = "\udcff\x1b[31m\u202e\x7f\x9b"
ESCAPED = "\\udcff\\x1b[31m\\u202e\\x7f\\x9b"


@pytest.mark.parametrize(
    "url",
    [f"https://api.example/v1/{UNPRINTABLE}", f"https://api.example/v1/x?q={UNPRINTABLE}", f"https://a{UNPRINTABLE}/"],
    ids=["path", "query", "host"],
)
def test_explain_text_escapes_what_does_not_print(url: str) -> None:
    """Every field is printable text that encodes as UTF-8; the input shows as Python escapes."""
    text = explained(url)
    text.encode("utf-8")
    assert ESCAPED in text
    assert all(line.isprintable() for line in text.splitlines())


def test_explain_json_escapes_what_does_not_print_and_round_trips() -> None:
    """JSON output is printable, encodes as UTF-8, and decodes back to exactly what was given."""
    url = f"https://api.example/v1/é{UNPRINTABLE}"
    text = render_json(explain(MATCHER, parse_url(url), url))
    text.encode("utf-8")
    assert text[:-1].isprintable() and "é" in text  # readable non-ASCII stays as it is
    record = json.loads(text)
    assert (record["url"], record["request"]["target"]) == (url, f"/v1/é{UNPRINTABLE}")


def test_failed_cases_escape_what_does_not_print() -> None:
    """A failing case quotes its URL and name made printable (YAML escapes spell the characters in the file)."""
    cases = f'- {{url: "https://api.example/v1/{ESCAPED}", expect: allow, name: "n{ESCAPED}"}}\n'
    outcomes = run_cases(MATCHER, parse_cases(cases, "c.yaml"))
    assert render_outcomes(outcomes, "c.yaml") == (
        f"c.yaml:1: GET https://api.example/v1/{ESCAPED}: expected allow, got deny (ambiguous-path) [n{ESCAPED}]\n"
        "1 case, 1 failed\n"
    )


def test_check_escapes_what_does_not_print_in_file_names(tmp_path: Path) -> None:
    """The file name quoted in every line of `check` is made printable, for a valid file and a missing one."""
    path = write(tmp_path, "p\x1b.yaml", POLICY)
    assert check(path, load_policy).text == f"{tmp_path}/p\\x1b.yaml: OK (2 allow rules, 1 deny rule)\n"
    missing = str(tmp_path / "m\udcff\n.yaml")
    text = check(missing, load_policy).text
    assert text == f"{tmp_path}/m\\udcff\\n.yaml: cannot read policy: No such file or directory\n"


# --- check --------------------------------------------------------------------------------------------------

LINTED = """\
version: 1
allow:
  - domain: a.example
  - domain: a.example
    methods: [GET]
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_check_of_a_valid_policy_prints_one_ok_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", POLICY)
    result = check(path, load_policy)
    assert (result.ok, result.text) == (True, f"{path}: OK (2 allow rules, 1 deny rule)\n")


def test_check_of_an_invalid_policy_prints_the_located_error(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "version: 1\nallow:\n  - domain: a.example\n    methods: [GETT]\n")
    result = check(path, load_policy)
    assert (result.ok, result.text) == (False, f"{path}:4: allow[0].methods: unknown method 'GETT'\n")


def test_check_of_a_missing_file_says_it_cannot_be_read(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.yaml")
    result = check(path, load_policy, strict=True)
    assert (result.ok, result.text) == (False, f"{path}: cannot read policy: No such file or directory\n")


def test_check_prints_lint_warnings_located_and_passes_without_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", LINTED)
    result = check(path, load_policy)
    assert result.ok
    assert result.text == (
        f"{path}:4: warning: never decides a request: rule {path}:3 comes first and matches all it matches\n"
        f"{path}: OK (2 allow rules, 0 deny rules, 1 warning)\n"
    )


def test_check_strict_makes_warnings_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", LINTED)
    result = check(path, load_policy, strict=True)
    assert not result.ok
    assert result.text.splitlines()[1:] == [f"{path}: 1 warning, fatal with --strict (2 allow rules, 0 deny rules)"]


# --- test: cases files --------------------------------------------------------------------------------------

CASES = """\
- url: https://api.example/v1/x
  expect: allow
- {method: POST, url: "https://api.example/v1/x", expect: deny, reason: method-not-allowed, name: no writes}
"""


def test_cases_parse_with_defaults_and_lines() -> None:
    """`method` defaults to GET; `reason` and `name` to None; each case knows the line it starts on."""
    first, second = parse_cases(CASES, "c.yaml")
    assert first == Case(
        1, Request("https", "api.example", 443, "GET", "/v1/x"), "https://api.example/v1/x", "allow", None, None
    )
    assert (second.line, second.request.method, second.expect, second.reason, second.name) == (
        3,
        "POST",
        "deny",
        "method-not-allowed",
        "no writes",
    )


BAD_CASES = [
    ("", "c.yaml:1: expected a list of cases, got nothing"),
    ("cases: []\n", "c.yaml:1: expected a list of cases, got a mapping"),
    ("[]\n", "c.yaml:1: empty list: a cases file needs at least one case"),
    ("- [a]\n", "c.yaml:1: [0]: expected a mapping with 'url' and 'expect', got a list"),
    ("- https://a.example/\n", "c.yaml:1: [0]: expected a mapping with 'url' and 'expect', got 'https://a.example/'"),
    ("- {url: 'https://a.example/'}\n", "c.yaml:1: [0]: missing required key 'expect'"),
    ("- {expect: allow}\n", "c.yaml:1: [0]: missing required key 'url'"),
    (
        "- {url: 'https://a.example/', expect: allow, status: 200}\n",
        "c.yaml:1: [0]: unknown key 'status' (known: name, method, url, expect, reason)",
    ),
    (
        "- url: https://a.example/\n  expect: allow\n  url: https://b.example/\n",
        "c.yaml:3: [0]: duplicate key 'url' (first on line 1)",
    ),
    ("- {1: x}\n", "c.yaml:1: [0]: expected a string key, got 1"),
    ("- {url: 'https://a.example/', expect: yes}\n", "c.yaml:1: [0].expect: expected a string, got yes"),
    ("- {url: 'https://a.example/', expect: }\n", "c.yaml:1: [0].expect: expected a string, got null"),
    ("- {url: 'https://a.example/', expect: ~}\n", "c.yaml:1: [0].expect: expected a string, got null"),
    ("- {url: 'https://a.example/', expect: allowed}\n", "c.yaml:1: [0].expect: expected allow or deny, got 'allowed'"),
    ("- {url: [x], expect: allow}\n", "c.yaml:1: [0].url: expected a string, got a list"),
    (
        "- {url: 'a.example/x', expect: deny}\n",
        "c.yaml:1: [0].url: bad URL 'a.example/x': expected an absolute http:// or https:// URL",
    ),
    (
        "- {url: 'https://a.example/', expect: deny, method: 'GE T'}\n",
        "c.yaml:1: [0].method: 'GE T' is not an HTTP method token",
    ),
    (
        "- {url: 'https://a.example/', expect: deny, reason: forbidden}\n",
        f"c.yaml:1: [0].reason: unknown reason 'forbidden' (known: {', '.join(POLICY_REASONS)})",
    ),
    (
        "- url: https://a.example/\n  expect: deny\n  reason: allowed\n",
        "c.yaml:3: [0].reason: reason 'allowed' contradicts 'expect: deny'",
    ),
    (
        "- {url: 'https://a.example/', expect: allow, reason: path-not-allowed}\n",
        "c.yaml:1: [0].reason: reason 'path-not-allowed' contradicts 'expect: allow'",
    ),
    ("- {url: 'https://a.example/', expect: allow, name: ''}\n", "c.yaml:1: [0].name: empty string"),
    (
        "- {url: 'https://a.example/', expect: allow}\n- {url: 'https://a.example/', expect: maybe}\n",
        "c.yaml:2: [1].expect: expected allow or deny, got 'maybe'",
    ),
    (
        "- {url: x\n",
        "c.yaml:2: invalid YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping)",
    ),
    (
        "- a\n---\n- b\n",
        "c.yaml:2: invalid YAML: but found another document (expected a single document in the stream)",
    ),
    ("[" * 1000, "c.yaml:1: invalid YAML: nested too deeply"),
    ("- \x07\n", "c.yaml:1: invalid YAML: unacceptable character #x0007: special characters are not allowed"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES, ids=[message for _, message in BAD_CASES])
def test_a_bad_cases_file_is_an_error_with_line_and_quoted_value(text: str, message: str) -> None:
    """Cases are read as strictly as a policy: the first problem, located, quoting what was written."""
    with pytest.raises(CasesError) as caught:
        parse_cases(text, "c.yaml")
    assert str(caught.value) == message


RUN_CASES = """\
- {url: "https://api.example/v1/x", expect: allow}
- {url: "https://api.example/v1/x", expect: deny, name: reads are denied}
- {url: "https://api.example/v1/%2e%2e/secret", expect: deny, reason: path-not-allowed}
- {url: "https://api.example/v1/a%2Fb", expect: deny, reason: path-not-allowed}
- {url: "https://api.example/v1/admin", expect: allow}
- {method: DELETE, url: "https://nowhere.example/", expect: deny, reason: no-matching-rule}
"""


def test_run_cases_reports_each_mismatch_with_its_line_and_a_summary() -> None:
    """A mismatch names the case's line, the request and both decisions; a wrong reason is a mismatch too."""
    outcomes = run_cases(MATCHER, parse_cases(RUN_CASES, "c.yaml"))
    assert [outcome.passed for outcome in outcomes] == [True, False, True, False, False, True]
    assert render_outcomes(outcomes, "c.yaml") == (
        "c.yaml:2: GET https://api.example/v1/x: expected deny, got allow (rule api-read (p.yaml:3))"
        " [reads are denied]\n"
        "c.yaml:4: GET https://api.example/v1/a%2Fb: expected deny (path-not-allowed), got deny (ambiguous-path)\n"
        "c.yaml:5: GET https://api.example/v1/admin: expected allow, got deny (denied-by-rule, rule p.yaml:11)\n"
        "6 cases, 3 failed\n"
    )


def test_render_outcomes_of_passing_cases_is_only_the_summary() -> None:
    outcomes = run_cases(MATCHER, parse_cases("- {url: 'https://api.example/v1/x', expect: allow}\n", "c.yaml"))
    assert render_outcomes(outcomes, "c.yaml") == "1 case, 0 failed\n"
