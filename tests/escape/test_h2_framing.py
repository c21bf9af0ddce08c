"""Escape probes on the HTTP/2 -> HTTP/1 seam: an h2 client, an HTTP/1-only upstream.

The client speaks raw frames (tests/support/h2client.py), so the proxy sees exactly the attack. The upstream
(tests/support/upstreams.py) offers only `http/1.1` by ALPN and parses what it receives as a lenient HTTP/1.1
server would: a request smuggled into the bytes it reads shows up in its recorded requests.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Jailer
from tests.escape.conftest import Witnesses, run_probe
from tests.support import h2client
from tests.support.tools import venv_python

SMUGGLED = "DELETE /admin HTTP/1.1\r\nHost: denied.test\r\nContent-Length: 0\r\n\r\n"


def _h2(jail: Jailer, host: str, streams: list[dict[str, Any]], **kw: Any) -> Any:
    spec = json.dumps({"host": host, "port": 443, "streams": streams})
    return run_probe(jail, command=[str(venv_python()), h2client.__file__, spec], **kw)


def _targets(requests: list[Any]) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests]


def test_a_request_smuggled_in_the_data_of_an_allowed_get_never_reaches_the_upstream(
    jail: Jailer, witnesses: Witnesses
) -> None:
    """Attack: an allowed `GET /hello` over h2 with no content-length, whose DATA frames hold a whole HTTP/1
    request. Streamed to an HTTP/1 upstream with neither Content-Length nor Transfer-Encoding, the DATA would
    follow the head raw and the upstream would read a second, unchecked request."""
    before = len(jail.https.requests)
    streams = [{"headers": [[":method", "GET"], [":path", "/hello"]], "data": [SMUGGLED]}]
    probe = _h2(jail, "allowed.test", streams)
    forwarded = _targets(jail.https.requests[before:])
    assert [t for t in forwarded if "admin" in t] == [], (forwarded, probe.results, probe.run.audit)
    witnesses.assert_nothing_escaped()


def test_a_post_without_a_content_length_reaches_the_upstream_as_one_chunked_request(
    jail: Jailer, witnesses: Witnesses
) -> None:
    """Attack: the same DATA on a POST to a host that allows any request, split across frames with empty
    ones between them. The upstream reads one POST whose body is the DATA, byte for byte, and nothing else."""
    before = len(jail.https.requests)
    streams = [{"headers": [[":method", "POST"], [":path", "/upload"]], "data": [SMUGGLED[:10], "", SMUGGLED[10:]]}]
    probe = _h2(jail, "open.test", streams)
    received = jail.https.requests[before:]
    assert _targets(received) == ["POST /upload"], (probe.results, probe.run.audit)
    assert received[0].body == SMUGGLED.encode() and received[0].header("transfer-encoding") == "chunked"
    witnesses.assert_nothing_escaped()


def test_data_beyond_the_content_length_never_reaches_the_upstream(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: a content-length of 4, then DATA holding 4 bytes and a whole request. The stream is refused at
    the frame that goes past the length; the upstream never reads the request."""
    before = len(jail.https.requests)
    streams = [
        {"headers": [[":method", "POST"], [":path", "/upload"], ["content-length", "4"]], "data": ["body", SMUGGLED]}
    ]
    probe = _h2(jail, "open.test", streams)
    forwarded = _targets(jail.https.requests[before:])
    assert [t for t in forwarded if "admin" in t] == [], (forwarded, probe.results)
    witnesses.assert_nothing_escaped()


def test_trailers_reach_an_http1_upstream_without_a_second_request(jail: Jailer, witnesses: Witnesses) -> None:
    """h2 request trailers go in the chunked trailer section; one request arrives, with its whole body."""
    before = len(jail.https.requests)
    streams = [{"headers": [[":method", "POST"], [":path", "/upload"]], "data": ["data"], "trailers": [["x-sum", "1"]]}]
    probe = _h2(jail, "open.test", streams)
    received = jail.https.requests[before:]
    assert _targets(received) == ["POST /upload"], (probe.results, probe.run.audit)
    assert received[0].body == b"data"
    assert probe.results[0]["streams"][0]["status"] == 200
    witnesses.assert_nothing_escaped()


NOT_TOKENS = [
    ([[":method", "GET /admin?"], [":path", "/ok"]], "invalid-method"),
    ([[":method", "GET"], [":path", "/hello"], ["x(y", "1"]], "malformed-header"),
    ([[":method", "GET"], [":path", "/hello"], ['x"y', "1"]], "malformed-header"),
]


@pytest.mark.parametrize(("headers", "reason"), NOT_TOKENS, ids=["method", "name-paren", "name-quote"])
def test_a_method_or_field_name_that_is_not_a_token_is_refused_with_its_own_line(
    jail: Jailer, witnesses: Witnesses, headers: list[list[str]], reason: str
) -> None:
    """Attack: an h2 `:method` of `GET /admin?` would be written verbatim into the HTTP/1 request line
    (`GET /admin? /ok HTTP/1.1`, routed to /admin by a lenient server); a field name that is no token is a
    different field to different servers. Each is refused with 400, its own reason and one audit line."""
    before = len(jail.https.requests)
    probe = _h2(jail, "open.test", [{"headers": headers, "end_on_headers": True}])
    assert jail.https.requests[before:] == []
    assert probe.results[0]["streams"][0]["status"] == 400
    assert [(line["decision"], line["reason"], line["status"]) for line in probe.run.audit] == [("deny", reason, 400)]
    witnesses.assert_nothing_escaped()


def test_a_lower_case_method_goes_upstream_as_the_upper_case_one_checked(jail: Jailer, witnesses: Witnesses) -> None:
    """The policy checks the upper-cased method; the upstream gets exactly that, not `get`."""
    before = len(jail.https.requests)
    probe = _h2(jail, "allowed.test", [{"headers": [[":method", "get"], [":path", "/hello"]], "end_on_headers": True}])
    assert _targets(jail.https.requests[before:]) == ["GET /hello"], (probe.results, probe.run.stderr)
    witnesses.assert_nothing_escaped()
