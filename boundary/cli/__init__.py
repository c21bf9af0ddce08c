"""Command line. The one place where `BoundaryError` becomes `boundary: <message>` and exit 125 (2 for the
`policy` commands)."""

from __future__ import annotations

import io
import logging
import os
import sys
import traceback
from typing import Any, NoReturn

import click

from boundary import __version__
from boundary.errors import BoundaryError

EXIT_BOUNDARY_FAILED = 125

RUN_EPILOG = """\b
Examples:
  boundary run --policy policies/claude-code.yaml -- claude
  boundary run --policy p.yaml --log audit.jsonl -- curl https://example.com/
  boundary run --policy p.yaml --resolve api.example.com:443:127.0.0.1:8443 \\
               --upstream-ca test-ca.pem -- python agent.py
  boundary run --policy p.yaml --bind /tmp/data --bind /run/shared:ro -- agent

\b
The jail hides /tmp, /run, /var/run, /dev/shm and $XDG_RUNTIME_DIR behind empty
directories (host unix sockets live there); the working directory stays
visible if it lies inside one of them; --bind shows other paths again.

\b
Exit status: the command's own; 128+N if it died from signal N;
125 if boundary itself failed (bad policy, bad option, jail set-up).
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="boundary")
def main_group() -> None:
    """boundary: run a command whose only way to the network is a policy-checking proxy.

    Every HTTP(S) request the command makes is checked against a YAML allowlist (host, port, method, path)
    and written to an audit log as one JSON line; everything else is denied.
    """


@main_group.command(epilog=RUN_EPILOG, context_settings={"allow_interspersed_args": False})
@click.option("--policy", "-p", required=True, metavar="FILE", help="YAML allowlist (see README: Policy).")
@click.option(
    "--log",
    metavar="FILE",
    help="Append one JSON line per decision here (default: a per-run file under $XDG_STATE_HOME/boundary).",
)
@click.option(
    "--resolve",
    multiple=True,
    metavar="HOST:PORT:ADDR[:PORT]",
    help="Dial ADDR (and PORT) for HOST:PORT instead of asking DNS. Repeatable.",
)
@click.option(
    "--upstream-ca", multiple=True, metavar="FILE", help="Also trust this CA (PEM) for upstream servers. Repeatable."
)
@click.option("--user", metavar="NAME", help="As root: run the command as this user (default: $SUDO_USER or root).")
@click.option(
    "--bind",
    "binds",
    multiple=True,
    metavar="PATH[:ro]",
    help="Show host PATH at the same place in the jail (read-write; ':ro' read-only), e.g. a directory under"
    " /tmp or /run, which the jail hides. Repeatable.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    policy: str,
    log: str | None,
    resolve: tuple[str, ...],
    upstream_ca: tuple[str, ...],
    user: str | None,
    binds: tuple[str, ...],
    command: tuple[str, ...],
) -> None:
    """Run COMMAND jailed: its only way out is the policy proxy."""
    from boundary.run import session

    code = session.run(
        session.RunOptions(
            policy=policy, argv=command, log=log, resolve=resolve, upstream_ca=upstream_ca, user=user, binds=binds
        )
    )
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, which costs every run ~0.1 s (modules, the mitmproxy import
    thread that may still be running). What must reach disk is flushed first; audit lines are never buffered."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- boundary policy: tools for policy authors (exit 0/1/2, not 125) -----------------------------------------

EXIT_POLICY_ERROR = 2

POLICY_EPILOG = """\b
Examples:
  boundary policy check policies/*.yaml --strict
  boundary policy explain p.yaml -X POST https://api.example.com/v1/upload
  boundary policy test p.yaml cases.yaml
  boundary policy schema > boundary-policy.schema.json

\b
Exit status: 0 valid / allowed / every case passed; 1 denied / a case failed;
2 bad policy, URL or cases file (one `boundary: ...` line), or bad usage.
"""

CHECK_EPILOG = """\b
Examples:
  boundary policy check p.yaml
  boundary policy check --strict policies/*.yaml

\b
Errors read `FILE:LINE: key.path: message`, warnings `FILE:LINE: warning: message`.
Exit status: 0 if every file is valid (and, with --strict, has no warning), else 2.
"""

EXPLAIN_EPILOG = """\b
Examples:
  boundary policy explain p.yaml https://api.example.com/v1/users
  boundary policy explain p.yaml -X DELETE 'https://api.example.com/v1/a/%2e%2e/b'
  boundary policy explain p.yaml --json https://api.example.com:8443/ | jq .reason

\b
Exit status: 0 allowed, 1 denied, 2 bad policy or URL.
"""

TEST_EPILOG = """\b
CASES is a YAML list; each case has `url` and `expect` (allow or deny), and
optionally `method` (default GET), `reason` (e.g. path-not-allowed) and `name`:
  - {url: "https://api.example.com/v1/users", expect: allow}
  - {method: DELETE, url: "https://api.example.com/v1/users", expect: deny}
  - {url: "https://api.example.com/v1/%2e%2e/admin", expect: deny, reason: path-not-allowed}

\b
Exit status: 0 every case passed, 1 a case failed, 2 bad policy or cases file.
"""


class _CommandFailed(Exception):
    """A failure inside a group with its own error exit status; `main` reports `error` and exits with it."""

    def __init__(self, error: Exception, exit_code: int) -> None:
        super().__init__(error)
        self.error = error
        self.exit_code = exit_code


class _ErrorExitGroup(click.Group):
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
            raise _CommandFailed(e, self.error_exit) from e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, _CommandFailed):
            raise
        except Exception as e:
            raise _CommandFailed(e, self.error_exit) from e


@main_group.group(cls=_ErrorExitGroup, error_exit=EXIT_POLICY_ERROR, epilog=POLICY_EPILOG)
def policy() -> None:
    """Check, explain and test policy files, without starting a jail."""
    # Output quotes input (made printable by policy.tool); a character the terminal's encoding lacks is escaped.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


@policy.command(epilog=CHECK_EPILOG, short_help="Validate policy files and lint their rules.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--strict", is_flag=True, help="Treat lint warnings (shadowed, duplicate, dead rules) as errors.")
def check(files: tuple[str, ...], strict: bool) -> None:
    """Validate each policy FILE (and what it includes) and warn about rules that can never matter."""
    from boundary.policy import tool
    from boundary.policy.load import load_policy

    results = [tool.check(path, load_policy, strict=strict) for path in files]
    click.echo("".join(result.text for result in results), nl=False)
    sys.exit(0 if all(result.ok for result in results) else EXIT_POLICY_ERROR)


@policy.command(epilog=EXPLAIN_EPILOG, short_help="Show how a policy decides one request.")
@click.argument("file", metavar="FILE")
@click.argument("url", metavar="URL")
@click.option(
    "-X", "--request", "method", default="GET", show_default=True, metavar="METHOD", help="The HTTP method, as sent."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def explain(file: str, url: str, method: str, as_json: bool) -> None:
    """Show how the policy in FILE decides METHOD URL: allow or deny, the reason, the rule (id and FILE:LINE)
    and the request as checked (normalized host and path, port; the path forwarded upstream, or why it is
    ambiguous).

    URL is taken as a client sends it: http or https (default ports 80 and 443), the path and query exactly as
    typed (quote it in the shell). This is the policy matcher's decision for the URL alone: the proxy also
    denies connections to IP addresses and requests whose TLS SNI and Host header name different hosts, which
    a URL cannot show.
    """
    from boundary.policy import tool
    from boundary.policy.load import load_policy
    from boundary.policy.matcher import Matcher

    matcher = Matcher(load_policy(file))
    explanation = tool.explain(matcher, tool.request_for(method, url), url)
    render = tool.render_json if as_json else tool.render_text
    click.echo(render(explanation), nl=False)
    sys.exit(0 if explanation.decision.allowed else 1)


@policy.command(epilog=TEST_EPILOG, short_help="Check a table of expected decisions against a policy.")
@click.argument("file", metavar="FILE")
@click.argument("cases", metavar="CASES")
def test(file: str, cases: str) -> None:
    """Decide every case in CASES (a YAML file) with the policy in FILE; print each mismatch as
    `CASES:LINE: METHOD URL: expected ..., got ...` and a summary `N cases, M failed`."""
    from boundary.errors import CasesError
    from boundary.policy import tool
    from boundary.policy.load import load_policy, read_text
    from boundary.policy.matcher import Matcher

    matcher = Matcher(load_policy(file))
    text = read_text(cases, "cases", CasesError)
    outcomes = tool.run_cases(matcher, tool.parse_cases(text, cases))
    click.echo(tool.render_outcomes(outcomes, cases), nl=False)
    sys.exit(0 if all(outcome.passed for outcome in outcomes) else 1)


@policy.command(short_help="Print the JSON Schema of the policy format.")
def schema() -> None:
    """Print the JSON Schema of the policy format (for editors: `# yaml-language-server: $schema=FILE`)."""
    from boundary.policy.schema import policy_json_schema_text

    click.echo(policy_json_schema_text(), nl=False)


# --- boundary doctor -----------------------------------------------------------------------------------------


@main_group.command(short_help="Check that boundary can run here, with a fix for each problem.")
def doctor() -> None:
    """Check that boundary can run on this machine: Python and mitmproxy versions, kernel namespaces, user
    namespace restrictions, nft, the CA and trust store, and a real self-test jail on a local server.

    Prints one line per check (ok, warn or FAIL, what was found, how to fix it). Exit status: 0 when ready
    (warnings allowed), 1 when a check failed.
    """
    from boundary.run import doctor as checks

    results = []
    for check, result in checks.run_checks(checks.CHECKS):
        click.echo(checks.render(check.name, result))
        results.append(result)
    click.echo(checks.summary(results))
    sys.exit(checks.exit_code(results))


def main() -> None:
    try:
        main_group.main(standalone_mode=False, prog_name="boundary")
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except _CommandFailed as e:
        _fail(e.error, e.exit_code)
    except Exception as e:
        _fail(e, EXIT_BOUNDARY_FAILED)


def _fail(error: Exception, exit_code: int) -> NoReturn:
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
