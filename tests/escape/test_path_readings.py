"""Escape probes: a denied path spelled the way a server reads it otherwise than as written.

Servlet containers (Tomcat, Jetty, Undertow) cut `;params` off each path segment before routing, some after
decoding `%3B`, and most frameworks route `/secret/` to the handler of `/secret`. A deny rule on `/admin/**`
or `/secret` that matched the path only as written let `/admin;x/users`, `/admin%3B/` and `/secret/` reach the
denied resource. Through a real `boundary run`, each such spelling must get 403 with `denied-by-rule` and
never reach the upstream, while paths no reading of which is denied still go through, forwarded as written.

The in-jail client speaks raw bytes (tests/escape/test_review.py's CLIENT), so the proxy sees exactly the
spelling, with nothing a client library would have normalized.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import POLICY, Jailer
from tests.escape.conftest import Witnesses
from tests.escape.test_review import _client

# open.test allows every path (tests/e2e/conftest.py); these deny rules carve two resources out of it.
DENY_POLICY = POLICY + "deny:\n  - domain: open.test\n    paths: ['/admin/**', '/secret']\n"
DENY_RULE_LINE = DENY_POLICY.splitlines().index("deny:") + 2

DENIED = [
    "/admin;x/users",
    "/admin;/",
    "/admin%3B/",
    "/admin%3bx/users",
    "/;x/admin",
    "/secret/",
    "/secret;jsessionid=1",
    "/secret%3Bjsessionid=1",
]
ALLOWED = ["/administrator", "/public;x/y", "/secrets"]


def _get(path: str) -> str:
    return f"GET {path} HTTP/1.1\r\nHost: open.test\r\n\r\n"


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_every_reading_of_a_denied_path_is_denied_and_never_forwarded(
    jail: Jailer, witnesses: Witnesses, tls: bool
) -> None:
    """Attack: one keep-alive connection to open.test asks for each spelling of /admin/** and /secret a server
    may route to them, then for paths merely alike. Each spelling gets 403 and one `denied-by-rule` line naming
    the deny rule; the upstream sees only the allowed paths, exactly as sent."""
    upstream = jail.https if tls else jail.http
    before = len(upstream.requests)
    paths = [*DENIED, *ALLOWED]
    probe = _client(
        jail,
        tls=tls,
        host="open.test",
        port=443 if tls else 80,
        steps=[(_get(path), True) for path in paths],
        policy=DENY_POLICY,
    )
    assert probe.results, (probe.run.stdout, probe.run.stderr)
    statuses = [response.split(" ")[1] for response in probe[0]["responses"]]
    assert statuses == ["403"] * len(DENIED) + ["200"] * len(ALLOWED), (probe.results, probe.run.audit)
    lines = [(line["path"], line["decision"], line["reason"], line["status"]) for line in probe.run.audit]
    assert lines == [(path, "deny", "denied-by-rule", 403) for path in DENIED] + [
        (path, "allow", "allowed", 200) for path in ALLOWED
    ]
    deny_rule = f"{jail.workdir / 'policy.yaml'}:{DENY_RULE_LINE}"
    assert {line["rule"] for line in probe.run.audit[: len(DENIED)]} == {deny_rule}
    assert [request.path for request in upstream.requests[before:]] == ALLOWED
    witnesses.assert_nothing_escaped()
