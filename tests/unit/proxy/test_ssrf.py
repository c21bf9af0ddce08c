"""Specification of the SSRF guard: which addresses a name the proxy resolved may be dialled at.

Every range of the table is checked at its edges, the embedding IPv6 forms by what they embed, and the host's
own addresses are read from this machine's real /proc and interfaces (compared with what `ip` says).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess

import pytest

from boundary.proxy.ssrf import (
    RANGES,
    AddressGuard,
    Refusal,
    host_networks,
    interface_ipv4,
    parse_fib_trie,
    parse_if_inet6,
)

# A guard with no host addresses and nothing opened: the table alone decides.
BARE = AddressGuard()

# (address, kind, the range named) for addresses the table refuses; the first and last address of each range
# and, where it matters, the neighbours just outside it (which pass: see PUBLIC).
REFUSED = [
    ("0.0.0.0", "unspecified", "0.0.0.0/32"),
    ("0.0.0.1", "this-network", "0.0.0.0/8"),
    ("0.255.255.255", "this-network", "0.0.0.0/8"),
    ("10.0.0.0", "private", "10.0.0.0/8"),
    ("10.255.255.255", "private", "10.0.0.0/8"),
    ("100.64.0.0", "cgnat", "100.64.0.0/10"),
    ("100.127.255.255", "cgnat", "100.64.0.0/10"),
    ("100.100.100.200", "metadata", "100.100.100.200/32"),
    ("127.0.0.1", "loopback", "127.0.0.0/8"),
    ("127.255.255.254", "loopback", "127.0.0.0/8"),
    ("169.254.0.1", "link-local", "169.254.0.0/16"),
    ("169.254.169.254", "metadata", "169.254.169.254/32"),
    ("169.254.170.2", "metadata", "169.254.170.2/32"),
    ("172.16.0.0", "private", "172.16.0.0/12"),
    ("172.31.255.255", "private", "172.16.0.0/12"),
    ("192.0.0.8", "reserved", "192.0.0.0/24"),
    ("192.0.2.1", "documentation", "192.0.2.0/24"),
    ("192.88.99.1", "reserved", "192.88.99.0/24"),
    ("192.168.0.0", "private", "192.168.0.0/16"),
    ("192.168.255.255", "private", "192.168.0.0/16"),
    ("198.18.0.1", "benchmarking", "198.18.0.0/15"),
    ("198.19.255.255", "benchmarking", "198.18.0.0/15"),
    ("198.51.100.7", "documentation", "198.51.100.0/24"),
    ("203.0.113.7", "documentation", "203.0.113.0/24"),
    ("224.0.0.1", "multicast", "224.0.0.0/4"),
    ("239.255.255.255", "multicast", "224.0.0.0/4"),
    ("240.0.0.1", "reserved", "240.0.0.0/4"),
    ("255.255.255.254", "reserved", "240.0.0.0/4"),
    ("255.255.255.255", "broadcast", "255.255.255.255/32"),
    ("::", "unspecified", "::/128"),
    ("::1", "loopback", "::1/128"),
    ("::2", "ipv4-compatible", "::/96"),
    ("::127.0.0.1", "ipv4-compatible", "::/96"),  # deprecated: refused whatever it embeds
    ("::8.8.8.8", "ipv4-compatible", "::/96"),
    ("::1:0:0:0", "reserved", "::/0"),  # outside global unicast
    ("::ffff:0:0:0", "reserved", "::/0"),  # SIIT's IPv4-translated form
    ("100::1", "reserved", "::/0"),  # discard-only
    ("64:ff9b:1::a00:1", "nat64-local", "64:ff9b:1::/48"),
    ("64:ff9b:1::808:808", "nat64-local", "64:ff9b:1::/48"),
    ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved", "::/0"),
    ("2001:2::1", "reserved", "2001::/23"),  # benchmarking
    ("2001:10::1", "reserved", "2001::/23"),  # ORCHID
    ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "reserved", "2001::/23"),
    ("2001:db8::1", "documentation", "2001:db8::/32"),
    ("3fff::1", "documentation", "3fff::/20"),
    ("5f00::1", "reserved", "5f00::/16"),
    ("4000::1", "reserved", "::/0"),
    ("fc00::1", "unique-local", "fc00::/7"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local", "fc00::/7"),
    ("fd00:ec2::254", "metadata", "fd00:ec2::254/128"),
    ("fe80::1", "link-local", "fe80::/10"),
    ("fe80::1%eth0", "link-local", "fe80::/10"),  # getaddrinfo's spelling, with the scope
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local", "fe80::/10"),
    ("fec0::1", "site-local", "fec0::/10"),
    ("ff02::1", "multicast", "ff00::/8"),
]

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "9.255.255.255",  # just below 10/8
    "11.0.0.0",  # just above
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.255",
    "192.0.3.0",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",  # just below multicast
    "2000::",  # the first global unicast address
    "2001:200::1",  # just above 2001::/23
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2a00:1450::1",
    "3ffe:ffff::1",  # just below 3fff::/20
    "3fff:1000::1",  # just above
    "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",  # the last global unicast address
]


@pytest.mark.parametrize(("address", "kind", "network"), REFUSED)
def test_the_table_refuses_every_non_public_range(address: str, kind: str, network: str) -> None:
    """An address in a special-purpose range is refused, naming its kind and the most specific range."""
    parsed = str(ipaddress.ip_address(address))
    assert BARE.check(address) == Refusal(parsed, kind, network)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    """Globally reachable addresses, the neighbours of every refused range included, may be dialled."""
    assert BARE.check(address) is None


def test_every_range_of_the_table_is_specified() -> None:
    """Each range of the table appears in this file's tables (the refused ones) or as an embedding form."""
    named = {network for _, _, network in REFUSED}
    for entry in RANGES:
        if entry.kind is not None:
            assert str(entry.network) in named, entry.network


@pytest.mark.parametrize(
    ("address", "embedded", "kind", "network"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1", "loopback", "127.0.0.0/8"),
        ("::ffff:169.254.169.254", "169.254.169.254", "metadata", "169.254.169.254/32"),
        ("::ffff:10.1.2.3", "10.1.2.3", "private", "10.0.0.0/8"),
        ("64:ff9b::127.0.0.1", "127.0.0.1", "loopback", "127.0.0.0/8"),
        ("64:ff9b::192.168.1.1", "192.168.1.1", "private", "192.168.0.0/16"),
        ("64:ff9b::100.100.100.200", "100.100.100.200", "metadata", "100.100.100.200/32"),
        ("2002:7f00:1::1", "127.0.0.1", "loopback", "127.0.0.0/8"),
        ("2002:a9fe:a9fe::", "169.254.169.254", "metadata", "169.254.169.254/32"),
        ("2002:c0a8:101:ffff::1", "192.168.1.1", "private", "192.168.0.0/16"),
        # Teredo: server 65.54.227.120 (public); client ~3fff:fdd2 = 192.0.2.45 (documentation)
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45", "documentation", "192.0.2.0/24"),
        # Teredo: server 127.0.0.1; client ~f7f7:f7f7 = 8.8.8.8
        ("2001:0:7f00:1::f7f7:f7f7", "127.0.0.1", "loopback", "127.0.0.0/8"),
        # Teredo: server 8.8.8.8; client ~80ff:fffe = 127.0.0.1
        ("2001:0:808:808::80ff:fffe", "127.0.0.1", "loopback", "127.0.0.0/8"),
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_embed(
    address: str, embedded: str, kind: str, network: str
) -> None:
    """IPv4-mapped, NAT64, 6to4 and Teredo addresses lead to an IPv4 address: a refused one refuses them."""
    shown = str(ipaddress.ip_address(address))
    assert BARE.check(address) == Refusal(embedded, kind, network, via=shown)


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "64:ff9b::1.1.1.1",
        "2002:808:808::1",
        "2001:0:808:808::fefe:fefe",  # Teredo: server 8.8.8.8, client 1.1.1.1
    ],
)
def test_ipv6_forms_embedding_a_public_address_pass(address: str) -> None:
    """The same forms around a public IPv4 address may be dialled (DNS64 networks depend on NAT64)."""
    assert BARE.check(address) is None


@pytest.mark.parametrize("address", ["", "localhost", "127.1", "1.2.3.4.5", "::g", "10.0.0.0/8"])
def test_anything_but_an_address_is_refused(address: str) -> None:
    """What getaddrinfo would never answer is refused rather than guessed at."""
    refusal = BARE.check(address)
    assert refusal == Refusal(address, "not an IP address", "")
    assert str(refusal) == f"{address!r} is not an IP address"


HOST = (
    ipaddress.ip_network("192.0.2.2/32"),
    ipaddress.ip_network("93.184.216.34/32"),
    ipaddress.ip_network("2a00::5/128"),
)


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("93.184.216.34", Refusal("93.184.216.34", "host-address", "93.184.216.34/32")),
        ("2a00::5", Refusal("2a00::5", "host-address", "2a00::5/128")),
        (
            "::ffff:93.184.216.34",
            Refusal("93.184.216.34", "host-address", "93.184.216.34/32", via="::ffff:93.184.216.34"),
        ),
        ("192.0.2.2", Refusal("192.0.2.2", "documentation", "192.0.2.0/24")),  # the table's reason comes first
        ("93.184.216.35", None),
        ("2a00::6", None),
    ],
)
def test_the_host_s_own_addresses_are_refused(address: str, refusal: Refusal | None) -> None:
    """A public address of the host itself is refused as `host-address`; its neighbours pass."""
    assert AddressGuard(host=HOST).check(address) == refusal


@pytest.mark.parametrize(
    ("allowed", "address", "passes"),
    [
        (["127.0.0.0/8"], "127.0.0.1", True),
        (["127.0.0.0/8"], "::ffff:127.0.0.1", True),  # the embedded address is what is opened
        (["127.0.0.0/8"], "64:ff9b::7f00:1", True),
        (["127.0.0.0/8"], "::1", False),
        (["127.0.0.0/8"], "10.0.0.1", False),
        (["10.1.2.3/32"], "10.1.2.3", True),
        (["10.1.2.3/32"], "10.1.2.4", False),
        (["169.254.169.254/32"], "169.254.169.254", True),
        (["::1/128"], "::1", True),
        (["fd00::/8"], "fd00:ec2::254", True),
        (["fd00::/8"], "fc00::1", False),
        (["::/96"], "::127.0.0.1", True),  # even the forms refused outright can be opened
        (["93.184.216.34/32"], "93.184.216.34", True),  # and the host's own addresses
        (["0.0.0.0/0", "::/0"], "169.254.169.254", True),  # the guard switched off, on purpose
    ],
)
def test_allow_private_opens_chosen_ranges(allowed: list[str], address: str, passes: bool) -> None:
    """The policy's `network.allow_private` ranges pass, whatever the table or the host says; nothing else does."""
    guard = AddressGuard(tuple(ipaddress.ip_network(a) for a in allowed), HOST)
    assert (guard.check(address) is None) == passes


@pytest.mark.parametrize(
    ("refusal", "text"),
    [
        (Refusal("127.0.0.1", "loopback", "127.0.0.0/8"), "127.0.0.1 is loopback (127.0.0.0/8)"),
        (
            Refusal("10.0.0.1", "private", "10.0.0.0/8", via="64:ff9b::a00:1"),
            "64:ff9b::a00:1 embeds 10.0.0.1, which is private (10.0.0.0/8)",
        ),
    ],
)
def test_a_refusal_reads_as_a_reason(refusal: Refusal, text: str) -> None:
    """A refusal names the address, why, and the range an operator could open."""
    assert str(refusal) == text


# --- the host's own addresses ---------------------------------------------------------------------------------

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
           |-- 10.9.0.0
              /16 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 192.0.2.2
              /32 host LOCAL
"""

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
"""


def test_parse_fib_trie_finds_the_local_routes() -> None:
    """Every `LOCAL` entry of the trie, with its prefix (an AnyIP range too), once, in order; nothing else."""
    assert parse_fib_trie(FIB_TRIE) == tuple(
        ipaddress.IPv4Network(n) for n in ("127.0.0.0/8", "127.0.0.1/32", "192.0.2.2/32", "10.9.0.0/16")
    )
    assert parse_fib_trie("") == ()


def test_parse_if_inet6_finds_every_address() -> None:
    """Each line's first field is an address; each becomes a /128."""
    assert parse_if_inet6(IF_INET6 + "garbage\n\n") == tuple(
        ipaddress.IPv6Network(n) for n in ("::1/128", "fe80::fc:ff:fe00:1/128", "fd00::2/128")
    )


def ip_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The host's addresses as iproute2 reports them."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    links = json.loads(subprocess.run([ip, "-j", "address"], check=True, capture_output=True).stdout)
    return {ipaddress.ip_address(a["local"]) for link in links for a in link.get("addr_info", ())}


def test_host_networks_cover_every_address_ip_shows() -> None:
    """On this machine: every address `ip address` lists lies in one of the host networks found."""
    networks = host_networks()
    for address in ip_addresses():
        assert any(address in network for network in networks), address
    assert len(set(networks)) == len(networks)


def test_interface_ipv4_finds_the_loopback_and_primary_addresses() -> None:
    """The ioctl fallback alone finds lo's 127.0.0.1 and each interface's primary IPv4 address."""
    found = {network.network_address for network in interface_ipv4()}
    assert ipaddress.IPv4Address("127.0.0.1") in found
    assert found <= {a for a in ip_addresses() if a.version == 4}
