"""A short-lived host nft table that rejects and counts chosen traffic for the length of one test.

The session's host guard (tests/support/hostguard.py) covers the never-routed ranges all session long. Some
escape probes aim at addresses that are real elsewhere and must not be blocked for a whole session: the cloud
metadata address (169.254.169.254), or oversized DNS queries that would carry data out through the host's
resolver. A :class:`Tripwire` rejects and counts exactly such packets in the host's output and forward hooks
while a probe runs, so a leak is both stopped and seen. Its table is named after the pytest process and a
sequence number, so concurrent sessions and tests never touch each other's.

Inactive (``hits()`` is always 0) unless the tests run as root, like the host guard.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from tests.support.hostguard import HostGuardError, nft_binary, parse_counter

__all__ = ["METADATA", "OVERSIZED_DNS", "Tripwire", "ruleset"]

TABLE_PREFIX = "boundary_test_tripwire"
COUNTER = "hits"

#: Cloud metadata services (AWS/GCP/Azure IMDS, Alibaba, AWS's IPv6 IMDS).
METADATA = ("ip daddr { 169.254.169.254, 100.100.100.200 }", "ip6 daddr fd00:ec2::254")
#: DNS queries far larger than any lookup the host itself makes: the shape of exfiltration by long names.
OVERSIZED_DNS = ("udp dport 53 udp length > 200", "tcp dport 53 meta length > 260")

_sequence = itertools.count()


def ruleset(table: str, matches: Sequence[str], counter: str = COUNTER) -> str:
    """nft script creating ``table`` (idempotently) with one ``MATCH counter reject`` rule per match."""
    if not matches:
        raise ValueError("a tripwire needs at least one match")
    rules = "".join(f"\t\t{match} counter name {counter} reject\n" for match in matches)
    chains = "".join(
        f"\tchain {hook} {{\n\t\ttype filter hook {hook} priority 0; policy accept;\n{rules}\t}}\n"
        for hook in ("output", "forward")
    )
    head = f"table inet {table}\ndelete table inet {table}\n"
    return f"{head}table inet {table} {{\n\tcounter {counter} {{\n\t}}\n{chains}}}\n"


class Tripwire:
    """``with Tripwire(METADATA) as wire: ...; assert wire.hits() == 0``."""

    def __init__(self, matches: Sequence[str], *, active: bool | None = None) -> None:
        self.matches = tuple(matches)
        self.table = f"{TABLE_PREFIX}_{os.getpid()}_{next(_sequence)}"
        self.active = os.geteuid() == 0 if active is None else active

    def _nft(self, *args: str, script: str | None = None) -> str:
        nft = nft_binary()
        if nft is None:
            raise HostGuardError("nft is not installed (scripts/setup installs nftables)")
        proc = subprocess.run([nft, *args], input=script, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise HostGuardError(f"nft {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def __enter__(self) -> Self:
        if self.active:
            self._nft("-f", "-", script=ruleset(self.table, self.matches))
        return self

    def hits(self) -> int:
        """Packets the tripwire rejected so far (0 when inactive)."""
        if not self.active:
            return 0
        listing = self._nft("-j", "list", "counter", "inet", self.table, COUNTER)
        return parse_counter(listing, self.table, COUNTER)[0]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.active:
            self._nft("-f", "-", script=f"table inet {self.table}\ndelete table inet {self.table}\n")
