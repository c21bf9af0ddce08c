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


@pytest.mark.parametrize(
    ("version", "args", "reason"),
    [
        # curl turns a custom Host into :authority over HTTP/2.
        ("--http2", ["-H", "Host: denied.test", "https://allowed.test/hello"], "host-mismatch"),
        ("--http2", ["--connect-to", "denied.test:443:allowed.test:443", "https://denied.test/hello"], "sni-mismatch"),
        ("--http1.1", ["-H", "Host: denied.test", "https://allowed.test/hello"], "host-mismatch"),
    ],
)
def test_mismatched_identity_is_denied_over_each_http_version(
    jail: Jailer, version: str, args: list[str], reason: str
) -> None:
    """HTTP/2's `:authority` is held to the same rule as HTTP/1's Host: it must name the SNI's host."""
    before = len(jail.https.requests)
    run = jail.run([*CURL[:-1], "%{http_code} %{http_version}", version, *args])
    assert run.stdout == f"403 {'2' if version == '--http2' else '1.1'}", run.stderr
    [line] = run.audit
    assert (line["decision"], line["reason"], line["host"]) == ("deny", reason, "allowed.test")
    assert len(jail.https.requests) == before


@pytest.mark.parametrize("version", ["--http2", "--http1.1"])
def test_the_upstream_sees_the_canonical_host(jail: Jailer, version: str) -> None:
    """However the client spells the host (case, trailing dot), the upstream gets the name that was checked,
    as Host (from HTTP/1's Host or HTTP/2's `:authority`) and as SNI."""
    before = len(jail.https.requests)
    run = jail.run(
        ["curl", "-sS", "--max-time", "20", version, "-H", "Host: ALLOWED.Test.", "https://allowed.test/v1/x"]
    )
    assert run.result.returncode == 0, run.stderr
    [request] = jail.https.requests[before:]
    assert (request.host, request.sni, request.path) == ("allowed.test", "allowed.test", "/v1/x")
    [line] = run.audit
    assert (line["decision"], line["host"]) == ("allow", "allowed.test")


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
