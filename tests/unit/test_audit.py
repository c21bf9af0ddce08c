"""Specification of the audit log: record rendering, the default path, and the append-only file."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from boundary.audit import (
    AUDIT_FIELDS,
    AuditLog,
    LinkRefused,
    LinkTrust,
    Replaced,
    default_log_path,
    format_ts,
    new_run_id,
    open_directory,
    path_names,
    render,
    replaced_message,
)
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


def test_observers_get_each_line_once_it_is_written(tmp_path: Path) -> None:
    """An observer (the run's tally) gets every line written after it was added, in order, once the line is in
    the file; lines written before it are not replayed."""
    path = tmp_path / "run.jsonl"
    seen: list[tuple[str, str]] = []
    with AuditLog(path) as log:
        log.write("before")
        log.observe(lambda line: seen.append((line, path.read_text().splitlines()[-1])))
        log.write("one")
        log.write("two")
    assert seen == [("one", "one"), ("two", "two")]


def test_an_observer_sees_no_line_that_was_refused(tmp_path: Path) -> None:
    """A line `write` refuses (not one line, or a closed log) reaches no observer."""
    seen: list[str] = []
    log = AuditLog(tmp_path / "run.jsonl")
    log.observe(seen.append)
    with pytest.raises(ValueError, match="one line"):
        log.write("a\nb")
    log.close()
    with pytest.raises(BoundaryError, match="closed"):
        log.write("late")
    assert seen == []


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
    with pytest.raises(BoundaryError) as raised:
        AuditLog(tmp_path / "audit.jsonl")
    path = tmp_path / "audit.jsonl"
    assert str(raised.value) == (
        f"cannot open audit log '{path}': '{path}' is a symbolic link, and a log is never opened through one"
    )
    assert target.read_text() == "untouched\n"


@pytest.mark.parametrize("relative", ["sub/..", "sub/../.."])
def test_a_log_path_that_names_a_directory_is_refused(tmp_path: Path, relative: str) -> None:
    """`--log DIR/..` names no file: refused before anything is made."""
    with pytest.raises(BoundaryError, match="names a directory, not a file"):
        AuditLog(tmp_path / relative)
    assert not (tmp_path / "sub").exists()


# --- the log's place: links on the way ------------------------------------------------------------------------

ROOT_ONLY = stat.S_IFDIR | 0o755


@pytest.mark.parametrize(
    ("workload_uid", "link_uid", "directory_uid", "directory_mode", "refusal"),
    [
        pytest.param(1000, 0, 0, ROOT_ONLY, None, id="root-link-in-root-only-directory"),
        pytest.param(1000, 0, 0, stat.S_IFDIR | 0o700, None, id="root-link-in-private-root-directory"),
        pytest.param(1000, 1000, 0, ROOT_ONLY, "owned by uid 1000", id="the-invokers-own-link"),
        pytest.param(65534, 1000, 0, ROOT_ONLY, "owned by uid 1000", id="another-users-link"),
        pytest.param(1000, 0, 1000, stat.S_IFDIR | 0o755, "in a directory owned by uid 1000", id="users-directory"),
        pytest.param(
            1000, 0, 0, stat.S_IFDIR | 0o775, "in a directory that others can write (mode 775)", id="group-writable"
        ),
        pytest.param(
            1000, 0, 0, stat.S_IFDIR | 0o1777, "in a directory that others can write (mode 1777)", id="like-tmp"
        ),
        pytest.param(
            0, 0, 0, ROOT_ONLY, "and the jailed command runs as root, which could have made it", id="root-workload"
        ),
    ],
)
def test_a_link_is_followed_only_if_the_jailed_command_cannot_have_made_it(
    workload_uid: int, link_uid: int, directory_uid: int, directory_mode: int, refusal: str | None
) -> None:
    """Only root's links in directories only root may write, and never while the command runs as root (it then
    writes whatever root owns). Rootless, the command runs as the invoker: the invoker's links are not trusted."""
    assert LinkTrust(workload_uid).refusal(link_uid, directory_uid, directory_mode) == refusal


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("/var/tmp/x", ["var", "tmp", "x"]),
        ("a//b/./c/", ["a", "b", "c"]),
        ("../a/..", ["..", "a", ".."]),
        ("/", []),
        (".", []),
    ],
)
def test_a_walk_takes_every_name_but_empty_ones_and_dots(path: str, names: list[str]) -> None:
    """`..` is kept: it is walked physically, from the directory the walk holds."""
    assert path_names(path) == names


def test_a_walk_makes_missing_directories_private_and_names_the_real_place(tmp_path: Path) -> None:
    """Missing directories are made 0700; the walk's canonical path is the directory's real one."""
    fd, canonical = open_directory(f"{tmp_path}/a/b/../c", LinkTrust(12345), create=True)
    try:
        assert canonical == str(tmp_path.resolve() / "a" / "c")
        assert os.path.samestat(os.fstat(fd), os.stat(tmp_path / "a" / "c"))
    finally:
        os.close(fd)
    for made in ("a", "a/b", "a/c"):
        assert stat.S_IMODE((tmp_path / made).stat().st_mode) == 0o700


def test_a_walk_without_create_makes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_directory(str(tmp_path / "a" / "b"), LinkTrust(12345))
    assert not (tmp_path / "a").exists()


def test_a_relative_walk_starts_at_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--log logs/audit.jsonl`: from the working directory, whose real path the canonical one starts with."""
    (tmp_path / "logs").mkdir()
    monkeypatch.chdir(tmp_path)
    fd, canonical = open_directory("logs", LinkTrust(12345))
    os.close(fd)
    assert canonical == str(tmp_path.resolve() / "logs")


def _shared(tmp_path: Path) -> Path:
    """A directory anyone may write (as a workload's would be): no link in it is trusted, whoever owns it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    return shared


def test_a_planted_link_on_the_way_is_refused_naming_it(tmp_path: Path) -> None:
    """A directory on the way that is a link the command could have made (here: in a directory anyone may
    write) is refused with the path and the component; nothing is made where it points."""
    shared = _shared(tmp_path)
    target = tmp_path / "root-only"
    target.mkdir(mode=0o700)
    (shared / "logs").symlink_to(target)
    path = shared / "logs" / "new" / "audit.jsonl"
    with pytest.raises(BoundaryError) as raised:
        AuditLog(path, LinkTrust(12345))
    message = str(raised.value)
    assert message.startswith(f"cannot open audit log '{path}': '{shared / 'logs'}' is a symbolic link ")
    assert "boundary follows a link on a log's path only if the jailed command cannot have made it" in message
    assert list(target.iterdir()) == []


def test_a_planted_link_is_refused_however_far_up_it_is(tmp_path: Path) -> None:
    """Not only the log's own directory: any component, also one reached through `..`."""
    shared = _shared(tmp_path)
    (tmp_path / "elsewhere" / "x").mkdir(parents=True)
    (shared / "up").symlink_to(tmp_path / "elsewhere" / "x")
    with pytest.raises(LinkRefused) as raised:
        open_directory(f"{shared}/up/../x", LinkTrust(12345), create=True)
    assert raised.value.component == str(shared / "up")
    assert not (tmp_path / "elsewhere" / "x" / "x").exists()


def test_a_link_inside_a_links_target_is_judged_too(tmp_path: Path) -> None:
    """A trusted link's target is walked like the rest: a planted link further on is still refused."""
    if os.getuid() != 0:
        pytest.skip("needs root to own a trusted link")
    shared = _shared(tmp_path)
    (shared / "inner").symlink_to(tmp_path)
    trusted = tmp_path / "trusted"
    trusted.symlink_to(shared / "inner")  # root's, in a root-only directory
    tmp_path.chmod(0o755)
    with pytest.raises(LinkRefused) as raised:
        open_directory(str(trusted), LinkTrust(12345))
    assert raised.value.component == str(shared / "inner")


def test_roots_link_in_a_root_only_directory_is_followed(tmp_path: Path) -> None:
    """/var/run -> /run, /home -> /var/home: root made them where only root writes; the walk follows them and
    names the real place."""
    if os.getuid() != 0:
        pytest.skip("needs root to own a trusted link")
    tmp_path.chmod(0o755)
    (tmp_path / "real" / "logs").mkdir(parents=True)
    (tmp_path / "link").symlink_to("real")
    with AuditLog(tmp_path / "link" / "logs" / "audit.jsonl", LinkTrust(12345)) as log:
        assert log.directory == str(tmp_path.resolve() / "real" / "logs")
        assert log.canonical == str(tmp_path.resolve() / "real" / "logs" / "audit.jsonl")
    assert (tmp_path / "real" / "logs" / "audit.jsonl").exists()


@pytest.mark.skipif(not os.path.islink("/var/run"), reason="/var/run is not a link here")
def test_the_systems_var_run_link_is_followed_unless_the_command_runs_as_root() -> None:
    """The distribution's own /var/run -> /run (root's, in /var): followed for a command of another user, refused
    when the command runs as root (it could have made such a link itself)."""
    fd, canonical = open_directory("/var/run", LinkTrust(65534))
    os.close(fd)
    assert canonical == os.path.realpath("/var/run")
    with pytest.raises(LinkRefused, match="runs as root"):
        open_directory("/var/run", LinkTrust(0))


def test_a_loop_of_links_ends(tmp_path: Path) -> None:
    """Links that lead to each other end the walk with ELOOP after `MAX_LINKS`."""
    if os.getuid() != 0:
        pytest.skip("needs root to own trusted links")
    tmp_path.chmod(0o755)
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as raised:
        open_directory(str(tmp_path / "a"), LinkTrust(12345))
    assert raised.value.errno == errno.ELOOP


def test_a_file_on_the_way_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        open_directory(str(tmp_path / "f" / "x"), LinkTrust(12345))


# --- the log's place: kept, and checked at the end -------------------------------------------------------------


def test_a_file_opened_beside_the_log_is_in_its_directory(tmp_path: Path) -> None:
    """The proxy log is opened in the directory the log's walk holds, 0600, and the caller owns it."""
    with AuditLog(tmp_path / "audit.jsonl") as log:
        fd = log.open_beside("audit.proxy.log", "proxy log")
        os.write(fd, b"diagnostics\n")
        os.close(fd)
    beside = tmp_path / "audit.proxy.log"
    assert beside.read_text() == "diagnostics\n"
    assert stat.S_IMODE(beside.stat().st_mode) == 0o600


def test_a_file_beside_that_is_a_link_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "audit.proxy.log").symlink_to(tmp_path / "elsewhere")
    with AuditLog(tmp_path / "audit.jsonl") as log, pytest.raises(BoundaryError) as raised:
        log.open_beside("audit.proxy.log", "proxy log")
    assert str(raised.value).startswith(f"cannot open the proxy log '{tmp_path / 'audit.proxy.log'}': ")
    assert not (tmp_path / "elsewhere").exists()


def test_a_log_left_in_place_is_not_replaced(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "logs" / "audit.jsonl") as log:
        os.close(log.open_beside("audit.proxy.log", "proxy log"))
        log.write("line")
        assert log.replaced() == []


def test_a_log_whose_directory_was_renamed_and_remade_is_replaced(tmp_path: Path) -> None:
    """The attack: rename the log's directory away, make a new one with a forged log at the same path. The
    path no longer leads to the file the run wrote, and the report says where that file is now."""
    logs = tmp_path / "logs"
    with AuditLog(logs / "audit.jsonl") as log:
        os.close(log.open_beside("audit.proxy.log", "proxy log"))
        log.write("real")
        logs.rename(tmp_path / "logs.old")
        logs.mkdir()
        (logs / "audit.jsonl").write_text("forged\n")
        (logs / "audit.proxy.log").write_text("forged\n")
        assert log.replaced() == [
            Replaced("audit log", logs / "audit.jsonl", str(tmp_path.resolve() / "logs.old" / "audit.jsonl")),
            Replaced("proxy log", logs / "audit.proxy.log", str(tmp_path.resolve() / "logs.old" / "audit.proxy.log")),
        ]


def test_a_log_that_was_removed_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        path.unlink()
        [found] = log.replaced()
    assert found.path == path and found.now == f"{path.resolve()} (deleted)"


def test_a_log_whose_directory_became_a_planted_link_is_replaced(tmp_path: Path) -> None:
    """A link now on the way, even to the very same file, is not the path the run was given."""
    shared = _shared(tmp_path)
    (shared / "real").mkdir()
    with AuditLog(shared / "logs" / "audit.jsonl", LinkTrust(12345)) as log:
        (shared / "logs").rename(shared / "real" / "logs")
        (shared / "logs").symlink_to(shared / "real" / "logs")
        assert [found.what for found in log.replaced()] == ["audit log"]


def test_only_the_replaced_file_is_reported(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.jsonl") as log:
        os.close(log.open_beside("audit.proxy.log", "proxy log"))
        (tmp_path / "audit.proxy.log").rename(tmp_path / "moved.log")
        assert [found.what for found in log.replaced()] == ["proxy log"]


def test_replaced_after_close_raises(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.close()
    with pytest.raises(BoundaryError, match="closed"):
        log.replaced()


def test_the_replaced_message_says_what_where_and_how_the_command_ended() -> None:
    replaced = [
        Replaced("audit log", Path("/w/logs/audit.jsonl"), "/w/logs.old/audit.jsonl"),
        Replaced("proxy log", Path("/w/logs/audit.proxy.log"), None),
    ]
    assert replaced_message(replaced, 0) == (
        "audit log '/w/logs/audit.jsonl' was replaced during the run; the run's log is not at that path: the file"
        " it wrote is now '/w/logs.old/audit.jsonl'; proxy log '/w/logs/audit.proxy.log' was replaced during the"
        " run; the run's log is not at that path: the file it wrote is gone (the command exited with 0)"
    )
    assert replaced_message(replaced[:1], None).endswith("'/w/logs.old/audit.jsonl'")
