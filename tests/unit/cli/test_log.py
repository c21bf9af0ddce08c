"""Specification of `boundary log`'s command line: the table (with and without color), the filters, `--json`
passed through as written, `--runs`, problems as `boundary: FILE:LINE: why` with exit 2, and `-f` following a
log another thread appends to. Every case runs the real CLI in a subprocess on real files."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import tools
from tests.unit.logs.test_read import TS, line

ALLOW = line()
DENY = line(
    ts=TS + timedelta(seconds=1),
    decision="deny",
    reason="no-matching-rule",
    rule=None,
    method="POST",
    host="evil.test",
    path="/upload",
    status=403,
    run="r2",
)
TABLE = """\
TIME      DECISION  METHOD  HOST             PATH       REASON            RULE
22:03:05  allow     GET     api.example.com  /v1/users  allowed           p.yaml:3
22:03:06  deny      POST    evil.test        /upload    no-matching-rule  -
"""
B, G, R, X = "\x1b[1m", "\x1b[32m", "\x1b[1;31m", "\x1b[0m"
COLORED = (
    f"{B}TIME{X}      {B}DECISION{X}  {B}METHOD{X}  {B}HOST{X}             {B}PATH{X}       {B}REASON{X}"
    f"            {B}RULE{X}\n"
    f"22:03:05  {G}allow{X}     GET     api.example.com  /v1/users  allowed           p.yaml:3\n"
    f"22:03:06  {R}deny{X}      POST    evil.test        /upload    no-matching-rule  -\n"
)


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment, its state directory in `tmp_path`, without the debug switch or NO_COLOR."""
    env = {key: value for key, value in os.environ.items() if key not in ("BOUNDARY_DEBUG", "NO_COLOR")}
    return env | {"XDG_STATE_HOME": str(tmp_path / "state")} | extra


def boundary_log(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m boundary log ARGS` in `cwd`, its runs' logs under `cwd/state`."""
    return subprocess.run(
        [str(tools.venv_python()), "-m", "boundary", "log", *args],
        cwd=cwd,
        env=environment(cwd, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    """A log with one allowed and one denied line."""
    path = tmp_path / "audit.jsonl"
    path.write_text(f"{ALLOW}\n{DENY}\n")
    return path


def run_log(tmp_path: Path, started: str, run: str, text: str) -> Path:
    """A run's log in the runs' directory, as `boundary run` names it."""
    directory = tmp_path / "state" / "boundary" / "runs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started}-{run}.jsonl"
    path.write_text(text)
    return path


# --- help ---------------------------------------------------------------------------------------------------------


def test_help_has_examples_and_the_exit_status(tmp_path: Path) -> None:
    result = boundary_log("--help", cwd=tmp_path)
    assert result.returncode == 0
    words = " ".join(result.stdout.split())
    for option in ("-f, --follow", "--runs", "--json", "--deny", "--host GLOB", "--run ID", "--since AGE|TIME"):
        assert option in words
    assert "boundary log --deny --since 1h" in words
    assert "Exit status: 0 every line read was a record; 2 some were not (reported);" in words
    assert "--color" not in words  # for tests and scripts, not the help


def test_the_top_level_help_lists_log(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(tools.venv_python()), "-m", "boundary", "--help"], capture_output=True, text=True, check=False
    )
    assert "log Show audit logs as a table" in " ".join(result.stdout.split())


# --- the table ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (["--color", "never"], {}, TABLE),
        (["--color", "always"], {}, COLORED),
        (["--color", "always"], {"NO_COLOR": "1"}, COLORED),
        ([], {}, TABLE),  # auto, and stdout is a pipe
    ],
)
def test_a_log_is_shown_as_an_aligned_table(
    tmp_path: Path, audit: Path, flags: list[str], env: dict[str, str], expected: str
) -> None:
    result = boundary_log(*flags, str(audit), cwd=tmp_path, **env)
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")


def _rows(stdout: str) -> list[str]:
    return [row.split()[3] for row in stdout.splitlines()[1:]]


@pytest.mark.parametrize(
    ("flags", "hosts"),
    [
        (["--deny"], ["evil.test"]),
        (["--host", "*.EXAMPLE.com"], ["api.example.com"]),
        (["--host", "nothing.*"], []),
        (["--run", "r2"], ["evil.test"]),
        (["--since", "2026-11-25T22:03:06Z"], ["evil.test"]),
        (["--since", "1d"], []),  # TS is in the past: nothing in the last day
        (["--deny", "--host", "api.*"], []),
    ],
)
def test_filters_choose_the_rows(tmp_path: Path, audit: Path, flags: list[str], hosts: list[str]) -> None:
    result = boundary_log(*flags, "--color", "never", str(audit), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert _rows(result.stdout) == hosts


def test_json_passes_the_matching_lines_through_as_written(tmp_path: Path) -> None:
    """Not re-rendered: other spacing, key order and extra fields come out byte for byte."""
    compact = json.dumps(json.loads(DENY) | {"error": "x"}, separators=(",", ":"))
    path = tmp_path / "a.jsonl"
    path.write_text(f"{ALLOW}\n{compact}\n")
    result = boundary_log("--json", "--deny", str(path), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, compact + "\n", "")


def test_several_files_make_one_table(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(f"{ALLOW}\n")
    (tmp_path / "b.jsonl").write_text(f"{DENY}\n")
    result = boundary_log("--color", "never", "a.jsonl", "b.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, TABLE)


# --- the runs' logs -----------------------------------------------------------------------------------------------


def test_without_file_the_newest_runs_log_is_shown(tmp_path: Path) -> None:
    run_log(tmp_path, "20261125T220000Z", "old", f"{ALLOW}\n")
    run_log(tmp_path, "20261125T230000Z", "new", f"{DENY}\n")
    result = boundary_log("--color", "never", cwd=tmp_path)
    assert (result.returncode, _rows(result.stdout)) == (0, ["evil.test"])


def test_run_without_file_shows_that_runs_log(tmp_path: Path) -> None:
    run_log(tmp_path, "20261125T220000Z", "0123456789ab", f"{ALLOW}\n")
    run_log(tmp_path, "20261125T230000Z", "new", f"{DENY}\n")
    result = boundary_log("--run", "0123456789ab", "--color", "never", cwd=tmp_path)
    assert (result.returncode, _rows(result.stdout)) == (0, ["api.example.com"])


def test_no_run_to_show_is_one_error_line_and_125(tmp_path: Path) -> None:
    result = boundary_log(cwd=tmp_path)
    runs = tmp_path / "state" / "boundary" / "runs"
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr == (
        f"boundary: no run's log in '{runs}' (boundary run writes one there unless --log says otherwise)\n"
    )


def test_runs_lists_every_runs_log_with_its_counts(tmp_path: Path) -> None:
    first = run_log(tmp_path, "20261125T220000Z", "abc", f"{ALLOW}\n{DENY}\n{DENY}\n")
    second = run_log(tmp_path, "20261125T230000Z", "d", f"{ALLOW}\n")
    result = boundary_log("--runs", "--color", "never", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "STARTED              RUN  LINES  DENIED  PATH",
        f"2026-11-25 22:00:00  abc      3       2  {first}",
        f"2026-11-25 23:00:00  d        1       0  {second}",
    ]
    as_json = boundary_log("--runs", "--json", cwd=tmp_path)
    assert [json.loads(row)["denied"] for row in as_json.stdout.splitlines()] == [2, 0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runs", "a.jsonl"], "--runs lists the runs' logs: it takes no FILE and no --follow"),
        (["-f", "a.jsonl", "b.jsonl"], "--follow follows one log, not 2"),
        (["--since", "soon", "a.jsonl"], "--since 'soon': expected an age (30s, 10m, 2h, 1d) or an ISO time"),
        (["nope.jsonl"], "cannot read audit log 'nope.jsonl': No such file or directory"),
    ],
)
def test_what_cannot_be_done_is_one_error_line_and_125(tmp_path: Path, args: list[str], message: str) -> None:
    result = boundary_log(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr.startswith(f"boundary: {message}") and result.stderr.count("\n") == 1


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`boundary log | head -1`: the closed pipe is no error, and no traceback."""
    (tmp_path / "a.jsonl").write_text(f"{ALLOW}\n" * 5000)
    process = subprocess.Popen(
        [str(tools.venv_python()), "-m", "boundary", "log", "a.jsonl"],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"TIME")
    process.stdout.close()
    assert process.wait(timeout=WAIT) == 0
    assert process.stderr.read() == b""


# --- problems in the input ----------------------------------------------------------------------------------------


def test_bad_lines_are_reported_where_and_the_rest_is_shown_exit_2(tmp_path: Path) -> None:
    wrong = ALLOW.replace('"port": 443', '"port": "443"')
    (tmp_path / "a.jsonl").write_text(f"{ALLOW}\nnot json\n{wrong}\n{DENY}\n{ALLOW[:30]}")
    result = boundary_log("--color", "never", "a.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, TABLE)
    assert result.stderr.splitlines() == [
        "boundary: a.jsonl:2: not JSON (Expecting value at column 1): 'not json'",
        "boundary: a.jsonl:3: field 'port': expected an integer or null, got \"443\"",
        "boundary: a.jsonl:5: truncated last line (a run killed while writing it?), skipped: "
        '\'{"ts": "2026-11-25T22:03:05.12\'',
    ]


def test_json_reports_problems_too(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(f"[]\n{ALLOW}\n")
    result = boundary_log("--json", "a.jsonl", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, ALLOW + "\n")
    assert result.stderr == "boundary: a.jsonl:1: not a JSON object: '[]'\n"


# --- following ----------------------------------------------------------------------------------------------------

WAIT = 15.0  # seconds a followed line may take to show (the poll is 0.25 s)


class Following:
    """`boundary log -f FILE` in the background, its stdout lines collected by a thread."""

    def __init__(self, path: Path, cwd: Path) -> None:
        self.process = subprocess.Popen(
            [str(tools.venv_python()), "-m", "boundary", "log", "-f", "--color", "never", str(path)],
            cwd=cwd,
            env=environment(cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: Iterator[str]) -> None:
        for text in stream:
            self.lines.put(text.rstrip("\n"))

    def next_line(self) -> str:
        return self.lines.get(timeout=WAIT)

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: the exit status and stderr."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=WAIT)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def append_later(path: Path, text: str, delay: float = 0.3) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        with path.open("a") as f:
            f.write(text)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_follow_shows_lines_as_another_writer_appends_them(tmp_path: Path, audit: Path) -> None:
    """What is there, then each complete line appended (a partial one when it is completed); Ctrl-C ends it
    cleanly with 0."""
    following = Following(audit, tmp_path)
    try:
        assert [following.next_line() for _ in range(3)] == TABLE.splitlines()
        later = line(ts=TS + timedelta(seconds=2), host="later.example.com")
        append_later(audit, later[:25]).join()
        append_later(audit, later[25:] + "\n").join()
        assert following.next_line().split()[3] == "later.example.com"
        assert following.interrupt() == (0, "")
    finally:
        following.kill()


def test_follow_reads_a_truncated_log_from_its_start_and_reports_problems(tmp_path: Path, audit: Path) -> None:
    following = Following(audit, tmp_path)
    try:
        for _ in range(3):
            following.next_line()
        time.sleep(0.5)
        audit.write_text(f"{DENY}\nbad\n")
        assert following.next_line().split()[1] == "deny"
        code, stderr = following.interrupt()
        path = str(audit)
        assert (code, stderr.splitlines()) == (
            2,
            [
                f"boundary: {path}: truncated; following it from its start",
                f"boundary: {path}:2: not JSON (Expecting value at column 1): 'bad'",
            ],
        )
    finally:
        following.kill()


def test_follow_waits_for_a_log_that_is_still_empty(tmp_path: Path) -> None:
    """A run that has made no request yet: nothing shown, then the header with the first line."""
    path = tmp_path / "a.jsonl"
    path.write_text("")
    following = Following(path, tmp_path)
    try:
        append_later(path, f"{ALLOW}\n", delay=0.5).join()
        assert following.next_line().startswith("TIME")
        assert following.next_line().split()[1] == "allow"
        assert following.interrupt() == (0, "")
    finally:
        following.kill()


def test_the_newest_run_starts_now_and_is_followed(tmp_path: Path) -> None:
    """`boundary log -f` without FILE follows the newest run's log."""
    started = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    path = run_log(tmp_path, started, "0123456789ab", "")
    process = subprocess.Popen(
        [str(tools.venv_python()), "-m", "boundary", "log", "-f", "--json"],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        append_later(path, f"{ALLOW}\n", delay=0.5).join()
        assert process.stdout is not None
        assert process.stdout.readline() == ALLOW + "\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=WAIT) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
