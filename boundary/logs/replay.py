"""Replay: the requests of past runs decided again under a candidate policy, and what would change (pure).

Each audit line the policy decided (an HTTP request, or a raw stream) is rebuilt as the `Request` the matcher
saw and decided by the candidate. What changes is reported grouped by destination, with counts:
- **would break**: allowed then, denied now (a workload that worked would stop working);
- **would open**: denied then, allowed now.
Lines the policy never decided (identity and protocol refusals, a failed TLS handshake, a CONNECT, which
`boundary proxy` logs besides the requests inside its tunnel) are counted as not replayed: no policy changes
them. `new` is what the candidate does not allow, whatever happened then: the egress a baseline would call
drift (`--fail-on-new`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from boundary.logs.read import Record
from boundary.policy.matcher import Matcher
from boundary.policy.tool import printable
from boundary.reasons import REASONS, Reason


@dataclass(frozen=True, slots=True, order=True)
class Seen:
    """One kind of request seen: where, how, and the reasons then and now."""

    host: str
    port: int
    method: str | None  # None: a raw stream
    path: str | None
    then: str
    now: str


@dataclass(frozen=True, slots=True)
class Report:
    would_break: tuple[tuple[Seen, int], ...]  # each kind of request with its count, by destination
    would_open: tuple[tuple[Seen, int], ...]
    new: tuple[tuple[Seen, int], ...]  # not allowed by the candidate, then allowed or not
    replayed: int
    not_replayed: int

    @property
    def breaks(self) -> bool:
        return bool(self.would_break)


def _decided_by_policy(record: Record) -> bool:
    if record.host is None or record.port is None or record.method == "CONNECT":
        return False
    try:
        return REASONS[Reason(record.reason)].emitter == "policy"
    except ValueError:  # a reason this version does not know (a newer boundary's log)
        return False


def replay(matcher: Matcher, records: Iterable[Record]) -> Report:
    """Decide every policy-decided record again with `matcher`."""
    broken: Counter[Seen] = Counter()
    opened: Counter[Seen] = Counter()
    new: Counter[Seen] = Counter()
    replayed = not_replayed = 0
    for record in records:
        if not _decided_by_policy(record):
            not_replayed += 1
            continue
        replayed += 1
        decision = matcher.decide(record.request())
        assert record.host is not None and record.port is not None
        seen = Seen(record.host, record.port, record.method, record.path, record.reason, decision.reason.value)
        if not decision.allowed:
            new[seen] += 1
        if record.decision == "allow" and not decision.allowed:
            broken[seen] += 1
        elif record.denied and decision.allowed:
            opened[seen] += 1
    return Report(_sorted(broken), _sorted(opened), _sorted(new), replayed, not_replayed)


def _sorted(counts: Counter[Seen]) -> tuple[tuple[Seen, int], ...]:
    return tuple(sorted(counts.items()))


def render(report: Report, candidate: str, *, fail_on_new: bool = False) -> str:
    """The report as text: the two changes (and, with `fail_on_new`, what the candidate does not allow), each
    grouped by host:port, then one summary line."""
    sections: list[tuple[str, Sequence[tuple[Seen, int]]]] = [
        ("would break (allowed then, denied now)", report.would_break),
        ("would open (denied then, allowed now)", report.would_open),
    ]
    if fail_on_new:
        sections.append((f"not allowed by {candidate}", report.new))
    out: list[str] = []
    for title, rows in sections:
        if not rows:
            continue
        out.append(f"{title}:")
        destination = None
        for seen, count in rows:
            if (seen.host, seen.port) != destination:
                destination = (seen.host, seen.port)
                out.append(f"  {printable(seen.host)}:{seen.port}")
            what = printable(f"{seen.method} {seen.path}") if seen.method is not None else "stream"
            out.append(f"    {count:>5} x {what}  ({seen.then} -> {seen.now})")
    summary = (
        f"{report.replayed} requests replayed against {candidate}: {sum(n for _, n in report.would_break)} would "
        f"break, {sum(n for _, n in report.would_open)} would open"
    )
    if fail_on_new:
        summary += f", {sum(n for _, n in report.new)} not allowed"
    if report.not_replayed:
        summary += f"; {report.not_replayed} lines not decided by the policy (identity, protocol) not replayed"
    return "\n".join([*out, summary]) + "\n"
