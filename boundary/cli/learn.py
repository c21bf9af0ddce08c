"""`boundary learn`: the command line of `logs.learn`, audit logs in, a commented policy out."""

from __future__ import annotations

from pathlib import Path

import click

from boundary.cli.exits import EXIT_POLICY_ERROR, CommandFailed
from boundary.errors import BoundaryError, LogError, UsageError

LEARN_EPILOG = """\b
Examples:
  boundary run --policy open.yaml --log run.jsonl -- agent   # a first run
  boundary learn run.jsonl -o policy.yaml
  boundary policy check --strict policy.yaml
  boundary learn new-run.jsonl --merge policy.yaml -o policy-next.yaml

\b
What the runs did is allowed, no more: one rule per host, port and paths, with
the methods seen on exactly those paths; `parent/*` only where two or more
siblings were seen. Review it before you enforce it.

\b
Exit status: 0 written; 2 a line that is not an audit record (FILE:LINE on
stderr; nothing written), nothing to learn, a bad --merge policy, or OUTPUT
exists (use --force).
"""


@click.command(epilog=LEARN_EPILOG, short_help="Write a policy that allows what audit logs show.")
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option("-o", "--output", required=True, metavar="OUTPUT", help="Where to write the policy ('-': stdout).")
@click.option("--merge", metavar="OLD", help="Extend this policy: include it, learn only what it does not allow.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def learn(logs: tuple[str, ...], output: str, merge: str | None, force: bool) -> None:
    """Write a YAML policy to OUTPUT that allows what the audit LOGs show was allowed, commented with counts
    and first and last times."""
    try:
        _learn(logs, output, merge, force)
    except BoundaryError as e:
        raise CommandFailed(e, EXIT_POLICY_ERROR) from e


def _learn(logs: tuple[str, ...], output: str, merge: str | None, force: bool) -> None:
    from boundary.logs import learn as learning
    from boundary.logs.read import collect, read_log
    from boundary.policy.load import load_policy
    from boundary.policy.matcher import Matcher

    known = Matcher(load_policy(merge)) if merge is not None else None
    records, problems = collect(item for log in logs for item in read_log(Path(log)))
    bad = [problem for problem in problems if not problem.truncated]
    for problem in problems:
        click.echo(f"boundary: {problem}{' (skipped)' if problem.truncated else ''}", err=True)
    if bad:
        raise LogError(f"{len(bad)} line(s) are not audit records: nothing written")
    merged = str(Path(merge).resolve()) if merge is not None else None
    result = learning.learn(records, list(logs), merge=merged, known=known)
    for why in result.skipped:
        click.echo(f"boundary: not learned: {why}", err=True)
    if result.requests == 0 and merge is None:
        raise LogError("no allowed request in the logs: nothing to learn, nothing written")
    if output == "-":
        click.echo(result.text, nl=False)
        return
    target = Path(output)
    if target.exists() and not force:
        raise UsageError(f"-o '{output}': exists; use --force to replace it")
    target.write_text(result.text)
    click.echo(f"boundary: {output}: {result.requests} requests learned", err=True)
