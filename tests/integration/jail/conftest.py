"""Run a command in a real jail made by `boundary.jail.helper` alone (no proxy), as root and rootless.

``jail`` (parametrized ``root`` / ``rootless``) starts ``driver.py`` through ``tests.support.runner`` with the
venv's Python, as the test's user or as the rootless user; the driver jails the command and reports what
reached the sockets it was handed (see driver.py). ``jail.probe(...)`` runs probe.py inside the jail,
``jail.shell(...)`` a shell script that may call ``require_jail`` before anything destructive.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.runner import run_python
from tests.support.tools import require_tool, venv_python

DRIVER = Path(__file__).with_name("driver.py")
PROBE = Path(__file__).with_name("probe.py")
EVENT_PREFIX = "driver-event "
_EVENT = re.compile(re.escape(EVENT_PREFIX) + r"(\{[^\n]*\})\n")  # JSON from json.dumps has no raw newline

MODES = [
    pytest.param(False, id="root", marks=pytest.mark.root),
    pytest.param(True, id="rootless", marks=pytest.mark.rootless),
]

# Shell prelude for every `jail.shell` script. `require_jail` proves the script runs inside a jail made by the
# driver — PID 1 is the driver's forked init, `lo` is the only interface and `local default` routes every IPv4
# address to it — and exits 99 otherwise. A probe that could damage the host (`ip link set lo down`, a sysctl
# write) must come after it: run on the host as root, such a probe would break the whole machine.
PRELUDE = """\
set -u
IP={ip}
NFT={nft}
require_jail() {{
    tr '\\0' ' ' </proc/1/cmdline | grep -q 'integration/jail/driver.py' &&
        [ "$($IP -o link | wc -l)" = 1 ] && $IP -o link | grep -q '^1: lo:' &&
        $IP route show table local | grep -q '^local default dev lo' &&
        return 0
    echo "require_jail: not inside the test jail, refusing to go on" >&2
    exit 99
}}
"""


def split_events(stderr: str) -> tuple[str, list[dict[str, Any]]]:
    """The driver's stderr without its events, and the events.

    An event is one atomic write, but the workload's lines need not be (Python's stderr writes a `print`'s
    text and its newline separately), so an event may sit in the middle of a workload's line: cut it out
    wherever it is.
    """
    events = [json.loads(found) for found in _EVENT.findall(stderr)]
    return _EVENT.sub("", stderr), events


def probe_argv(*probes: Sequence[str]) -> list[str]:
    """The command that runs probe.py with these probes, ``+``-separated (shlex.join it for a shell script)."""
    argv = [str(venv_python()), str(PROBE)]
    for index, probe in enumerate(probes):
        argv += [*(["+"] if index else []), *probe]
    return argv


@dataclass(frozen=True)
class JailRun:
    """What one driver run produced: the exit code, the workload's output and the driver's events."""

    returncode: int
    stdout: str
    stderr: str  # the workload's and the helper's stderr, without the driver's event lines
    events: list[dict[str, Any]]

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def probes(self) -> list[dict[str, Any]]:
        """The JSON lines probe.py printed, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith('{"probe"')]

    def lines(self, prefix: str) -> list[str]:
        """The stdout lines that start with ``prefix``, without it."""
        return [line.removeprefix(prefix) for line in self.stdout.splitlines() if line.startswith(prefix)]

    def value(self, name: str) -> str:
        """The one ``NAME=VALUE`` line of stdout."""
        [found] = self.lines(f"{name}=")
        return found

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}--- events\n{self.events}"


@dataclass(frozen=True)
class JailRunner:
    """Runs commands in fresh jails, as root or as the rootless user."""

    rootless: bool

    def run(
        self,
        command: Sequence[str],
        driver_args: Sequence[str] = (),
        timeout: float = 30,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> JailRun:
        """The driver's run of ``command``; ``env`` is added to the driver's (and so the workload's) environment,
        ``cwd`` is where the driver starts."""
        proc = run_python(
            [DRIVER, *driver_args, "--", *command], rootless=self.rootless, timeout=timeout, env=env, cwd=cwd
        )
        stderr, events = split_events(proc.stderr.decode(errors="replace"))
        return JailRun(proc.returncode, proc.stdout.decode(errors="replace"), stderr, events)

    def probe(self, *probes: Sequence[str], driver_args: Sequence[str] = ()) -> JailRun:
        """Run probe.py inside the jail with each probe's arguments (see probe.py)."""
        return self.run(probe_argv(*probes), driver_args)

    def shell(
        self,
        script: str,
        driver_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> JailRun:
        """Run ``sh -c PRELUDE+script`` in the jail; ``$IP`` and ``$NFT`` name the tools by absolute path."""
        prelude = PRELUDE.format(ip=shlex.quote(str(require_tool("ip"))), nft=shlex.quote(str(require_tool("nft"))))
        return self.run(["sh", "-c", prelude + script], driver_args, env=env, cwd=cwd)


@pytest.fixture(params=MODES)
def rootless(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def jail(rootless: bool) -> JailRunner:
    return JailRunner(rootless)
