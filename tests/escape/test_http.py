"""Escape probes through the proxy itself: making it dial somewhere the policy does not allow.

Denied names are mapped (`--resolve`) to a host-side TCP canary: if the proxy ever dialled one, the canary would
hear it. Every test also asserts that the client got no upstream answer and that the audit line is a deny.
"""

from __future__ import annotations

import shlex

import pytest

from tests.e2e.conftest import Jailer
from tests.escape.conftest import OUTSIDE, Witnesses, run_probe

CURL = ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{http_version}\\n"]


def _to_canary(witnesses: Witnesses, *names: str, ports: tuple[int, ...] = (80, 443)) -> list[str]:
    """`--resolve` every NAME:PORT to the host's loopback canary (later flags win over the e2e ones)."""
    port = witnesses.tcp["127.0.0.1"].port
    return [f"--resolve={name}:{p}:127.0.0.1:{port}" for name in names for p in ports]


def _codes(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_ip_literals_are_denied_without_a_dial(jail: Jailer, witnesses: Witnesses, scheme: str) -> None:
    """Attack: skip names altogether and ask for an IP address (the canary's, on the host's own address, and an
    outside one). An IP literal is never a name the jail resolved: denied, never dialled."""
    if witnesses.host4 is None:
        pytest.skip("this host has no non-loopback IPv4 address for the canary")
    targets = [f"{witnesses.host4}:{witnesses.tcp[witnesses.host4].port}", OUTSIDE]
    script = "; ".join(shlex.join([*CURL, "-k", f"{scheme}://{target}/"]) for target in targets)
    probe = run_probe(jail, command=["sh", "-c", script])
    codes = _codes(probe.run.stdout)
    assert len(codes) == len(targets), probe.run.stdout + probe.run.stderr
    assert [code for code in codes if code.startswith("2")] == [], codes
    assert {(line["decision"], line["reason"]) for line in probe.run.audit} == {("deny", "ip-literal")}
    witnesses.assert_nothing_escaped()


FRONTING = [
    # TLS (SNI) and connection to the allowed host, Host header names the denied one.
    pytest.param(["-H", "Host: denied.test", "https://allowed.test/hello"], id="host-header-fronting"),
    # Connection to the allowed host's address, SNI and Host name the denied one.
    pytest.param(["--connect-to", "denied.test:443:allowed.test:443", "https://denied.test/hello"], id="sni-fronting"),
    # The reverse: TLS to the denied host, Host header names the allowed one.
    pytest.param(["-H", "Host: allowed.test", "https://denied.test/hello"], id="reverse-host-fronting"),
    # The reverse through the allowed host's address: SNI denied, Host allowed.
    pytest.param(
        ["--connect-to", "denied.test:443:allowed.test:443", "-H", "Host: allowed.test", "https://denied.test/hello"],
        id="reverse-sni-fronting",
    ),
]


@pytest.mark.parametrize("args", FRONTING)
def test_domain_fronting_is_denied(jail: Jailer, witnesses: Witnesses, args: list[str]) -> None:
    """Attack: domain fronting, names that disagree between the TLS SNI, the Host header and the destination,
    hoping the policy checks one name and the proxy dials by another. denied.test leads to the canary."""
    before = len(jail.https.requests)
    probe = run_probe(jail, command=[*CURL, *args], extra=_to_canary(witnesses, "denied.test"))
    assert _codes(probe.run.stdout) == ["403"], probe.run.stdout + probe.run.stderr
    assert [line["decision"] for line in probe.run.audit] == ["deny"], probe.run.audit
    assert len(jail.https.requests) == before
    witnesses.assert_nothing_escaped()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-H", "Host: denied.test", "https://allowed.test/hello"], id="authority-denied"),
        pytest.param(
            ["--connect-to", "denied.test:443:allowed.test:443", "https://denied.test/hello"], id="sni-denied"
        ),
    ],
)
def test_http2_authority_mismatch_is_denied(jail: Jailer, witnesses: Witnesses, args: list[str]) -> None:
    """Attack: the same fronting over HTTP/2, where the name travels as the `:authority` pseudo-header
    (curl sends a custom Host header as `:authority`) on a connection negotiated for another name."""
    before = len(jail.https.requests)
    probe = run_probe(jail, command=[*CURL, "--http2", *args], extra=_to_canary(witnesses, "denied.test"))
    assert probe.run.stdout.split() == ["403", "2"], probe.run.stdout + probe.run.stderr
    assert [line["decision"] for line in probe.run.audit] == ["deny"], probe.run.audit
    assert len(jail.https.requests) == before
    witnesses.assert_nothing_escaped()


@pytest.mark.parametrize("target", ["target.test", "loopback", "host-address"])
def test_connect_to_a_denied_target_is_denied(jail: Jailer, witnesses: Witnesses, target: str) -> None:
    """Attack: set HTTPS_PROXY so the client sends `CONNECT target:port`, hoping the proxy tunnels blindly to
    whatever it names: a denied name (mapped to the canary), the host's loopback canary, the canary on the
    host's own address. The target is checked like any request and denied; nothing is dialled."""
    port = witnesses.tcp["127.0.0.1"].port
    if target == "host-address":
        if witnesses.host4 is None:
            pytest.skip("this host has no non-loopback IPv4 address for the canary")
        url = f"https://{witnesses.host4}:{witnesses.tcp[witnesses.host4].port}/"
    else:
        url = {"target.test": "https://target.test/", "loopback": f"https://127.0.0.1:{port}/"}[target]
    command = ["env", "HTTPS_PROXY=http://proxy.test:3128", *CURL, "-k", url]
    probe = run_probe(jail, command=command, extra=_to_canary(witnesses, "target.test", "proxy.test"))
    codes = _codes(probe.run.stdout)
    assert codes and not codes[0].startswith("2"), probe.run.stdout + probe.run.stderr
    host = url.split("/")[2].rsplit(":", 1)[0] if target != "target.test" else "target.test"
    assert [(line["method"], line["host"], line["decision"]) for line in probe.run.audit] == [
        ("CONNECT", host, "deny")
    ], probe.run.audit
    witnesses.assert_nothing_escaped()


def test_plain_tcp_to_a_denied_port_is_closed_without_a_dial(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: a non-HTTP stream (SSH) to an allowed host on a port its rule does not name. open.test's rule
    has no methods or paths (non-HTTP TCP would be fine on its ports), but 2222 is not one of them."""
    probe = run_probe(
        jail, "tcp", "open.test", "2222", "SSH-2.0-escape", extra=_to_canary(witnesses, "open.test", ports=(2222,))
    )
    [result] = probe.results
    assert result["result"] not in {"reply", "ok"}, result
    [line] = probe.run.audit
    assert (line["decision"], line["reason"], line["port"]) == ("deny", "port-not-allowed", 2222)
    witnesses.assert_nothing_escaped()
