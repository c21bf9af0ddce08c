"""The audit log: one JSON object per line, one line per decision, allowed or denied.

Rendering is pure (`render`, `default_log_path`: the clock and the environment are parameters); `AuditLog` is
the thin file shell. Each line is written with a single `write(2)` on an `O_APPEND` descriptor, so `tail -f`
sees every decision as it is made and nothing sits in a user-space buffer when the run is killed. The log's
place is guarded too (see "the log's place" below): its path is walked without following any link the jailed
command could have planted, and at the end of the run it must still lead to the file the run wrote.

Lines are pure ASCII (`json.dumps` with `ensure_ascii=True`). Hosts, paths and methods come from the workload,
which may be hostile: escaping everything outside ASCII means no raw line or paragraph separator (U+0085,
U+2028, U+2029) can split a record for a line-oriented reader, no C1 control (U+009B is CSI on some
terminals) reaches a terminal running `tail -f`, and a lone surrogate from a badly decoded path cannot make
the write fail. The price, `\\u00e9` instead of `é` in the odd path, is paid by a reader, not by the audit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
    return runs_directory(env) / f"{_utc(now):%Y%m%dT%H%M%SZ}-{run}.jsonl"


def runs_directory(env: Mapping[str, str]) -> Path:
    """Where `default_log_path` puts the runs' logs: `$XDG_STATE_HOME/boundary/runs`, or under `$HOME/.local/state`
    (`boundary log` reads them from there)."""
    state = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        home = env.get("HOME", "")
        if not home:
            raise BoundaryError("cannot choose an audit log path: neither XDG_STATE_HOME nor HOME is set")
        state = os.path.join(home, ".local", "state")
    return Path(state, "boundary", "runs")


# --- the log's place -------------------------------------------------------------------------------------------
#
# A log is the record a workload would most like to rewrite, and boundary (perhaps as root) creates it wherever
# it is told. Two things keep that place honest:
#
# - The path is walked one name at a time from "/" (or from the working directory), each directory held by an
#   O_PATH descriptor and each name looked up in the one before with O_NOFOLLOW: the kernel never resolves more
#   than one name, so a symbolic link is seen as one wherever it is, and followed only if `LinkTrust` says the
#   jailed command cannot have made it. Missing directories are made 0700 on the way (mkdirat). (openat2's
#   RESOLVE_NO_SYMLINKS would refuse every link, also /var/run -> /run or a home reached through
#   /home -> /var/home; the walk can tell root's links from anyone else's.)
# - The descriptors of the file and of its directory are kept for the whole run; at its end the path is walked
#   again and must still lead to the very file the run wrote (`AuditLog.replaced`). Inside the jail the path
#   cannot change (session pins every directory on it: jail.plan `Pin`); this catches anything else.

MAX_LINKS: Final = 40  # links followed in one walk, as the kernel's MAXSYMLINKS

_DIRECTORY: Final = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a directory (automounts too)
_ENTRY: Final = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC  # whatever is there, a link itself included
_APPEND: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


@dataclass(frozen=True, slots=True)
class LinkTrust:
    """Which symbolic links on a log's path are followed: only those the jailed command cannot have made.

    That is a link owned by root in a directory owned by root that neither its group nor others may write (an
    ACL that grants write shows in the group bits), and only while the command does not run as root itself:
    root without capabilities still writes whatever root owns. The invoker's own links are never trusted:
    rootless, the command runs as the invoker and could have planted them during an earlier run.
    """

    workload_uid: int

    def refusal(self, link_uid: int, directory_uid: int, directory_mode: int) -> str | None:
        """Why a link with this owner, in a directory with this owner and mode, is not followed; None if it is."""
        if self.workload_uid == 0:
            return "and the jailed command runs as root, which could have made it"
        if link_uid != 0:
            return f"owned by uid {link_uid}"
        if directory_uid != 0:
            return f"in a directory owned by uid {directory_uid}"
        if directory_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"in a directory that others can write (mode {stat.S_IMODE(directory_mode):o})"
        return None


class LinkRefused(Exception):
    """A walk met a symbolic link that its `LinkTrust` does not follow."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(
            f"'{component}' is a symbolic link {reason}; boundary follows a link on a log's path only if the jailed"
            " command cannot have made it (root's own, in a directory only root can write): give a path without it"
        )
        self.component = component
        self.reason = reason


def path_names(path: str) -> list[str]:
    """The names a walk takes, in order: empty names and `.` dropped, `..` kept (it is walked physically)."""
    return [name for name in path.split("/") if name not in ("", ".")]


def joined(names: list[str]) -> str:
    """The absolute path of a walk's names."""
    return "/" + "/".join(names)


def open_directory(path: str, trust: LinkTrust, *, create: bool = False) -> tuple[int, str]:
    """An O_PATH descriptor of directory `path` and its canonical path, reached without the kernel following any
    link: `trust` decides each link on the way (`LinkRefused` if it is not followed); missing directories are
    made 0700 if `create`, else FileNotFoundError. A relative path starts at the working directory."""
    if os.path.isabs(path):
        fd, names = os.open("/", _DIRECTORY), []
    else:
        fd, names = os.open(".", _DIRECTORY), path_names(os.getcwd())
    pending = deque(path_names(path))
    followed = 0
    try:
        while pending:
            name = pending.popleft()
            if name == "..":  # the parent of the directory held, as the kernel's own walk does after a link
                fd = _step(fd, os.open("..", _DIRECTORY, dir_fd=fd))
                names = names[:-1]
                continue
            entry = _open_entry(fd, name, create)
            found = os.fstat(entry)
            if stat.S_ISDIR(found.st_mode):
                fd = _step(fd, entry)
                names = [*names, name]
                continue
            try:
                here = joined([*names, name])
                if not stat.S_ISLNK(found.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), here)
                directory = os.fstat(fd)
                reason = trust.refusal(found.st_uid, directory.st_uid, directory.st_mode)
                if reason is not None:
                    raise LinkRefused(here, reason)
                followed += 1
                if followed > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), here)
                # The link we looked at, not whatever has the name now (its directory is root's alone anyway).
                target = os.readlink("", dir_fd=entry)
            finally:
                os.close(entry)
            if target.startswith("/"):
                fd = _step(fd, os.open("/", _DIRECTORY))
                names = []
            pending.extendleft(reversed(path_names(target)))
    except BaseException:
        os.close(fd)
        raise
    return fd, joined(names)


def _step(old: int, new: int) -> int:
    os.close(old)
    return new


def _open_entry(directory: int, name: str, create: bool) -> int:
    try:
        return os.open(name, _DIRECTORY, dir_fd=directory)
    except NotADirectoryError:  # a link or a file: opened to be looked at, never followed
        return os.open(name, _ENTRY, dir_fd=directory)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):  # made meanwhile by another run: looked at like any other
            os.mkdir(name, 0o700, dir_fd=directory)
        return os.open(name, _ENTRY, dir_fd=directory)


def open_log_file(name: str, directory: int) -> int:
    """Open `name` in the directory held by `directory` to append, creating it 0600; never through a link: a
    workload of an earlier run could have planted one where a log goes, to have boundary append elsewhere."""
    return os.open(name, _APPEND, 0o600, dir_fd=directory)


def _open_failure(path: Path, e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return f"'{path}' is a symbolic link, and a log is never opened through one"
    return e.strerror or str(e)


def _same_file(fd: int, name: str, directory: int) -> bool:
    try:
        there = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError:
        return False
    ours = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino)


def _now_at(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")  # the kernel's name for it now; "... (deleted)" if removed
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Replaced:
    """A log whose path no longer leads to the file the run wrote: what it is, its path, where that file is now."""

    what: str
    path: Path
    now: str | None


def replaced_message(replaced: list[Replaced], exit_code: int | None) -> str:
    """The one line boundary ends a run with when a log's place was taken (see `AuditLog.replaced`)."""
    parts = []
    for found in replaced:
        where = f"the file it wrote is now '{found.now}'" if found.now else "the file it wrote is gone"
        parts.append(
            f"{found.what} '{found.path}' was replaced during the run; the run's log is not at that path: {where}"
        )
    ended = "" if exit_code is None else f" (the command exited with {exit_code})"
    return "; ".join(parts) + ended


class AuditLog:
    """An append-only JSON-lines file. Each `write` reaches the kernel before it returns.

    Opened through `open_directory` (no link but a trusted one on the way); the descriptors of the file and of
    its directory stay open until `close`, so files opened beside it (`open_beside`) are in that same
    directory and `replaced` can tell whether the path still leads to them.
    """

    def __init__(self, path: Path, trust: LinkTrust | None = None) -> None:
        self._path = path
        self._trust = trust if trust is not None else LinkTrust(os.getuid())
        if path.name in ("", ".", ".."):
            raise BoundaryError(f"cannot open audit log '{path}': that names a directory, not a file")
        try:
            self._dir_fd, self._directory = open_directory(str(path.parent), self._trust, create=True)
        except LinkRefused as e:
            raise BoundaryError(f"cannot open audit log '{path}': {e}") from e
        except OSError as e:
            raise BoundaryError(f"cannot open audit log '{path}': {e.strerror or e}") from e
        try:
            fd = open_log_file(path.name, self._dir_fd)
        except OSError as e:
            os.close(self._dir_fd)
            raise BoundaryError(f"cannot open audit log '{path}': {_open_failure(path, e)}") from e
        self._fd: int | None = fd
        # What `replaced` checks: (what, name, a descriptor of our own for the file).
        self._kept: list[tuple[str, str, int]] = [("audit log", path.name, os.dup(fd))]
        self._observers: list[Callable[[str], None]] = []

    @property
    def path(self) -> Path:
        """The path as given."""
        return self._path

    @property
    def directory(self) -> str:
        """The canonical path of the log's directory (every trusted link resolved), as when it was opened."""
        return self._directory

    @property
    def canonical(self) -> str:
        """The canonical path of the log file, as when it was opened: where the jail's mounts keep it."""
        return os.path.join(self._directory, self._path.name)

    def open_beside(self, name: str, what: str) -> int:
        """Open file `name` in the log's own directory to append (created 0600, never through a link); the
        caller owns the descriptor. `replaced` checks this file too; `what` names it in messages."""
        shown = self._path.with_name(name)
        try:
            fd = open_log_file(name, self._dir_fd)
        except OSError as e:
            raise BoundaryError(f"cannot open the {what} '{shown}': {_open_failure(shown, e)}") from e
        self._kept.append((what, name, os.dup(fd)))
        return fd

    def replaced(self) -> list[Replaced]:
        """The files (this log, then those opened beside it) that the path no longer leads to, walked again as it
        was first: renamed, removed or replaced since, or a link not trusted now on the way."""
        if self._fd is None:
            raise BoundaryError(f"audit log '{self._path}' is already closed")
        try:
            directory: int | None = open_directory(str(self._path.parent), self._trust)[0]
        except (OSError, LinkRefused):
            directory = None
        try:
            return [
                Replaced(what, self._path.with_name(name), _now_at(fd))
                for what, name, fd in self._kept
                if directory is None or not _same_file(fd, name, directory)
            ]
        finally:
            if directory is not None:
                os.close(directory)

    def observe(self, observer: Callable[[str], None]) -> None:
        """Hand every line written from now on to `observer` too, once it is in the file (the run's tally: the
        proxy writes from the run's own process). What the observer raises, `write` raises."""
        self._observers.append(observer)

    def write(self, line: str) -> None:
        """Append `line` and a newline, then hand it to the observers. Raises BoundaryError when the append
        fails: the run must fail closed."""
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
        for observer in self._observers:
            observer(line)

    def close(self) -> None:
        """Close the file, its directory and what `replaced` kept. Idempotent."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
            os.close(self._dir_fd)
            for _what, _name, kept in self._kept:
                os.close(kept)
            self._kept = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
