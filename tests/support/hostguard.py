"""The host-side nft guard: proof that no test traffic to a "never routed" address left the host.

boundary hands the jail synthetic addresses from 198.18.0.0/15, and tests use 198.51.100.0/24 and
203.0.113.0/24 (plus 2001:db8::/32) as "somewhere outside". None of these may ever leave *the host* during a
test: if one does, a jail or the proxy leaked (e.g. the proxy dialled a synthetic address it should have mapped
to a name). While the session runs, table ``inet boundary_test_guard_<pid>`` rejects such packets in the host's
output and forward hooks and counts them in the named counter ``escapes``; at the end the session fails if the
counter moved. 192.0.2.0/24 is deliberately absent: hosts of this kind have been seen *using* it.

The table name carries the pytest process's pid because several sessions may share one host (developers run
the suite side by side): one session must never delete another's guard. A session sweeps only tables whose
pid is dead (left by a crashed run), plus the unsuffixed name older runs used.

The jails' own rulesets live in their own network namespaces, so this table sees only host-netns traffic.

Pure parts (ruleset text, counter JSON parsing) are separate from the nft calls so they can be unit-tested.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TABLE_PREFIX = "boundary_test_guard"
TABLE = f"{TABLE_PREFIX}_{os.getpid()}"  # this session's table
COUNTER = "escapes"
GUARDED_IPV4 = ("198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24")
GUARDED_IPV6 = ("2001:db8::/32",)

# Priority 0: after the output hook's DNAT (-100), so the guard judges the address a packet really goes to,
# not one a host-side redirect already rewrote to somewhere local.
_CHAIN_PRIORITY = 0


class HostGuardError(RuntimeError):
    """nft refused a guard operation, or answered something unparseable."""


def ruleset(
    table: str = TABLE,
    counter: str = COUNTER,
    ipv4: Sequence[str] = GUARDED_IPV4,
    ipv6: Sequence[str] = GUARDED_IPV6,
) -> str:
    """nft script that (re)creates the guard table atomically, replacing any stale copy from a crashed run.

    ``table inet X`` followed by ``delete table inet X`` is the idempotent-create idiom: the first line makes
    sure the delete has something to delete, and ``nft -f`` applies the whole script as one transaction.
    """
    matches = []
    if ipv4:
        matches.append(f"ip daddr {{ {', '.join(ipv4)} }}")
    if ipv6:
        matches.append(f"ip6 daddr {{ {', '.join(ipv6)} }}")
    rules = "".join(f"\t\t{match} counter name {counter} reject\n" for match in matches)
    chains = "".join(
        f"\tchain {hook} {{\n\t\ttype filter hook {hook} priority {_CHAIN_PRIORITY}; policy accept;\n{rules}\t}}\n"
        for hook in ("output", "forward")
    )
    return (
        f"table inet {table}\n"
        f"delete table inet {table}\n"
        f"table inet {table} {{\n"
        f"\tcounter {counter} {{\n\t}}\n"
        f"{chains}"
        "}\n"
    )


def parse_counter(nft_json: str, table: str = TABLE, counter: str = COUNTER) -> tuple[int, int]:
    """``(packets, bytes)`` of the named counter in ``nft -j list counter inet TABLE COUNTER`` output."""
    try:
        document = json.loads(nft_json)
        items = document["nftables"]
    except (ValueError, TypeError, KeyError) as exc:
        raise HostGuardError(f"unexpected nft JSON ({exc}): {nft_json[:200]!r}") from exc
    for item in items:
        found = item.get("counter") if isinstance(item, dict) else None
        if isinstance(found, dict) and found.get("table") == table and found.get("name") == counter:
            packets, octets = found.get("packets"), found.get("bytes")
            if isinstance(packets, int) and isinstance(octets, int):
                return packets, octets
            raise HostGuardError(f"counter {counter!r} has no packet/byte counts: {found!r}")
    raise HostGuardError(f"no counter {counter!r} in table {table!r} in nft output: {nft_json[:200]!r}")


def stale_tables(nft_json: str, alive: Callable[[int], bool]) -> list[str]:
    """Guard tables in ``nft -j list tables`` output whose owning session is gone (family inet only)."""
    try:
        items = json.loads(nft_json)["nftables"]
    except (ValueError, TypeError, KeyError) as exc:
        raise HostGuardError(f"unexpected nft JSON ({exc}): {nft_json[:200]!r}") from exc
    stale = []
    for item in items:
        table = item.get("table") if isinstance(item, dict) else None
        if not isinstance(table, dict) or table.get("family") != "inet":
            continue
        name = str(table.get("name", ""))
        if name == TABLE_PREFIX:
            stale.append(name)
            continue
        suffix = name.removeprefix(TABLE_PREFIX + "_")
        if suffix != name and suffix.isdigit() and not alive(int(suffix)):
            stale.append(name)
    return stale


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def nft_binary() -> str | None:
    """Absolute path of nft, looking in sbin directories too (they are often not on a user's PATH)."""
    return shutil.which("nft", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


@dataclass
class HostGuard:
    """The guard table in the host netns. Inactive (``packets()`` is always 0) when the tests are not root."""

    nft: str | None
    table: str = TABLE
    counter: str = COUNTER
    active: bool = False

    def _nft(self, *args: str, script: str | None = None) -> str:
        if self.nft is None:
            raise HostGuardError("nft is not installed (scripts/setup installs nftables)")
        proc = subprocess.run([self.nft, *args], input=script, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise HostGuardError(f"nft {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def install(self) -> None:
        """Create (or recreate) the guard table with a zeroed counter."""
        self._nft("-f", "-", script=ruleset(self.table, self.counter))
        self.active = True

    def sweep(self) -> list[str]:
        """Delete guard tables left by sessions that died; returns their names."""
        stale = [name for name in stale_tables(self._nft("-j", "list", "tables"), pid_alive) if name != self.table]
        for name in stale:
            self._nft("-f", "-", script=f"table inet {name}\ndelete table inet {name}\n")
        return stale

    def counts(self) -> tuple[int, int]:
        """``(packets, bytes)`` that hit the guard so far."""
        if not self.active:
            return 0, 0
        return parse_counter(
            self._nft("-j", "list", "counter", "inet", self.table, self.counter), self.table, self.counter
        )

    def packets(self) -> int:
        """Packets to guarded addresses that tried to leave the host so far (0 when inactive)."""
        return self.counts()[0]

    def remove(self) -> None:
        """Delete the guard table (and a stale one from a crashed run: works whether it exists or not)."""
        if self.nft is None:
            return
        self._nft("-f", "-", script=f"table inet {self.table}\ndelete table inet {self.table}\n")
        self.active = False
