"""The one gate every upstream dial of the proxy goes through.

mitmproxy dials with `asyncio.open_connection`, which calls `loop.create_connection` on the running loop.
`GatedEventLoop` overrides it: the destination must be a synthetic address the fake DNS handed out, its name
must be allowed by the policy on that port, and it is dialled at the operator's `--resolve` address or at what
the host resolver says — never at a synthetic 198.18.x address (asyncio skips getaddrinfo for IP literals, so an
ungated proxy would dial one off-host).

What the host resolver says passes the SSRF guard (`boundary.proxy.ssrf`): the name is resolved once, every
answer is classified, and the first answer the guard passes is the address dialled, as an IP literal, so
nothing resolves it again. `--resolve` answers are the operator's own and are not classified.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from dataclasses import dataclass
from typing import Any, Final, cast

from boundary.dns.fakedns import FakeDnsTable, is_synthetic
from boundary.policy.matcher import Matcher
from boundary.proxy.ssrf import AddressGuard, Refusal, host_networks
from boundary.reasons import Reason

# Names the SSRF guard's refusals in the dial error, which mitmproxy shows in its 502 and the audit line's `error`.
BLOCKED_ADDRESS: Final = Reason.BLOCKED_ADDRESS


class DialRefused(ConnectionRefusedError):
    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


@dataclass(frozen=True, slots=True)
class UpstreamGate:
    table: FakeDnsTable
    matcher: Matcher
    overrides: dict[tuple[str, int], tuple[str, int]]
    # None: the policy's `network.allow_private` and the host's own addresses as they are now, at proxy start.
    guard: AddressGuard | None = None

    def __post_init__(self) -> None:
        if self.guard is None:
            guard = AddressGuard(self.matcher.policy.allow_private, host_networks())
            object.__setattr__(self, "guard", guard)

    async def target(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> tuple[str, int]:
        name = self.table.name_for(host)
        if name is None:
            raise DialRefused(f"boundary: refusing to dial {host}:{port}: not a name resolved in the jail")
        if not self.matcher.allows_destination(name, port):
            raise DialRefused(f"boundary: refusing to dial {name}:{port}: not allowed by the policy")
        if (name, port) in self.overrides:
            address, target_port = self.overrides[(name, port)]
            if is_synthetic(address):  # the operator's answer is no exception to "never a synthetic address"
                raise DialRefused(f"boundary: refusing to dial {name}:{port}: --resolve names synthetic {address}")
            return address, target_port
        guard = cast("AddressGuard", self.guard)  # set by __post_init__
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        refusals: list[Refusal] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = str(sockaddr[0])
            if is_synthetic(address):
                continue
            refusal = guard.check(address)
            if refusal is None:
                return address, port
            refusals.append(refusal)
        if refusals:
            raise DialRefused(f"boundary: refusing to dial {name}:{port}: {blocked_message(refusals)}")
        raise DialRefused(f"boundary: refusing to dial {name}:{port}: it resolves only to synthetic addresses")


def blocked_message(refusals: list[Refusal]) -> str:
    """`blocked-address: <why, for each answer>` and how to open the ranges, if they can be opened."""
    ranges = list(dict.fromkeys(r.network for r in refusals if r.network))
    hint = f"; to allow it, add network: {{allow_private: [{', '.join(ranges)}]}} to the policy" if ranges else ""
    return f"{BLOCKED_ADDRESS}: " + ", ".join(map(str, refusals)) + hint


def is_blocked_address(error: str) -> bool:
    """Whether a dial error (as mitmproxy reports it) is the SSRF guard's refusal."""
    return f": {BLOCKED_ADDRESS}: " in error and "boundary: refusing to dial " in error


class GatedEventLoop(asyncio.SelectorEventLoop):
    """The proxy's event loop: every outgoing TCP connection is checked and re-addressed by the gate."""

    gate: UpstreamGate | None = None

    async def create_connection(
        self, protocol_factory: Any, host: str | None = None, port: int | None = None, **kwargs: Any
    ) -> Any:
        if self.gate is None or host is None or port is None:
            raise DialRefused(f"boundary: refusing to dial {host}:{port}: no upstream gate")
        address, target_port = await self.gate.target(self, host, port)
        return await super().create_connection(protocol_factory, address, target_port, **kwargs)
