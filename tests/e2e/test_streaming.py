"""Bodies stream through the proxy both ways and are never held whole."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import NAMES, Jailer
from tests.support.runner import spawn_boundary
from tests.support.upstreams import TestCA, pattern, start_https_upstream


def _wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_server_sent_events_arrive_as_the_upstream_sends_them(jail: Jailer, test_ca: TestCA) -> None:
    """The first event reaches the client while the upstream still holds the rest back (no buffering)."""
    with start_https_upstream(test_ca, NAMES) as upstream:  # its own: the event gate opens once
        _check_sse_streams(dataclasses.replace(jail, https=upstream))


def _check_sse_streams(jail: Jailer) -> None:
    out = jail.workdir / "events.txt"
    command = ["sh", "-c", f"curl -sSN --max-time 60 'https://open.test/sse?n=3&gate=1' > {out}"]
    proc = spawn_boundary(jail.args(command), rootless=jail.rootless, expose=[jail.workdir])
    try:
        _wait_for(lambda: out.exists() and "data:" in out.read_text())
        assert jail.https.sse_events_sent == 1  # the client got event 0 before event 1 was even sent
        jail.https.release_sse()
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
    assert out.read_text().count("data:") == 3


def test_upload_streams_with_its_length_and_content_intact(jail: Jailer) -> None:
    """A 20 MB POST body arrives upstream byte for byte."""
    payload = os.urandom(20 * 1024 * 1024)
    upload = jail.workdir / "payload.bin"
    upload.write_bytes(payload)
    upload.chmod(0o644)
    run = jail.run(["curl", "-sS", "--max-time", "60", "--data-binary", f"@{upload}", "https://open.test/upload"])
    assert run.result.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def _boundary_peak_rss_kib(audit_path: Path) -> int:
    """Peak RSS (VmHWM) of the boundary process serving the run logging to `audit_path`."""
    pids = subprocess.run(["pgrep", "-f", "--", f"--log {audit_path}"], capture_output=True, text=True).stdout.split()
    peaks = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    assert peaks, f"no boundary process found for {audit_path}"
    return max(peaks)


def test_big_download_streams_without_growing_the_proxy(jail: Jailer) -> None:
    """A 300 MiB download passes through while the proxy's peak memory stays far below the body size."""
    done = jail.workdir / "done"
    command = [
        "sh",
        "-c",
        f"curl -sS --max-time 120 -o /dev/null -w '%{{size_download}}' https://open.test/big?mb=300 > {done}.tmp"
        f" && mv {done}.tmp {done} && sleep 30",
    ]
    proc = spawn_boundary(jail.args(command), rootless=jail.rootless, expose=[jail.workdir])
    try:
        _wait_for(done.exists, timeout=120)
        peak_kib = _boundary_peak_rss_kib(jail.audit_path)
    finally:
        proc.kill()
        proc.wait()
    assert done.read_text() == str(300 * 1024 * 1024)
    assert peak_kib < 200 * 1024, f"proxy peak RSS {peak_kib} KiB for a 300 MiB body"


RELAY_POLICY = """\
version: 1
allow:
  - domain: allowed.test
    methods: [GET]
    paths: ["/pattern", "/hello"]
"""


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_a_streamed_body_arrives_byte_for_byte_and_the_connection_stays_checked(jail: Jailer, framing: str) -> None:
    """A 3 MB body of distinct bytes (each framing: the relayed Content-Length and close-delimited ones, and
    chunked, which mitmproxy re-frames) reaches curl intact; on the same connection the next request is still
    checked (denied) and the one after it allowed."""
    body, denied, after = (jail.workdir / name for name in ("body.bin", "denied.txt", "after.txt"))
    base = "https://allowed.test"
    urls = [f"{base}/pattern?kb=3000&framing={framing}", f"{base}/secret", f"{base}/hello"]
    outputs = [body, denied, after]
    command = ["curl", "-sS", "--max-time", "60", "-w", "%{http_code} %{num_connects}\\n"]
    for url, output in zip(urls, outputs, strict=True):
        command += ["-o", str(output), url]
    run = jail.run(command, policy=RELAY_POLICY)
    assert run.result.returncode == 0, run.stderr
    assert hashlib.sha256(body.read_bytes()).hexdigest() == hashlib.sha256(pattern(3000 * 1024)).hexdigest()
    statuses = [line.split() for line in run.stdout.splitlines()]
    assert [status for status, _ in statuses] == ["200", "403", "200"]
    if framing != "close":  # the body ended in the proxy's state: the connection is reused for what follows
        assert statuses[1][1] == "0"
    assert [(line["decision"], line["path"]) for line in run.audit] == [
        ("allow", f"/pattern?kb=3000&framing={framing}"),
        ("deny", "/secret"),
        ("allow", "/hello"),
    ]
    assert after.read_text() == "hello from allowed.test\n"


def test_a_client_that_leaves_mid_body_leaves_the_proxy_serving(jail: Jailer) -> None:
    """curl stops reading 1 MB into a 50 MB relayed body and goes away; the proxy drops the rest and serves the
    next request of the run as usual."""
    url = "https://allowed.test/pattern?kb=51200"
    script = (
        f"curl -sS --max-time 60 '{url}' | head -c 1000000 | wc -c; curl -sS --max-time 30 https://allowed.test/hello"
    )
    run = jail.run(["sh", "-c", script], policy=RELAY_POLICY)
    assert run.result.returncode == 0, run.stderr
    assert run.stdout.split("\n", 1) == ["1000000", "hello from allowed.test\n"]
    assert [(line["decision"], line["path"]) for line in run.audit][-1] == ("allow", "/hello")
