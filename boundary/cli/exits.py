"""Exit statuses, and the one place a failure becomes `boundary: <message>` and its exit status: 125 for a
run (and doctor), 2 for the `policy` commands (their group is an `ErrorExitGroup`)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

import click

from boundary.errors import BoundaryError

EXIT_BOUNDARY_FAILED = 125
EXIT_POLICY_ERROR = 2


class CommandFailed(Exception):
    """A failure inside a group with its own error exit status; `main` reports `error` and exits with it."""

    def __init__(self, error: Exception, exit_code: int) -> None:
        super().__init__(error)
        self.error = error
        self.exit_code = exit_code


class ErrorExitGroup(click.Group):
    """A group whose failures (BoundaryError, usage errors, bugs) exit with `error_exit` instead of 125."""

    def __init__(self, *args: Any, error_exit: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_exit = error_exit

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.exceptions.Exit:  # --help
            raise
        except Exception as e:
            raise CommandFailed(e, self.error_exit) from e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, CommandFailed):
            raise
        except Exception as e:
            raise CommandFailed(e, self.error_exit) from e


def fail(error: Exception, exit_code: int) -> NoReturn:
    """Report a failure in one `boundary: ...` line (click's own format for usage errors) and exit."""
    if isinstance(error, click.ClickException):
        error.show()
    elif isinstance(error, click.exceptions.Abort):
        print("boundary: aborted", file=sys.stderr)
    elif isinstance(error, BoundaryError):
        print(f"boundary: {error}", file=sys.stderr)
    else:
        # A bug, not bad input: still one line and the error exit (the jail is already gone); the trace on request.
        if os.environ.get("BOUNDARY_DEBUG"):
            traceback.print_exception(error)
        print(
            f"boundary: internal error: {type(error).__name__}: {error} (set BOUNDARY_DEBUG=1 for a trace)",
            file=sys.stderr,
        )
    sys.exit(exit_code)
