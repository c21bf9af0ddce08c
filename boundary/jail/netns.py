"""Network set-up inside the jail's fresh netns: `lo` up, `local default dev lo`, the nft ruleset, the sockets.

Netlink is spoken by hand (two messages) rather than through pyroute2, whose import would nearly double every
run's start-up (measured in docs/internals.md, "Netlink").
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess

from boundary.errors import JailError
from boundary.jail import syscalls
from boundary.jail.plan import DNS_PORT, LOOPBACK, PROXY_PORT

NFT = "/usr/sbin/nft"
ADDRCONFIG_ADDRESS = "127.0.0.2"

_NLMSG_ERROR = 2
_RTM_NEWLINK = 16
_RTM_NEWADDR = 20
_RTM_NEWROUTE = 24
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_EXCL = 0x200
_NLM_F_CREATE = 0x400
_IFF_UP = 0x1
_RT_TABLE_LOCAL = 255
_RTPROT_BOOT = 3
_RT_SCOPE_HOST = 254
_RTN_LOCAL = 2
_RTA_OIF = 4
_IFA_ADDRESS = 1
_IFA_LOCAL = 2
_LO_INDEX = 1  # lo is always ifindex 1 in a new netns


def _netlink(msg_type: int, flags: int, payload: bytes) -> None:
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.bind((0, 0))
        header = struct.pack("=IHHII", 16 + len(payload), msg_type, flags | _NLM_F_REQUEST | _NLM_F_ACK, 1, 0)
        nl.send(header + payload)
        reply = nl.recv(65536)
    _length, reply_type, _flags, _seq, _pid = struct.unpack_from("=IHHII", reply)
    if reply_type == _NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", reply, 16)
        if error != 0:
            raise OSError(-error, f"netlink message {msg_type}: {os.strerror(-error)}")


def bring_up_loopback() -> None:
    ifinfomsg = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, _LO_INDEX, _IFF_UP, _IFF_UP)
    _netlink(_RTM_NEWLINK, 0, ifinfomsg)


def add_address_for_addrconfig() -> None:
    """Add 127.0.0.2/32 to lo.

    With 127.0.0.1 as its only IPv4 address, glibc's `getaddrinfo(AI_ADDRCONFIG)` (getent ahosts, many C
    programs) decides the host has no IPv4 and resolves nothing; glibc counts any IPv4 address except 127.0.0.1.
    """
    address = socket.inet_aton(ADDRCONFIG_ADDRESS)
    ifaddrmsg = struct.pack("=BBBBI", socket.AF_INET, 32, 0, _RT_SCOPE_HOST, _LO_INDEX)
    attributes = struct.pack("=HH4s", 8, _IFA_LOCAL, address) + struct.pack("=HH4s", 8, _IFA_ADDRESS, address)
    _netlink(_RTM_NEWADDR, _NLM_F_CREATE | _NLM_F_EXCL, ifaddrmsg + attributes)


def add_local_default_route() -> None:
    """`ip route add local default dev lo`: every IPv4 destination becomes local, so connect() hits nat output.

    (A plain `default dev lo` stalls connections; with no route connect() fails with ENETUNREACH before nft.)
    """
    rtmsg = struct.pack(
        "=BBBBBBBBI", socket.AF_INET, 0, 0, 0, _RT_TABLE_LOCAL, _RTPROT_BOOT, _RT_SCOPE_HOST, _RTN_LOCAL, 0
    )
    oif = struct.pack("=HHI", 8, _RTA_OIF, _LO_INDEX)
    _netlink(_RTM_NEWROUTE, _NLM_F_CREATE | _NLM_F_EXCL, rtmsg + oif)


def apply_ruleset(ruleset: str) -> None:
    """Load the ruleset with nft. The helper may have a non-zero uid inside its userns, so nft (an exec) only
    keeps CAP_NET_ADMIN through the ambient set."""
    try:
        syscalls.raise_ambient(syscalls.CAP_NET_ADMIN)
        result = subprocess.run([NFT, "-f", "-"], input=ruleset.encode(), capture_output=True, check=False)
    except FileNotFoundError as e:
        raise JailError(f"{NFT} not found: install nftables (scripts/setup does)") from e
    finally:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    if result.returncode != 0:
        raise JailError(f"nft refused the jail ruleset: {result.stderr.decode(errors='replace').strip()}")


def listening_sockets() -> tuple[socket.socket, socket.socket, socket.socket]:
    """The proxy's TCP socket and the fake DNS's UDP and TCP sockets, bound inside the jail's netns.

    TCP sockets are made with IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY when `sock.proto` says TCP,
    and without it every proxied request stalls ~48 ms (Nagle + delayed ACK).
    """
    proxy = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    proxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    proxy.bind((LOOPBACK, PROXY_PORT))
    proxy.listen(1024)
    dns_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    dns_udp.bind((LOOPBACK, DNS_PORT))
    dns_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    dns_tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dns_tcp.bind((LOOPBACK, DNS_PORT))
    dns_tcp.listen(128)
    return proxy, dns_udp, dns_tcp
