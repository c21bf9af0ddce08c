"""Specification of reading audit logs back: strict records, problems as `FILE:LINE: why`, the runs' logs, and
following a log as it grows."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from boundary import audit
from boundary.errors import LogError
from boundary.logs.read import (
    FIELDS,
    Follower,
    Problem,
    Record,
    RunFile,
    collect,
    list_runs,
    newest_run,
    parse_line,
    parse_lines,
    parse_run_name,
    quote,
    read_log,
    runs_dir,
)

TS = datetime(2026, 11, 25, 22, 3, 5, 123000, tzinfo=UTC)


def line(**overrides: Any) -> str:
    """An audit line as `audit.render` writes it: an allowed GET, keywords override or add fields."""
    fields: dict[str, Any] = {
        "ts": TS,
        "run": "0123456789ab",
        "decision": "allow",
        "rule": "p.yaml:3",
        "reason": "allowed",
        "method": "GET",
        "scheme": "https",
        "host": "api.example.com",
        "port": 443,
        "path": "/v1/users",
        "status": 200,
    }
    return audit.render(**(fields | overrides))


def edited(**changes: Any) -> str:
    """An audit line with fields changed to any JSON value (`...` removes the field)."""
    fields = json.loads(line())
    for name, value in changes.items():
        if value is ...:
            del fields[name]
        else:
            fields[name] = value
    return json.dumps(fields)


# --- one line ---------------------------------------------------------------------------------------------------


def test_the_reader_knows_every_field_the_writer_writes() -> None:
    """`FIELDS` is `audit.AUDIT_FIELDS`, in order: a field added to the writer must be typed here too."""
    assert tuple(FIELDS) == audit.AUDIT_FIELDS


def test_records_are_frozen_and_hashable() -> None:
    """Frozen values (a later `learn` can put them in sets); `extra` does not take part in the hash."""
    record = parse_line(line(error="x"))
    assert isinstance(record, Record)
    assert len({record, record}) == 1
    with pytest.raises(AttributeError):
        record.host = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.extra["error"] = "y"  # type: ignore[index]


def test_a_rendered_line_reads_back_as_its_record() -> None:
    text = line()
    assert parse_line(text, "a.jsonl", 7) == Record(
        ts=TS,
        run="0123456789ab",
        decision="allow",
        rule="p.yaml:3",
        reason="allowed",
        method="GET",
        scheme="https",
        host="api.example.com",
        port=443,
        path="/v1/users",
        status=200,
        text=text,
        file="a.jsonl",
        line=7,
    )


def test_nulls_read_as_none() -> None:
    """A CONNECT's or a TLS failure's line: the nullable fields null."""
    record = parse_line(line(rule=None, method=None, host=None, port=None, path=None, status=None))
    assert isinstance(record, Record)
    assert (record.rule, record.method, record.host, record.port, record.path, record.status) == (None,) * 6


def test_an_unknown_field_is_kept_in_extra() -> None:
    """A newer boundary may add fields: they are kept, in order, as JSON values."""
    record = parse_line(line(error="upstream refused", bytes=12))
    assert isinstance(record, Record)
    assert dict(record.extra) == {"error": "upstream refused", "bytes": 12}


def test_ts_reads_as_utc_whatever_its_offset() -> None:
    record = parse_line(edited(ts="2026-11-25T23:03:05.123+01:00"))
    assert isinstance(record, Record)
    assert record.ts == TS and record.ts.tzinfo == UTC


def test_a_deny_line_is_denied() -> None:
    record = parse_line(line(decision="deny", reason="no-matching-rule", rule=None, status=403))
    assert isinstance(record, Record) and record.denied


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not JSON (Expecting value at column 1): 'not json'"),
        ("", "not JSON (Expecting value at column 1): ''"),
        ('{"ts": 1,', "not JSON (Expecting property name enclosed in double quotes at column 10): '{\"ts\": 1,'"),
        ("[1, 2]", "not a JSON object: '[1, 2]'"),
        ('"allow"', "not a JSON object: '\"allow\"'"),
        (edited(port=float("nan")), "not JSON: NaN is not a JSON number"),
        (
            edited(decision=...),
            'missing field \'decision\': \'{"ts": "2026-11-25T22:03:05.123Z", "run": "0123456789ab", "r\'...',
        ),
        (edited(port="443"), "field 'port': expected an integer or null, got \"443\""),
        (edited(port=True), "field 'port': expected an integer or null, got true"),
        (edited(status=200.0), "field 'status': expected an integer or null, got 200.0"),
        (edited(host=["a"]), "field 'host': expected a string or null, got [\"a\"]"),
        (edited(run=None), "field 'run': expected a string, got null"),
        (edited(decision="maybe"), 'field \'decision\': expected "allow" or "deny", got "maybe"'),
        (edited(ts="yesterday"), "field 'ts': not an RFC 3339 time with an offset: 'yesterday'"),
        (edited(ts="2026-11-25T22:03:05"), "field 'ts': not an RFC 3339 time with an offset: '2026-11-25T22:03:05'"),
        (line().replace('"run"', '"decision": "allow", "run"'), "field 'decision' given twice"),
        ("x" * 100, f"not JSON (Expecting value at column 1): '{'x' * 60}'..."),
        ("\x1b[2J", "not JSON (Expecting value at column 1): '\\x1b[2J'"),
    ],
)
def test_a_line_that_is_not_a_record_is_a_problem_quoting_it(text: str, why: str) -> None:
    """Not JSON, not an object, a standard field missing, of the wrong type or twice: `FILE:LINE: why`, the bad
    text quoted (escaped, cut at 60 characters)."""
    problem = parse_line(text, "a.jsonl", 3)
    assert problem == Problem("a.jsonl", 3, why)
    assert str(problem) == f"a.jsonl:3: {why}"


def test_a_wrong_value_is_quoted_as_json_cut_short() -> None:
    problem = parse_line(edited(host={"a": "b" * 100}))
    assert isinstance(problem, Problem)
    assert problem.why == 'field \'host\': expected a string or null, got {"a": "' + "b" * 53 + "..."


@pytest.mark.parametrize(("text", "quoted"), [("abc", "'abc'"), ("é\u2028", "'\\xe9\\u2028'"), ("ab" * 40, None)])
def test_quote_escapes_and_cuts(text: str, quoted: str | None) -> None:
    assert quote(text) == (quoted if quoted is not None else ascii(text[:60]) + "...")


# --- lines and files ----------------------------------------------------------------------------------------------


def test_lines_are_numbered_and_each_is_a_record_or_a_problem() -> None:
    lines = [f"{line()}\n".encode(), b"oops\n", f"{line(decision='deny')}\n".encode()]
    found = list(parse_lines("a.jsonl", lines))
    assert [type(item).__name__ for item in found] == ["Record", "Problem", "Record"]
    assert [item.line for item in found] == [1, 2, 3]
    assert found[1] == Problem("a.jsonl", 2, "not JSON (Expecting value at column 1): 'oops'")


def test_numbering_can_start_later() -> None:
    [found] = parse_lines("a.jsonl", [f"{line()}\n".encode()], first=10)
    assert found.line == 10


def test_a_cut_last_line_is_reported_truncated() -> None:
    """A run killed while writing leaves a last line without its newline: truncated, skipped."""
    cut = line()[:40]
    found = list(parse_lines("a.jsonl", [f"{line()}\n".encode(), cut.encode()]))
    assert found[1] == Problem(
        "a.jsonl", 2, f"truncated last line (a run killed while writing it?), skipped: {quote(cut)}", truncated=True
    )


def test_a_complete_last_line_without_its_newline_is_a_record() -> None:
    [found] = parse_lines("a.jsonl", [line().encode()])
    assert isinstance(found, Record)


def test_a_line_that_is_not_utf8_is_a_problem() -> None:
    [found] = parse_lines("a.jsonl", [b'{"ts": "\xff"}\n'])
    assert found == Problem("a.jsonl", 1, 'not UTF-8 (at byte 8): \'{"ts": "\\\\xff"}\'')


def test_read_log_reads_a_file_by_the_name_given(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(f"{line()}\n\u2028\n")
    records, problems = collect(read_log(path, "shown.jsonl"))
    assert [(r.file, r.line) for r in records] == [("shown.jsonl", 1)]
    assert [str(p) for p in problems] == ["shown.jsonl:2: not JSON (Expecting value at column 1): '\\u2028'"]


def test_a_line_split_only_by_a_unicode_separator_stays_one_line(tmp_path: Path) -> None:
    """Lines end at `\\n` only, as the writer writes them: U+2028 or a CR inside one never splits it."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"a\rb\xe2\x80\xa8c\n")
    assert [item.line for item in read_log(path)] == [1]


def test_a_missing_file_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"^cannot read audit log 'nope.jsonl': No such file or directory$"):
        list(read_log(tmp_path / "nope.jsonl", "nope.jsonl"))


def test_collect_keeps_records_and_problems_apart_in_order() -> None:
    a, b = parse_line(line()), parse_line("x")
    c = parse_line(line(run="r2"))
    assert collect([a, b, c]) == ([a, c], [b])


# --- the runs' logs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"XDG_STATE_HOME": "/xdg", "HOME": "/h"}, "/xdg/boundary/runs"),
        ({"XDG_STATE_HOME": "rel", "HOME": "/h"}, "/h/.local/state/boundary/runs"),
        ({"HOME": "/h"}, "/h/.local/state/boundary/runs"),
    ],
)
def test_runs_dir_is_where_runs_write_their_logs(env: dict[str, str], expected: str) -> None:
    assert runs_dir(env) == Path(expected)
    assert audit.default_log_path("abc", env, TS).parent == Path(expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("20261125T220305Z-abc123.jsonl", (datetime(2026, 11, 25, 22, 3, 5, tzinfo=UTC), "abc123")),
        ("20261125T220305Z-a_b-c.jsonl", (datetime(2026, 11, 25, 22, 3, 5, tzinfo=UTC), "a_b-c")),
        ("20261399T220305Z-abc.jsonl", None),
        ("20261125T220305Z-abc.json", None),
        ("20261125T220305Z-.jsonl", None),
        ("notes.txt", None),
    ],
)
def test_parse_run_name(name: str, expected: tuple[datetime, str] | None) -> None:
    found = parse_run_name(Path("/d", name))
    assert (None if found is None else (found.started, found.run)) == expected


def test_runs_are_listed_oldest_first_and_other_files_ignored(tmp_path: Path) -> None:
    for name in ("20261125T220305Z-b.jsonl", "20261124T000000Z-a.jsonl", "x.jsonl", "20261125T220305Z-a.jsonl"):
        (tmp_path / name).write_text("")
    (tmp_path / "20261126T000000Z-dir.jsonl").mkdir()
    assert [run.path.name for run in list_runs(tmp_path)] == [
        "20261124T000000Z-a.jsonl",
        "20261125T220305Z-a.jsonl",
        "20261125T220305Z-b.jsonl",
    ]


def test_no_runs_directory_is_no_runs(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "none") == []


def test_a_runs_directory_that_cannot_be_listed_is_a_log_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(LogError, match=r"^cannot list the runs' logs in '.*/file': Not a directory$"):
        list_runs(tmp_path / "file")


def test_newest_run_and_newest_of_a_run(tmp_path: Path) -> None:
    for name in ("20261125T220305Z-b.jsonl", "20261124T000000Z-a.jsonl", "20261123T000000Z-b.jsonl"):
        (tmp_path / name).write_text("")
    assert newest_run(tmp_path) == RunFile(
        datetime(2026, 11, 25, 22, 3, 5, tzinfo=UTC), "b", tmp_path / "20261125T220305Z-b.jsonl"
    )
    assert newest_run(tmp_path, "a").path.name == "20261124T000000Z-a.jsonl"


@pytest.mark.parametrize(
    ("run", "message"),
    [(None, "no run's log in '{}' "), ("zz", "no log of run 'zz' in '{}' ")],
)
def test_no_run_to_read_is_a_log_error(tmp_path: Path, run: str | None, message: str) -> None:
    with pytest.raises(LogError) as raised:
        newest_run(tmp_path, run)
    assert str(raised.value).startswith(message.format(tmp_path))


# --- following ----------------------------------------------------------------------------------------------------


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_a_follower_returns_what_each_poll_completes(tmp_path: Path) -> None:
    """Lines already there first, then each appended one; a partial line waits for its newline."""
    path = tmp_path / "a.jsonl"
    path.write_text(f"{line()}\n")
    follower = Follower(path)
    try:
        assert [r.line for r in follower.poll()[0]] == [1]
        assert follower.poll() == ([], [])
        second = line(decision="deny")
        append(path, second[:30])
        assert follower.poll() == ([], [])
        append(path, second[30:] + "\n")
        [record], notices = follower.poll()
        assert (record.line, record.text, notices) == (2, second, [])
    finally:
        follower.close()


def test_a_follower_reads_a_truncated_file_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(f"{line()}\n{line()}\n")
    follower = Follower(path, "a.jsonl")
    try:
        assert len(follower.poll()[0]) == 2
        path.write_text(f"{line(run='new')}\n")
        found, notices = follower.poll()
        assert [(r.line, r.run) for r in found] == [(1, "new")]  # type: ignore[union-attr]
        assert notices == ["a.jsonl: truncated; following it from its start"]
    finally:
        follower.close()


def test_a_follower_finishes_a_rotated_file_then_follows_the_new_one(tmp_path: Path) -> None:
    """Renamed away: what it got after the last poll is still read; a partial line left there is truncated."""
    path = tmp_path / "a.jsonl"
    path.write_text(f"{line()}\n")
    follower = Follower(path, "a.jsonl")
    try:
        follower.poll()
        append(path, f'{line(run="old")}\n{{"ts"')
        os.rename(path, tmp_path / "a.jsonl.1")
        assert [r.run for r in follower.poll()[0]] == ["old"]  # type: ignore[union-attr]
        assert follower.poll() == ([], [])  # no file at the path: waited for
        path.write_text(f"{line(run='new')}\n")
        found, notices = follower.poll()
        assert found[0] == Problem(
            "a.jsonl", 3, "truncated last line (a run killed while writing it?), skipped: '{\"ts\"'", truncated=True
        )
        assert [(r.line, r.run) for r in found[1:]] == [(1, "new")]  # type: ignore[union-attr]
        assert notices == ["a.jsonl: replaced by a new file; following that from its start"]
    finally:
        follower.close()


def test_a_follower_of_a_rotated_file_without_a_partial_line_reports_nothing_cut(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(f"{line()}\n")
    follower = Follower(path, "a.jsonl")
    try:
        follower.poll()
        os.rename(path, tmp_path / "a.jsonl.1")
        path.write_text("")
        assert follower.poll() == ([], ["a.jsonl: replaced by a new file; following that from its start"])
    finally:
        follower.close()


def test_a_path_that_can_no_longer_be_looked_up_is_a_log_error(tmp_path: Path) -> None:
    """Its directory replaced by a file: not a file that went away (waited for) but an error."""
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / "a.jsonl"
    path.write_text("")
    follower = Follower(path, "d/a.jsonl")
    try:
        os.rename(tmp_path / "d", tmp_path / "e")
        (tmp_path / "d").write_text("")
        with pytest.raises(LogError, match=r"^cannot read audit log 'd/a.jsonl': Not a directory$"):
            follower.poll()
    finally:
        follower.close()


def test_following_a_missing_file_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"^cannot read audit log '.*nope': No such file or directory$"):
        Follower(tmp_path / "nope")


def test_ts_of_other_offsets_compare_in_utc() -> None:
    """Records of logs written in different zones sort and filter as instants."""
    record = parse_line(edited(ts=(TS + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5))).isoformat()))
    assert isinstance(record, Record) and record.ts == TS + timedelta(hours=1)
