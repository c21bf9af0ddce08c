"""Specification of learn (boundary/logs/learn.py): what runs did, as a policy that allows it and no more."""

from __future__ import annotations

import json

import pytest

from boundary.logs.learn import generalize, learn
from boundary.logs.read import Record, parse_line
from boundary.policy.lint import lint
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher, Request


def line(method: str | None, host: str, path: str | None, port: int = 443, decision: str = "allow",
         ts: str = "2026-12-08T00:00:00.000Z") -> Record:  # fmt: skip
    fields = {
        "ts": ts, "run": "r1", "decision": decision, "rule": None, "reason": "allowed" if decision == "allow" else "x",
        "method": method, "scheme": "https" if method else "tcp", "host": host, "port": port, "path": path,
        "status": 200,
    }  # fmt: skip
    record = parse_line(json.dumps(fields))
    assert isinstance(record, Record), record
    return record


@pytest.mark.parametrize(
    ("paths", "patterns"),
    [
        (["/v1/a", "/v1/b"], ["/v1/*"]),
        (["/v1/a"], ["/v1/a"]),  # one path: never a glob
        (["/v1/a", "/v1/a"], ["/v1/a"]),
        (["/v1/a", "/v2/b"], ["/v1/a", "/v2/b"]),  # different parents: no sibling
        (["/a/x/1", "/a/y/1"], ["/a/x/1", "/a/y/1"]),  # never **, never a glob above the last segment
        (["/v1/", "/v1/a"], ["/v1/", "/v1/a"]),  # an empty last segment is not a sibling
        (["/", "/x"], ["/", "/x"]),  # "/" ends in an empty segment: no sibling of /x
    ],
)
def test_paths_become_globs_only_where_siblings_were_seen(paths: list[str], patterns: list[str]) -> None:
    assert generalize(paths) == patterns


WORKLOAD = [
    line("GET", "api.test", "/v1/users?page=2", ts="2026-12-08T00:00:01.000Z"),
    line("GET", "api.test", "/v1/teams", ts="2026-12-08T00:00:05.000Z"),
    line("POST", "api.test", "/v1/upload"),
    line("GET", "registry.test", "/left-pad", port=8443),
    line(None, "git.test", None, port=22),
    line("GET", "denied.test", "/", decision="deny"),  # what the policy refused is not learned
    line("GET", "203.0.113.7", "/"),  # rules cannot name an IP address
    line("CONNECT", "api.test", None),  # boundary proxy's tunnel line
]


def test_the_learned_policy_allows_what_ran_and_denies_anything_new() -> None:
    learned = learn(WORKLOAD, ["run.jsonl"])
    policy = parse_policy(learned.text, "learned.yaml")
    assert lint(policy) == []  # `policy check --strict` finds nothing to say
    matcher = Matcher(policy)
    for record in WORKLOAD[:5]:
        scheme = "tcp" if record.method is None else "https"
        request = Request(scheme, record.host or "", record.port or 0, record.method, record.path)
        assert matcher.decide(request).allowed, record
    new = [
        Request("https", "new.test", 443, "GET", "/"),  # a new host
        Request("https", "api.test", 443, "DELETE", "/v1/users"),  # a new method on a known path
        Request("https", "api.test", 443, "POST", "/v1/users"),  # a method seen, on another path
        Request("https", "api.test", 443, "GET", "/v2/users"),  # beyond the evidence
        Request("https", "registry.test", 443, "GET", "/left-pad"),  # a port not seen
        Request("https", "denied.test", 443, "GET", "/"),
    ]
    assert [matcher.decide(request).allowed for request in new] == [False] * len(new)
    assert learned.requests == 5
    assert learned.skipped == (
        "1 lines without a destination or for a tunnel (CONNECT)",
        "1 requests to IP addresses, which rules cannot name (203.0.113.7)",
    )


def test_the_policy_reads_as_rules_with_counts_and_times() -> None:
    text = learn(WORKLOAD[:2], ["run.jsonl"]).text
    assert text == (
        "# Learned by `boundary learn` from run.jsonl: 2 requests.\n"
        "# Review it before you enforce it: it allows what the runs did, no more.\n"
        "version: 1\n"
        "allow:\n"
        "  # 2 requests, first 2026-12-08T00:00:01Z, last 2026-12-08T00:00:05Z\n"
        "  - domain: api.test\n"
        "    ports: [443]\n"
        "    methods: [GET]\n"
        '    paths: ["/v1/*"]\n'
    )


def test_merge_includes_the_old_policy_and_learns_only_the_rest(tmp_path: object) -> None:
    old = parse_policy("version: 1\nallow:\n  - domain: api.test\n")
    learned = learn(WORKLOAD[:5], ["run.jsonl"], merge="/p/old.yaml", known=Matcher(old))
    assert 'include: ["/p/old.yaml"]' in learned.text
    assert "api.test" not in learned.text.split("allow:", 1)[1] and learned.requests == 2


def test_nothing_to_learn_is_an_empty_allow_list() -> None:
    learned = learn([line("GET", "denied.test", "/", decision="deny")], ["run.jsonl"])
    assert learned.requests == 0 and parse_policy(learned.text).rules == ()
