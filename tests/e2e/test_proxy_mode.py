"""`boundary proxy`: the run's proxy as an explicit proxy on loopback, no jail. For the same policy and the same
requests it decides as `boundary run` does (the jailed curl of tests/e2e goes through the jail; here curl is
told to use the proxy), writes the same audit lines, and stops cleanly on SIGINT.

Nothing leaves the machine: the test names resolve to the local upstreams through `--resolve`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import NAMES, POLICY, Jailer
from tests.support.runner import spawn_boundary
from tests.support.upstreams import Upstream

# (method, url) -> what both modes must answer, and the audit reason
CASES = [
    ("GET", "https://allowed.test/hello", "200", "allowed"),
    ("GET", "https://allowed.test/admin", "403", "path-not-allowed"),
    ("POST", "https://allowed.test/hello", "403", "method-not-allowed"),
    ("GET", "http://open.test/anything", "200", "allowed"),
    ("GET", "https://denied.test/", "403", "no-matching-rule"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("boundary proxy did not listen")


@contextlib.contextmanager
def _serving(
    folder: Path, https_upstream: Upstream, http_upstream: Upstream, ca_file: Path, extra: Sequence[str] = ()
) -> Iterator[dict[str, Any]]:
    port = _free_port()
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    resolves = []
    for name in NAMES:
        resolves += ["--resolve", f"{name}:443:127.0.0.1:{https_upstream.port}"]
        resolves += ["--resolve", f"{name}:80:127.0.0.1:{http_upstream.port}"]
    args = ["proxy", "--policy", str(policy), "--listen", f"127.0.0.1:{port}", "--ca-cert", str(folder / "ca.pem")]
    args += ["--log", str(folder / "audit.jsonl"), "--upstream-ca", str(ca_file), *resolves, *extra]
    proc = spawn_boundary(args, rootless=False)
    try:
        _wait_listening(port, proc)
        yield {"port": port, "dir": folder, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def standalone(
    tmp_path: Path, https_upstream: Upstream, http_upstream: Upstream, ca_file: Path
) -> Iterator[dict[str, Any]]:
    with _serving(tmp_path, https_upstream, http_upstream, ca_file) as served:
        yield served


def _curl_via(port: int, ca: Path, method: str, url: str, *extra: str) -> str:
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "--proxy", f"http://127.0.0.1:{port}",
         "--cacert", str(ca), "--max-time", "20", *extra, url],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout


def test_the_proxy_decides_as_a_run_does_and_audits_each_request(standalone: dict[str, Any], jail: Jailer) -> None:
    port, folder = standalone["port"], standalone["dir"]
    answers = [_curl_via(port, folder / "ca.pem", method, url) for method, url, _, _ in CASES]
    # The CONNECT to denied.test is refused with 403: curl shows 000 (no tunnel, no answer inside one).
    assert answers == ["200", "403", "403", "200", "000"]
    lines = [json.loads(line) for line in (folder / "audit.jsonl").read_text().splitlines() if line]
    # Each https request is a CONNECT (decided by the destination alone) and the request inside the tunnel.
    assert [(line["method"], line["reason"]) for line in lines] == [
        ("CONNECT", "allowed"), ("GET", "allowed"),
        ("CONNECT", "allowed"), ("GET", "path-not-allowed"),
        ("CONNECT", "allowed"), ("POST", "method-not-allowed"),
        ("GET", "allowed"),
        ("CONNECT", "no-matching-rule"),
    ]  # fmt: skip
    jailed = jail.run(
        ["sh", "-c", "; ".join(f"curl -s -o /dev/null -w '%{{http_code}} ' -X {m} {u}" for m, u, _, _ in CASES)]
    )
    assert jailed.stdout.split() == [code for _, _, code, _ in CASES], jailed.stderr
    assert [line["reason"] for line in jailed.audit] == [reason for _, _, _, reason in CASES]


def test_sigint_stops_the_proxy_with_exit_0(standalone: dict[str, Any]) -> None:
    proc: subprocess.Popen[bytes] = standalone["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert (standalone["dir"] / "ca.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_with_a_token_a_request_without_it_gets_407_and_the_token_never_goes_upstream(
    tmp_path: Path, https_upstream: Upstream, http_upstream: Upstream, ca_file: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("0123456789abcdef0123456789abcdef\n")
    token.chmod(0o600)
    with _serving(tmp_path, https_upstream, http_upstream, ca_file, ["--token-file", str(token)]) as served:
        port, ca = served["port"], tmp_path / "ca.pem"
        before = len(http_upstream.requests)
        assert _curl_via(port, ca, "GET", "http://open.test/x") == "407"
        assert _curl_via(port, ca, "GET", "http://open.test/x", "--proxy-user", "me:wrong-token-wrong-token") == "407"
        credentials = ["--proxy-user", "me:0123456789abcdef0123456789abcdef"]
        assert _curl_via(port, ca, "GET", "http://open.test/x", *credentials) == "200"
        assert _curl_via(port, ca, "GET", "https://allowed.test/hello", *credentials) == "200"
        forwarded = http_upstream.requests[before:]
    assert len(forwarded) == 1 and forwarded[0].header("proxy-authorization") is None
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines() if line]
    assert [(line["reason"], line["status"]) for line in lines[:2]] == [("proxy-auth-required", 407)] * 2
