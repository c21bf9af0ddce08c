"""Command line: click commands only (`run`, `policy`, `doctor`), each in its own module; `exits` is where a
`BoundaryError` becomes `boundary: <message>` and exit 125 (2 for the `policy` commands)."""

from __future__ import annotations

import sys

import click

from boundary import __version__
from boundary.cli import doctor, learn, log, policy, proxy, run
from boundary.cli.exits import EXIT_BOUNDARY_FAILED, CommandFailed, fail


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="boundary")
def main_group() -> None:
    """boundary: run a command whose only way to the network is a policy-checking proxy.

    Every HTTP(S) request the command makes is checked against a YAML allowlist (host, port, method, path)
    and written to an audit log as one JSON line; everything else is denied.
    """


main_group.add_command(run.run)
main_group.add_command(policy.policy)
main_group.add_command(doctor.doctor)
main_group.add_command(log.log)
main_group.add_command(proxy.proxy)
main_group.add_command(learn.learn)


def main() -> None:
    try:
        main_group.main(standalone_mode=False, prog_name="boundary")
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except CommandFailed as e:
        fail(e.error, e.exit_code)
    except Exception as e:
        fail(e, EXIT_BOUNDARY_FAILED)
