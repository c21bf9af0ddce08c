"""Every path and host spelling a peer got wrong (design §6), tried with real curl through a real `boundary run`.

The policy allows ``GET https://allowed.test/public/*`` and nothing else of allowed.test. A spelling that
reaches something else is denied: 403, ``X-Boundary-Reason``, exactly one deny line, and the upstream saw
nothing. A spelling that normalizes to an allowed path is allowed, and the upstream receives the
*normalized* path: it sees exactly what was checked, so it cannot read the request in another way.

curl runs with ``--path-as-is`` wherever it would otherwise remove dot segments itself (then the test would
prove nothing about boundary).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Jailer
from tests.support.bypass import POLICY, SPELLINGS, Denied, Spelling

CURL = ["curl", "-sS", "--max-time", "20", "-D", "-", "--path-as-is"]

CASES = [pytest.param(spelling, id=spelling.id) for spelling in SPELLINGS if spelling.e2e]


def status_and_headers(stdout: str) -> tuple[int, dict[str, str]]:
    """The status and headers of the last response in curl's ``-D -`` output."""
    head = stdout.partition("\r\n\r\n")[0]
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


@pytest.mark.parametrize("spelling", CASES)
def test_spelling(jail: Jailer, spelling: Spelling) -> None:
    """Each spelling gets the decision its canonical form deserves; denied ones never reach the upstream,
    allowed ones reach it with the normalized path."""
    expected = spelling.expected
    args = [spelling.url] if spelling.method == "GET" else ["-X", spelling.method, spelling.url]
    https_before, http_before = len(jail.https.requests), len(jail.http.requests)
    port = jail.https.port
    extra = ["--resolve", f"allowed.test:8443:127.0.0.1:{port}"]
    run = jail.run([*CURL, *args], policy=POLICY, extra=extra)
    assert run.result.returncode == 0, run.stderr
    status, headers = status_and_headers(run.stdout)
    new = jail.https.requests[https_before:] + jail.http.requests[http_before:]
    [line] = run.audit
    if isinstance(expected, Denied):
        assert status == 403, run.stdout
        assert headers.get("x-boundary-decision") == "deny"
        assert headers.get("x-boundary-reason") == expected.reason
        assert (line["decision"], line["reason"], line["status"], line["rule"]) == ("deny", expected.reason, 403, None)
        assert new == []
    else:
        assert status == 200, run.stdout
        assert (line["decision"], line["host"], line["path"], line["status"]) == (
            "allow",
            "allowed.test",
            expected.forwarded,
            200,
        )
        [request] = new
        assert (request.method, request.path) == ("GET", expected.forwarded)
