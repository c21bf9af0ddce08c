"""The jail's network namespace, seen from inside (boundary/jail/netns.py applying plan.nft_ruleset).

Every test runs a real jail, as root and rootless, with the driver standing in for the proxy and the DNS:
what reaches the sockets it was handed is what would reach boundary. "Outside" addresses are documentation
and benchmarking ranges that the host nft guard counts; none of them may move it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.integration.jail.conftest import JailRunner, probe_argv
from tests.support.hostguard import HostGuard

OUTSIDE_TCP = [("198.51.100.7", 22), ("198.51.100.7", 443), ("203.0.113.9", 8080), ("198.18.3.4", 80)]
# 8.8.8.8 is the resolver a workload is most likely to hard-code. The jail's netns has no interface but lo,
# so nothing sent there can leave the machine whatever the ruleset does.
DNS_SERVERS = ["8.8.8.8", "198.51.100.7"]


def test_lo_is_the_only_interface_and_it_is_up(jail: JailRunner) -> None:
    """The jail sees exactly one interface, `lo`, and it is up (netns.bring_up_loopback)."""
    run = jail.shell('$IP -o link | sed "s/^/link: /"')
    [link] = run.lines("link: ")
    assert link.startswith("1: lo: <LOOPBACK,UP,LOWER_UP>"), run.describe()


def test_lo_has_127_0_0_1_and_the_addrconfig_address(jail: JailRunner) -> None:
    """lo carries 127.0.0.1/8 and 127.0.0.2/32 (for glibc's AI_ADDRCONFIG) and no other IPv4 address."""
    run = jail.shell('$IP -o -4 addr show | while read -r _n dev _f addr _rest; do echo "addr: $dev $addr"; done')
    assert sorted(run.lines("addr: ")) == ["lo 127.0.0.1/8", "lo 127.0.0.2/32"], run.describe()


def test_every_ipv4_destination_is_local(jail: JailRunner) -> None:
    """`local default dev lo` is in the local table, so any IPv4 address routes to lo (and into nat output)."""
    run = jail.shell('$IP route show table local | sed "s/^/route: /"; $IP route get 198.51.100.7 | head -1')
    assert "local default dev lo scope host" in [r.strip() for r in run.lines("route: ")], run.describe()
    assert run.stdout.splitlines()[-1].startswith("local 198.51.100.7 dev lo"), run.describe()


def test_there_is_no_ipv6_route_beyond_loopback(jail: JailRunner) -> None:
    """The only IPv6 route in any table is ::1's own: a global IPv6 destination has no route at all."""
    run = jail.shell('$IP -6 route show table all | sed "s/^/route6: /"')
    routes = run.lines("route6: ")
    assert routes, run.describe()
    for route in routes:
        words = route.split()
        destination = words[1] if words[0] in {"local", "unicast", "multicast", "anycast", "broadcast"} else words[0]
        assert destination == "::1", route


def test_ipv6_to_the_outside_fails_fast(jail: JailRunner, host_guard: HostGuard) -> None:
    """A TCP connect or a datagram to 2001:db8::1 fails at once (no route), without waiting for a timeout."""
    before = host_guard.packets()
    run = jail.probe(["tcp6", "2001:db8::1", "443"], ["udp", "2001:db8::1", "53"])
    connect, datagram = run.probes()
    assert connect["result"] in {"ENETUNREACH", "EPERM"}, run.describe()
    assert connect["seconds"] < 1
    assert (datagram["result"], datagram["stage"]) in {("ENETUNREACH", "send"), ("EPERM", "send")}, run.describe()
    assert host_guard.packets() == before


def test_ipv6_loopback_is_closed_too_and_counted(jail: JailRunner) -> None:
    """Even IPv6 to ::1 is dropped by the filter chain (sendto: EPERM) and counted in `dropped_ipv6`."""
    run = jail.probe(["udp", "::1", "53"], ["counters"])
    datagram, counters = run.probes()
    assert (datagram["result"], datagram["stage"]) == ("EPERM", "send"), run.describe()
    assert counters["packets"]["dropped_ipv6"] == 1, run.describe()


@pytest.mark.parametrize(("address", "port"), OUTSIDE_TCP, ids=[f"{a}:{p}" for a, p in OUTSIDE_TCP])
def test_tcp_to_any_outside_address_reaches_the_proxy_socket_with_its_destination(
    jail: JailRunner, host_guard: HostGuard, address: str, port: int
) -> None:
    """A connect() to any address and port outside 127/8 lands on the proxy socket, and SO_ORIGINAL_DST on
    the accepted connection still names the address and port the workload asked for."""
    before = host_guard.packets()
    run = jail.probe(["tcp", address, str(port)])
    [outcome] = run.probes()
    assert outcome["result"] == "ok", run.describe()
    assert outcome["reply"] == f"orig {address}:{port}"
    assert [e["orig"] for e in run.events_of("proxy")] == [f"{address}:{port}"]
    assert host_guard.packets() == before


@pytest.mark.parametrize("server", DNS_SERVERS)
def test_dns_over_udp_to_any_server_reaches_the_dns_socket(
    jail: JailRunner, host_guard: HostGuard, server: str
) -> None:
    """A UDP datagram to port 53 of any server is redirected to the jail's DNS socket, and the reply comes
    back to the workload as if from the server it asked."""
    before = host_guard.packets()
    run = jail.probe(["udp", server, "53"])
    [outcome] = run.probes()
    assert outcome["result"] == "reply", run.describe()
    assert (outcome["data"], outcome["peer"]) == (f"to {server}:53", f"{server}:53")
    assert [e["data"] for e in run.events_of("dns-udp")] == [f"to {server}:53"]
    assert host_guard.packets() == before


def test_dns_over_tcp_reaches_the_dns_tcp_socket_not_the_proxy(jail: JailRunner, host_guard: HostGuard) -> None:
    """TCP to port 53 of an outside server goes to the DNS TCP socket, with its original destination kept."""
    before = host_guard.packets()
    run = jail.probe(["tcp", "198.51.100.7", "53"])
    [outcome] = run.probes()
    assert outcome["reply"] == "dns-tcp", run.describe()
    assert [e["orig"] for e in run.events_of("dns-tcp")] == ["198.51.100.7:53"]
    assert run.events_of("proxy") == []
    assert host_guard.packets() == before


def test_other_udp_is_dropped_and_counted(jail: JailRunner, host_guard: HostGuard) -> None:
    """UDP to any port but 53 (QUIC on 443, NTP on 123) is refused at sendto (EPERM: dropped in the output
    hook), reaches no socket, and is counted in `dropped_udp`."""
    before = host_guard.packets()
    run = jail.probe(["counters"], ["udp", "198.51.100.7", "443"], ["udp", "203.0.113.9", "123"], ["counters"])
    start, quic, ntp, end = run.probes()
    assert start["packets"]["dropped_udp"] == 0, run.describe()
    for outcome in (quic, ntp):
        assert (outcome["result"], outcome["stage"]) == ("EPERM", "send"), run.describe()
    assert end["packets"]["dropped_udp"] == 2
    assert run.events_of("dns-udp") == []
    assert host_guard.packets() == before


def test_icmp_echo_never_leaves(jail: JailRunner, host_guard: HostGuard) -> None:
    """No ICMP echo gets out: raw sockets are refused, and ping sockets are off (net.ipv4.ping_group_range).
    A root workload (uid 0, no capabilities) owns its jail's net sysctls and can turn ping sockets on; its
    echo is then dropped by nft and counted in `dropped_icmp`. The rootless workload cannot. (This machine
    has no `ping`; if one is installed, it must fail too.) Guarded: the sysctl write runs only in the jail."""
    before = host_guard.packets()
    probes = shlex.join(probe_argv(["icmp", "198.51.100.7"], ["counters"]))
    run = jail.shell(
        "require_jail\n"
        'g=$(id -g); echo "$g $g" 2>/dev/null >/proc/sys/net/ipv4/ping_group_range; echo "widened=$?"\n'
        'if command -v ping >/dev/null; then ping -c1 -W1 198.51.100.7 >/dev/null 2>&1; echo "ping=$?"; fi\n'
        f"{probes}\n"
    )
    icmp, counters = run.probes()
    assert icmp["raw_socket"] == {"result": "EPERM", "stage": "socket"}, run.describe()
    if run.value("widened") == "0":  # root, today
        assert icmp["ping_socket"] == {"result": "EPERM", "stage": "send"}, run.describe()
        assert counters["packets"]["dropped_icmp"] == 1
    else:
        assert icmp["ping_socket"] == {"result": "EACCES", "stage": "socket"}, run.describe()
        assert counters["packets"]["dropped_icmp"] == 0
    assert all(value != "0" for value in run.lines("ping="))
    assert host_guard.packets() == before


def test_raw_and_packet_sockets_cannot_be_created(jail: JailRunner) -> None:
    """The workload cannot open raw IPv4 (also ICMP), IPv6 or packet sockets (EPERM): nothing can bypass the nat
    hooks."""
    run = jail.probe(["raw"])
    [outcome] = run.probes()
    assert outcome["sockets"] == dict.fromkeys(("inet_raw", "inet_icmp_raw", "inet6_raw", "packet"), "EPERM"), (
        run.describe()
    )


def test_the_workload_cannot_read_or_change_the_network_set_up(jail: JailRunner) -> None:
    """Without CAP_NET_ADMIN the workload can neither list the ruleset nor take lo down nor delete the local
    route; afterwards lo is still up and TCP still reaches the proxy. (Guarded: runs only inside the jail.)"""
    probe = shlex.join(probe_argv(["tcp", "198.51.100.7", "443"]))
    run = jail.shell(
        "require_jail\n"
        '$NFT list ruleset; echo "nft-list=$?"\n'
        '$IP link set lo down; echo "link-down=$?"\n'
        '$IP route del local default table local; echo "route-del=$?"\n'
        '$IP -o link | sed "s/^/link: /"\n'
        f"{probe}\n"
    )
    assert run.returncode == 0, run.describe()
    assert run.value("nft-list") != "0"
    assert run.value("link-down") != "0"
    assert run.value("route-del") != "0"
    assert "Operation not permitted" in run.stderr
    [link] = run.lines("link: ")
    assert "<LOOPBACK,UP,LOWER_UP>" in link
    [outcome] = run.probes()
    assert outcome["reply"] == "orig 198.51.100.7:443", run.describe()


def test_the_sockets_handed_over_are_bound_inside_the_jail(jail: JailRunner) -> None:
    """The helper hands over the proxy socket (127.0.0.1:15001) and the DNS sockets (127.0.0.1:53), bound in
    the jail's netns; the TCP ones say IPPROTO_TCP, which asyncio needs to set TCP_NODELAY."""
    run = jail.run(["true"])
    [started] = run.events_of("started")
    assert started["proxy_address"] == ["127.0.0.1", 15001], run.describe()
    assert started["dns_udp_address"] == ["127.0.0.1", 53]
    assert (started["proxy_proto"], started["dns_tcp_proto"]) == (6, 6)


def test_a_ruleset_nft_refuses_stops_the_set_up(jail: JailRunner, user_tmp_path: Path) -> None:
    """If nft rejects the ruleset, start_jail raises JailError quoting nft's complaint; no workload runs
    and no process is left behind."""
    ruleset = user_tmp_path / "broken.nft"
    ruleset.write_text("table ip broken { chain output { this is not nft } }\n")
    run = jail.run(["sh", "-c", "echo ran"], ["--ruleset", str(ruleset)])
    assert run.returncode == 125, run.describe()
    [error] = run.events_of("jail-error")
    assert error["message"].startswith("nft refused the jail ruleset: "), error
    assert "syntax error" in error["message"]
    assert error["leftovers"] == []
    assert "ran" not in run.stdout
