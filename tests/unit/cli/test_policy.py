"""Specification of `boundary policy`'s command line: exit 0/1/2, errors as one `boundary: ...` line and 2,
any input printed safely."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from boundary.policy.schema import policy_json_schema_text
from tests.support import tools
from tests.unit.cli.test_cli import boundary

# --- boundary policy: exit 0/1/2, errors as one `boundary: ...` line and 2 ------------------------------------

POLICY_TOOLS = """\
version: 1
allow:
  - domain: api.example.com
    id: api-read
    methods: [GET]
    paths: ["/v1/*"]
"""


@pytest.fixture
def tools_policy(tmp_path: Path) -> Path:
    """A valid policy with one rule that has an id."""
    path = tmp_path / "tools.yaml"
    path.write_text(POLICY_TOOLS)
    return path


def test_help_lists_the_policy_commands(tmp_path: Path) -> None:
    """`boundary policy --help` lists check, explain, schema and test, with examples and the exit status."""
    result = boundary("policy", "--help", cwd=tmp_path)
    assert result.returncode == 0
    words = " ".join(result.stdout.split())
    for command in ("check Validate", "explain Show", "schema Print", "test Check"):
        assert command in words
    assert "boundary policy explain p.yaml -X POST https://api.example.com/v1/upload" in words
    assert "Exit status: 0 valid / allowed / every case passed; 1 denied / a case failed;" in words


def test_explain_help_says_it_decides_from_the_url_alone(tmp_path: Path) -> None:
    """The proxy's connection checks (IP literal destinations, SNI/Host) are not explain's: its help says so."""
    result = boundary("policy", "explain", "--help", cwd=tmp_path)
    words = " ".join(result.stdout.split())
    assert result.returncode == 0
    assert "the policy matcher's decision for the URL alone" in words
    assert "TLS SNI and Host header name different hosts" in words
    assert "Exit status: 0 allowed, 1 denied, 2 bad policy or URL." in words


def test_check_valid_files_exit_0(tmp_path: Path, policy: Path, tools_policy: Path) -> None:
    result = boundary("policy", "check", str(policy), str(tools_policy), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert (
        result.stdout == f"{policy}: OK (1 allow rule, 0 deny rules)\n{tools_policy}: OK (1 allow rule, 0 deny rules)\n"
    )


def test_check_reports_every_invalid_file_and_exits_2(tmp_path: Path, policy: Path) -> None:
    """Each file is checked; errors read `FILE:LINE: key.path: message` quoting the value; exit 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nallow:\n  - domain: a.test\n    ports: [80, 99999]\n")
    missing = tmp_path / "missing.yaml"
    result = boundary("policy", "check", str(bad), str(policy), str(missing), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == (
        f"{bad}:4: allow[0].ports: port 99999 out of range (1-65535)\n"
        f"{policy}: OK (1 allow rule, 0 deny rules)\n"
        f"{missing}: cannot read policy: No such file or directory\n"
    )


def test_check_strict_makes_lint_warnings_fatal(tmp_path: Path) -> None:
    """Warnings read `FILE:LINE: warning: message`; without --strict exit 0, with it exit 2."""
    path = tmp_path / "dup.yaml"
    path.write_text("version: 1\nallow:\n  - domain: a.test\n  - domain: A.test.\n")
    warning = f"{path}:4: warning: duplicates rule {path}:3; one of them can go\n"
    lenient = boundary("policy", "check", str(path), cwd=tmp_path)
    assert (lenient.returncode, lenient.stdout) == (
        0,
        warning + f"{path}: OK (2 allow rules, 0 deny rules, 1 warning)\n",
    )
    strict = boundary("policy", "check", "--strict", str(path), cwd=tmp_path)
    assert (strict.returncode, strict.stdout) == (
        2,
        warning + f"{path}: 1 warning, fatal with --strict (2 allow rules, 0 deny rules)\n",
    )


def test_explain_an_allowed_request_exits_0(tmp_path: Path, tools_policy: Path) -> None:
    result = boundary("policy", "explain", str(tools_policy), "https://API.example.com./v1/%2e/x", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[:3] == ["decision: allow", "reason:   allowed", f"rule:     api-read ({tools_policy}:3)"]
    assert "host:     api.example.com" in lines
    assert lines[-1] == "path:     /v1/x (forwarded upstream)"


def test_explain_a_denied_request_exits_1(tmp_path: Path, tools_policy: Path) -> None:
    """`-X` sets the method; the path reaches the matcher as typed (`%2e%2e` climbs), and the reason says why."""
    url = "https://api.example.com/v1/%2e%2e/admin"
    result = boundary("policy", "explain", str(tools_policy), "-X", "DELETE", url, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:3] == ["decision: deny", "reason:   method-not-allowed", "rule:     none"]
    assert "path:     /admin" in result.stdout.splitlines()


def test_explain_json_is_one_object(tmp_path: Path, tools_policy: Path) -> None:
    result = boundary(
        "policy", "explain", "--json", str(tools_policy), "https://api.example.com:8443/v1/x", cwd=tmp_path
    )
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert (record["decision"], record["reason"], record["rule"], record["request"]["port"]) == (
        "deny",
        "port-not-allowed",
        None,
        8443,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://api.example.com/"], "boundary: bad URL 'ftp://api.example.com/': scheme 'ftp' is not http or https\n"),
        (
            ["-X", "GE T", "https://api.example.com/"],
            "boundary: bad URL 'https://api.example.com/': method 'GE T' is not an HTTP method token\n",
        ),
    ],
)
def test_explain_a_bad_url_exits_2_quoting_it(
    tmp_path: Path, tools_policy: Path, args: list[str], message: str
) -> None:
    result = boundary("policy", "explain", str(tools_policy), *args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message)


def test_explain_with_a_bad_policy_exits_2_with_the_located_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nallow:\n  - domain: a.test\n    methods: [GETT]\n")
    result = boundary("policy", "explain", str(path), "https://a.test/", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"boundary: {path}:4: allow[0].methods: unknown method 'GETT'\n"


def test_policy_test_passing_cases_exit_0(tmp_path: Path, tools_policy: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- {url: 'https://api.example.com/v1/x', expect: allow}\n"
        "- {method: POST, url: 'https://api.example.com/v1/x', expect: deny, reason: method-not-allowed}\n"
    )
    result = boundary("policy", "test", str(tools_policy), str(cases), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "2 cases, 0 failed\n", "")


def test_policy_test_prints_each_mismatch_and_exits_1(tmp_path: Path, tools_policy: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- {url: 'https://api.example.com/v1/x', expect: allow}\n"
        "- {url: 'https://api.example.com/v1/x', expect: deny}\n"
        "- {url: 'https://api.example.com/v1/a%2Fb', expect: allow}\n"
    )
    result = boundary("policy", "test", str(tools_policy), str(cases), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == (
        f"{cases}:2: GET https://api.example.com/v1/x: expected deny, got allow (rule api-read ({tools_policy}:3))\n"
        f"{cases}:3: GET https://api.example.com/v1/a%2Fb: expected allow, got deny (ambiguous-path)\n"
        "3 cases, 2 failed\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {url: 'https://a.test/', expect: allow, code: 200}\n", ":1: [0]: unknown key 'code'"),
        ("- {url: 'api.example.com/v1', expect: deny}\n", ":1: [0].url: bad URL 'api.example.com/v1': expected"),
        ("- {url: 'https://a.test/'}\n", ":1: [0]: missing required key 'expect'"),
    ],
)
def test_policy_test_with_a_bad_cases_file_exits_2(tmp_path: Path, tools_policy: Path, text: str, message: str) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(text)
    result = boundary("policy", "test", str(tools_policy), str(cases), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"boundary: {cases}{message}")
    assert result.stderr.count("\n") == 1


def test_policy_test_with_a_missing_cases_file_exits_2(tmp_path: Path, tools_policy: Path) -> None:
    missing = tmp_path / "missing.yaml"
    result = boundary("policy", "test", str(tools_policy), str(missing), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"boundary: {missing}: cannot read cases: No such file or directory\n"


# Input the terminal cannot take as is: a byte that is not UTF-8 (a lone surrogate once Python decodes argv or a
# YAML escape), ESC starting a colour sequence, and a bidi override.
UNPRINTABLE = "\udcff\x1b[31m\u202e"
ESCAPED = "\\udcff\\x1b[31m\\u202e"


def boundary_bytes(*args: str, cwd: Path, encoding: str) -> subprocess.CompletedProcess[bytes]:
    """`boundary(...)` with stdout in `encoding`, strict (as under a UTF-8 locale other than C), as bytes."""
    env = {key: value for key, value in os.environ.items() if key != "BOUNDARY_DEBUG"}
    env["PYTHONIOENCODING"] = encoding
    return subprocess.run(
        [str(tools.venv_python()), "-m", "boundary", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_explain_prints_a_url_that_does_not_print_escaped(tmp_path: Path, tools_policy: Path, as_json: bool) -> None:
    """A URL with a byte that is not UTF-8 and control characters used to end in `internal error:
    UnicodeEncodeError` (or write them raw); it is explained, escaped, exit 1 (denied: ambiguous path)."""
    url = f"https://api.example.com/v1/{UNPRINTABLE}"
    args = ["policy", "explain", *(["--json"] if as_json else []), str(tools_policy), url]
    result = boundary_bytes(*args, cwd=tmp_path, encoding="utf-8")
    assert (result.returncode, result.stderr) == (1, b"")
    out = result.stdout.decode("utf-8")
    if as_json:
        assert json.loads(out)["url"] == url
        assert "\\udcff\\u001b[31m\\u202e" in out
    else:
        assert f"path:     /v1/{ESCAPED} (as sent; ambiguous: control, space or non-ASCII character)\n" in out


def test_policy_test_prints_a_failing_case_that_does_not_print_escaped(tmp_path: Path, tools_policy: Path) -> None:
    """A cases file may spell any character with YAML escapes; the failure line quotes the URL escaped."""
    cases = tmp_path / "cases.yaml"
    cases.write_text(f'- {{url: "https://api.example.com/v1/{ESCAPED}", expect: allow}}\n')
    result = boundary_bytes("policy", "test", str(tools_policy), str(cases), cwd=tmp_path, encoding="utf-8")
    assert (result.returncode, result.stderr) == (1, b"")
    assert result.stdout.decode("utf-8") == (
        f"{cases}:1: GET https://api.example.com/v1/{ESCAPED}: expected allow, got deny (ambiguous-path)\n"
        "1 case, 1 failed\n"
    )


def test_check_prints_a_file_name_that_does_not_print_escaped(tmp_path: Path) -> None:
    result = boundary_bytes("policy", "check", str(tmp_path / f"p{UNPRINTABLE}.yaml"), cwd=tmp_path, encoding="utf-8")
    assert (result.returncode, result.stderr) == (2, b"")
    assert (
        result.stdout.decode("utf-8") == f"{tmp_path}/p{ESCAPED}.yaml: cannot read policy: No such file or directory\n"
    )


def test_policy_output_on_a_terminal_that_lacks_a_character_escapes_it(tmp_path: Path, tools_policy: Path) -> None:
    """On a Latin-1 terminal a printable character outside Latin-1 is escaped, not an internal error."""
    url = "https://api.example.com/v1/\u0101"
    result = boundary_bytes("policy", "explain", str(tools_policy), url, cwd=tmp_path, encoding="latin-1")
    assert (result.returncode, result.stderr) == (1, b"")
    assert b"path:     /v1/\\u0101 (as sent; " in result.stdout


def test_policy_schema_prints_the_json_schema(tmp_path: Path) -> None:
    result = boundary("policy", "schema", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, policy_json_schema_text(), "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["policy", "explain", "p.yaml"], "Error: Missing argument 'URL'"),
        (["policy", "check"], "Error: Missing argument 'FILE...'"),
        (["policy", "frobnicate"], "Error: No such command 'frobnicate'"),
        (["policy", "explain", "--bogus", "p.yaml", "https://a.test/"], "Error: No such option '--bogus'"),
    ],
)
def test_policy_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """Usage errors inside `boundary policy` exit 2 like its other errors (`run` keeps 125, tested above)."""
    result = boundary(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr


# --- boundary policy replay ----------------------------------------------------------------------------------

REPLAY_LOG = [
    {"decision": "allow", "reason": "allowed", "method": "GET", "path": "/v1/users"},
    {"decision": "allow", "reason": "allowed", "method": "DELETE", "path": "/v1/users"},
]


def _audit_log(path: Path, lines: list[dict[str, object]], tail: str = "") -> Path:
    common = {"ts": "2026-12-08T00:00:00.000Z", "run": "r1", "rule": None, "scheme": "https", "host": "api.example.com"}
    text = "".join(json.dumps({**common, "port": 443, "status": 200, **line}) + "\n" for line in lines)
    path.write_text(text + tail)
    return path


def test_replay_exits_1_when_a_request_of_the_run_would_break(tmp_path: Path, tools_policy: Path) -> None:
    log = _audit_log(tmp_path / "run.jsonl", REPLAY_LOG)
    result = boundary("policy", "replay", str(tools_policy), str(log), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "would break (allowed then, denied now):" in result.stdout
    assert "1 x DELETE /v1/users  (allowed -> method-not-allowed)" in result.stdout


def test_replay_exits_0_when_nothing_would_break(tmp_path: Path, tools_policy: Path) -> None:
    log = _audit_log(tmp_path / "run.jsonl", REPLAY_LOG[:1])
    result = boundary("policy", "replay", str(tools_policy), str(log), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (
        0,
        f"1 requests replayed against {tools_policy}: 0 would break, 0 would open\n",
    )


def test_replay_fail_on_new_exits_1_for_egress_the_baseline_does_not_allow(tmp_path: Path, tools_policy: Path) -> None:
    denied = {"decision": "deny", "reason": "no-matching-rule", "method": "GET", "path": "/", "host": "other.example"}
    log = _audit_log(tmp_path / "run.jsonl", [REPLAY_LOG[0], denied])
    plain = boundary("policy", "replay", str(tools_policy), str(log), cwd=tmp_path)
    drift = boundary("policy", "replay", str(tools_policy), str(log), "--fail-on-new", cwd=tmp_path)
    assert (plain.returncode, drift.returncode) == (0, 1)
    assert "not allowed by" in drift.stdout and "other.example:443" in drift.stdout


def test_replay_reports_an_unreadable_line_and_exits_2(tmp_path: Path, tools_policy: Path) -> None:
    log = _audit_log(tmp_path / "run.jsonl", REPLAY_LOG[:1], tail="not json\n")
    result = boundary("policy", "replay", str(tools_policy), str(log), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"boundary: {log}:2: ")
    assert "1 requests replayed" in result.stdout  # the rest still replayed
