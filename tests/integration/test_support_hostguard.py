"""The host guard's ruleset really rejects and counts, proved in a throwaway network namespace.

The test cannot send a guarded packet from the host itself: the session's own guard would count it and fail
the run. So it loads a second guard table inside a fresh netns (as root, or in a user namespace) and sends
from there.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support import tools
from tests.support.hostguard import HostGuard, nft_binary

_SELF_TEST = textwrap.dedent(
    """
    import json, socket, subprocess, sys
    from tests.support.hostguard import HostGuard, nft_binary

    # Inside the new netns only: bring lo up and make every IPv4 destination local, so packets reach the
    # output hook (with no route, connect() fails before any hook sees a packet).
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "local", "default", "dev", "lo"], check=True)
    guard = HostGuard(nft_binary())
    guard.install()
    result = {}
    for host in ("198.18.0.7", "198.51.100.7", "203.0.113.7", "127.0.0.1"):
        before = guard.packets()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"x", (host, 9))
            errno = 0
        except OSError as exc:
            errno = exc.errno
        result[host] = {"counted": guard.packets() - before, "errno": errno}
    guard.install()  # re-installing resets: the stale table is replaced, not merged
    result["after_reinstall"] = guard.counts()
    print(json.dumps(result))
    guard.remove()
    """
)


def test_the_guard_rejects_and_counts_guarded_destinations() -> None:
    """A UDP datagram to each guarded range is refused (EPERM) and counted; one to loopback is neither."""
    if tools.is_root():
        prefix = ["unshare", "--net"]
    else:
        tools.skip_unless_userns()
        prefix = ["unshare", "--user", "--map-root-user", "--net"]
    env = dict(os.environ, PYTHONPATH=str(tools.repo_root()))
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", _SELF_TEST], capture_output=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    for host in ("198.18.0.7", "198.51.100.7", "203.0.113.7"):
        # EPERM: the local sender sees the drop. Counted at least once (here also the ICMP error that the
        # reject sends back, whose destination is the guarded address too, as the jail-like route makes
        # it the source); outside, on the host, one packet counts once.
        assert result[host]["errno"] == errno.EPERM
        assert result[host]["counted"] >= 1
    assert result["127.0.0.1"] == {"counted": 0, "errno": 0}
    assert result["after_reinstall"] == [0, 0]


@tools.requires_root
def test_the_session_guard_is_installed_as_root(host_guard: HostGuard) -> None:
    """As root the session's guard table exists in the host netns and nothing has escaped so far."""
    assert host_guard.active
    assert host_guard.packets() == 0
    listing = subprocess.run(
        [str(nft_binary()), "-j", "list", "table", "inet", host_guard.table], capture_output=True, check=True
    )
    chains = {item["chain"]["hook"] for item in json.loads(listing.stdout)["nftables"] if "chain" in item}
    assert chains == {"output", "forward"}


_LEAKY_TEST = """
import socket

def test_sends(host_guard):
    assert host_guard.active
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", ({host!r}, 9))
    except OSError:
        pass
"""


@tools.requires_root
@pytest.mark.parametrize(("host", "expected"), [("203.0.113.9", 1), ("127.0.0.1", 0)], ids=["leak", "no-leak"])
def test_a_session_whose_traffic_escapes_fails(pytester: pytest.Pytester, host: str, expected: int) -> None:
    """A whole pytest session with this suite's guard: one guarded packet makes it fail, naming the guard.

    It runs in its own network namespace (with a jail-like route), so its guard table and its packet never
    touch the host and this session's own guard.
    """
    pytester.makeconftest("from tests.conftest import host_guard, pytest_sessionfinish\n")
    pytester.makepyfile(_LEAKY_TEST.format(host=host))
    setup_netns = 'ip link set lo up && ip route add local default dev lo && exec "$@"'
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            setup_netns,
            "sh",
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
        ],
        cwd=pytester.path,
        env=dict(os.environ, PYTHONPATH=str(tools.repo_root()), CI="false"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == expected, proc.stdout + proc.stderr
    if expected:
        assert "host nft guard: " in proc.stdout
        assert "tried to leave the host" in proc.stdout
