"""`boundary policy`: check, explain and test policy files, and print the format's schema; no jail. Exit
status 0/1/2 (not 125): its group is an `ErrorExitGroup`."""

from __future__ import annotations

import io
import sys

import click

from boundary.cli.exits import EXIT_POLICY_ERROR, ErrorExitGroup

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


@click.group(cls=ErrorExitGroup, error_exit=EXIT_POLICY_ERROR, epilog=POLICY_EPILOG)
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


REPLAY_EPILOG = """\b
Examples:
  boundary policy replay candidate.yaml ~/.local/state/boundary/runs/*.jsonl
  boundary policy replay baseline.yaml audit.jsonl --fail-on-new

\b
Exit status: 0 nothing would break (and, with --fail-on-new, every request is
allowed); 1 something would; 2 bad policy or an audit line that could not be
read (each reported as FILE:LINE on stderr; the rest is still replayed).
"""


@policy.command(epilog=REPLAY_EPILOG, short_help="Decide past runs' requests again under a candidate policy.")
@click.argument("candidate", metavar="CANDIDATE")
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option("--fail-on-new", is_flag=True, help="Also exit 1 if any request is one CANDIDATE does not allow.")
def replay(candidate: str, logs: tuple[str, ...], fail_on_new: bool) -> None:
    """Decide every request the policy decided in the audit LOGs again with CANDIDATE, and print what would
    change, grouped by host: allowed then and denied now (would break), denied then and allowed now (would
    open). No jail, no network."""
    from pathlib import Path

    from boundary.logs import replay as replaying
    from boundary.logs.read import collect, read_log
    from boundary.policy.load import load_policy
    from boundary.policy.matcher import Matcher

    matcher = Matcher(load_policy(candidate))
    records, problems = collect(item for log in logs for item in read_log(Path(log)))
    report = replaying.replay(matcher, records)
    click.echo(replaying.render(report, candidate, fail_on_new=fail_on_new), nl=False)
    for problem in problems:
        click.echo(f"boundary: {problem}", err=True)
    if problems:
        sys.exit(EXIT_POLICY_ERROR)
    sys.exit(1 if report.breaks or (fail_on_new and report.new) else 0)


@policy.command(short_help="Print the JSON Schema of the policy format.")
def schema() -> None:
    """Print the JSON Schema of the policy format (for editors: `# yaml-language-server: $schema=FILE`)."""
    from boundary.policy.schema import policy_json_schema_text

    click.echo(policy_json_schema_text(), nl=False)
