"""What `boundary log` shows: records filtered (`Filter`, `parse_since`) and rendered as an aligned table
(`Table`), the runs as a list (`render_runs`); color only when the caller asks (`use_color` is the rule).

Pure: the clock, the terminal and the environment are parameters. Every cell is made printable first: hosts and
paths come from the workload, and JSON's `\\u001b` decodes to a real ESC that must not reach a terminal.
Times are UTC, as in the log: `HH:MM:SS` while every row is of one day, else with the date.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Final, Literal

from boundary.errors import UsageError
from boundary.logs.read import Record, RunFile, quote

__all__ = [
    "COLUMNS",
    "Filter",
    "RunSummary",
    "Table",
    "parse_since",
    "printable",
    "render_runs",
    "run_json",
    "use_color",
]

# --- filters -------------------------------------------------------------------------------------------------

UNITS: Final = MappingProxyType({"s": 1, "m": 60, "h": 3600, "d": 86400})
_AGO: Final = re.compile(r"([0-9]{1,9})([smhd])")


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: an age (`30s`, `10m`, `2h`, `1d`) before `now`, or an ISO 8601 time (UTC unless it has an
    offset, as the log's times are). A `UsageError` quoting `text` otherwise."""
    ago = _AGO.fullmatch(text.strip())
    if ago is not None:
        return now.astimezone(UTC) - timedelta(seconds=int(ago[1]) * UNITS[ago[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {quote(text)}: expected an age (30s, 10m, 2h, 1d) or an ISO time (2026-11-25T22:03:05Z)"
        ) from None
    return (moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which records are shown: all of the given conditions hold (none given: every record)."""

    deny: bool = False  # only denied requests
    host: str | None = None  # a glob (fnmatch), case-insensitive
    run: str | None = None  # a run id
    since: datetime | None = None  # at or after, aware

    def matches(self, record: Record) -> bool:
        return (
            (not self.deny or record.denied)
            and (self.host is None or _host_matches(self.host, record.host))
            and (self.run is None or record.run == self.run)
            and (self.since is None or record.ts >= self.since)
        )


def _host_matches(glob: str, host: str | None) -> bool:
    return host is not None and fnmatch.fnmatchcase(host.lower(), glob.lower())


# --- color ---------------------------------------------------------------------------------------------------

type ColorChoice = Literal["always", "never", "auto"]
COLOR_CHOICES: Final[tuple[ColorChoice, ...]] = ("auto", "always", "never")


def use_color(choice: ColorChoice, isatty: bool, env: Mapping[str, str]) -> bool:
    """`always`, `never`, or (`auto`) on a terminal unless `NO_COLOR` is set to anything but "" (no-color.org)."""
    if choice == "auto":
        return isatty and not env.get("NO_COLOR")
    return choice == "always"


_RESET: Final = "\x1b[0m"
# Cells painted when color is on: the header, and each decision in its own color.
PAINT: Final = MappingProxyType({"header": "\x1b[1m", "allow": "\x1b[32m", "deny": "\x1b[1;31m"})


def _paint(text: str, style: str | None, color: bool) -> str:
    if not color or style is None or not text:
        return text
    return f"{PAINT[style]}{text}{_RESET}"


# --- the table -----------------------------------------------------------------------------------------------


def printable(text: str) -> str:
    """`text` with every non-printable character (controls, format characters such as bidi overrides, lone
    surrogates) as its Python escape, and backslashes doubled so that an escape cannot be forged."""
    return "".join(c if c.isprintable() and c != "\\" else ascii(c)[1:-1] for c in text)


COLUMNS: Final = ("TIME", "DECISION", "METHOD", "HOST", "PATH", "REASON", "RULE")
_NULL: Final = "-"


def _time(ts: datetime, dated: bool) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S}" if dated else f"{ts:%H:%M:%S}"


def _cells(record: Record, dated: bool) -> tuple[str, ...]:
    values = (record.decision, record.method, record.host, record.path, record.reason, record.rule)
    return (_time(record.ts, dated), *(_NULL if value is None else printable(value) for value in values))


@dataclass(slots=True)
class Table:
    """An aligned table rendered batch by batch: `boundary log -f` renders what arrives with the widths so far
    (they only grow) and the header once. The date joins the time from the first batch that spans two days on.

    Mutable on purpose, and only here: it is the state of one rendering, owned by one caller.
    """

    color: bool = False
    widths: list[int] = field(default_factory=lambda: [len(name) for name in COLUMNS])
    day: date | None = None
    dated: bool = False
    started: bool = False

    def render(self, records: Sequence[Record]) -> str:
        """The rows of `records` (the header first, on the first call that has any), each ending in a newline."""
        if not records:
            return ""
        days = {record.ts.date() for record in records} | ({self.day} if self.day else set())
        self.dated = self.dated or len(days) > 1
        self.day = min(days)
        rows = [_cells(record, self.dated) for record in records]
        for row in rows:
            self.widths = [max(width, len(cell)) for width, cell in zip(self.widths, row, strict=True)]
        out = []
        if not self.started:
            self.started = True
            out.append(self._row(COLUMNS, ["header"] * len(COLUMNS)))
        for record, row in zip(records, rows, strict=True):
            out.append(self._row(row, [None, record.decision, None, None, None, None, None]))
        return "".join(out)

    def _row(self, cells: Sequence[str], styles: Sequence[str | None]) -> str:
        last = len(cells) - 1
        parts = [
            _paint(cell, style, self.color) + ("" if i == last else " " * (width - len(cell)))
            for i, (cell, style, width) in enumerate(zip(cells, styles, self.widths, strict=True))
        ]
        return "  ".join(parts).rstrip() + "\n"


# --- the runs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run's log and what is in it: `lines` read (records and problems), `denied` records."""

    file: RunFile
    lines: int
    denied: int


RUN_COLUMNS: Final = ("STARTED", "RUN", "LINES", "DENIED", "PATH")


def render_runs(runs: Sequence[RunSummary], color: bool = False) -> str:
    """The runs as an aligned table, oldest first; the numbers right-aligned."""
    rows = [
        (
            f"{run.file.started:%Y-%m-%d %H:%M:%S}",
            printable(run.file.run),
            str(run.lines),
            str(run.denied),
            printable(str(run.file.path)),
        )
        for run in runs
    ]
    widths = [max(len(row[i]) for row in [RUN_COLUMNS, *rows]) for i in range(len(RUN_COLUMNS))]
    numeric = (False, False, True, True, False)

    def line(cells: Sequence[str], header: bool) -> str:
        parts = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            pad, shown = " " * (width - len(cell)), _paint(cell, "header" if header else None, color)
            parts.append(pad + shown if numeric[i] else shown if i == len(cells) - 1 else shown + pad)
        return "  ".join(parts).rstrip() + "\n"

    return "".join([line(RUN_COLUMNS, True), *(line(row, False) for row in rows)])


def run_json(run: RunSummary) -> str:
    """`--runs --json`: one run as one line of JSON (its start in the log's own time format)."""
    started = f"{run.file.started:%Y-%m-%dT%H:%M:%S}.000Z"
    fields = {"started": started, "run": run.file.run, "path": str(run.file.path), "lines": run.lines}
    return json.dumps({**fields, "denied": run.denied}, ensure_ascii=True)
