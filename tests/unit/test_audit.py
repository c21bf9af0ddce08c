"""Specification of the audit log: record rendering, the default path, and the append-only file."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from boundary.audit import AUDIT_FIELDS, AuditLog, default_log_path, format_ts, new_run_id, open_log_file, render
from boundary.errors import BoundaryError

TS = datetime(2026, 11, 25, 22, 3, 5, 123456, tzinfo=UTC)


def record(**overrides: Any) -> dict[str, Any]:
    """Arguments for a typical allowed GET; keywords override or add fields."""
    fields: dict[str, Any] = {
        "ts": TS,
        "run": "0123456789ab",
        "decision": "allow",
        "rule": "allow[0]",
        "reason": "matched",
        "method": "GET",
        "scheme": "https",
        "host": "api.example.com",
        "port": 443,
        "path": "/v1/models",
        "status": 200,
    }
    return fields | overrides


# --- render ---------------------------------------------------------------------------------------------------


def test_render_keys_in_field_order() -> None:
    """A record has exactly the standard fields, in `AUDIT_FIELDS` order."""
    assert list(json.loads(render(**record()))) == list(AUDIT_FIELDS)


def test_render_values() -> None:
    """Values are rendered as given, the timestamp as RFC 3339 text."""
    assert json.loads(render(**record())) == {
        "ts": "2026-11-25T22:03:05.123Z",
        "run": "0123456789ab",
        "decision": "allow",
        "rule": "allow[0]",
        "reason": "matched",
        "method": "GET",
        "scheme": "https",
        "host": "api.example.com",
        "port": 443,
        "path": "/v1/models",
        "status": 200,
    }


def test_render_none_is_null_and_present() -> None:
    """Missing values are null, never omitted, so every record has the same keys."""
    line = render(**record(rule=None, method=None, host=None, port=None, path=None, status=None))
    parsed = json.loads(line)
    assert list(parsed) == list(AUDIT_FIELDS)
    assert [parsed[k] for k in ("rule", "method", "host", "port", "path", "status")] == [None] * 6


def test_render_extras_follow_in_given_order() -> None:
    """Extra fields come after the standard ones, in the order they were passed."""
    parsed = json.loads(render(**record(sni="api.example.com", bytes_out=1234, error=None)))
    assert list(parsed)[len(AUDIT_FIELDS) :] == ["sni", "bytes_out", "error"]
    assert parsed["bytes_out"] == 1234


@pytest.mark.parametrize(
    "path",
    [
        "/a\nb",
        "/a\r\nb",
        '/"quoted"\\',
        "/nel\x85",
        "/ls\u2028ps\u2029",
        "/esc\x1b[31m",
        "/csi\x9b31m",
        "/nul\x00",
        "/é/日本",
        "/surrogate\udcff",
    ],
)
def test_render_is_one_ascii_line_that_round_trips(path: str) -> None:
    """Whatever the workload put in a field, the record is one line of printable ASCII that parses back to it."""
    line = render(**record(path=path))
    assert line.splitlines() == [line]
    assert all(" " <= ch <= "~" for ch in line)
    assert json.loads(line)["path"] == path


def test_render_has_no_trailing_newline() -> None:
    """`render` returns the line without its newline; `AuditLog.write` adds it."""
    assert not render(**record()).endswith("\n")


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (TS, "2026-11-25T22:03:05.123Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC), "2026-01-02T03:04:05.999Z"),
        (datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), "2025-12-31T23:30:00.000Z"),
        (datetime(2026, 6, 1, 12, 0, 0, 5000, tzinfo=timezone(timedelta(hours=-5))), "2026-06-01T17:00:00.005Z"),
    ],
)
def test_timestamp_is_rfc3339_utc_milliseconds(ts: datetime, text: str) -> None:
    """Timestamps are converted to UTC and written with milliseconds (truncated) and a `Z`."""
    assert format_ts(ts) == text
    assert json.loads(render(**record(ts=ts)))["ts"] == text


def test_naive_timestamp_is_refused() -> None:
    """A naive datetime is ambiguous: ValueError rather than a silently shifted record."""
    with pytest.raises(ValueError, match="naive"):
        render(**record(ts=datetime(2026, 11, 25, 22, 3, 5)))


# --- new_run_id ---------------------------------------------------------------------------------------------


def test_run_id_is_twelve_hex_digits() -> None:
    """A run id is 12 lower-case hex digits: short, URL-safe and usable in a file name."""
    assert re.fullmatch(r"[0-9a-f]{12}", new_run_id())


def test_run_ids_differ() -> None:
    """Fresh run ids do not repeat."""
    assert len({new_run_id() for _ in range(100)}) == 100


# --- default_log_path ---------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 25, 22, 3, 5, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"XDG_STATE_HOME": "/xdg/state", "HOME": "/home/u"},
            "/xdg/state/boundary/runs/20261125T220305Z-abc123.jsonl",
            id="xdg",
        ),
        pytest.param(
            {"HOME": "/home/u"},
            "/home/u/.local/state/boundary/runs/20261125T220305Z-abc123.jsonl",
            id="home-only",
        ),
        pytest.param(
            {"XDG_STATE_HOME": "", "HOME": "/home/u"},
            "/home/u/.local/state/boundary/runs/20261125T220305Z-abc123.jsonl",
            id="empty-xdg",
        ),
        pytest.param(
            {"XDG_STATE_HOME": "relative/state", "HOME": "/home/u"},
            "/home/u/.local/state/boundary/runs/20261125T220305Z-abc123.jsonl",
            id="relative-xdg",
        ),
    ],
)
def test_default_log_path(env: dict[str, str], expected: str) -> None:
    """The log goes under $XDG_STATE_HOME when it is an absolute path, else under $HOME/.local/state."""
    assert default_log_path("abc123", env, NOW) == Path(expected)


def test_default_log_path_uses_utc() -> None:
    """The file name's timestamp is UTC whatever the zone of `now`."""
    now = datetime(2026, 11, 26, 0, 3, 5, tzinfo=timezone(timedelta(hours=2)))
    assert default_log_path("r", {"HOME": "/h"}, now).name == "20261125T220305Z-r.jsonl"


def test_default_log_path_needs_a_home() -> None:
    """With neither XDG_STATE_HOME nor HOME there is no default: BoundaryError says so."""
    with pytest.raises(BoundaryError, match="neither XDG_STATE_HOME nor HOME"):
        default_log_path("abc123", {}, NOW)


@pytest.mark.parametrize("run", ["", "../escape", "a/b", "a b", "x.jsonl"])
def test_default_log_path_refuses_unsafe_run_ids(run: str) -> None:
    """A run id that could leave the runs directory or confuse the name is a ValueError."""
    with pytest.raises(ValueError, match="run id"):
        default_log_path(run, {"HOME": "/h"}, NOW)


# --- AuditLog -------------------------------------------------------------------------------------------------


def test_audit_log_lines_are_readable_while_open(tmp_path: Path) -> None:
    """Each write is in the file as soon as `write` returns (tail -f sees it), one line per record."""
    path = tmp_path / "run.jsonl"
    log = AuditLog(path)
    try:
        log.write('{"n": 1}')
        assert path.read_text() == '{"n": 1}\n'
        log.write('{"n": 2}')
        assert path.read_text() == '{"n": 1}\n{"n": 2}\n'
    finally:
        log.close()


def test_audit_log_appends_to_an_existing_file(tmp_path: Path) -> None:
    """Opening an existing log appends; nothing written before is lost."""
    path = tmp_path / "run.jsonl"
    path.write_text("earlier\n")
    with AuditLog(path) as log:
        log.write("later")
    assert path.read_text() == "earlier\nlater\n"


def test_audit_log_file_is_private(tmp_path: Path) -> None:
    """A new log file is created mode 0600."""
    path = tmp_path / "run.jsonl"
    with AuditLog(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_audit_log_creates_private_parent_directories(tmp_path: Path) -> None:
    """Every missing parent directory is created mode 0700; existing ones are left alone."""
    path = tmp_path / "state" / "boundary" / "runs" / "run.jsonl"
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    with AuditLog(path) as log:
        assert log.path == path
    for directory in (tmp_path / "state", tmp_path / "state" / "boundary", path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before


def test_audit_log_round_trips_rendered_records(tmp_path: Path) -> None:
    """Rendered records, even with hostile paths, read back one JSON object per line."""
    path = tmp_path / "run.jsonl"
    paths = ["/ok", "/a\nb", "/\u2028", "/\udcff"]
    with AuditLog(path) as log:
        for p in paths:
            log.write(render(**record(path=p)))
    lines = path.read_text(encoding="ascii").splitlines()
    assert [json.loads(line)["path"] for line in lines] == paths


@pytest.mark.parametrize("relative", ["afile/run.jsonl", "afile/sub/run.jsonl"])
def test_audit_log_open_error_names_the_path(tmp_path: Path, relative: str) -> None:
    """A log that cannot be opened raises BoundaryError quoting the path and the OS reason (even for root: the
    parent is a regular file)."""
    (tmp_path / "afile").write_text("")
    path = tmp_path / relative
    with pytest.raises(BoundaryError) as raised:
        AuditLog(path)
    assert str(raised.value) == f"cannot open audit log '{path}': Not a directory"


@pytest.mark.parametrize("line", ["two\nlines", "cr\rline", "sep\u2028line", "", "trailing\n"])
def test_audit_log_refuses_anything_but_one_line(tmp_path: Path, line: str) -> None:
    """`write` takes exactly one line: anything a line reader would split is a ValueError, nothing is written."""
    path = tmp_path / "run.jsonl"
    with AuditLog(path) as log, pytest.raises(ValueError, match="one line"):
        log.write(line)
    assert path.read_text() == ""


def test_audit_log_write_after_close_raises(tmp_path: Path) -> None:
    """Writing to a closed log raises BoundaryError (a decision must never go unrecorded silently)."""
    log = AuditLog(tmp_path / "run.jsonl")
    log.close()
    with pytest.raises(BoundaryError, match="closed"):
        log.write("late")


def test_audit_log_close_is_idempotent(tmp_path: Path) -> None:
    """`close` may be called more than once."""
    log = AuditLog(tmp_path / "run.jsonl")
    log.close()
    log.close()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_audit_log_write_error_raises() -> None:
    """A write the kernel refuses (here: device full) raises BoundaryError naming the log: the run fails
    closed."""
    with AuditLog(Path("/dev/full")) as log, pytest.raises(BoundaryError) as raised:
        log.write("x")
    assert str(raised.value) == "cannot write audit log '/dev/full': No space left on device"


def test_a_log_path_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    """A workload of an earlier run may plant a link where the log goes (`--log` in its directory) to have
    boundary, perhaps as root, append to another file: the log is never opened through a link."""
    target = tmp_path / "crontab"
    target.write_text("untouched\n")
    (tmp_path / "audit.jsonl").symlink_to(target)
    with pytest.raises(BoundaryError, match=r"cannot open audit log '.*audit.jsonl'"):
        AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(OSError):
        open_log_file(tmp_path / "audit.jsonl")
    assert target.read_text() == "untouched\n"
