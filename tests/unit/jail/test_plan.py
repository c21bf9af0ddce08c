"""The jail plan: ruleset text, resolver files, id maps, the workload's environment."""

import pytest

from boundary.jail import plan
from boundary.jail.plan import Identity


def test_ruleset_redirects_all_tcp_not_just_web_ports() -> None:
    """Every TCP destination outside 127/8 goes to the proxy, whatever its port."""
    text = plan.nft_ruleset(15001, 53)
    assert "meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :15001" in text
    assert "dport 443" not in text and "dport 80" not in text


def test_ruleset_sends_dns_to_any_server_to_the_fake_dns() -> None:
    """A workload that asks its own DNS server (UDP or TCP) still reaches only the fake DNS."""
    text = plan.nft_ruleset(15001, 5353)
    assert "udp dport 53 redirect to :5353" in text
    assert "tcp dport 53 ip daddr != 127.0.0.1 redirect to :5353" in text


@pytest.mark.parametrize(
    "rule",
    [
        "type filter hook output priority 0; policy drop;",
        'oifname != "lo" counter name dropped_not_lo drop',
        "meta nfproto ipv6 counter name dropped_ipv6 drop",
        "meta l4proto udp counter name dropped_udp drop",
        "meta l4proto icmp counter name dropped_icmp drop",
    ],
)
def test_ruleset_drops_everything_else_with_a_counter(rule: str) -> None:
    """IPv6, other UDP (QUIC included), ICMP and anything not on lo are dropped and counted."""
    assert rule in plan.nft_ruleset()


def test_resolv_conf_names_only_the_jail_dns() -> None:
    """The only nameserver is the fake DNS on the jail's loopback."""
    lines = [line for line in plan.RESOLV_CONF.splitlines() if line.startswith("nameserver")]
    assert lines == ["nameserver 127.0.0.1"]


def test_hosts_has_only_localhost() -> None:
    """No host /etc/hosts entry can point the workload at an address."""
    names = {name for line in plan.HOSTS.splitlines() for name in line.split()[1:]}
    assert names == {"localhost", "ip6-localhost", "ip6-loopback"}


@pytest.mark.parametrize(
    ("invoker", "workload", "uid_map", "gid_map"),
    [
        (Identity(1000, 1000), Identity(1000, 1000), "1000 1000 1\n", "1000 1000 1\n"),
        (Identity(0, 0), Identity(0, 0), "0 0 1\n", "0 0 1\n"),
        (
            Identity(0, 0),
            Identity(1000, 100, (100, 27)),
            "0 0 1\n1000 1000 1\n",
            "0 0 1\n27 27 1\n100 100 1\n",
        ),
    ],
)
def test_user_maps_are_identity_maps(invoker: Identity, workload: Identity, uid_map: str, gid_map: str) -> None:
    """Ids map to themselves; rootless gets exactly its own id, root adds the workload's user and groups."""
    assert plan.user_maps(invoker, workload) == (uid_map, gid_map)


def test_workload_env_points_every_ca_variable_at_the_bundle() -> None:
    """Every known CA variable leads to the combined bundle, set or not before."""
    me = Identity(1000, 1000)
    env = plan.workload_env({"SSL_CERT_FILE": "/elsewhere.pem", "PATH": "/bin"}, "/b.crt", me, me)
    assert all(env[name] == "/b.crt" for name in plan.CA_BUNDLE_VARIABLES)
    assert env["PATH"] == "/bin"


def test_workload_env_drops_outer_proxies() -> None:
    """An outer proxy is unreachable from the jail; its variables are not passed in."""
    me = Identity(1000, 1000)
    env = plan.workload_env({"HTTPS_PROXY": "http://corp:3128", "no_proxy": "x", "A": "1"}, "/b", me, me)
    assert not set(plan.PROXY_VARIABLES) & set(env)
    assert env["A"] == "1"


def test_workload_env_sets_home_of_another_user() -> None:
    """Run as another user (root with --user), HOME and USER are that user's."""
    root = Identity(0, 0)
    alice = Identity(1000, 1000, (), "/home/alice", "alice")
    env = plan.workload_env({"HOME": "/root", "USER": "root"}, "/b", alice, root)
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == ("/home/alice", "alice", "alice")
