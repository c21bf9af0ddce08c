"""Specification of what `boundary log` shows: filters, `--since`, color's rule, the table and the runs' list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from boundary.errors import UsageError
from boundary.logs.read import Record, RunFile, parse_line
from boundary.logs.view import (
    Filter,
    RunSummary,
    Table,
    parse_since,
    printable,
    render_runs,
    run_json,
    use_color,
)
from tests.unit.logs.test_read import TS, line

NOW = datetime(2026, 11, 25, 23, 0, 0, tzinfo=UTC)


def record(**overrides: Any) -> Record:
    found = parse_line(line(**overrides))
    assert isinstance(found, Record)
    return found


ALLOW = record()
DENY = record(
    ts=TS + timedelta(seconds=1),
    decision="deny",
    reason="no-matching-rule",
    rule=None,
    method="POST",
    host="Evil.Test",
    path="/upload",
    status=403,
    run="r2",
)

# --- filters ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep", "shown"),
    [
        (Filter(), [ALLOW, DENY]),
        (Filter(deny=True), [DENY]),
        (Filter(host="*.example.com"), [ALLOW]),
        (Filter(host="evil.*"), [DENY]),
        (Filter(host="EVIL.TEST"), [DENY]),
        (Filter(host="api.example.co?"), [ALLOW]),
        (Filter(host="example.com"), []),
        (Filter(run="r2"), [DENY]),
        (Filter(since=TS + timedelta(milliseconds=500)), [DENY]),
        (Filter(since=TS), [ALLOW, DENY]),
        (Filter(deny=True, host="api.*"), []),
    ],
)
def test_a_filter_keeps_the_records_all_its_conditions_match(keep: Filter, shown: list[Record]) -> None:
    assert [r for r in (ALLOW, DENY) if keep.matches(r)] == shown


def test_a_host_glob_never_matches_a_record_without_host() -> None:
    assert not Filter(host="*").matches(record(host=None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - timedelta(seconds=30)),
        ("10m", NOW - timedelta(minutes=10)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("2026-11-25T22:03:05Z", datetime(2026, 11, 25, 22, 3, 5, tzinfo=UTC)),
        ("2026-11-25T23:03:05+01:00", datetime(2026, 11, 25, 22, 3, 5, tzinfo=UTC)),
        ("2026-11-25 22:03", datetime(2026, 11, 25, 22, 3, tzinfo=UTC)),
        ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
    ],
)
def test_since_is_an_age_or_a_time_utc_unless_offset(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["10", "10y", "-1h", "yesterday", "", "1.5h"])
def test_a_bad_since_is_a_usage_error_quoting_it(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--since '.*': expected an age \(30s, 10m, 2h, 1d\) or an ISO time"):
        parse_since(text, NOW)


@pytest.mark.parametrize(
    ("choice", "isatty", "env", "expected"),
    [
        ("always", False, {"NO_COLOR": "1"}, True),
        ("never", True, {}, False),
        ("auto", True, {}, True),
        ("auto", False, {}, False),
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),
    ],
)
def test_color_when_asked_or_on_a_terminal_without_no_color(
    choice: Any, isatty: bool, env: dict[str, str], expected: bool
) -> None:
    assert use_color(choice, isatty, env) is expected


# --- the table ----------------------------------------------------------------------------------------------------

TABLE = """\
TIME      DECISION  METHOD  HOST             PATH       REASON            RULE
22:03:05  allow     GET     api.example.com  /v1/users  allowed           p.yaml:3
22:03:06  deny      POST    Evil.Test        /upload    no-matching-rule  -
"""

B, G, R, X = "\x1b[1m", "\x1b[32m", "\x1b[1;31m", "\x1b[0m"
COLORED = (
    f"{B}TIME{X}      {B}DECISION{X}  {B}METHOD{X}  {B}HOST{X}             {B}PATH{X}       {B}REASON{X}"
    f"            {B}RULE{X}\n"
    f"22:03:05  {G}allow{X}     GET     api.example.com  /v1/users  allowed           p.yaml:3\n"
    f"22:03:06  {R}deny{X}      POST    Evil.Test        /upload    no-matching-rule  -\n"
)


def test_the_table_is_aligned_with_a_header() -> None:
    assert Table().render([ALLOW, DENY]) == TABLE


def test_the_colored_table_paints_the_header_and_the_decisions_only() -> None:
    assert Table(color=True).render([ALLOW, DENY]) == COLORED


def test_rows_of_two_days_show_the_date() -> None:
    later = record(ts=TS + timedelta(days=1))
    assert Table().render([ALLOW, later]).splitlines()[1:] == [
        "2026-11-25 22:03:05  allow     GET     api.example.com  /v1/users  allowed  p.yaml:3",
        "2026-11-26 22:03:05  allow     GET     api.example.com  /v1/users  allowed  p.yaml:3",
    ]


def test_nothing_to_show_is_no_output_not_even_a_header() -> None:
    assert Table().render([]) == ""


def test_batches_keep_the_header_once_and_widths_only_grow() -> None:
    """As `-f` renders: a later, wider row widens what follows it, never what was shown."""
    table = Table()
    first = table.render([ALLOW])
    wide = record(host="a-much-longer-host.example.com")
    assert first.splitlines()[0].startswith("TIME")
    [row] = table.render([wide]).splitlines()
    assert row == "22:03:05  allow     GET     a-much-longer-host.example.com  /v1/users  allowed  p.yaml:3"
    assert table.render([DENY]).splitlines() == [
        "22:03:06  deny      POST    Evil.Test                       /upload    no-matching-rule  -"
    ]


def test_a_new_day_in_a_later_batch_adds_the_date_from_then_on() -> None:
    table = Table()
    table.render([ALLOW])
    [row] = table.render([record(ts=TS + timedelta(days=1))]).splitlines()
    assert row.startswith("2026-11-26 22:03:05  allow")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/a b", "/a b"),
        ("/\x1b[31mred", "/\\x1b[31mred"),
        ("/\u202eevil", "/\\u202eevil"),
        ("/caf\u00e9", "/caf\u00e9"),
        ("/a\\x1b", "/a\\\\x1b"),
        ("/\ud800", "/\\ud800"),
    ],
)
def test_cells_are_made_printable(text: str, shown: str) -> None:
    """A terminal sees no control or format character from the workload, and no forged escape."""
    assert printable(text) == shown
    assert shown in Table().render([record(path=text)])


# --- the runs -----------------------------------------------------------------------------------------------------

STARTED = datetime(2026, 11, 25, 22, 3, 5, tzinfo=UTC)
RUNS = [
    RunSummary(RunFile(STARTED, "abc123", Path("/s/20261125T220305Z-abc123.jsonl")), 12, 3),
    RunSummary(RunFile(STARTED + timedelta(hours=1), "d", Path("/s/20261125T230305Z-d.jsonl")), 1024, 0),
]


def test_the_runs_are_a_table_with_numbers_right_aligned() -> None:
    assert render_runs(RUNS) == (
        "STARTED              RUN     LINES  DENIED  PATH\n"
        "2026-11-25 22:03:05  abc123     12       3  /s/20261125T220305Z-abc123.jsonl\n"
        "2026-11-25 23:03:05  d        1024       0  /s/20261125T230305Z-d.jsonl\n"
    )


def test_the_colored_runs_paint_the_header() -> None:
    assert render_runs(RUNS[:1], color=True).splitlines()[0] == (
        f"{B}STARTED{X}              {B}RUN{X}     {B}LINES{X}  {B}DENIED{X}  {B}PATH{X}"
    )


def test_no_runs_is_the_header_alone() -> None:
    assert render_runs([]) == "STARTED  RUN  LINES  DENIED  PATH\n"


def test_a_run_as_json() -> None:
    assert run_json(RUNS[0]) == (
        '{"started": "2026-11-25T22:03:05.000Z", "run": "abc123", "path": "/s/20261125T220305Z-abc123.jsonl",'
        ' "lines": 12, "denied": 3}'
    )
