"""Audit logs read back: each line parsed strictly into a frozen `Record`, or a `Problem` that says where and why.

The reader is as strict as the writer (`audit.render`) is regular: every standard field (`audit.AUDIT_FIELDS`)
present with its type, `ts` an RFC 3339 time with an offset, `decision` `allow` or `deny`, no key twice (two
readers could each believe a different one). Fields after the standard ones are kept as they are, so a log
written by a newer boundary (which may add fields) still reads; audit lines carry no format version, so there
is no newer format to refuse. `reason` is kept as a string, not checked against `reasons.Reason`, for the same
reason.

A problem never stops the reading: `parse_lines` yields a record or a problem for every line, in order, and a
caller decides what problems mean (`boundary log` shows the rest and exits 2; a `learn` could refuse). The one
problem of its own kind is the last line of a file cut short: a run killed in the middle of a write leaves it,
and it is reported as truncated (`Problem.truncated`) and skipped.

Pure but for `read_log` and `list_runs`, which open files and directories.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from boundary import audit
from boundary.errors import LogError
from boundary.policy.matcher import Request

__all__ = [
    "DECISIONS",
    "FIELDS",
    "Follower",
    "Problem",
    "Record",
    "RunFile",
    "collect",
    "list_runs",
    "newest_run",
    "parse_line",
    "parse_lines",
    "parse_run_name",
    "quote",
    "read_log",
    "runs_dir",
]

type Decision = Literal["allow", "deny"]
DECISIONS: Final[tuple[Decision, ...]] = ("allow", "deny")
QUOTE_LIMIT: Final = 60  # characters of bad input quoted in a problem


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no port


@dataclass(frozen=True, slots=True)
class FieldType:
    """What a standard field holds: `what` names it in a problem; `nullable` if JSON null is allowed."""

    what: str
    check: Callable[[object], bool]
    nullable: bool


_TEXT: Final = FieldType("a string", _is_text, nullable=False)
_TEXT_OR_NULL: Final = FieldType("a string or null", _is_text, nullable=True)
_INTEGER_OR_NULL: Final = FieldType("an integer or null", _is_integer, nullable=True)

# Every standard field of an audit line and its type, in `audit.render`'s order (a test holds them together).
FIELDS: Final = MappingProxyType(
    {
        "ts": _TEXT,
        "run": _TEXT,
        "decision": _TEXT,
        "rule": _TEXT_OR_NULL,
        "reason": _TEXT,
        "method": _TEXT_OR_NULL,
        "scheme": _TEXT,
        "host": _TEXT_OR_NULL,
        "port": _INTEGER_OR_NULL,
        "path": _TEXT_OR_NULL,
        "status": _INTEGER_OR_NULL,
    }
)


@dataclass(frozen=True, slots=True)
class Record:
    """One audit line, parsed: the standard fields typed, `ts` in UTC, other fields in `extra` as found, `text`
    the line as written (without its newline), `file` and `line` where it was read."""

    ts: datetime
    run: str
    decision: Decision
    rule: str | None
    reason: str
    method: str | None
    scheme: str
    host: str | None
    port: int | None
    path: str | None
    status: int | None
    extra: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    text: str = ""
    file: str = ""
    line: int = 0

    @property
    def denied(self) -> bool:
        return self.decision == "deny"

    def request(self) -> Request:
        """The request the matcher decided (a raw stream when `method` is None); a line with a destination."""
        assert self.host is not None and self.port is not None
        scheme = self.scheme if self.method is not None else "tcp"
        return Request(scheme, self.host, self.port, self.method, self.path)


@dataclass(frozen=True, slots=True)
class Problem:
    """A line that is not a record: `FILE:LINE: why` (`why` quotes the bad text). `truncated`: the last line of a
    file cut short, as a killed run leaves it."""

    file: str
    line: int
    why: str
    truncated: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.why}"


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` quoted for a message: Python-style escapes for everything outside printable ASCII (nothing from a
    log reaches a terminal as a control sequence), cut after `limit` characters with `...`."""
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


class _Bad(Exception):
    """Why a line is not a record (internal: becomes a `Problem`)."""


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise _Bad(f"field {key!r} given twice")
        found[key] = value
    return found


def _no_constant(name: str) -> object:
    raise _Bad(f"not JSON: {name} is not a JSON number")


def _ts(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise _Bad(f"field 'ts': not an RFC 3339 time with an offset: {quote(value)}")
    return moment.astimezone(UTC)


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=True)  # JSON as in the log: controls escaped
    return text[:QUOTE_LIMIT] + ("..." if len(text) > QUOTE_LIMIT else "")


def _fields(text: str) -> dict[str, object]:
    try:
        parsed = json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise _Bad(f"not JSON ({e.msg} at column {e.colno}): {quote(text)}") from e
    if not isinstance(parsed, dict):
        raise _Bad(f"not a JSON object: {quote(text)}")
    for name, kind in FIELDS.items():
        if name not in parsed:
            raise _Bad(f"missing field {name!r}: {quote(text)}")
        value = parsed[name]
        if not (value is None and kind.nullable) and not kind.check(value):
            raise _Bad(f"field {name!r}: expected {kind.what}, got {_shown(value)}")
    if parsed["decision"] not in DECISIONS:
        raise _Bad(f'field \'decision\': expected "allow" or "deny", got {_shown(parsed["decision"])}')
    return parsed


def parse_line(text: str, file: str = "<string>", line: int = 1) -> Record | Problem:
    """One audit line (without its newline) as a `Record`, or the `Problem` that it is not one."""
    try:
        found = _fields(text)
        ts = _ts(found.pop("ts"))  # type: ignore[arg-type]  # checked by FIELDS
    except _Bad as e:
        return Problem(file, line, str(e))
    standard = {name: found.pop(name) for name in FIELDS if name != "ts"}
    return Record(
        ts=ts,
        **standard,  # type: ignore[arg-type]  # each checked against FIELDS
        extra=MappingProxyType(found),
        text=text,
        file=file,
        line=line,
    )


def parse_lines(file: str, lines: Iterable[bytes], first: int = 1) -> Iterator[Record | Problem]:
    """A record or a problem for each line of `lines` (bytes, each with its `\\n` but perhaps the last), in order,
    numbered from `first` (a follower parses a file a few lines at a time).

    A last line without its newline that does not parse is a truncated one (a run killed while writing it):
    reported with `truncated` set. One that parses is a record: a line is written with its newline in a single
    write, so it was complete.
    """
    for number, raw in enumerate(lines, start=first):
        complete = raw.endswith(b"\n")
        body = raw[:-1] if complete else raw
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            text = body.decode("utf-8", "backslashreplace")
            found: Record | Problem = Problem(file, number, f"not UTF-8 (at byte {e.start}): {quote(text)}")
        else:
            found = parse_line(text, file, number)
        if isinstance(found, Problem) and not complete:
            found = Problem(
                file,
                number,
                f"truncated last line (a run killed while writing it?), skipped: {quote(text)}",
                truncated=True,
            )
        yield found


def read_log(path: Path, shown: str | None = None) -> Iterator[Record | Problem]:
    """`parse_lines` of the file at `path`, named `shown` (default: the path as given) in records and problems.
    A file that cannot be opened or read is a `LogError`."""
    name = str(path) if shown is None else shown
    try:
        with path.open("rb") as f:
            yield from parse_lines(name, f)
    except OSError as e:
        raise LogError(f"cannot read audit log '{name}': {e.strerror or e}") from e


def collect(items: Iterable[Record | Problem]) -> tuple[list[Record], list[Problem]]:
    """The records and the problems of `items`, apart, each in order."""
    records: list[Record] = []
    problems: list[Problem] = []
    for item in items:
        (records if isinstance(item, Record) else problems).append(item)  # type: ignore[arg-type]
    return records, problems


# --- the runs' logs ---------------------------------------------------------------------------------------------

_RUN_FILE: Final = re.compile(r"(?P<started>[0-9]{8}T[0-9]{6}Z)-(?P<run>[A-Za-z0-9_-]+)\.jsonl")


@dataclass(frozen=True, slots=True, order=True)
class RunFile:
    """A run's log in the runs directory, as `audit.default_log_path` names it (ordered by start, then run)."""

    started: datetime
    run: str
    path: Path


def runs_dir(env: Mapping[str, str]) -> Path:
    """The directory of the runs' logs (`audit.runs_directory`): `$XDG_STATE_HOME/boundary/runs` or under
    `$HOME/.local/state`."""
    return audit.runs_directory(env)


def parse_run_name(path: Path) -> RunFile | None:
    """The run a log's file name names (`20261125T220305Z-abc123.jsonl`), or None for any other file."""
    match = _RUN_FILE.fullmatch(path.name)
    if match is None:
        return None
    try:
        started = datetime.strptime(match["started"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:  # 20261399T...: digits, but no date
        return None
    return RunFile(started, match["run"], path)


def list_runs(directory: Path) -> list[RunFile]:
    """The runs' logs in `directory`, oldest first; none if it does not exist."""
    try:
        names = list(directory.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise LogError(f"cannot list the runs' logs in '{directory}': {e.strerror or e}") from e
    return sorted(run for run in map(parse_run_name, names) if run is not None and run.path.is_file())


def newest_run(directory: Path, run: str | None = None) -> RunFile:
    """The newest run's log in `directory` (of run `run`, if given); a `LogError` if there is none."""
    runs = [found for found in list_runs(directory) if run is None or found.run == run]
    if not runs:
        which = "no run's log" if run is None else f"no log of run {quote(run)}"
        raise LogError(f"{which} in '{directory}' (boundary run writes one there unless --log says otherwise)")
    return runs[-1]


# --- following one log ------------------------------------------------------------------------------------------


class Follower:
    """`tail -f` of one log, polled: `poll` reads what was appended since the last poll and returns the lines it
    completed, parsed, and notices of what happened to the file. A partial last line waits for its newline.

    The file is held open, so a log renamed away (rotated) is read to its end; once the path leads to another
    file, that one is followed from its start, and a partial line left in the old one is reported truncated. A
    file truncated in place (shorter than what was read) is read again from its start. A path with no file yet
    or any more is waited for.
    """

    def __init__(self, path: Path, shown: str | None = None) -> None:
        self._path = path
        self._shown = str(path) if shown is None else shown
        self._file = self._open()
        self._pending = b""
        self._number = 0

    def _open(self) -> io.FileIO:
        try:
            return io.FileIO(self._path, "r")
        except OSError as e:
            raise LogError(f"cannot read audit log '{self._shown}': {e.strerror or e}") from e

    def poll(self) -> tuple[list[Record | Problem], list[str]]:
        """The lines completed since the last poll, parsed, and notices (`FILE: what happened`)."""
        found = self._read()
        if found:
            return found, []
        try:
            there = os.stat(self._path)
        except FileNotFoundError:
            return [], []
        except OSError as e:
            raise LogError(f"cannot read audit log '{self._shown}': {e.strerror or e}") from e
        ours = os.fstat(self._file.fileno())
        if (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino):
            left = self._rest()
            self._file.close()
            self._file = self._open()
            self._number = 0
            return [*left, *self._read()], [f"{self._shown}: replaced by a new file; following that from its start"]
        if there.st_size < self._file.tell():
            self._file.seek(0)
            self._pending, self._number = b"", 0
            return self._read(), [f"{self._shown}: truncated; following it from its start"]
        return [], []

    def _read(self) -> list[Record | Problem]:
        try:
            chunk = self._file.readall()
        except OSError as e:
            raise LogError(f"cannot read audit log '{self._shown}': {e.strerror or e}") from e
        if not chunk:
            return []
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        found = list(parse_lines(self._shown, (line + b"\n" for line in lines), self._number + 1))
        self._number += len(lines)
        return found

    def _rest(self) -> list[Record | Problem]:
        """The partial line a file was left with, as its last line."""
        if not self._pending:
            return []
        found = list(parse_lines(self._shown, [self._pending], self._number + 1))
        self._pending = b""
        return found

    def close(self) -> None:
        self._file.close()
