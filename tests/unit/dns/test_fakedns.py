"""Specification of the fake DNS: the synthetic address table and the wire answers.

Queries are encoded by hand and replies parsed by the small reader below, independent of the module tested.
Numbers are the RFC's: types A=1, NS=2, CNAME=5, SOA=6, PTR=12, MX=15, TXT=16, AAAA=28, SVCB=64, HTTPS=65,
ANY=255; class IN=1, CH=3; rcodes NOERROR=0, FORMERR=1, SERVFAIL=2, NXDOMAIN=3, NOTIMP=4.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.dns.fakedns import SYNTHETIC_NETWORK, FakeDnsTable, answer, is_host_name, is_synthetic
from boundary.errors import BoundaryError

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SVCB, HTTPS, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 64, 65, 255
IN, CH = 1, 3
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP = 0, 1, 2, 3, 4
RD = 0x0100


# --- a tiny, independent DNS encoder and reader -------------------------------------------------------------


def wire_name(name: str) -> bytes:
    """`example.com` -> `\\x07example\\x03com\\x00`; the empty name and `.` are the root."""
    labels = [label for label in name.rstrip(".").split(".") if label] if name not in ("", ".") else []
    return b"".join(bytes((len(label.encode()),)) + label.encode() for label in labels) + b"\x00"


def build_query(
    name: str | bytes,
    qtype: int = A,
    qclass: int = IN,
    *,
    qid: int = 0x1234,
    flags: int = RD,
    qdcount: int = 1,
    arcount: int = 0,
    tail: bytes = b"",
) -> bytes:
    """A query message; `name` is text, or bytes used verbatim as the wire name (for malformed names)."""
    raw_name = wire_name(name) if isinstance(name, str) else name
    header = struct.pack("!6H", qid, flags, qdcount, 0, 0, arcount)
    return header + raw_name + struct.pack("!HH", qtype, qclass) + tail


@dataclass
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes


@dataclass
class Reply:
    qid: int
    flags: int
    questions: list[tuple[str, int, int]]
    answers: list[Record]
    nscount: int
    arcount: int

    @property
    def rcode(self) -> int:
        return self.flags & 0x000F

    @property
    def opcode(self) -> int:
        return self.flags >> 11 & 0xF


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(32):
        length = message[offset]
        if length >= 0xC0:
            end = offset + 2 if end is None else end
            offset = (length & 0x3F) << 8 | message[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), offset + 1 if end is None else end
        labels.append(message[offset + 1 : offset + 1 + length].decode("latin-1"))
        offset += 1 + length
    raise AssertionError("pointer loop in a reply")


def parse_reply(message: bytes) -> Reply:
    qid, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!6H", message)
    offset = 12
    questions = []
    for _ in range(qdcount):
        name, offset = read_name(message, offset)
        qtype, qclass = struct.unpack_from("!HH", message, offset)
        offset += 4
        questions.append((name, qtype, qclass))
    answers = []
    for _ in range(ancount):
        name, offset = read_name(message, offset)
        rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", message, offset)
        offset += 10
        answers.append(Record(name, rtype, rclass, ttl, message[offset : offset + rdlength]))
        offset += rdlength
    assert offset == len(message), "trailing bytes in a reply"
    return Reply(qid, flags, questions, answers, nscount, arcount)


def ask(query: bytes, table: FakeDnsTable | None = None) -> Reply:
    reply = answer(query, table if table is not None else FakeDnsTable())
    assert reply is not None
    return parse_reply(reply)


# --- is_synthetic and is_host_name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("198.18.0.1", True),
        ("198.19.255.254", True),
        (ipaddress.IPv4Address("198.18.7.7"), True),
        ("::ffff:198.18.0.1", True),
        (ipaddress.IPv6Address("::ffff:198.19.1.1"), True),
        ("198.17.255.255", False),
        ("198.20.0.0", False),
        ("127.0.0.1", False),
        (ipaddress.IPv4Address("203.0.113.5"), False),
        ("2001:db8::1", False),
        ("::ffff:203.0.113.5", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_synthetic(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address, expected: bool) -> None:
    """Exactly 198.18.0.0/15 is synthetic, also as IPv4-mapped IPv6; strings that are no address are not."""
    assert is_synthetic(address) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.com", True),
        ("example.com.", True),
        ("localhost", True),
        ("_dmarc.example.com", True),
        ("xn--bcher-kva.example", True),
        ("-odd-.example", True),
        ("a" * 63 + ".com", True),
        (".".join(["a" * 63] * 3 + ["a" * 61]), True),  # 253 characters
        ("a" * 64 + ".com", False),
        (".".join(["a" * 63] * 3 + ["a" * 62]), False),  # 254 characters
        ("a..b", False),
        (".example.com", False),
        ("example.com..", False),
        ("", False),
        (".", False),
        ("a b.example", False),
        ("ex*ample.com", False),
        ("bücher.example", False),
        ("example.com/path", False),
    ],
)
def test_is_host_name(name: str, expected: bool) -> None:
    """Host names: non-empty LDH(+underscore) labels of at most 63, at most 253 in all, one trailing dot."""
    assert is_host_name(name) is expected


# --- FakeDnsTable -------------------------------------------------------------------------------------------


def test_table_allocates_sequentially_from_the_first_host_address() -> None:
    """The first names get 198.18.0.1, 198.18.0.2, ... in order of first use."""
    table = FakeDnsTable()
    got = [table.address_for(name) for name in ("a.example", "b.example", "c.example")]
    assert got == [ipaddress.IPv4Address(f"198.18.0.{i}") for i in (1, 2, 3)]


def test_table_is_stable() -> None:
    """Asking again for a name gives the same address, whatever was allocated in between."""
    table = FakeDnsTable()
    first = table.address_for("example.com")
    table.address_for("other.example")
    assert table.address_for("example.com") == first
    assert len(table) == 2


@pytest.mark.parametrize("spelling", ["Example.COM", "example.com.", "EXAMPLE.COM."])
def test_table_normalizes_names(spelling: str) -> None:
    """Names are case-insensitive and one trailing dot is ignored: all spellings share one address."""
    table = FakeDnsTable()
    assert table.address_for(spelling) == table.address_for("example.com")
    assert table.name_for(table.address_for(spelling)) == "example.com"


@pytest.mark.parametrize("address", ["198.18.0.1", ipaddress.IPv4Address("198.18.0.1")])
def test_name_for_maps_an_address_back(address: str | ipaddress.IPv4Address) -> None:
    """`name_for` returns the normalized name an address was given, from a string or an address object."""
    table = FakeDnsTable()
    table.address_for("Api.Example.com.")
    assert table.name_for(address) == "api.example.com"


@pytest.mark.parametrize("address", ["198.18.0.2", "127.0.0.1", "not an address", "::1", ""])
def test_name_for_unknown_is_none(address: str) -> None:
    """Unallocated addresses and strings that are no IPv4 address map to no name."""
    table = FakeDnsTable()
    table.address_for("example.com")
    assert table.name_for(address) is None


@pytest.mark.parametrize("name", ["", ".", "a..b", "a b", "a" * 64])
def test_address_for_refuses_non_host_names(name: str) -> None:
    """The table only ever holds host names: anything else is a ValueError, and nothing is allocated."""
    table = FakeDnsTable()
    with pytest.raises(ValueError, match="not a host name"):
        table.address_for(name)
    assert len(table) == 0


def test_table_skips_dot_zero_and_dot_255() -> None:
    """A /23 yields 508 addresses, none ending in .0 or .255 (the .255 of the first half and the .0 of the
    second are skipped), then it is exhausted."""
    table = FakeDnsTable(ipaddress.IPv4Network("198.18.0.0/23"))
    addresses = [table.address_for(f"h{i}.example") for i in range(508)]
    assert len(set(addresses)) == 508
    assert all(int(a) & 0xFF not in (0, 255) for a in addresses)
    assert addresses[253:255] == [ipaddress.IPv4Address("198.18.0.254"), ipaddress.IPv4Address("198.18.1.1")]
    with pytest.raises(BoundaryError):
        table.address_for("one-more.example")


def test_table_exhaustion_raises_boundary_error() -> None:
    """With every address taken a new name raises BoundaryError naming the network; known names still work."""
    table = FakeDnsTable(ipaddress.IPv4Network("198.18.0.0/30"))
    first = table.address_for("a.example")
    table.address_for("b.example")
    with pytest.raises(BoundaryError, match=r"198\.18\.0\.0/30"):
        table.address_for("c.example")
    assert table.address_for("a.example") == first


def test_default_table_uses_the_synthetic_network() -> None:
    """The run's table hands out addresses from 198.18.0.0/15."""
    table = FakeDnsTable()
    assert table.network == SYNTHETIC_NETWORK
    assert is_synthetic(table.address_for("example.com"))


# --- answer: A ----------------------------------------------------------------------------------------------


def test_a_answer_byte_for_byte() -> None:
    """An A query gets exactly: header (ID, QR|AA|RD|RA, 1 question, 1 answer), the question, and one A
    record named by a pointer to the question, class IN, TTL 60, the synthetic address."""
    query = build_query("example.com", qid=0xBEEF)
    expected = (
        b"\xbe\xef\x85\x80\x00\x01\x00\x01\x00\x00\x00\x00"
        + b"\x07example\x03com\x00\x00\x01\x00\x01"
        + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x12\x00\x01"
    )
    assert answer(query, FakeDnsTable()) == expected


def test_a_answer_uses_the_table() -> None:
    """The A record holds the table's address for the name, so the proxy can map it back."""
    table = FakeDnsTable()
    reply = ask(build_query("api.example.com"), table)
    assert reply.rcode == NOERROR
    [record] = reply.answers
    assert (record.name, record.rtype, record.rclass, record.ttl) == ("api.example.com", A, IN, 60)
    address = ipaddress.IPv4Address(record.rdata)
    assert is_synthetic(address)
    assert table.name_for(address) == "api.example.com"


def test_a_answers_are_stable_across_queries() -> None:
    """Two queries for the same name, in any case, get the same address."""
    table = FakeDnsTable()
    first = ask(build_query("example.com"), table).answers[0].rdata
    second = ask(build_query("EXAMPLE.com.", qid=7), table).answers[0].rdata
    assert first == second


def test_question_case_is_echoed() -> None:
    """The question is echoed with its case preserved (resolvers that randomize case compare it)."""
    reply = ask(build_query("ExAmPlE.CoM"))
    assert reply.questions == [("ExAmPlE.CoM", A, IN)]


@pytest.mark.parametrize(("flags", "rd"), [(RD, True), (0, False)])
def test_rd_is_copied(flags: int, rd: bool) -> None:
    """RD is copied from the query; QR, AA and RA are always set."""
    reply = ask(build_query("example.com", flags=flags))
    assert bool(reply.flags & RD) is rd
    assert reply.flags & 0x8000 and reply.flags & 0x0400 and reply.flags & 0x0080


def test_id_is_copied() -> None:
    """The reply carries the query's ID."""
    assert ask(build_query("example.com", qid=0xA5A5)).qid == 0xA5A5


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST.", "foo.localhost", "a.b.localhost"])
def test_localhost_is_loopback(name: str) -> None:
    """`localhost` and its subdomains answer 127.0.0.1 and take no synthetic address."""
    table = FakeDnsTable()
    reply = ask(build_query(name), table)
    assert [r.rdata for r in reply.answers] == [b"\x7f\x00\x00\x01"]
    assert len(table) == 0


def test_name_ending_in_localhost_label_only() -> None:
    """`notlocalhost` is an ordinary name: it gets a synthetic address."""
    reply = ask(build_query("notlocalhost"))
    assert is_synthetic(ipaddress.IPv4Address(reply.answers[0].rdata))


def test_edns_opt_record_is_ignored() -> None:
    """An EDNS OPT additional record does not disturb the answer and is not echoed."""
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    reply = ask(build_query("example.com", arcount=1, tail=opt))
    assert reply.rcode == NOERROR
    assert len(reply.answers) == 1
    assert reply.arcount == 0


def test_compression_pointer_in_question_is_followed() -> None:
    """A backward pointer in the question is followed: with ID 0 the header starts with a root label, so
    `www` + pointer-to-offset-0 names `www`; the echoed question is written out uncompressed."""
    reply = ask(build_query(b"\x03www\xc0\x00", qid=0))
    assert reply.rcode == NOERROR
    assert reply.questions == [("www", A, IN)]
    assert reply.answers[0].name == "www"


def test_exhausted_table_answers_servfail() -> None:
    """When the table is full a new name gets SERVFAIL (no address); known names are still answered."""
    table = FakeDnsTable(ipaddress.IPv4Network("198.18.0.0/30"))
    ask(build_query("a.example"), table)
    ask(build_query("b.example"), table)
    full = ask(build_query("c.example"), table)
    assert (full.rcode, full.answers, full.questions) == (SERVFAIL, [], [("c.example", A, IN)])
    assert ask(build_query("a.example"), table).answers[0].rdata == bytes([198, 18, 0, 1])


# --- answer: other types and classes ------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", [AAAA, MX, TXT, SVCB, HTTPS, ANY, NS, SOA, CNAME, PTR, 999])
def test_other_types_get_nodata(qtype: int) -> None:
    """Every type but A gets NOERROR with no records (NODATA), the question echoed, and no allocation."""
    table = FakeDnsTable()
    reply = ask(build_query("example.com", qtype), table)
    assert (reply.rcode, reply.answers, reply.questions) == (NOERROR, [], [("example.com", qtype, IN)])
    assert len(table) == 0


@pytest.mark.parametrize("qclass", [CH, 255])
def test_other_classes_get_nodata(qclass: int) -> None:
    """An A question outside class IN gets NODATA and no allocation."""
    table = FakeDnsTable()
    reply = ask(build_query("example.com", A, qclass), table)
    assert (reply.rcode, reply.answers) == (NOERROR, [])
    assert len(table) == 0


def test_ptr_for_an_allocated_address_names_it() -> None:
    """A PTR question for an allocated synthetic address answers the name it was given."""
    table = FakeDnsTable()
    table.address_for("api.example.com")
    reply = ask(build_query("1.0.18.198.in-addr.arpa", PTR), table)
    [record] = reply.answers
    assert (record.rtype, record.ttl) == (PTR, 60)
    assert read_name(record.rdata, 0) == ("api.example.com", len(record.rdata))


@pytest.mark.parametrize(
    "name", ["2.0.18.198.in-addr.arpa", "1.0.0.127.in-addr.arpa", "999.0.18.198.in-addr.arpa", "in-addr.arpa"]
)
def test_ptr_for_anything_else_is_nodata(name: str) -> None:
    """PTR questions that name no allocated address get NODATA."""
    table = FakeDnsTable()
    table.address_for("api.example.com")
    reply = ask(build_query(name, PTR), table)
    assert (reply.rcode, reply.answers) == (NOERROR, [])


# --- answer: errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"\x00", id="root"),
        pytest.param(b"\x0bexample com\x00", id="space"),
        pytest.param(b"\x07ex*mple\x03com\x00", id="star"),
        pytest.param(b"\x06b\xfccher\x07example\x00", id="latin-1"),
        pytest.param(b"\x07b\xc3\xbccher\x07example\x00", id="utf-8"),
        pytest.param(b"\x03a.b\x03com\x00", id="dot-inside-label"),
        pytest.param(b"\x04a\x00bc\x03com\x00", id="nul-inside-label"),
    ],
)
def test_implausible_names_get_nxdomain(wire: bytes) -> None:
    """A name that cannot be a host name gets NXDOMAIN, the question echoed, and no allocation."""
    table = FakeDnsTable()
    reply = ask(build_query(wire), table)
    assert (reply.rcode, reply.answers, len(reply.questions)) == (NXDOMAIN, [], 1)
    assert len(table) == 0


@pytest.mark.parametrize(("qdcount"), [0, 2])
def test_qdcount_other_than_one_is_formerr(qdcount: int) -> None:
    """Zero or several questions get FORMERR, with the ID and no sections."""
    reply = ask(build_query("example.com", qdcount=qdcount, qid=99))
    assert (reply.qid, reply.rcode, reply.questions, reply.answers) == (99, FORMERR, [], [])


HEADER = struct.pack("!6H", 0x1234, RD, 1, 0, 0, 0)
LONG_NAME = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(HEADER, id="no-question"),
        pytest.param(HEADER + b"\x07example", id="name-truncated"),
        pytest.param(HEADER + b"\x07example\x03com", id="name-unterminated"),
        pytest.param(HEADER + b"\x07example\x03com\x00\x00\x01", id="class-missing"),
        pytest.param(HEADER + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01", id="label-type-0x40"),
        pytest.param(HEADER + b"\x81" + b"a" * 129 + b"\x00\x00\x01\x00\x01", id="label-type-0x80"),
        pytest.param(HEADER + b"\xc0", id="pointer-truncated"),
        pytest.param(HEADER + b"\xc0\x0c\x00\x01\x00\x01", id="pointer-to-itself"),
        pytest.param(HEADER + b"\x01a\xc0\x0c\x00\x01\x00\x01", id="pointer-loop"),
        pytest.param(HEADER + b"\xc0\x12\x00\x01\x00\x01\x00\x00", id="pointer-forward"),
        pytest.param(HEADER + b"\xff\xff\x00\x01\x00\x01", id="pointer-out-of-range"),
        pytest.param(HEADER + LONG_NAME + b"\x00\x01\x00\x01", id="name-over-255-octets"),
    ],
)
def test_malformed_question_is_formerr(query: bytes) -> None:
    """A question that cannot be parsed gets FORMERR with the ID and no sections."""
    reply = ask(query)
    assert (reply.qid, reply.rcode, reply.questions, reply.answers) == (0x1234, FORMERR, [], [])


def test_pointer_loop_through_the_header_terminates() -> None:
    """A pointer into the header pointing back at the question (ANCOUNT = 0xC00C) is refused, not looped."""
    query = struct.pack("!6H", 1, RD, 1, 0xC00C, 0, 0) + b"\xc0\x06\x00\x01\x00\x01"
    assert ask(query).rcode == FORMERR


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_other_opcodes_are_notimp(opcode: int) -> None:
    """IQUERY, STATUS, NOTIFY, UPDATE and unknown opcodes get NOTIMP, the opcode echoed."""
    reply = ask(build_query("example.com", flags=opcode << 11 | RD))
    assert (reply.rcode, reply.opcode, reply.answers) == (NOTIMP, opcode, [])


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00", id="11-bytes"),
        pytest.param(build_query("example.com", flags=0x8000 | RD), id="a-reply"),
    ],
)
def test_dropped(query: bytes) -> None:
    """No reply at all to a message too short for a header, or to a message that is itself a reply."""
    assert answer(query, FakeDnsTable()) is None


# --- properties ---------------------------------------------------------------------------------------------


def check_reply(query: bytes, reply: bytes | None) -> None:
    if reply is None:
        return
    assert len(reply) <= 512  # fits a plain UDP reply: no truncation logic needed
    assert reply[:2] == query[:2]
    assert reply[2] & 0x80
    parse_reply(reply)


@given(st.binary(max_size=600))
def test_answer_never_raises_on_arbitrary_bytes(query: bytes) -> None:
    """Any bytes at all get None or a well-formed reply with the query's ID, at most 512 octets."""
    check_reply(query, answer(query, FakeDnsTable()))


@given(st.binary(max_size=300))
def test_answer_never_raises_on_arbitrary_questions(question: bytes) -> None:
    """Behind a valid one-question header, any bytes get a well-formed reply (exercises the name parser)."""
    query = HEADER + question
    check_reply(query, answer(query, FakeDnsTable()))


LDH_ = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
LABEL = st.text(alphabet=LDH_, min_size=1, max_size=63)


@given(st.lists(LABEL, min_size=1, max_size=3))
def test_every_plausible_name_gets_a_stable_synthetic_address(labels: list[str]) -> None:
    """Any plausible name (but localhost) gets a synthetic address that maps back to the lower-case name."""
    name = ".".join(labels)
    if name.lower() == "localhost" or name.lower().endswith(".localhost"):
        return
    table = FakeDnsTable()
    [record] = ask(build_query(name), table).answers
    assert table.name_for(ipaddress.IPv4Address(record.rdata)) == name.lower()
    assert ask(build_query(name.upper()), table).answers[0].rdata == record.rdata
