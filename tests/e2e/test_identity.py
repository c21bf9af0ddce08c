"""Host identity: the destination the jail resolved, the Host header and the TLS SNI must name the same host."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Jailer

CURL = ["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        # Host header names a denied host on a connection to an allowed one (HTTP and HTTPS).
        (["-H", "Host: denied.test", "http://allowed.test/hello"], "host-mismatch"),
        (["-H", "Host: denied.test", "https://allowed.test/hello"], "host-mismatch"),
        # Domain fronting: TLS to the allowed host's address with SNI and Host of another host.
        (["--connect-to", "denied.test:443:allowed.test:443", "https://denied.test/hello"], "sni-mismatch"),
        # Host header with a port other than the one connected to.
        (["-H", "Host: allowed.test:8443", "https://allowed.test/hello"], "host-mismatch"),
    ],
)
def test_mismatched_identity_is_denied(jail: Jailer, args: list[str], reason: str) -> None:
    """Whatever the client claims, a request whose names disagree is denied before any upstream sees it."""
    before = len(jail.https.requests) + len(jail.http.requests)
    run = jail.run([*CURL, *args])
    assert run.stdout == "403", run.stderr
    [line] = run.audit
    assert (line["decision"], line["reason"]) == ("deny", reason)
    assert len(jail.https.requests) + len(jail.http.requests) == before


def test_dns_to_an_outside_server_is_answered_by_the_jail(jail: Jailer) -> None:
    """A lookup sent straight to a public resolver is redirected to the fake DNS: the answer is synthetic."""
    run = jail.run(["python3", "-c", QUERY_8888])
    assert run.result.returncode == 0, run.stderr
    assert run.stdout.startswith("198.18."), run.stdout


QUERY_8888 = r"""
import socket, struct
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, ("8.8.8.8", 53))
reply = s.recv(512)
print(socket.inet_ntoa(reply[-4:]))
"""
