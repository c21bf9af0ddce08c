"""`boundary log`: audit logs as a table (or their lines as written, `--json`), filtered; `-f` follows one as it
grows, `--runs` lists the runs' logs. The reading and the rendering are `logs.read`'s and `logs.view`'s; this is
the shell: files, the clock, the terminal, stdout and stderr, the poll loop and its Ctrl-C."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import click

from boundary.errors import UsageError
from boundary.logs import read, view

EXIT_PROBLEMS: Final = 2
POLL_SECONDS: Final = 0.25

EPILOG = """\b
Examples:
  boundary log                       the newest run's log
  boundary log --deny --since 1h     what was denied in the last hour
  boundary log -f --host '*.github.com'
  boundary log --runs                every run's log: start, id, lines, denied
  boundary log --run 3f2a9c1b7d04    that run's log (from the runs' directory)
  boundary log --json --deny audit.jsonl | jq .host

\b
Without FILE: the newest run's log in $XDG_STATE_HOME/boundary/runs (or
~/.local/state/boundary/runs). Times are UTC. --since takes an age (30s, 10m,
2h, 1d) or an ISO time (UTC unless it has an offset).

\b
A line that is not an audit record (not JSON, a missing field, a value of the
wrong type, a last line cut short by a killed run) is reported on stderr as
`boundary: FILE:LINE: why`; every other line is still shown.

\b
Exit status: 0 every line read was a record; 2 some were not (reported);
125 a log could not be read, there is none, or bad usage.
"""


class _Output:
    """Where records and problems go: the table (or `--json` lines) on stdout, problems on stderr, counted."""

    def __init__(self, keep: view.Filter, as_json: bool, color: bool) -> None:
        self.keep = keep
        self.as_json = as_json
        self.table = view.Table(color=color)
        self.problems = 0

    def show(self, items: Iterable[read.Record | read.Problem]) -> None:
        records = []
        for item in items:
            if isinstance(item, read.Problem):
                self.problem(str(item))
            elif self.keep.matches(item):
                records.append(item)
        passed = "".join(record.text + "\n" for record in records)
        text = passed if self.as_json else self.table.render(records)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def problem(self, message: str) -> None:
        self.problems += 1
        self.notice(message)

    def notice(self, message: str) -> None:
        sys.stdout.flush()  # what was shown before it, first
        print(f"boundary: {message}", file=sys.stderr, flush=True)


def _files(files: tuple[str, ...], run_id: str | None) -> list[tuple[Path, str]]:
    """The logs to read, each with the name its messages show."""
    if files:
        return [(Path(name), name) for name in files]
    newest = read.newest_run(read.runs_dir(os.environ), run_id)
    return [(newest.path, str(newest.path))]


def _follow(path: Path, shown: str, out: _Output) -> None:
    """Show the log as it grows until Ctrl-C (or SIGTERM's default end)."""
    follower = read.Follower(path, shown)
    try:
        while True:
            found, notices = follower.poll()
            for notice in notices:
                out.notice(notice)
            out.show(found)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        pass  # the one way a follow ends: stop cleanly, with the exit status of what was read
    finally:
        follower.close()


def _list_runs(out: _Output) -> None:
    summaries = []
    for run in read.list_runs(read.runs_dir(os.environ)):
        lines = denied = 0
        for item in read.read_log(run.path):
            lines += 1
            if isinstance(item, read.Problem):
                out.problem(str(item))
            elif item.denied:
                denied += 1
        summaries.append(view.RunSummary(run, lines, denied))
    if out.as_json:
        sys.stdout.write("".join(view.run_json(summary) + "\n" for summary in summaries))
    else:
        sys.stdout.write(view.render_runs(summaries, out.table.color))


@click.command(epilog=EPILOG, short_help="Show audit logs as a table, filtered; follow one as it grows.")
@click.argument("files", nargs=-1, metavar="[FILE...]")
@click.option("-f", "--follow", is_flag=True, help="Keep reading the log as it grows (as tail -f); Ctrl-C stops.")
@click.option("--runs", "runs", is_flag=True, help="List the runs' logs: start, run id, lines, denied, path.")
@click.option("--json", "as_json", is_flag=True, help="Print the matching lines as written, not a table.")
@click.option("--deny", is_flag=True, help="Only denied requests.")
@click.option("--host", metavar="GLOB", help="Only hosts matching GLOB (fnmatch: * ? [..]), case-insensitive.")
@click.option("--run", "run_id", metavar="ID", help="Only run ID; without FILE, that run's log.")
@click.option("--since", metavar="AGE|TIME", help="Only records at or after: 30s, 10m, 2h, 1d or an ISO time.")
@click.option(
    "--color",
    type=click.Choice(view.COLOR_CHOICES),
    default="auto",
    hidden=True,
    help="Color the table: auto (a terminal, unless NO_COLOR is set), always or never.",
)
def log(
    files: tuple[str, ...],
    follow: bool,
    runs: bool,
    as_json: bool,
    deny: bool,
    host: str | None,
    run_id: str | None,
    since: str | None,
    color: view.ColorChoice,
) -> None:
    """Show audit logs (FILE..., default: the newest run's) as a table of time, decision, method, host, path,
    reason and rule, one line per decision."""
    if runs and (files or follow):
        raise UsageError("--runs lists the runs' logs: it takes no FILE and no --follow")
    if follow and len(files) > 1:
        raise UsageError(f"--follow follows one log, not {len(files)}")
    if isinstance(sys.stdout, io.TextIOWrapper):  # a character the terminal's encoding lacks is escaped
        sys.stdout.reconfigure(errors="backslashreplace")
    since_time = None if since is None else view.parse_since(since, datetime.now(UTC))
    keep = view.Filter(deny=deny, host=host, run=run_id, since=since_time)
    out = _Output(keep, as_json, view.use_color(color, sys.stdout.isatty(), os.environ))
    try:
        if runs:
            _list_runs(out)
        elif follow:
            [(path, shown)] = _files(files, run_id)
            _follow(path, shown, out)
        else:
            out.show([item for path, shown in _files(files, run_id) for item in read.read_log(path, shown)])
        sys.stdout.flush()
    except BrokenPipeError:
        # `boundary log | head`: the reader has seen enough. Nothing more can be flushed to it at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(EXIT_PROBLEMS if out.problems else 0)
