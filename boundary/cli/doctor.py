"""`boundary doctor`: the command line of `run.doctor`'s checks."""

from __future__ import annotations

import sys

import click


@click.command(short_help="Check that boundary can run here, with a fix for each problem.")
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
