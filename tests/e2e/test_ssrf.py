"""The SSRF guard end to end, as root and rootless: a name the policy allows but the host's /etc/hosts points
at loopback is refused by the proxy (502, a deny line, nothing reaches the server) unless the policy opens
127.0.0.0/8 with `network.allow_private`.

The jail pins `localhost` to loopback itself (its DNS and its /etc/hosts), so the jail never asks the proxy for
it; the name here is `ssrf.test`, which only boundary's own /etc/hosts knows. That file is the host's plus the
test's lines, bind-mounted over /etc/hosts in a private mount namespace that only the boundary under test
lives in (the host's file is untouched), so the proxy's getaddrinfo answers 127.0.0.1 and ::1 from it and no
test name ever reaches a real resolver. There is no `--resolve` for `ssrf.test`.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Jailer
from tests.support.runner import boundary_argv, prepare
from tests.support.tools import skip_unless_root
from tests.support.upstreams import Canary, TestCA, Upstream, start_canary, start_http_upstream, start_https_upstream

NAME = "ssrf.test"
HOST_ENTRIES = f"127.0.0.1\t{NAME}\n::1\t{NAME}\n"
CURL = ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_code}"]
OPEN_LOOPBACK = "network:\n  allow_private: [127.0.0.0/8]\n"


@pytest.fixture(scope="module")
def plain() -> Iterator[Upstream]:
    with start_http_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def tls(test_ca: TestCA) -> Iterator[Upstream]:
    with start_https_upstream(test_ca, [NAME]) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    with start_canary() as listener:
        yield listener


def policy(ports: Sequence[int], network: str = "") -> str:
    return f"version: 1\n{network}allow:\n  - domain: {NAME}\n    ports: [{', '.join(map(str, ports))}]\n"


def run_with_host_entries(jail: Jailer, command: Sequence[str], policy_text: str) -> subprocess.CompletedProcess[bytes]:
    """`boundary run` (root or rootless, as `jail` says) in a private mount namespace whose /etc/hosts is the
    host's plus HOST_ENTRIES. The namespace is made as root, before the runner drops to the rootless user."""
    skip_unless_root()  # to mount; CI runs as root, so both modes run there
    hosts = jail.workdir / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + HOST_ENTRIES)
    hosts.chmod(0o644)
    if jail.audit_path.exists():
        jail.audit_path.unlink()
    argv = boundary_argv(jail.args(command, policy_text))
    invocation = prepare(argv, rootless=jail.rootless, expose=[jail.workdir])
    mount = f'mount --bind {shlex.quote(str(hosts))} /etc/hosts && exec "$@"'
    prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount, "hosts"]
    try:
        return subprocess.run(
            [*prefix, *invocation.argv],
            env=invocation.env,
            cwd=invocation.cwd,
            capture_output=True,
            timeout=90,
            start_new_session=True,
            check=False,
        )
    finally:
        invocation.cleanup()


def status_and_body(result: subprocess.CompletedProcess[bytes]) -> tuple[int, str]:
    body, _, status = result.stdout.decode(errors="replace").rpartition("\n")
    return int(status), body


def audit(jail: Jailer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in jail.audit_path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_name_the_host_points_at_loopback_is_refused(
    jail: Jailer, plain: Upstream, tls: Upstream, scheme: str
) -> None:
    """The policy allows ssrf.test, but the proxy's resolver says 127.0.0.1 and ::1: the guard refuses both,
    the client gets a 502 naming `blocked-address` and the way to open it, the audit line is a denial with
    that reason, and the local server sees no request."""
    upstream = plain if scheme == "http" else tls
    before = len(upstream.requests)
    result = run_with_host_entries(
        jail, [*CURL, f"{scheme}://{NAME}:{upstream.port}/hello"], policy([plain.port, tls.port])
    )
    assert result.returncode == 0, result.stderr
    status, body = status_and_body(result)
    assert status == 502, body
    assert "blocked-address: " in body
    assert "127.0.0.1 is loopback (127.0.0.0/8)" in body and "::1 is loopback (::1/128)" in body
    assert "allow_private: [" in body
    [line] = audit(jail)
    assert (line["decision"], line["reason"], line["rule"], line["status"]) == ("deny", "blocked-address", None, None)
    assert (line["scheme"], line["host"], line["port"], line["path"]) == (scheme, NAME, upstream.port, "/hello")
    assert f"refusing to dial {NAME}:{upstream.port}: blocked-address: " in line["error"]
    assert "127.0.0.1 is loopback (127.0.0.0/8)" in line["error"]
    assert len(upstream.requests) == before


def test_the_guard_refuses_before_any_connection(jail: Jailer, canary: Canary) -> None:
    """Refused means never dialled: a plain listener on the loopback port accepts no connection at all."""
    result = run_with_host_entries(jail, [*CURL, f"http://{NAME}:{canary.port}/"], policy([canary.port]))
    assert status_and_body(result)[0] == 502, result.stderr
    assert canary.hits == []


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_allow_private_opens_loopback(jail: Jailer, plain: Upstream, tls: Upstream, scheme: str) -> None:
    """With `network: {allow_private: [127.0.0.0/8]}` the same request reaches the local server at 127.0.0.1
    (::1, still refused, is skipped), and the audit line is an ordinary allow."""
    upstream = plain if scheme == "http" else tls
    before = len(upstream.requests)
    result = run_with_host_entries(
        jail, [*CURL, f"{scheme}://{NAME}:{upstream.port}/hello"], policy([plain.port, tls.port], OPEN_LOOPBACK)
    )
    assert result.returncode == 0, result.stderr
    assert status_and_body(result) == (200, f"hello from {NAME}\n")
    [line] = audit(jail)
    assert (line["decision"], line["reason"], line["status"], line["host"]) == ("allow", "allowed", 200, NAME)
    assert len(upstream.requests) == before + 1
