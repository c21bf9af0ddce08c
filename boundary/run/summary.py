"""What a run tells its operator at the end: the exit summary on stderr, the GitHub step summary, `--fail-on-deny`.

`Tally` counts the run's decisions as the audit log writes them (`AuditLog`'s observer: the proxy runs in the
run's own process), one audit line at a time: O(1) per line, and bounded in memory — at most `MAX_LISTED`
distinct denied requests are kept (each at most a request head, which the policy's `limits` bound), every
denial past them is only counted. `Summary` is its frozen snapshot; everything from there is pure: `lines`
(stderr), `markdown` (the step summary), `exit_code`.

Hosts, paths and methods come from the workload, which may be hostile: stderr gets them through `printable`
(no control character reaches the terminal), Markdown inside code spans with `|` escaped (no cell, table or
HTML of their own). Queries are dropped: a summary may be published (a CI job's page), an audit log is not.
The hint for each denial is the 403's own (`reasons.REASONS`, `{rule}` from `denial.suggested_rule`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from boundary.policy.tool import printable
from boundary.proxy import denial
from boundary.reasons import Reason

# How each decision an audit line can give is counted, and named in a summary. A denying decision fails
# `--fail-on-deny` and is listed; `would-deny` (audit mode: what enforcing would have denied) is one already.
DECISIONS: Final = MappingProxyType(
    {
        "allow": ("allowed", False),
        "deny": ("denied", True),
        "would-deny": ("would be denied", True),
    }
)
DENYING: Final = frozenset(decision for decision, (_name, denying) in DECISIONS.items() if denying)

MAX_LISTED: Final = 64  # distinct denied requests kept; the rest are counted only
TOP_HOSTS: Final = 3  # hosts the first stderr line names
TOP_HINTS: Final = 2  # hosts stderr gives a rule for (one line each)

# `--fail-on-deny`: the command exited 0 but something was denied. Free among the codes a run gives: 1 and 2
# are any command's common failures (2 also click's usage errors and `boundary policy`'s), 125 is boundary's
# own failure, 126 and 127 the shell's "cannot execute" and "not found", 128+N death by signal N.
EXIT_DENIED: Final = 3


@dataclass(frozen=True, slots=True, order=True)
class Denied:
    """One denied request as a summary lists it: its audit line's fields, the path without its query."""

    host: str | None
    port: int | None
    method: str | None
    path: str | None
    reason: str
    decision: str = "deny"

    @property
    def where(self) -> str:
        """`host:port` (`[v6]:port`), as the stderr line names it."""
        host = "?" if self.host is None else f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def hint(self) -> str:
        """The 403's hint for this request: how to allow it, with a ready rule where the reason has one."""
        try:
            reason = Reason(self.reason)
        except ValueError:  # a reason this version does not know (a newer log): no hint to give
            return f"see the audit log ({self.reason})"
        method = None if self.method == "CONNECT" else self.method  # no method a rule lists, as the 403 says
        return denial.hint(reason, self.host, self.port or 443, method, self.path)


@dataclass(frozen=True, slots=True)
class Summary:
    """A run's decisions: how many of each, the denied requests listed (most frequent first) and how many
    denials were not listed (past `MAX_LISTED` distinct ones)."""

    decisions: tuple[tuple[str, int], ...] = ()  # (decision, count), in `DECISIONS` order, then any other
    denied: tuple[tuple[Denied, int], ...] = ()
    unlisted: int = 0

    def count(self, decision: str) -> int:
        return dict(self.decisions).get(decision, 0)

    @property
    def denials(self) -> int:
        """Every denying decision (`DENYING`), listed or not."""
        return sum(count for decision, count in self.decisions if decision in DENYING)

    def hosts(self) -> list[tuple[str, int, Denied]]:
        """(host:port, denials, its most frequent denied request) of the listed denials, most denied first."""
        totals: Counter[str] = Counter()
        first: dict[str, Denied] = {}
        for denied, count in self.denied:
            totals[denied.where] += count
            first.setdefault(denied.where, denied)  # `denied` is most frequent first
        return [(where, count, first[where]) for where, count in totals.most_common()]


class Tally:
    """Counts a run's audit lines (see the module's doc): `count` each line, `summary` at the end."""

    def __init__(self, listed: int = MAX_LISTED) -> None:
        self._listed = listed
        self._decisions: Counter[str] = Counter()
        self._denied: Counter[Denied] = Counter()
        self._unlisted = 0

    def count(self, line: str) -> None:
        """Count one audit line (as `audit.render` wrote it)."""
        decision = _decision(line)
        self._decisions[decision] += 1
        if decision not in DENYING:
            return
        record = json.loads(line)
        path = record.get("path")
        denied = Denied(
            host=record.get("host"),
            port=record.get("port"),
            method=record.get("method"),
            path=None if path is None else str(path).split("?", 1)[0],
            reason=str(record.get("reason")),
            decision=decision,
        )
        if denied in self._denied or len(self._denied) < self._listed:
            self._denied[denied] += 1
        else:
            self._unlisted += 1

    def summary(self) -> Summary:
        order = {decision: at for at, decision in enumerate(DECISIONS)}
        decisions = sorted(self._decisions.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        # Most frequent first; ties in a stable order of their own (host, port, method, path).
        denied = sorted(self._denied.items(), key=lambda item: (-item[1], _sort_key(item[0])))
        return Summary(tuple(decisions), tuple(denied), self._unlisted)


_DECISION: Final = '"decision": "'


def _decision(line: str) -> str:
    """An audit line's decision, read without parsing the line: the tally runs on the proxy's path and most
    lines are allowed ones (a denied one is parsed in full). `render` writes the key as this, after `ts` and
    `run`, and the value is boundary's own word, without escapes. A quote inside another field's string is
    escaped (`\\"`), so the first match is the key itself."""
    at = line.find(_DECISION)
    if at < 0:
        return str(json.loads(line)["decision"])
    start = at + len(_DECISION)
    return line[start : line.index('"', start)]


def _sort_key(denied: Denied) -> tuple[str, int, str, str, str]:
    return (denied.host or "", denied.port or 0, denied.method or "", denied.path or "", denied.reason)


def _counts(summary: Summary) -> str:
    shown = [(decision, summary.count(decision)) for decision in ("allow", "deny")]
    shown += [item for item in summary.decisions if item[0] not in ("allow", "deny")]
    return ", ".join(f"{count} {DECISIONS[d][0] if d in DECISIONS else printable(d)}" for d, count in shown)


# --- stderr ------------------------------------------------------------------------------------------------


def lines(summary: Summary) -> list[str]:
    """The exit summary: the counts and the most denied hosts, then a rule for each of the first `TOP_HINTS`.

    `boundary: 1 allowed, 2 denied: denied.test:443 (1), allowed.test:443 (1)`
    `boundary: to allow denied.test:443, add to the policy's allow list: {domain: denied.test, ...}`
    """
    first = f"boundary: {_counts(summary)}"
    hosts = summary.hosts()
    if hosts:
        named = [f"{printable(where)} ({count})" for where, count, _denied in hosts[:TOP_HOSTS]]
        more = len(hosts) - TOP_HOSTS
        if more > 0:
            named.append(f"{more} more host{'s' if more > 1 else ''}")
        first += ": " + ", ".join(named)
    if summary.unlisted:
        first += f" (and {summary.unlisted} more not listed; see the audit log)"
    hints = [f"boundary: to allow {printable(where)}, {printable(denied.hint())}" for where, _c, denied in hosts]
    return [first, *hints[:TOP_HINTS]]


# --- Markdown (GitHub's step summary) ------------------------------------------------------------------------

_TICKS: Final = re.compile(r"`+")


def _code(text: str | int | None) -> str:
    """`text` as a Markdown code span that a table cell can hold: printable, `|` escaped (GitHub reads a
    table's cells before code spans), fenced by more backticks than it holds."""
    if text is None:
        return ""
    shown = printable(str(text)).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in _TICKS.findall(shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def markdown(summary: Summary, title: str) -> str:
    """A step summary section for the run: a heading, the counts, a table of the denied requests (each with a
    rule or hint that would allow it). `title` is ours (the run id, the policy), shown in a code span."""
    out = [f"### boundary {_code(title)}", "", f"{_counts(summary)}.", ""]
    if summary.denied:
        out += [
            "| decision | method | host | path | reason | count | to allow it |",
            "|---|---|---|---|---|---:|---|",
        ]
        for denied, count in summary.denied:
            cells = [
                printable(denied.decision),
                _code(denied.method),
                _code(denied.where),
                _code(denied.path),
                _code(denied.reason),
                str(count),
                _code(denied.hint()),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if summary.unlisted:
        out += [f"{summary.unlisted} more denials are not listed: see the audit log.", ""]
    return "\n".join(out) + "\n"


# --- the exit status -----------------------------------------------------------------------------------------


def exit_code(command: int, summary: Summary, *, fail_on_deny: bool) -> int:
    """The run's exit status: the command's own when it failed; `EXIT_DENIED` when it succeeded but something
    was denied and `fail_on_deny` is set."""
    if command == 0 and fail_on_deny and summary.denials:
        return EXIT_DENIED
    return command


def denied_message(summary: Summary) -> str:
    """Why a run exits `EXIT_DENIED`."""
    count = summary.denials
    return (
        f"boundary: --fail-on-deny: the command succeeded, but {count} request{'s were' if count > 1 else ' was'}"
        f" denied: exit {EXIT_DENIED}"
    )
