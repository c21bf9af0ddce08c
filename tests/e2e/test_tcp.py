"""Non-HTTP TCP: allowed only by a rule without methods or paths; otherwise closed before any upstream dial."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Jailer
from tests.support.upstreams import Canary, start_canary

SEND = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"SSH-2.0-boundary-test\r\n")
try:
    s.settimeout(3)
    print(repr(s.recv(100)))
except Exception as e:
    print(type(e).__name__)
"""


@pytest.fixture
def canary() -> Iterator[Canary]:
    with start_canary() as listener:
        yield listener


def _policy(port: int) -> str:
    return f"""\
version: 1
allow:
  - domain: raw.test
    ports: [{port}]
  - domain: web.test
    ports: [{port}]
    methods: [GET]
"""


def _resolves(canary: Canary, port: int) -> list[str]:
    return [f"--resolve=raw.test:{port}:127.0.0.1:{canary.port}", f"--resolve=web.test:{port}:127.0.0.1:{canary.port}"]


def test_raw_tcp_allowed_by_a_rule_without_methods_reaches_the_upstream(jail: Jailer, canary: Canary) -> None:
    """A rule that names only host and port lets a non-HTTP stream through, and it is audited."""
    run = jail.run(["python3", "-c", SEND, "raw.test", "7777"], policy=_policy(7777), extra=_resolves(canary, 7777))
    assert run.result.returncode == 0, run.stderr
    assert [hit.first_bytes for hit in canary.hits] == [b"SSH-2.0-boundary-test\r\n"]
    [line] = run.audit
    assert (line["decision"], line["scheme"], line["host"], line["port"]) == ("allow", "tcp", "raw.test", 7777)


@pytest.mark.parametrize(("host", "reason"), [("web.test", "not-http"), ("other.test", "no-matching-rule")])
def test_raw_tcp_to_a_host_without_such_a_rule_never_dials(
    jail: Jailer, canary: Canary, host: str, reason: str
) -> None:
    """A stream to a host whose rules restrict methods, or to an unknown host, is closed; nothing is dialled."""
    run = jail.run(["python3", "-c", SEND, host, "7777"], policy=_policy(7777), extra=_resolves(canary, 7777))
    assert canary.hits == []
    [line] = run.audit
    assert (line["decision"], line["reason"]) == ("deny", reason)
