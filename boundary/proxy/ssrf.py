"""The SSRF guard: which addresses the proxy may dial for a name it resolved itself (pure but `host_networks`).

Theory of operation. A name the policy allows can still resolve to an address inside the host or its network
(a host `/etc/hosts` entry, a DNS record pointing at 127.0.0.1 or 169.254.169.254, DNS rebinding). The gate
resolves such a name once and asks `AddressGuard.check` about every answer; it dials the first answer the guard
passes, so the address checked is the address dialled. `RANGES` is the whole classification: each range with
its kind (None: globally reachable), looked up by longest prefix. IPv6 outside global unicast (2000::/3) is
refused as `reserved` unless a more specific entry says more.

IPv6 forms that embed an IPv4 address are classified by the address they lead to: IPv4-mapped (the kernel
dials the IPv4 address itself), NAT64 64:ff9b::/96 (DNS64 networks translate to it), 6to4 2002::/16 and Teredo
2001::/32 (both the server and the client address). The local-use NAT64 prefix 64:ff9b:1::/48 is refused
outright: where the IPv4 address sits depends on the prefix length its operator chose. IPv4-compatible ::/96
is refused outright: deprecated, and never routed to IPv4.

The policy's `network.allow_private` ranges win over everything, the host's own addresses included (they apply
to an embedded IPv4 address too); `--resolve` answers are the operator's and never get here.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "RANGES",
    "AddressGuard",
    "IPAddress",
    "IPNetwork",
    "Range",
    "Refusal",
    "host_networks",
    "parse_fib_trie",
    "parse_if_inet6",
]

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
type Embedded = Callable[[ipaddress.IPv6Address], tuple[ipaddress.IPv4Address, ...]]

HOST_ADDRESS: Final = "host-address"
UNPARSEABLE: Final = "not an IP address"


def _low32(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)


def _sixtofour(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    return (ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF),)


def _teredo(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    # RFC 4380: the server's address in bits 32-63, the client's (inverted) in the last 32 bits.
    server = ipaddress.IPv4Address((int(address) >> 64) & 0xFFFFFFFF)
    client = ipaddress.IPv4Address(~int(address) & 0xFFFFFFFF)
    return server, client


@dataclass(frozen=True, slots=True)
class Range:
    network: IPNetwork
    kind: str | None  # why it is refused; None: globally reachable
    embeds: Embedded | None = None  # an IPv6 form whose verdict is that of the IPv4 address(es) inside


def _r(cidr: str, kind: str | None, embeds: Embedded | None = None) -> Range:
    return Range(ipaddress.ip_network(cidr), kind, embeds)


# IANA's special-purpose registries (RFC 6890 and successors), trimmed to what a dial can reach; ranges marked
# globally reachable there (AS112, AMT, ...) stay dialable.
RANGES: Final[tuple[Range, ...]] = (
    _r("0.0.0.0/0", None),
    _r("0.0.0.0/8", "this-network"),
    _r("0.0.0.0/32", "unspecified"),
    _r("10.0.0.0/8", "private"),
    _r("100.64.0.0/10", "cgnat"),
    _r("100.100.100.200/32", "metadata"),  # Alibaba Cloud
    _r("127.0.0.0/8", "loopback"),
    _r("169.254.0.0/16", "link-local"),
    _r("169.254.169.254/32", "metadata"),  # AWS, GCP, Azure, OpenStack, ...
    _r("169.254.170.2/32", "metadata"),  # AWS ECS task credentials
    _r("172.16.0.0/12", "private"),
    _r("192.0.0.0/24", "reserved"),
    _r("192.0.2.0/24", "documentation"),
    _r("192.88.99.0/24", "reserved"),  # the deprecated 6to4 relay anycast
    _r("192.168.0.0/16", "private"),
    _r("198.18.0.0/15", "benchmarking"),
    _r("198.51.100.0/24", "documentation"),
    _r("203.0.113.0/24", "documentation"),
    _r("224.0.0.0/4", "multicast"),
    _r("240.0.0.0/4", "reserved"),
    _r("255.255.255.255/32", "broadcast"),
    _r("::/0", "reserved"),  # everything outside global unicast
    _r("2000::/3", None),
    _r("::/128", "unspecified"),
    _r("::1/128", "loopback"),
    _r("::/96", "ipv4-compatible"),
    _r("::ffff:0:0/96", None, _low32),
    _r("64:ff9b::/96", None, _low32),
    _r("64:ff9b:1::/48", "nat64-local"),
    _r("2001::/23", "reserved"),
    _r("2001::/32", None, _teredo),
    _r("2001:db8::/32", "documentation"),
    _r("2002::/16", None, _sixtofour),
    _r("3fff::/20", "documentation"),
    _r("5f00::/16", "reserved"),  # SRv6 SIDs
    _r("fc00::/7", "unique-local"),
    _r("fd00:ec2::254/128", "metadata"),  # AWS over IPv6
    _r("fe80::/10", "link-local"),
    _r("fec0::/10", "site-local"),
    _r("ff00::/8", "multicast"),
)

# Most specific first, so the first range that contains an address is its longest-prefix match.
_BY_VERSION: Final = {
    version: tuple(sorted((r for r in RANGES if r.network.version == version), key=lambda r: -r.network.prefixlen))
    for version in (4, 6)
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an address may not be dialled: `address` lies in `network`, of this `kind`."""

    address: str
    kind: str
    network: str  # the range to name in `allow_private` to open it ("" for something that is no address)
    via: str | None = None  # the IPv6 address that embeds `address`

    def __str__(self) -> str:
        subject = f"{self.via} embeds {self.address}, which" if self.via else self.address
        if not self.network:
            return f"{subject!r} is {self.kind}"
        return f"{subject} is {self.kind} ({self.network})"


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """The addresses a resolved name may be dialled at: public ones, plus `allowed`, minus `host`."""

    allowed: tuple[IPNetwork, ...] = ()  # the policy's network.allow_private
    host: tuple[IPNetwork, ...] = ()  # the host's own addresses (see `host_networks`)

    def check(self, address: str) -> Refusal | None:
        """None if `address` (as getaddrinfo gives it, an IPv6 scope included) may be dialled."""
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return Refusal(address, UNPARSEABLE, "")
        return self._check(parsed, None)

    def _check(self, address: IPAddress, via: IPAddress | None) -> Refusal | None:
        if any(address in network for network in self.allowed):
            return None
        shown = None if via is None else str(via)
        found = next(r for r in _BY_VERSION[address.version] if address in r.network)
        if found.embeds is not None:
            assert isinstance(address, ipaddress.IPv6Address)
            for inner in found.embeds(address):
                refusal = self._check(inner, address)
                if refusal is not None:
                    return refusal
            return None
        if found.kind is not None:
            return Refusal(str(address), found.kind, str(found.network), shown)
        for network in self.host:
            if address in network:
                return Refusal(str(address), HOST_ADDRESS, str(network), shown)
        return None


# ----------------------------------------------------------------------------------------------------------
# The host's own addresses: the only I/O here. Read from /proc (what `ip` shows, at no import cost; pyroute2
# takes ~0.4 s to import) plus SIOCGIFADDR for each interface in case /proc/net is hidden.


def parse_fib_trie(text: str) -> tuple[ipaddress.IPv4Network, ...]:
    """The IPv4 ranges of the kernel's `local` routes in `/proc/net/fib_trie`: every address of the host, and
    whole ranges routed to it (127.0.0.0/8, or an AnyIP `local 10.1.0.0/16 dev lo`)."""
    found: dict[ipaddress.IPv4Network, None] = {}
    leaf = None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "|--":
            leaf = words[1]
        elif leaf is not None and len(words) == 3 and words[0].startswith("/") and words[2] == "LOCAL":
            found[ipaddress.IPv4Network(f"{leaf}{words[0]}", strict=False)] = None
    return tuple(found)


def parse_if_inet6(text: str) -> tuple[ipaddress.IPv6Network, ...]:
    """The host's IPv6 addresses in `/proc/net/if_inet6` (32 hex digits first on each line), as /128s."""
    found: dict[ipaddress.IPv6Network, None] = {}
    for line in text.splitlines():
        words = line.split()
        if words and len(words[0]) == 32:
            found[ipaddress.IPv6Network((int(words[0], 16), 128))] = None
    return tuple(found)


_SIOCGIFADDR: Final = 0x8915


def interface_ipv4() -> tuple[ipaddress.IPv4Network, ...]:
    """The primary IPv4 address of each interface, as /32s, by ioctl (no /proc needed)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("16s24x", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on it
                continue
            found.append(ipaddress.IPv4Network((socket.inet_ntoa(reply[20:24]), 32)))
    return tuple(found)


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except OSError:  # absent: IPv6 disabled, or /proc/net hidden (interface_ipv4 still answers)
        return ""


def host_networks() -> tuple[IPNetwork, ...]:
    """The host's own addresses in this process's network namespace, read once when the gate is built."""
    found: Iterable[IPNetwork] = (
        *parse_fib_trie(_read("/proc/net/fib_trie")),
        *interface_ipv4(),
        *parse_if_inet6(_read("/proc/net/if_inet6")),
    )
    return tuple(dict.fromkeys(found))
