"""The seam between the run and the proxy: what a run hands `boundary.proxy.master.start_proxy`, and what it
gets back. Typed here, without mitmproxy, because the run imports the proxy by name in a background thread
(`run.serving`: mitmproxy's import runs beside the workload) and must not import mitmproxy to know its types."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from boundary.audit import AuditLog
from boundary.ca import RunCA
from boundary.dns.fakedns import FakeDnsTable
from boundary.policy.matcher import Matcher


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Everything the proxy serves a run with, beside the jail's listening socket and the DNS table."""

    matcher: Matcher
    overrides: dict[tuple[str, int], tuple[str, int]]  # --resolve: (name, port) -> (address, port)
    log: AuditLog
    run_id: str
    ca: RunCA
    upstream_trust: Path  # PEM bundle the upstreams' certificates are checked against
    # How clients arrive: redirected by the jail's nft rules (transparent), or asking for it (`boundary proxy`).
    mode: Literal["transparent", "regular"] = "transparent"
    proxy_token: str | None = None  # `boundary proxy --token-file`: what every client must send


class RunningProxy(Protocol):
    @property
    def stopped(self) -> asyncio.Future[None]:
        """Done when the proxy ends, which before `close` only happens if it failed."""

    def why_stopped(self) -> str:
        """What ended it, for a one-line message (once `stopped` is done)."""

    async def close(self) -> None: ...


class StartProxy(Protocol):
    async def __call__(
        self, *, listen: socket.socket, table: FakeDnsTable, settings: ProxySettings
    ) -> RunningProxy: ...
