"""The escape suite's machinery: the e2e jail fixtures, host-side witnesses, and the in-jail probe runner.

Every escape test asks the jailed workload to try one way out (tests/escape/probe.py prints how each attempt
ended, as JSON) and then asks the host whether anything got through: the :class:`Witnesses` listen on every
host address and socket kind a workload could aim at (TCP and UDP on loopback v4/v6 and on the host's own
address, unix sockets in /tmp, in a fake ``$XDG_RUNTIME_DIR`` and in the abstract namespace), and the session's
host nft guard must not have counted a packet while the test ran.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The e2e fixtures, shared rather than copied: importing them into this conftest registers them here.
from tests.e2e.conftest import (  # noqa: F401 - fixtures are used by name
    Jailer,
    JailRun,
    ca_file,
    http_upstream,
    https_upstream,
    jail,
    rootless,
    shared_dir,
    test_ca,
    workdir,
)
from tests.support.canaries import UdpCanary, UnixCanary
from tests.support.hostguard import HostGuard
from tests.support.runner import (
    boundary_argv,
    boundary_pid,
    make_user_dir,
    pids_matching,
    prepare,
    run_boundary,
    spawn_boundary,
)
from tests.support.tools import is_root, venv_python
from tests.support.tripwire import Tripwire
from tests.support.upstreams import Canary

PROBE = Path(__file__).with_name("probe.py")
#: Outside addresses the probes aim at: never routed, and guarded on the host by the session's nft table.
OUTSIDE = "198.51.100.7"
OUTSIDE6 = "2001:db8::7"


def host_address(family: int = socket.AF_INET) -> str | None:
    """The host's first global (non-loopback, non-link-local) address of ``family``, from `ip -j addr`."""
    flag = "-4" if family == socket.AF_INET else "-6"
    out = subprocess.run(["ip", "-j", flag, "addr"], capture_output=True, text=True, check=False).stdout
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            address = ipaddress.ip_address(info["local"])
            if not (address.is_loopback or address.is_link_local):
                return str(address)
    return None


def _bound_canary(host: str) -> Canary:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(16)
    return Canary(sock=sock)


@dataclass
class Witnesses:
    """Host-side listeners that must hear nothing, and the host guard's count when the test began."""

    guard: HostGuard
    tcp: dict[str, Canary]  # by address: 127.0.0.1, ::1, the host's own addresses
    udp: dict[str, UdpCanary]
    unix: dict[str, UnixCanary]  # by role: "tmp", "xdg", "abstract"
    xdg_runtime_dir: Path
    host4: str | None
    host6: str | None
    guard_before: int = 0
    tripwires: list[Tripwire] = field(default_factory=list)

    def heard(self) -> dict[str, Any]:
        """Everything that arrived anywhere on the host (empty when nothing escaped)."""
        found: dict[str, Any] = {}
        for address, canary in self.tcp.items():
            if canary.hits:
                found[f"tcp {address}:{canary.port}"] = [hit.first_bytes for hit in canary.hits]
        for address, udp in self.udp.items():
            if udp.heard:
                found[f"udp {address}:{udp.port}"] = udp.heard
        for role, unix in self.unix.items():
            if unix.heard:
                found[f"unix {role} {unix.path}"] = unix.heard
        moved = self.guard.packets() - self.guard_before
        if moved:
            found["host nft guard"] = moved
        for wire in self.tripwires:
            if wire.hits():
                found[f"tripwire {wire.matches}"] = wire.hits()
        return found

    def assert_nothing_escaped(self) -> None:
        assert self.heard() == {}


@pytest.fixture
def witnesses(host_guard: HostGuard) -> Iterator[Witnesses]:
    xdg = make_user_dir("boundary-escape-xdg-")
    xdg.chmod(0o777)
    host4, host6 = host_address(socket.AF_INET), host_address(socket.AF_INET6)
    tag = uuid.uuid4().hex[:12]
    with contextlib.ExitStack() as stack:
        tcp_hosts = ["127.0.0.1", "::1", *(h for h in (host4, host6) if h)]
        tcp = {h: stack.enter_context(_bound_canary(h)) for h in tcp_hosts}
        udp = {h: stack.enter_context(UdpCanary(h)) for h in tcp_hosts}
        unix = {
            "tmp": stack.enter_context(UnixCanary(os.path.join(tempfile.gettempdir(), f"boundary-escape-{tag}.sock"))),
            "xdg": stack.enter_context(UnixCanary(str(xdg / "bus"))),
            "abstract": stack.enter_context(UnixCanary(f"@boundary-escape-{tag}")),
        }
        found = Witnesses(host_guard, tcp, udp, unix, xdg, host4, host6, host_guard.packets())
        yield found
        for wire in found.tripwires:
            wire.__exit__(None, None, None)
    shutil.rmtree(xdg, ignore_errors=True)


InstallTripwire = Callable[[Sequence[str]], Tripwire]


@pytest.fixture
def tripwire(witnesses: Witnesses) -> InstallTripwire:
    """Install a :class:`Tripwire` with ``tripwire(MATCHES)``; it joins the witnesses and is removed after."""

    def install(matches: Sequence[str]) -> Tripwire:
        wire = Tripwire(matches).__enter__()
        witnesses.tripwires.append(wire)
        return wire

    return install


@dataclass
class ProbeRun:
    run: JailRun
    results: list[dict[str, Any]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.results[index]


def probe_argv(*args: str) -> list[str]:
    """The in-jail command for ``probe.py ARGS`` (``+`` separates probes)."""
    return [str(venv_python()), str(PROBE), *args]


def parse_probe_output(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_probe(
    jailer: Jailer,
    *args: str,
    policy: str | None = None,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    command: Sequence[str] | None = None,
    timeout: float = 60,
) -> ProbeRun:
    """One `boundary run` of the probe (or of ``command``) with the e2e policy unless ``policy`` is given."""
    argv = list(command) if command is not None else probe_argv(*args)
    if jailer.audit_path.exists():
        jailer.audit_path.unlink()
    boundary_args = jailer.args(argv, policy, extra) if policy is not None else jailer.args(argv, extra=extra)
    result = run_boundary(boundary_args, rootless=jailer.rootless, env=env, expose=[jailer.workdir], timeout=timeout)
    run = JailRun(result, jailer.audit())
    return ProbeRun(run, parse_probe_output(run.stdout))


def run_with_host_file(
    jailer: Jailer, hosts: str, command: Sequence[str], *, policy: str, extra: Sequence[str] = (), timeout: float = 60
) -> JailRun:
    """`boundary run` with ``hosts`` bind-mounted over /etc/hosts in a private mount namespace around boundary
    (needs root): the proxy then resolves names the way an operator's /etc/hosts or DNS would answer, without
    touching the host's file or asking any resolver."""
    if not is_root():
        pytest.skip("needs root to give boundary its own /etc/hosts")
    hosts_file = jailer.workdir / "hosts"
    hosts_file.write_text(hosts)
    hosts_file.chmod(0o644)
    if jailer.audit_path.exists():
        jailer.audit_path.unlink()
    inv = prepare(
        boundary_argv(jailer.args(command, policy, extra)),
        rootless=jailer.rootless,
        expose=[jailer.workdir],
    )
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, str(hosts_file), *inv.argv]
    try:
        result = subprocess.run(argv, env=inv.env, cwd=inv.cwd, capture_output=True, timeout=timeout, check=False)
    finally:
        inv.cleanup()
    return JailRun(result, jailer.audit())


def run_probe_with_host_pids(jailer: Jailer, probe: str, timeout: float = 60) -> ProbeRun:
    """Run ``probe.py PROBE PID...`` in the jail, PIDs being host pids of processes outside it: this boundary
    (and its helper and the jail's init, as the host numbers them), pytest and pytest's parent. The workload
    waits until boundary is up and the test has told it those numbers."""
    pids_file = jailer.workdir / "host-pids"
    script = f"while [ ! -s {pids_file} ]; do sleep 0.05; done; exec {shlex.join(probe_argv(probe))} $(cat {pids_file})"
    if jailer.audit_path.exists():
        jailer.audit_path.unlink()
    proc = spawn_boundary(jailer.args(["sh", "-c", script]), rootless=jailer.rootless, expose=[jailer.workdir])
    try:
        marker = f"--log {jailer.audit_path}"
        outside = {boundary_pid(marker), *pids_matching(marker), os.getpid(), os.getppid()}
        staging = pids_file.with_suffix(".tmp")
        staging.write_text(" ".join(str(pid) for pid in sorted(outside)) + "\n")
        staging.chmod(0o644)
        staging.replace(pids_file)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    run = JailRun(result, jailer.audit())
    return ProbeRun(run, parse_probe_output(run.stdout))
