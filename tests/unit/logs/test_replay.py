"""Specification of replay (boundary/logs/replay.py): past runs' requests decided again under a candidate, what
would break and what would open, grouped by destination with counts; lines no policy decided are not replayed."""

from __future__ import annotations

import json

import pytest

from boundary.logs.read import Record, parse_line
from boundary.logs.replay import render, replay
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher

CANDIDATE = """\
version: 1
allow:
  - domain: api.test
    methods: [GET]
    paths: ["/v1/*"]
  - domain: new.test
"""


def line(decision: str, reason: str, host: str | None, method: str | None, path: str | None, port: int = 443) -> Record:
    fields = {
        "ts": "2026-12-08T00:00:00.000Z", "run": "r1", "decision": decision, "rule": None, "reason": reason,
        "method": method, "scheme": "https", "host": host, "port": port, "path": path, "status": None,
    }  # fmt: skip
    record = parse_line(json.dumps(fields))
    assert isinstance(record, Record), record
    return record


LOG = [
    line("allow", "allowed", "api.test", "GET", "/v1/users"),
    line("allow", "allowed", "api.test", "GET", "/v1/users"),
    line("allow", "allowed", "api.test", "POST", "/v1/users"),  # the candidate lists GET only: breaks
    line("allow", "allowed", "old.test", "GET", "/"),  # no rule for old.test any more: breaks
    line("deny", "no-matching-rule", "new.test", "GET", "/x"),  # now allowed: opens
    line("deny", "host-mismatch", "api.test", "GET", "/v1/users"),  # an identity refusal: not replayed
    line("allow", "allowed", "api.test", "CONNECT", None),  # boundary proxy's tunnel line: not replayed
]


def test_what_would_break_and_open_is_grouped_with_counts() -> None:
    report = replay(Matcher(parse_policy(CANDIDATE)), LOG)
    assert [(s.host, s.method, s.path, s.then, s.now, n) for s, n in report.would_break] == [
        ("api.test", "POST", "/v1/users", "allowed", "method-not-allowed", 1),
        ("old.test", "GET", "/", "allowed", "no-matching-rule", 1),
    ]
    assert [(s.host, s.path, s.now, n) for s, n in report.would_open] == [("new.test", "/x", "allowed", 1)]
    assert (report.replayed, report.not_replayed, report.breaks) == (5, 2, True)
    assert [(s.host, n) for s, n in report.new] == [("api.test", 1), ("old.test", 1)]


def test_the_report_reads_by_destination_and_sums_up() -> None:
    text = render(replay(Matcher(parse_policy(CANDIDATE)), LOG), "c.yaml", fail_on_new=True)
    assert text == (
        "would break (allowed then, denied now):\n"
        "  api.test:443\n"
        "        1 x POST /v1/users  (allowed -> method-not-allowed)\n"
        "  old.test:443\n"
        "        1 x GET /  (allowed -> no-matching-rule)\n"
        "would open (denied then, allowed now):\n"
        "  new.test:443\n"
        "        1 x GET /x  (no-matching-rule -> allowed)\n"
        "not allowed by c.yaml:\n"
        "  api.test:443\n"
        "        1 x POST /v1/users  (allowed -> method-not-allowed)\n"
        "  old.test:443\n"
        "        1 x GET /  (allowed -> no-matching-rule)\n"
        "5 requests replayed against c.yaml: 2 would break, 1 would open, 2 not allowed; 2 lines not decided by the"
        " policy (identity, protocol) not replayed\n"
    )


@pytest.mark.parametrize(("path", "shown"), [("/v1/\x1b[31mred", "\\x1b[31mred"), ("/v1/\u202eevil", "\\u202eevil")])
def test_what_does_not_print_is_escaped(path: str, shown: str) -> None:
    text = render(replay(Matcher(parse_policy(CANDIDATE)), [line("allow", "allowed", "api.test", "POST", path)]), "c")
    assert "\x1b" not in text and "\u202e" not in text and shown in text


def test_nothing_changes_when_the_candidate_is_the_policy_of_the_run() -> None:
    same = replay(Matcher(parse_policy(CANDIDATE)), LOG[:2])
    assert (same.would_break, same.would_open, same.breaks) == ((), (), False)
