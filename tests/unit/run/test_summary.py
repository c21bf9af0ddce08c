"""Specification of a run's summary: the tally of audit lines (and its bounds), the stderr lines and the
Markdown they render to (golden text), and the exit status `--fail-on-deny` gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from boundary.audit import render
from boundary.proxy.denial import denial_text
from boundary.reasons import Reason
from boundary.run.summary import (
    DECISIONS,
    DENYING,
    EXIT_DENIED,
    MAX_LISTED,
    Denied,
    Summary,
    Tally,
    denied_message,
    exit_code,
    lines,
    markdown,
)

TS = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)


def line(
    decision: str = "allow",
    reason: str = "allowed",
    method: str | None = "GET",
    host: str | None = "allowed.test",
    port: int | None = 443,
    path: str | None = "/hello",
) -> str:
    """An audit line as the proxy writes it."""
    return render(
        ts=TS,
        run="abc123",
        decision=decision,
        rule=None,
        reason=reason,
        method=method,
        scheme="https",
        host=host,
        port=port,
        path=path,
        status=None if decision == "allow" else 403,
    )


def tallied(*lines: str, listed: int = MAX_LISTED) -> Summary:
    tally = Tally(listed)
    for text in lines:
        tally.count(text)
    return tally.summary()


ALLOWED = line()
DENIED_HOST = line("deny", "no-matching-rule", host="denied.test")
DENIED_PATH = line("deny", "path-not-allowed", path="/secret")


# --- the tally ----------------------------------------------------------------------------------------------


def test_every_decision_is_counted() -> None:
    """Each audit line counts once under its decision, allowed ones too."""
    ended = tallied(ALLOWED, ALLOWED, DENIED_HOST)
    assert ended.decisions == (("allow", 2), ("deny", 1))
    assert ended.denials == 1


def test_a_would_deny_decision_counts_as_a_denial() -> None:
    """Audit mode's `would-deny` is denying: counted, listed and failing `--fail-on-deny` like `deny`."""
    assert {"deny", "would-deny"} == DENYING
    ended = tallied(line("would-deny", "no-matching-rule", host="denied.test"))
    assert ended.denials == 1
    assert [denied.decision for denied, _count in ended.denied] == ["would-deny"]
    assert exit_code(0, ended, fail_on_deny=True) == EXIT_DENIED


def test_denials_of_one_request_are_one_entry_and_the_query_is_dropped() -> None:
    """The same request twice, with different queries, is one listed entry counted twice; its path has no
    query (a summary may be published, a token in a query must not be)."""
    ended = tallied(
        line("deny", "no-matching-rule", host="denied.test", path="/x?token=1"),
        line("deny", "no-matching-rule", host="denied.test", path="/x?token=2"),
    )
    assert ended.denied == ((Denied("denied.test", 443, "GET", "/x", "no-matching-rule"), 2),)


def test_the_decision_is_read_as_json_would_read_it() -> None:
    """The decision is read without parsing the whole line, yet as JSON reads it: a field before it that
    holds the key's text (escaped by `render`) does not fool it, and a line in another spelling of JSON is
    parsed in full."""
    fooling = render(
        ts=TS,
        run='x", "decision": "deny',
        decision="allow",
        rule=None,
        reason="allowed",
        method="GET",
        scheme="https",
        host="a.test",
        port=443,
        path="/",
        status=200,
    )
    compact = json.dumps(json.loads(DENIED_HOST), separators=(",", ":"))
    assert tallied(fooling, compact).decisions == (("allow", 1), ("deny", 1))


def test_the_tally_keeps_at_most_its_limit_of_distinct_denials() -> None:
    """Past `listed` distinct denied requests a new one is only counted (unlisted); those already listed
    still count up: memory stays bounded whatever the workload sends."""
    paths = [f"/p{i}" for i in range(5)]
    ended = tallied(*(line("deny", "path-not-allowed", path=p) for p in [*paths, "/p0"]), listed=3)
    assert len(ended.denied) == 3
    assert ended.unlisted == 2
    assert ended.denials == 6
    assert ended.denied[0] == (Denied("allowed.test", 443, "GET", "/p0", "path-not-allowed"), 2)


def test_denials_are_listed_most_frequent_first_then_in_a_stable_order() -> None:
    """The most denied request first; ties by host, port, method and path."""
    ended = tallied(DENIED_PATH, DENIED_HOST, DENIED_HOST)
    assert [denied.host for denied, _count in ended.denied] == ["denied.test", "allowed.test"]


def test_decisions_are_in_table_order_and_unknown_ones_follow() -> None:
    """Counts follow `DECISIONS`; a decision this version does not know (a newer proxy's) comes after."""
    ended = tallied(line("later"), DENIED_HOST, ALLOWED)
    assert [decision for decision, _count in ended.decisions] == ["allow", "deny", "later"]
    assert list(DECISIONS)[:2] == ["allow", "deny"]


# --- a denied request's hint ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("denied", "where"),
    [
        (Denied("denied.test", 443, "GET", "/", "no-matching-rule"), "denied.test:443"),
        (Denied("::1", 8080, "GET", "/", "ip-literal"), "[::1]:8080"),
        (Denied(None, None, None, None, "tls-error"), "?"),
    ],
)
def test_where_names_host_and_port(denied: Denied, where: str) -> None:
    """`host:port`, an IPv6 address in brackets, `?` when the line had no host."""
    assert denied.where == where


@pytest.mark.parametrize(
    ("denied", "hint"),
    [
        (
            Denied("denied.test", 443, "GET", "/hello", "no-matching-rule"),
            'add to the policy\'s allow list: {domain: denied.test, methods: [GET], paths: ["/hello"]}',
        ),
        (
            Denied("a.test", 8443, "POST", "/v1", "method-not-allowed"),
            'add the method to a rule for this host: {domain: a.test, ports: [8443], methods: [POST], paths: ["/v1"]}',
        ),
        (
            Denied("a.test", 443, "CONNECT", None, "no-matching-rule"),
            "add to the policy's allow list: {domain: a.test}",
        ),
        (Denied("10.0.0.1", 80, "GET", "/", "ip-literal"), "connect by host name; rules cannot name IP addresses"),
        (Denied("a.test", 443, "GET", "/", "reason-from-the-future"), "see the audit log (reason-from-the-future)"),
    ],
)
def test_the_hint_is_the_403s(denied: Denied, hint: str) -> None:
    """A denial's hint is the one the 403 gave, its `{rule}` a rule that would have allowed the request
    (no method for CONNECT, which no rule lists); a reason unknown here points to the audit log."""
    assert denied.hint() == hint


def test_the_hint_matches_the_403_body() -> None:
    """Not a copy: the summary's hint is exactly what the 403's body says after "to allow it, "."""
    denied = Denied("denied.test", 443, "GET", "/hello", "no-matching-rule")
    body = denial_text(Reason.NO_MATCHING_RULE, "GET", "https://denied.test/hello", "denied.test", 443, "/hello")
    assert body == f"boundary denied GET https://denied.test/hello (no-matching-rule); to allow it, {denied.hint()}\n"


# --- stderr (golden) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audit", "expected"),
    [
        ([], ["boundary: 0 allowed, 0 denied"]),
        ([ALLOWED, ALLOWED], ["boundary: 2 allowed, 0 denied"]),
        (
            [ALLOWED, DENIED_HOST, DENIED_PATH, DENIED_HOST],
            [
                "boundary: 1 allowed, 3 denied: denied.test:443 (2), allowed.test:443 (1)",
                "boundary: to allow denied.test:443, add to the policy's allow list:"
                ' {domain: denied.test, methods: [GET], paths: ["/hello"]}',
                "boundary: to allow allowed.test:443, add the path to a rule for this host:"
                ' {domain: allowed.test, methods: [GET], paths: ["/secret"]}',
            ],
        ),
        (
            [line("deny", "no-matching-rule", host=f"h{i}.test") for i in range(5)],
            [
                "boundary: 0 allowed, 5 denied: h0.test:443 (1), h1.test:443 (1), h2.test:443 (1), 2 more hosts",
                "boundary: to allow h0.test:443, add to the policy's allow list:"
                ' {domain: h0.test, methods: [GET], paths: ["/hello"]}',
                "boundary: to allow h1.test:443, add to the policy's allow list:"
                ' {domain: h1.test, methods: [GET], paths: ["/hello"]}',
            ],
        ),
        (
            [ALLOWED, line("would-deny", "no-matching-rule", host="denied.test", method="CONNECT", path=None)],
            [
                "boundary: 1 allowed, 0 denied, 1 would be denied: denied.test:443 (1)",
                "boundary: to allow denied.test:443, add to the policy's allow list: {domain: denied.test}",
            ],
        ),
    ],
    ids=["nothing", "all-allowed", "two-hosts", "many-hosts", "would-deny"],
)
def test_exit_summary_lines(audit: list[str], expected: list[str]) -> None:
    """One line of counts and the most denied hosts, then a rule for each of the first two: never more than
    three lines."""
    assert lines(tallied(*audit)) == expected


def test_exit_summary_says_what_is_not_listed() -> None:
    """Denials past the tally's limit are counted in the first line and pointed to the audit log."""
    ended = tallied(DENIED_HOST, DENIED_PATH, listed=1)
    assert lines(ended)[0] == (
        "boundary: 0 allowed, 2 denied: denied.test:443 (1) (and 1 more not listed; see the audit log)"
    )


def test_exit_summary_escapes_what_does_not_print() -> None:
    """A hostile host or path cannot put a control character on the operator's terminal."""
    ended = tallied(line("deny", "invalid-host", host="evil\x1b[2J.test", path="/\u202e"))
    text = "\n".join(lines(ended))
    assert "\x1b" not in text and "\u202e" not in text
    assert "evil\\x1b[2J.test:443 (1)" in text


# --- Markdown (golden) ---------------------------------------------------------------------------------------

GOLDEN_MARKDOWN = """\
### boundary `run abc123: policy p.yaml`

1 allowed, 3 denied.

| decision | method | host | path | reason | count | to allow it |
|---|---|---|---|---|---:|---|
| deny | `GET` | `denied.test:443` | `/hello` | `no-matching-rule` | 2 | `add to the policy's allow list: \
{domain: denied.test, methods: [GET], paths: ["/hello"]}` |
| deny | `GET` | `allowed.test:443` | `/secret` | `path-not-allowed` | 1 | `add the path to a rule for this host: \
{domain: allowed.test, methods: [GET], paths: ["/secret"]}` |

"""


def test_markdown_golden() -> None:
    """The step summary: a heading, the counts, one table row per denied request with a rule to allow it."""
    ended = tallied(ALLOWED, DENIED_HOST, DENIED_PATH, DENIED_HOST)
    assert markdown(ended, "run abc123: policy p.yaml") == GOLDEN_MARKDOWN


def test_markdown_without_denials_has_no_table() -> None:
    """A run with nothing denied: the heading and the counts."""
    assert markdown(tallied(ALLOWED), "t") == "### boundary `t`\n\n1 allowed, 0 denied.\n\n"


def test_markdown_says_what_is_not_listed() -> None:
    """Denials past the tally's limit are counted after the table."""
    text = markdown(tallied(DENIED_HOST, DENIED_PATH, listed=1), "t")
    assert text.endswith("\n\n1 more denials are not listed: see the audit log.\n\n")


@pytest.mark.parametrize(
    ("path", "cell"),
    [
        ("/a|b", "`/a\\|b`"),
        ("/a`b", "``/a`b``"),
        ("/<script>", "`/<script>`"),
        ("/a\nb", "`/a\\nb`"),
        ("`/x", "`` `/x ``"),
    ],
)
def test_markdown_cells_hold_hostile_paths(path: str, cell: str) -> None:
    """A path is a code span in its cell: `|` escaped (no new cell), a longer fence around backticks, no raw
    HTML, no line break (no new row)."""
    text = markdown(tallied(line("deny", "path-not-allowed", path=path)), "t")
    row = text.splitlines()[6]
    assert f"| {cell} |" in row
    assert len(text.splitlines()) == 8


# --- the exit status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "audit", "fail_on_deny", "expected"),
    [
        (0, [ALLOWED], True, 0),
        (0, [DENIED_HOST], True, EXIT_DENIED),
        (0, [DENIED_HOST], False, 0),
        (7, [DENIED_HOST], True, 7),
        (137, [DENIED_HOST], True, 137),
        (7, [], True, 7),
    ],
)
def test_fail_on_deny_exit_status(command: int, audit: list[str], fail_on_deny: bool, expected: int) -> None:
    """`--fail-on-deny` turns a command's 0 into `EXIT_DENIED` when anything was denied; the command's own
    non-zero status always wins."""
    assert exit_code(command, tallied(*audit), fail_on_deny=fail_on_deny) == expected


def test_exit_denied_is_none_of_the_codes_a_run_gives_otherwise() -> None:
    """Not 1 or 2 (common failures, click's usage errors), 125-127 (boundary, the shell), 128+N (signals)."""
    assert EXIT_DENIED not in {0, 1, 2, 125, 126, 127} and EXIT_DENIED < 128


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ([DENIED_HOST], "boundary: --fail-on-deny: the command succeeded, but 1 request was denied: exit 3"),
        (
            [DENIED_HOST, DENIED_PATH],
            "boundary: --fail-on-deny: the command succeeded, but 2 requests were denied: exit 3",
        ),
    ],
)
def test_denied_message_says_why(audit: list[str], message: str) -> None:
    """The line that explains exit 3."""
    assert denied_message(tallied(*audit)) == message
