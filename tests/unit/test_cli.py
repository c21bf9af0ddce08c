"""Specification of the command line: help, version, and the one place errors become `boundary: ...` + 125.

Every case runs the real CLI in a subprocess (`python -m boundary`). The error cases all fail before a jail
exists, so none needs root; as a belt and braces, each names a command that does not exist, so that even a
check that wrongly passed would stop at "command not found" instead of starting a jail.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from boundary import __version__
from tests.support import tools

EXIT_BOUNDARY_FAILED = 125
NO_SUCH_COMMAND = "boundary-test-no-such-command"
POLICY = "version: 1\nallow:\n  - domain: api.example.com\n"


def boundary(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m boundary ARGS` with the venv's interpreter, without the debug switch."""
    env = {key: value for key, value in os.environ.items() if key != "BOUNDARY_DEBUG"}
    return subprocess.run(
        [str(tools.venv_python()), "-m", "boundary", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """A valid policy file."""
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    return path


# --- help and version ---------------------------------------------------------------------------------------


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    """`python -m boundary --version` prints `boundary, version X` and exits 0."""
    result = boundary("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, f"boundary, version {__version__}", "")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_run_command(tmp_path: Path, flag: str) -> None:
    """The top-level help describes boundary and lists `run`; it exits 0."""
    result = boundary(flag, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: boundary [OPTIONS] COMMAND")
    words = " ".join(result.stdout.split())  # independent of the wrapping width
    assert "only way to the network is a policy-checking proxy" in words
    assert "Commands: run Run COMMAND jailed" in words


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_run_help_has_options_examples_and_exit_codes(tmp_path: Path, flag: str) -> None:
    """`boundary run --help` names every option, shows examples and explains the exit status."""
    result = boundary("run", flag, cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # independent of the wrapping width
    for option in ("--policy", "--log", "--resolve", "--upstream-ca", "--user"):
        assert option in text
    assert "Examples:" in text
    assert "boundary run --policy policies/claude-code.yaml -- claude" in text
    assert "--resolve api.example.com:443:127.0.0.1:8443" in text
    assert "128+N if it died from signal N" in text
    assert "125 if boundary itself failed" in text


# --- errors: one `boundary: ...` line and exit 125 ----------------------------------------------------------


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    """A policy file that does not exist: one `boundary:` line naming the path, exit 125."""
    missing = tmp_path / "nope.yaml"
    result = boundary("run", "--policy", str(missing), "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr == f"boundary: {missing}: cannot read policy: No such file or directory\n"
    assert result.stdout == ""


def test_invalid_policy_says_file_line_and_key(tmp_path: Path) -> None:
    """A policy error (a BoundaryError) is shown as is: `boundary: FILE:LINE: key: message`, exit 125."""
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nallow:\n  - domain: a.test\n    methods: [GETT]\n")
    result = boundary("run", "--policy", str(path), "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr.startswith(f"boundary: {path}:4: allow[0].methods")
    assert "'GETT'" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resolve", "nonsense"], "boundary: --resolve 'nonsense': expected HOST:PORT:ADDR"),
        (["--resolve", "a.test:443:localhost"], "boundary: --resolve 'a.test:443:localhost': 'localhost' is not"),
        (["--upstream-ca", "/nonexistent/ca.pem"], "boundary: --upstream-ca '/nonexistent/ca.pem': No such file"),
        ([], f"boundary: command not found: '{NO_SUCH_COMMAND}'"),
    ],
)
def test_bad_option_values_are_quoted(tmp_path: Path, policy: Path, args: list[str], message: str) -> None:
    """A malformed option value or an unknown command: one `boundary:` line quoting it, exit 125."""
    result = boundary("run", "--policy", str(policy), *args, "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--", NO_SUCH_COMMAND], "Error: Missing option '--policy'"),
        (["run", "--policy"], "Error: Option '--policy' requires an argument"),
        (["run", "--policy", "p.yaml"], "Error: Missing argument 'COMMAND...'"),
        (["--bogus", "run"], "Error: No such option '--bogus'"),
        (["frobnicate"], "Error: No such command 'frobnicate'"),
    ],
)
def test_usage_errors_exit_125(tmp_path: Path, args: list[str], message: str) -> None:
    """click's usage errors (missing option or argument, unknown option or command) exit 125, not click's 2."""
    result = boundary(*args, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert message in result.stderr
    assert result.stdout == ""


def test_unknown_run_option_becomes_part_of_the_command(tmp_path: Path, policy: Path) -> None:
    """`run` passes options it does not know on to the command, so a mistyped one is "command not found"."""
    result = boundary("run", "--policy", str(policy), "--lgo", "--", NO_SUCH_COMMAND, cwd=tmp_path)
    assert result.returncode == EXIT_BOUNDARY_FAILED
    assert result.stderr == "boundary: command not found: '--lgo'\n"
