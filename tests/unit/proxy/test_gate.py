"""Specification of the upstream gate: the proxy dials only allowed names, never a synthetic address, and a
name it resolves itself only at an address the SSRF guard passes.

Everything runs on a real `GatedEventLoop`. No test name is ever given to the host's resolver: the dials that
succeed go to a local listener through a `--resolve` override or to `localhost` (the host's /etc/hosts), and
the "what if the resolver answered with ..." cases use a loop whose `getaddrinfo` answers from a fixed table
(the one stand-in here: the resolver is the host's, not ours). Those answers are never dialled.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from boundary.dns.fakedns import FakeDnsTable
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.gate import (
    BLOCKED_ADDRESS,
    DialRefused,
    GatedEventLoop,
    UpstreamGate,
    blocked_message,
    is_blocked_address,
)
from boundary.proxy.ssrf import AddressGuard, Refusal, host_networks

POLICY = """\
version: 1
allow:
  - domain: api.example.com
  - domain: localhost
  - domain: db.example.com
    ports: [5432]
"""
TIMEOUT = 5.0  # a guard against hangs, not a measurement

Overrides = dict[tuple[str, int], tuple[str, int]]


class StaticResolverLoop(GatedEventLoop):
    """A gated loop whose resolver answers from a table: what a host resolver *could* say, without asking it."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, list[str]] = {}

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        assert isinstance(host, str)
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in self.answers[host]
        ]


LOOPBACK = AddressGuard((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))


def make_gate(
    overrides: Overrides | None = None, guard: AddressGuard | None = None, policy: str = POLICY
) -> tuple[UpstreamGate, FakeDnsTable]:
    """A gate over POLICY; its guard passes only public addresses unless one is given."""
    table = FakeDnsTable()
    return UpstreamGate(table, Matcher(parse_policy(policy)), overrides or {}, guard or AddressGuard()), table


def run[T](
    main: Callable[[asyncio.AbstractEventLoop], Awaitable[T]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = GatedEventLoop,
) -> T:
    """Run `main(loop)` on a fresh loop of the given class."""

    async def wrapped() -> T:
        async with asyncio.timeout(TIMEOUT):
            return await main(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(wrapped())


# --- UpstreamGate.target ------------------------------------------------------------------------------------


def refusal(gate: UpstreamGate, destination: str, port: int) -> str:
    """The message of the DialRefused that `gate.target` raises for this dial."""

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        return await gate.target(loop, destination, port)

    with pytest.raises(DialRefused) as info:
        run(main)
    assert info.value.errno == errno.EACCES
    return str(info.value.strerror)


@pytest.mark.parametrize(
    "destination",
    [
        "203.0.113.7",  # an IP literal the workload connected to directly
        "127.0.0.1",
        "198.18.0.200",  # synthetic, but never handed out
        "api.example.com",  # a name is not an address the jail handed out
    ],
)
def test_target_refuses_an_address_the_jail_did_not_resolve(destination: str) -> None:
    """Only a synthetic address the jail's DNS handed out names a host; anything else is refused."""
    gate, _ = make_gate({("api.example.com", 443): ("127.0.0.1", 1)})
    assert refusal(gate, destination, 443) == (
        f"boundary: refusing to dial {destination}:443: not a name resolved in the jail"
    )


@pytest.mark.parametrize(
    ("name", "port"),
    [
        ("other.example.com", 443),  # no rule names it
        ("api.example.com", 8443),  # default ports are 80 and 443
        ("db.example.com", 443),  # its rule allows 5432 only
    ],
)
def test_target_refuses_a_name_or_port_the_policy_does_not_allow(name: str, port: int) -> None:
    """A name the jail resolved is dialled only on a port some rule for it allows; overrides do not matter."""
    gate, table = make_gate({(name, port): ("127.0.0.1", 1)})
    assert refusal(gate, str(table.address_for(name)), port) == (
        f"boundary: refusing to dial {name}:{port}: not allowed by the policy"
    )


@pytest.mark.parametrize(
    ("overrides", "name", "port", "expected"),
    [
        ({("api.example.com", 443): ("127.0.0.1", 8443)}, "api.example.com", 443, ("127.0.0.1", 8443)),
        ({("api.example.com", 443): ("::1", 443)}, "api.example.com", 443, ("::1", 443)),
        ({("db.example.com", 5432): ("127.0.0.2", 15432)}, "db.example.com", 5432, ("127.0.0.2", 15432)),
    ],
)
def test_target_uses_the_resolve_override(
    overrides: Overrides, name: str, port: int, expected: tuple[str, int]
) -> None:
    """An allowed name with a `--resolve` entry for that port is dialled at the override's address and port:
    the operator's answer is trusted, loopback or not (the guard here passes only public addresses)."""
    gate, table = make_gate(overrides)
    address = str(table.address_for(name))

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        return await gate.target(loop, address, port)

    assert run(main) == expected


def test_target_refuses_an_override_to_a_synthetic_address() -> None:
    """A `--resolve` entry naming a synthetic address is refused too: the gate never dials 198.18.0.0/15."""
    gate, table = make_gate({("api.example.com", 443): ("198.18.0.1", 443)})
    assert refusal(gate, str(table.address_for("api.example.com")), 443) == (
        "boundary: refusing to dial api.example.com:443: --resolve names synthetic 198.18.0.1"
    )


def test_target_asks_the_host_resolver_without_an_override() -> None:
    """Without an override the name is resolved by the host (here `localhost`, which never leaves it), and an
    answer in a range the policy opened is dialled."""
    gate, table = make_gate(guard=LOOPBACK)
    address = str(table.address_for("localhost"))

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        return await gate.target(loop, address, 443)

    host, port = run(main)
    assert (host, port) in {("127.0.0.1", 443), ("::1", 443)}


def test_target_refuses_what_the_host_resolver_says_is_loopback() -> None:
    """The SSRF guard: `localhost` is allowed by the policy, but the host's /etc/hosts leads it to loopback."""
    gate, table = make_gate()
    message = refusal(gate, str(table.address_for("localhost")), 443)
    assert message.startswith(f"boundary: refusing to dial localhost:443: {BLOCKED_ADDRESS}: ")
    assert "127.0.0.1 is loopback (127.0.0.0/8)" in message or "::1 is loopback (::1/128)" in message
    assert is_blocked_address(message)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["198.18.0.9", "93.184.216.34"], ("93.184.216.34", 443)),
        (["::ffff:198.18.0.9", "2606:4700::1"], ("2606:4700::1", 443)),
        (["8.8.4.4", "198.18.0.9"], ("8.8.4.4", 443)),
    ],
)
def test_target_skips_synthetic_answers(answers: list[str], expected: tuple[str, int]) -> None:
    """The first resolver answer that is not synthetic (IPv4-mapped included) is the one dialled."""
    gate, table = make_gate()
    assert resolve_with(gate, table, answers) == expected


@pytest.mark.parametrize("answers", [["198.18.0.9"], ["198.19.255.254", "::ffff:198.18.0.1"], []])
def test_target_refuses_a_name_that_resolves_only_to_synthetic_addresses(answers: list[str]) -> None:
    """If the resolver gives nothing but synthetic addresses (or nothing), the dial is refused."""
    gate, table = make_gate()
    with pytest.raises(DialRefused) as info:
        resolve_with(gate, table, answers)
    assert info.value.strerror == (
        "boundary: refusing to dial api.example.com:443: it resolves only to synthetic addresses"
    )


def resolve_with(gate: UpstreamGate, table: FakeDnsTable, answers: list[str]) -> tuple[str, int]:
    """`gate.target` for api.example.com:443 when the host resolver answers `answers`."""
    address = str(table.address_for("api.example.com"))

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        assert isinstance(loop, StaticResolverLoop)
        loop.answers = {"api.example.com": answers}
        return await gate.target(loop, address, 443)

    return run(main, StaticResolverLoop)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["127.0.0.1", "10.0.0.1", "93.184.216.34"], "93.184.216.34"),  # rebinding-style mixes: the public one
        (["169.254.169.254", "2606:4700::1"], "2606:4700::1"),
        (["::ffff:127.0.0.1", "64:ff9b::808:808"], "64:ff9b::808:808"),
        (["8.8.8.8", "127.0.0.1"], "8.8.8.8"),
    ],
)
def test_target_dials_the_first_answer_the_guard_passes(answers: list[str], expected: str) -> None:
    """Every answer is classified; the first that passes is returned as an IP literal, so the address checked
    is the address dialled and nothing resolves the name a second time."""
    gate, table = make_gate()
    assert resolve_with(gate, table, answers) == (expected, 443)


@pytest.mark.parametrize(
    ("answers", "reasons", "ranges"),
    [
        (["127.0.0.1"], "127.0.0.1 is loopback (127.0.0.0/8)", "127.0.0.0/8"),
        (
            ["169.254.169.254", "198.18.0.9", "fd00:ec2::254"],
            "169.254.169.254 is metadata (169.254.169.254/32), fd00:ec2::254 is metadata (fd00:ec2::254/128)",
            "169.254.169.254/32, fd00:ec2::254/128",
        ),
        (
            ["10.0.0.1", "10.0.0.2"],
            "10.0.0.1 is private (10.0.0.0/8), 10.0.0.2 is private (10.0.0.0/8)",
            "10.0.0.0/8",
        ),
        (
            ["2002:a9fe:a9fe::1"],
            "2002:a9fe:a9fe::1 embeds 169.254.169.254, which is metadata (169.254.169.254/32)",
            "169.254.169.254/32",
        ),
    ],
)
def test_target_refuses_a_name_whose_answers_the_guard_all_refuses(
    answers: list[str], reasons: str, ranges: str
) -> None:
    """If no answer passes, the dial is refused as `blocked-address`, saying why for each answer and which
    `allow_private` ranges would open it."""
    gate, table = make_gate()
    with pytest.raises(DialRefused) as info:
        resolve_with(gate, table, answers)
    assert info.value.errno == errno.EACCES
    assert info.value.strerror == (
        f"boundary: refusing to dial api.example.com:443: blocked-address: {reasons}; "
        f"to allow it, add network: {{allow_private: [{ranges}]}} to the policy"
    )


def test_target_answers_the_guard_refuses_are_refused_also_when_the_host_owns_them() -> None:
    """An answer that is one of the host's own (public) addresses is refused as `host-address`."""
    gate, table = make_gate(guard=AddressGuard(host=(ipaddress.ip_network("93.184.216.34/32"),)))
    with pytest.raises(DialRefused, match=r"93\.184\.216\.34 is host-address \(93\.184\.216\.34/32\)"):
        resolve_with(gate, table, ["93.184.216.34"])


def test_blocked_message_without_an_openable_range() -> None:
    """An answer that is no address at all cannot be opened by a range: no hint then."""
    assert blocked_message([Refusal("x", "not an IP address", "")]) == "blocked-address: 'x' is not an IP address"


@pytest.mark.parametrize(
    ("error", "blocked"),
    [
        ("[Errno 13] boundary: refusing to dial localhost:80: blocked-address: 127.0.0.1 is loopback", True),
        ("[Errno 13] boundary: refusing to dial a.test:443: not allowed by the policy", False),
        ("[Errno 111] Connect call failed ('127.0.0.1', 80)", False),
        ("upstream said: blocked-address: no", False),
    ],
)
def test_is_blocked_address(error: str, blocked: bool) -> None:
    """Only the gate's own refusal, as mitmproxy reports it, counts as the guard's."""
    assert is_blocked_address(error) == blocked


def test_the_default_guard_is_the_policy_s_and_the_host_s() -> None:
    """Built without a guard (as the proxy does), the gate takes `network.allow_private` from the policy and
    the host's own addresses as they are now."""
    policy = "version: 1\nnetwork:\n  allow_private: [127.0.0.0/8, 'fd00::/8']\n"
    gate = UpstreamGate(FakeDnsTable(), Matcher(parse_policy(policy)), {})
    allowed = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert gate.guard == AddressGuard(allowed, host_networks())


# --- GatedEventLoop.create_connection -------------------------------------------------------------------------


async def echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"echo:" + await reader.readline())
    await writer.drain()
    writer.close()


def localhost_policy(port: int, allow_loopback: bool) -> str:
    network = "network:\n  allow_private: [127.0.0.0/8]\n" if allow_loopback else ""
    return f"version: 1\n{network}allow:\n  - domain: localhost\n    ports: [{port}]\n"


@pytest.mark.parametrize("allow_loopback", [False, True])
def test_create_connection_guards_what_the_host_resolver_says(allow_loopback: bool) -> None:
    """A real dial to `localhost` (the host's /etc/hosts says 127.0.0.1): refused before any connection by the
    default guard, and reaching the local server once the policy opens 127.0.0.0/8."""

    async def main(loop: asyncio.AbstractEventLoop) -> tuple[bytes | None, int]:
        accepted = 0

        async def count_and_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            await echo_once(reader, writer)

        server = await asyncio.start_server(count_and_echo, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            table = FakeDnsTable()
            gate = UpstreamGate(table, Matcher(parse_policy(localhost_policy(port, allow_loopback))), {})
            assert isinstance(loop, GatedEventLoop)
            loop.gate = gate
            try:
                reader, writer = await asyncio.open_connection(str(table.address_for("localhost")), port)
            except DialRefused as e:
                assert is_blocked_address(str(e))
                assert "127.0.0.1 is loopback (127.0.0.0/8)" in str(e)
                return None, accepted
            writer.write(b"hello\n")
            reply = await reader.read()
            writer.close()
            return reply, accepted

    assert run(main) == ((b"echo:hello\n", 1) if allow_loopback else (None, 0))


def test_create_connection_dials_through_the_override() -> None:
    """A connection to a synthetic address is re-addressed by the gate and really reaches the local server."""

    async def main(loop: asyncio.AbstractEventLoop) -> bytes:
        server = await asyncio.start_server(echo_once, "127.0.0.1", 0)
        async with server:
            listening_port = server.sockets[0].getsockname()[1]
            gate, table = make_gate({("api.example.com", 443): ("127.0.0.1", listening_port)})
            assert isinstance(loop, GatedEventLoop)
            loop.gate = gate
            reader, writer = await asyncio.open_connection(str(table.address_for("api.example.com")), 443)
            writer.write(b"hello\n")
            reply = await reader.read()
            writer.close()
            return reply

    assert run(main) == b"echo:hello\n"


@pytest.mark.parametrize(
    ("with_gate", "host", "port", "message"),
    [
        (False, "127.0.0.1", None, "refusing to dial 127.0.0.1:None: no upstream gate"),
        (False, "api.example.com", 443, "refusing to dial api.example.com:443: no upstream gate"),
        (True, "127.0.0.1", None, "refusing to dial 127.0.0.1:None: no upstream gate"),
        (True, "127.0.0.1", 443, "refusing to dial 127.0.0.1:443: not a name resolved in the jail"),
        (True, "203.0.113.7", 443, "refusing to dial 203.0.113.7:443: not a name resolved in the jail"),
    ],
)
def test_create_connection_refuses(with_gate: bool, host: str, port: int | None, message: str) -> None:
    """Without a gate, without a host and port, or to anything the gate refuses: DialRefused, before any dial.

    DialRefused is a ConnectionRefusedError, so mitmproxy reports it like any refused upstream connection.
    """

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        assert isinstance(loop, GatedEventLoop)
        if with_gate:
            loop.gate = make_gate({("api.example.com", 443): ("127.0.0.1", 1)})[0]
        await loop.create_connection(asyncio.Protocol, host, port)

    with pytest.raises(ConnectionRefusedError) as info:
        run(main)
    assert isinstance(info.value, DialRefused)
    assert info.value.errno == errno.EACCES
    assert info.value.strerror == f"boundary: {message}"


def test_create_connection_refuses_a_ready_made_socket() -> None:
    """A dial that brings its own socket (`sock=`, no host) is refused even with a gate: it would skip it."""

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        assert isinstance(loop, GatedEventLoop)
        loop.gate = make_gate()[0]
        with socket.socket() as sock:
            await loop.create_connection(asyncio.Protocol, sock=sock)

    with pytest.raises(DialRefused, match="no upstream gate"):
        run(main)
