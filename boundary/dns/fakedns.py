"""Fake DNS: every host name gets a synthetic address, and no query ever leaves the machine.

Pure: the table and the wire codec do no I/O; `dnsserver` feeds them the jail's datagrams and streams.

Theory of operation: inside the jail `/etc/resolv.conf` names 127.0.0.1 and nft redirects all port-53 traffic
there, so this module answers every question the workload asks. An `A` question for a plausible host name gets
an address from 198.18.0.0/15 (RFC 2544 benchmarking range, never routed here), allocated on first sight and
stable for the run. The workload then connects to that address, nft hands the connection to the proxy, and the
proxy maps the address back to the name the workload meant (`FakeDnsTable.name_for`); only the proxy resolves
names for real, on the host side, after the policy allowed them. Everything else leads nowhere: AAAA and other
types get NOERROR with no records (NODATA, so clients settle for IPv4), implausible names NXDOMAIN (and no
address), malformed queries FORMERR, other opcodes NOTIMP. `localhost` stays loopback.

The codec parses the header and the one question (RFC 1035 §4.1). Compression pointers are followed only
backwards, each jump landing before the start of the run of labels it left, so a hostile query cannot loop;
names are capped at 255 octets. Replies re-encode the question with its case preserved (resolvers that
randomize case check it) and name the answer's owner with a pointer to it. `answer` never raises: it is handed
whatever bytes arrived.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Final

from boundary.errors import BoundaryError

SYNTHETIC_NETWORK: Final = ipaddress.IPv4Network("198.18.0.0/15")
TTL: Final = 60
LOCALHOST: Final = ipaddress.IPv4Address("127.0.0.1")

_MAX_NAME_OCTETS: Final = 255  # RFC 1035 §2.3.4, wire form: length octets and the root label included
_MAX_NAME_CHARS: Final = 253  # the same limit in text form, without the trailing dot
_MAX_LABEL: Final = 63
_LABEL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")

_HEADER: Final = struct.Struct("!6H")
_QR: Final = 0x8000
_OPCODE: Final = 0x7800
_AA: Final = 0x0400
_RD: Final = 0x0100
_RA: Final = 0x0080
_POINTER_TO_QUESTION: Final = b"\xc0\x0c"  # the question's name always starts right after the header


class Rcode(enum.IntEnum):
    """Response codes (RFC 1035 §4.1.1)."""

    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4


class QType(enum.IntEnum):
    """The record types this server gives an answer for; every other type gets NODATA."""

    A = 1
    PTR = 12


CLASS_IN: Final = 1


def is_synthetic(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is one the fake DNS hands out (IPv4-mapped IPv6 too); False for non-addresses."""
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return False
    if isinstance(address, ipaddress.IPv6Address):
        # A synthetic address smuggled in as ::ffff:198.18.x.y is still one the proxy must never dial.
        if address.ipv4_mapped is None:
            return False
        address = address.ipv4_mapped
    return address in SYNTHETIC_NETWORK


def is_host_name(name: str) -> bool:
    """Whether `name` is plausible as a host name: LDH labels (underscore allowed), one optional trailing dot.

    Deliberately loose beyond that (labels may start with a hyphen or a digit): the point is to refuse what
    cannot be a name, such as empty labels, over-long labels or names, and bytes that are not ASCII letters.
    """
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > _MAX_NAME_CHARS:
        return False
    return all(_is_label(label) for label in name.split("."))


def _is_label(label: str) -> bool:
    return 0 < len(label) <= _MAX_LABEL and _LABEL_CHARS.issuperset(label)


def _normalize(name: str) -> str:
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


class FakeDnsTable:
    """One synthetic address per name, stable for the run.

    Addresses are allocated sequentially from the network's first host address, skipping those ending in .0 or
    .255 (some clients treat them as network or broadcast addresses). The network is a parameter so tests can
    exhaust a tiny one; the run uses `SYNTHETIC_NETWORK` (130 048 names).
    """

    def __init__(self, network: ipaddress.IPv4Network = SYNTHETIC_NETWORK) -> None:
        self._network = network
        self._next = int(network.network_address) + 1
        self._last = int(network.broadcast_address) - 1
        self._by_name: dict[str, ipaddress.IPv4Address] = {}
        self._by_address: dict[ipaddress.IPv4Address, str] = {}

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self._network

    def __len__(self) -> int:
        return len(self._by_name)

    def address_for(self, name: str) -> ipaddress.IPv4Address:
        """The name's address, allocated on first use. Case-insensitive; one trailing dot is ignored.

        Raises ValueError for a name that `is_host_name` refuses (the table only ever holds host names) and
        BoundaryError when every address is taken.
        """
        if not is_host_name(name):
            raise ValueError(f"not a host name: {name!r}")
        key = _normalize(name)
        address = self._by_name.get(key)
        if address is None:
            address = self._allocate()
            self._by_name[key] = address
            self._by_address[address] = key
        return address

    def name_for(self, address: str | ipaddress.IPv4Address) -> str | None:
        """The normalized name given `address`, or None (also for a string that is no IPv4 address)."""
        if isinstance(address, str):
            try:
                address = ipaddress.IPv4Address(address)
            except ValueError:
                return None
        return self._by_address.get(address)

    def _allocate(self) -> ipaddress.IPv4Address:
        while self._next <= self._last:
            candidate = self._next
            self._next += 1
            if candidate & 0xFF not in (0x00, 0xFF):
                return ipaddress.IPv4Address(candidate)
        raise BoundaryError(
            f"fake DNS: every synthetic address in {self._network} is taken ({len(self)} names in this run)"
        )


class _Malformed(Exception):
    """The question cannot be parsed: FORMERR."""


def _read_name(message: bytes, offset: int) -> tuple[list[bytes], int]:
    """The labels of the name at `offset`, and the offset just past the name where it is written."""
    labels: list[bytes] = []
    octets = 1  # the root label
    end: int | None = None  # fixed by the first pointer: the name ends there in the message
    run_start = pos = offset
    while True:
        if pos >= len(message):
            raise _Malformed
        length = message[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= len(message):
                raise _Malformed
            target = (length & 0x3F) << 8 | message[pos + 1]
            if end is None:
                end = pos + 2
            # Strictly before the current run: run starts decrease with every jump, so jumps cannot loop.
            if target >= run_start:
                raise _Malformed
            run_start = pos = target
            continue
        if kind:  # 0x40 (extended, RFC 6891 withdrew it) and 0x80 (reserved) label types
            raise _Malformed
        if length == 0:
            return labels, pos + 1 if end is None else end
        octets += 1 + length
        label = message[pos + 1 : pos + 1 + length]
        if octets > _MAX_NAME_OCTETS or len(label) != length:
            raise _Malformed
        labels.append(label)
        pos += 1 + length


def _encode_name(labels: list[bytes]) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def _host_name(labels: list[bytes]) -> str | None:
    """The lower-case text of a plausible host name, or None (the root name is not a host name).

    Checked label by label, before joining: a wire label may hold a dot, and `a.b` as one label is not `a.b`.
    The wire form's 255-octet cap already keeps the text within 253 characters.
    """
    texts = [label.decode("latin-1") for label in labels]
    if not texts or not all(_is_label(text) for text in texts):
        return None
    return ".".join(texts).lower()


def _ptr_address(name: str) -> ipaddress.IPv4Address | None:
    """The address a `d.c.b.a.in-addr.arpa` name stands for, or None."""
    labels = name.split(".")
    if len(labels) != 6 or labels[4:] != ["in-addr", "arpa"]:
        return None
    try:
        return ipaddress.IPv4Address(".".join(reversed(labels[:4])))
    except ValueError:
        return None


def _record(rtype: int, rdata: bytes) -> bytes:
    return _POINTER_TO_QUESTION + struct.pack("!HHIH", rtype, CLASS_IN, TTL, len(rdata)) + rdata


def _reply(query_id: int, query_flags: int, rcode: Rcode, question: bytes = b"", record: bytes = b"") -> bytes:
    # Opcode and RD are copied (RFC 1035 §4.1.1); we are the authority for every name, and "recursion" is
    # available in the sense that every name gets an answer.
    flags = _QR | (query_flags & (_OPCODE | _RD)) | _AA | _RA | rcode
    header = _HEADER.pack(query_id, flags, 1 if question else 0, 1 if record else 0, 0, 0)
    return header + question + record


def answer(query: bytes, table: FakeDnsTable) -> bytes | None:
    """The reply to one DNS query message, or None to drop it (too short for a header, or itself a reply).

    Additional records (EDNS OPT included) are ignored and not echoed: replies stay far below 512 octets.
    """
    if len(query) < _HEADER.size:
        return None
    query_id, flags, qdcount, _, _, _ = _HEADER.unpack_from(query)
    if flags & _QR:
        # Answering replies would let two servers ping-pong forever.
        return None
    if flags & _OPCODE:
        return _reply(query_id, flags, Rcode.NOTIMP)
    if qdcount != 1:
        return _reply(query_id, flags, Rcode.FORMERR)
    try:
        labels, end = _read_name(query, _HEADER.size)
    except _Malformed:
        return _reply(query_id, flags, Rcode.FORMERR)
    if end + 4 > len(query):
        return _reply(query_id, flags, Rcode.FORMERR)
    qtype, qclass = struct.unpack_from("!HH", query, end)
    question = _encode_name(labels) + struct.pack("!HH", qtype, qclass)

    name = _host_name(labels)
    if name is None:
        return _reply(query_id, flags, Rcode.NXDOMAIN, question)
    if qclass != CLASS_IN:
        return _reply(query_id, flags, Rcode.NOERROR, question)
    if qtype == QType.A:
        if name == "localhost" or name.endswith(".localhost"):
            address = LOCALHOST  # RFC 6761 §6.3: never anything but loopback
        else:
            try:
                address = table.address_for(name)
            except BoundaryError:
                return _reply(query_id, flags, Rcode.SERVFAIL, question)
        return _reply(query_id, flags, Rcode.NOERROR, question, _record(QType.A, address.packed))
    if qtype == QType.PTR:
        ptr_address = _ptr_address(name)
        owner = table.name_for(ptr_address) if ptr_address is not None else None
        if owner is not None:
            rdata = _encode_name([label.encode("ascii") for label in owner.split(".")])
            return _reply(query_id, flags, Rcode.NOERROR, question, _record(QType.PTR, rdata))
    return _reply(query_id, flags, Rcode.NOERROR, question)
