"""The audit log: one JSON object per line, one line per decision, allowed or denied.

Rendering is pure (`render`, `default_log_path`: the clock and the environment are parameters); `AuditLog` is
the thin file shell. Each line is written with a single `write(2)` on an `O_APPEND` descriptor, so `tail -f`
sees every decision as it is made and nothing sits in a user-space buffer when the run is killed.

Lines are pure ASCII (`json.dumps` with `ensure_ascii=True`). Hosts, paths and methods come from the workload,
which may be hostile: escaping everything outside ASCII means no raw line or paragraph separator (U+0085,
U+2028, U+2029) can split a record for a line-oriented reader, no C1 control (U+009B is CSI on some
terminals) reaches a terminal running `tail -f`, and a lone surrogate from a badly decoded path cannot make
the write fail. The price, `\\u00e9` instead of `é` in the odd path, is paid by a reader, not by the audit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from boundary.errors import BoundaryError

AUDIT_FIELDS: Final = (
    "ts",
    "run",
    "decision",
    "rule",
    "reason",
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "status",
)

_RUN_ID: Final = re.compile(r"[A-Za-z0-9_-]+")


def new_run_id() -> str:
    """A fresh run id: 12 hex digits (48 random bits), safe in URLs, file names and headers."""
    return secrets.token_hex(6)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime is ambiguous; guessing local time would silently shift the record.
        raise ValueError(f"naive datetime {moment.isoformat()!r}: an aware one is needed")
    return moment.astimezone(UTC)


def format_ts(ts: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and `Z`, e.g. `2026-11-25T22:03:05.123Z` (truncated, not rounded)."""
    ts = _utc(ts)
    return f"{ts:%Y-%m-%dT%H:%M:%S}.{ts.microsecond // 1000:03d}Z"


def render(
    *,
    ts: datetime,
    run: str,
    decision: str,
    rule: str | None,
    reason: str,
    method: str | None,
    scheme: str,
    host: str | None,
    port: int | None,
    path: str | None,
    status: int | None,
    **extra: str | int | None,
) -> str:
    """One audit record as one line of JSON, without the newline: `AUDIT_FIELDS` in order, then `extra`.

    Every field is always present (None becomes null) so records line up; extras follow in the order given.
    They cannot shadow a standard field: Python binds such a keyword to the named parameter.
    """
    record: dict[str, str | int | None] = {
        "ts": format_ts(ts),
        "run": run,
        "decision": decision,
        "rule": rule,
        "reason": reason,
        "method": method,
        "scheme": scheme,
        "host": host,
        "port": port,
        "path": path,
        "status": status,
    }
    record.update(extra)
    return json.dumps(record, ensure_ascii=True, allow_nan=False)


def default_log_path(run: str, env: Mapping[str, str], now: datetime) -> Path:
    """`$XDG_STATE_HOME/boundary/runs/<YYYYmmddTHHMMSSZ>-<run>.jsonl`, or the same under `$HOME/.local/state`.

    As the XDG base directory spec says, an empty or relative `XDG_STATE_HOME` is ignored. The UTC timestamp
    first makes `ls` list runs in order.
    """
    if not _RUN_ID.fullmatch(run):
        raise ValueError(f"run id {run!r} is not usable in a file name")
    state = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        home = env.get("HOME", "")
        if not home:
            raise BoundaryError("cannot choose an audit log path: neither XDG_STATE_HOME nor HOME is set")
        state = os.path.join(home, ".local", "state")
    return Path(state, "boundary", "runs", f"{_utc(now):%Y%m%dT%H%M%SZ}-{run}.jsonl")


def _make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing ancestors, each 0700 (`Path.mkdir` leaves ancestors to umask)."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another run
            os.mkdir(path, 0o700)


def open_log_file(path: Path) -> int:
    """Open `path` to append, creating it 0600; never through a symlink in its last component: a workload of an
    earlier run could have planted one where a log goes, to have boundary (maybe as root) append elsewhere."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)


class AuditLog:
    """An append-only JSON-lines file. Each `write` reaches the kernel before it returns."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            _make_private_dirs(path.parent)
            fd = open_log_file(path)
        except OSError as e:
            raise BoundaryError(f"cannot open audit log '{path}': {e.strerror or e}") from e
        self._fd: int | None = fd

    @property
    def path(self) -> Path:
        return self._path

    def write(self, line: str) -> None:
        """Append `line` and a newline. Raises BoundaryError when that fails: the run must fail closed."""
        if line.splitlines() != [line]:
            raise ValueError(f"an audit record must be exactly one line: {line!r}")
        if self._fd is None:
            raise BoundaryError(f"audit log '{self._path}' is already closed")
        data = (line + "\n").encode("utf-8", "backslashreplace")
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as e:
            raise BoundaryError(f"cannot write audit log '{self._path}': {e.strerror or e}") from e

    def close(self) -> None:
        """Close the file. Idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
