"""Specification of the command line: help, version, and how it runs (`boundary` below, shared by the other
cli tests).

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


# --- help and version ---------------------------------------------------------------------------------------


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    """`python -m boundary --version` prints `boundary, version X` and exits 0."""
    result = boundary("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, f"boundary, version {__version__}", "")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_run_command(tmp_path: Path, flag: str) -> None:
    """The top-level help describes boundary and lists `run` and `policy`; it exits 0."""
    result = boundary(flag, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: boundary [OPTIONS] COMMAND")
    words = " ".join(result.stdout.split())  # independent of the wrapping width
    assert "only way to the network is a policy-checking proxy" in words
    assert "run Run COMMAND jailed" in words
    assert "policy Check, explain and test policy files" in words


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_run_help_has_options_examples_and_exit_codes(tmp_path: Path, flag: str) -> None:
    """`boundary run --help` names every option, shows examples and explains the exit status."""
    result = boundary("run", flag, cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # independent of the wrapping width
    for option in ("--policy", "--log", "--resolve", "--upstream-ca", "--user", "--bind PATH[:ro]"):
        assert option in text
    assert "Examples:" in text
    assert "boundary run --policy policies/claude-code.yaml -- claude" in text
    assert "--resolve api.example.com:443:127.0.0.1:8443" in text
    assert "128+N if it died from signal N" in text
    assert "125 if boundary itself failed" in text
    assert "The jail hides /tmp, /run, /var/run, /dev/shm and $XDG_RUNTIME_DIR" in text
