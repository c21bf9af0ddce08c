"""`boundary run`: the command line of a run; `run.session` does the work."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import click

RUN_EPILOG = """\b
Examples:
  boundary run --policy policies/claude-code.yaml -- claude
  boundary run --policy p.yaml --log audit.jsonl -- curl https://example.com/
  boundary run --policy p.yaml --resolve api.example.com:443:127.0.0.1:8443 \\
               --upstream-ca test-ca.pem -- python agent.py
  boundary run --policy p.yaml --bind /tmp/data --bind /run/shared:ro -- agent
  boundary run --fail-on-deny --policy p.yaml -- npm test      # in CI
  boundary run --quiet --policy p.yaml -- make

\b
At the end boundary prints a summary on stderr: how many requests were
allowed and denied, the most denied hosts, and a rule that would allow
each (the 403's hint), e.g.
  boundary: 1 allowed, 2 denied: denied.test:443 (2)
  boundary: to allow denied.test:443, add to the policy's allow list:
            {domain: denied.test, methods: [GET], paths: ["/hello"]}
--quiet prints none of it (nor the start and audit log lines); errors
and warnings still show. When $GITHUB_STEP_SUMMARY names a file (GitHub
Actions sets it), boundary appends the same as Markdown: the counts and
a table of the denied requests (method, host, path without the query,
reason, count, a rule to allow each). A file that cannot be written is
said once on stderr and changes nothing else.

\b
The jail hides /tmp, /run, /var/run, /dev/shm and $XDG_RUNTIME_DIR behind empty
directories (host unix sockets live there); the working directory stays
visible if it lies inside one of them; --bind shows other paths again.

\b
Exit status: the command's own; 128+N if it died from signal N;
125 if boundary itself failed (bad policy, bad option, jail set-up);
3 with --fail-on-deny, if the command exited 0 but a request was denied
(a command's own non-zero status always wins).
"""


# The options `run` and `proxy` share: the same policy, audit log and upstream settings.
POLICY_OPTION = click.option(
    "--policy", "-p", required=True, metavar="FILE", help="YAML allowlist (see README: Policy)."
)
LOG_OPTION = click.option(
    "--log",
    metavar="FILE",
    help="Append one JSON line per decision here (default: a per-run file under $XDG_STATE_HOME/boundary).",
)
RESOLVE_OPTION = click.option(
    "--resolve",
    multiple=True,
    metavar="HOST:PORT:ADDR[:PORT]",
    help="Dial ADDR (and PORT) for HOST:PORT instead of asking DNS. Repeatable.",
)
UPSTREAM_CA_OPTION = click.option(
    "--upstream-ca", multiple=True, metavar="FILE", help="Also trust this CA (PEM) for upstream servers. Repeatable."
)


@click.command(epilog=RUN_EPILOG, context_settings={"allow_interspersed_args": False})
@POLICY_OPTION
@LOG_OPTION
@RESOLVE_OPTION
@UPSTREAM_CA_OPTION
@click.option("--user", metavar="NAME", help="As root: run the command as this user (default: $SUDO_USER or root).")
@click.option(
    "--bind",
    "binds",
    multiple=True,
    metavar="PATH[:ro]",
    help="Show host PATH at the same place in the jail (read-write; ':ro' read-only), e.g. a directory under"
    " /tmp or /run, which the jail hides. Repeatable.",
)
@click.option(
    "--fail-on-deny",
    is_flag=True,
    help="Exit 3 if the command exits 0 but any request was denied (for CI). Its own failure wins.",
)
@click.option("--quiet", "-q", is_flag=True, help="No exit summary, start or audit log line; errors still show.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    policy: str,
    log: str | None,
    resolve: tuple[str, ...],
    upstream_ca: tuple[str, ...],
    user: str | None,
    binds: tuple[str, ...],
    fail_on_deny: bool,
    quiet: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND jailed: its only way out is the policy proxy."""
    from boundary.run import session

    code = session.run(
        session.RunOptions(
            policy=policy,
            argv=command,
            log=log,
            resolve=resolve,
            upstream_ca=upstream_ca,
            user=user,
            binds=binds,
            quiet=quiet,
            fail_on_deny=fail_on_deny,
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
