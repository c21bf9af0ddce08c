"""Command line. The one place where `BoundaryError` becomes `boundary: <message>` and exit 125."""

from __future__ import annotations

import os
import sys
import traceback

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


@main_group.command(epilog=RUN_EPILOG, context_settings={"ignore_unknown_options": True})
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
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    policy: str,
    log: str | None,
    resolve: tuple[str, ...],
    upstream_ca: tuple[str, ...],
    user: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND jailed: its only way out is the policy proxy."""
    from boundary import session

    code = session.run(
        session.RunOptions(policy=policy, argv=command, log=log, resolve=resolve, upstream_ca=upstream_ca, user=user)
    )
    sys.exit(code)


# --- boundary doctor -----------------------------------------------------------------------------------------


@main_group.command(short_help="Check that boundary can run here, with a fix for each problem.")
def doctor() -> None:
    """Check that boundary can run on this machine: Python and mitmproxy versions, kernel namespaces, user
    namespace restrictions, nft, the CA and trust store, and a real self-test jail on a local server.

    Prints one line per check (ok, warn or FAIL, what was found, how to fix it). Exit status: 0 when ready
    (warnings allowed), 1 when a check failed.
    """
    from boundary import doctor as checks

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
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_BOUNDARY_FAILED)
    except click.exceptions.Abort:
        print("boundary: aborted", file=sys.stderr)
        sys.exit(EXIT_BOUNDARY_FAILED)
    except BoundaryError as e:
        print(f"boundary: {e}", file=sys.stderr)
        sys.exit(EXIT_BOUNDARY_FAILED)
    except Exception as e:
        # A bug, not bad input: still one line and 125 (the jail is already gone); the trace on request.
        if os.environ.get("BOUNDARY_DEBUG"):
            traceback.print_exc()
        print(f"boundary: internal error: {type(e).__name__}: {e} (set BOUNDARY_DEBUG=1 for a trace)", file=sys.stderr)
        sys.exit(EXIT_BOUNDARY_FAILED)
