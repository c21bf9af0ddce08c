"""Every refusal is audited, and correctly: whatever layer refuses a connection or a request (the policy, the
proxy's checks, mitmproxy's own parsers), exactly one audit line says so, and its decision, reason and status
are what the client got. And a request head cannot grow without bound in the proxy's memory.

The in-jail client speaks raw bytes (tests/escape/test_review.py's CLIENT), so the proxy sees exactly the
malformed input.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import POLICY, Jailer
from tests.escape.conftest import Witnesses
from tests.escape.test_h2_framing import _h2
from tests.escape.test_review import _client
from tests.support.runner import boundary_pid, spawn_boundary
from tests.support.tools import venv_python

REFUSED = [
    ("GET /hello http/1.1\r\nHost: allowed.test\r\n\r\n", "HTTP/1.1 400", "protocol-error", 400),
    ("GET /hello\r\n\r\n", "HTTP/1.1 400", "protocol-error", 400),
    (
        "POST /upload HTTP/1.1\r\nHost: open.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 400",
        "protocol-error",
        400,
    ),
    ("GET /hello HTTP/1.1\r\nHost : allowed.test\r\n\r\n", "HTTP/1.1 400", "malformed-header", 400),
    ("\x16\x03\x01\x00\x05hello", None, "tls-error", None),
]


@pytest.mark.parametrize(
    ("request_bytes", "answer", "reason", "status"),
    REFUSED,
    ids=["lower-case-version", "http-0.9", "length-and-chunked", "space-before-colon", "fake-tls-record"],
)
def test_a_refused_request_has_exactly_one_line_that_matches_the_answer(
    jail: Jailer, witnesses: Witnesses, request_bytes: str, answer: str | None, reason: str, status: int | None
) -> None:
    """Each of these was refused with no audit line, with `decision: allow`, or with another reason and status
    than the client got. Now: one `deny` line with the reason and the status the client saw, and nothing
    upstream."""
    before = len(jail.http.requests) + len(jail.https.requests)
    probe = _client(jail, tls=False, host="open.test", port=80, steps=[(request_bytes, answer is not None)])
    responses = probe[0]["responses"] if probe.results else []
    assert responses[0].startswith(answer) if answer else responses == [], (probe.results, probe.run.stderr)
    lines = [(line["decision"], line["reason"], line["status"]) for line in probe.run.audit]
    assert lines == [("deny", reason, status)], probe.run.audit
    assert len(jail.http.requests) + len(jail.https.requests) == before
    witnesses.assert_nothing_escaped()


def test_a_head_over_the_limit_is_refused_with_431_and_a_line(jail: Jailer, witnesses: Witnesses) -> None:
    """A header value with no end of head: past 64 KiB the client gets 431 and the audit log one line."""
    # 100 000 bytes: past the 64 KiB limit, under the kernel's 128 KiB cap on one argv string.
    head = "GET /hello HTTP/1.1\r\nHost: open.test\r\nX-Big: " + "a" * 100000
    probe = _client(jail, tls=False, host="open.test", port=80, steps=[(head, True)])
    assert probe[0]["responses"][0].startswith("HTTP/1.1 431"), probe.results
    assert [(line["reason"], line["status"]) for line in probe.run.audit] == [("request-head-too-large", 431)]
    witnesses.assert_nothing_escaped()


def _head(*fields: tuple[str, int]) -> str:
    """A complete GET /hello head for open.test with each (name, value length) field."""
    lines = "".join(f"{name}: {'a' * size}\r\n" for name, size in fields)
    return f"GET /hello HTTP/1.1\r\nHost: open.test\r\n{lines}Connection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("limits", "fields", "status", "reason"),
    [
        pytest.param("{request_head: 8192}", [("X-Big", 6000)], "200", "allowed", id="under-a-lowered-limit"),
        pytest.param(
            "{request_head: 8192}", [("X-Big", 9000)], "431", "request-head-too-large", id="over-a-lowered-limit"
        ),
        pytest.param(
            "{request_head: 128KiB}",
            [("X-Big", 40000), ("X-Bigger", 40000)],
            "200",
            "allowed",
            id="over-the-default-under-a-raised-limit",
        ),
        pytest.param(
            "{request_headers: 20}",
            [(f"X-{index}", 1) for index in range(30)],
            "431",
            "request-head-too-large",
            id="too-many-fields",
        ),
    ],
)
def test_the_policys_limits_decide_which_heads_are_refused(
    jail: Jailer, witnesses: Witnesses, limits: str, fields: list[tuple[str, int]], status: str, reason: str
) -> None:
    """`limits:` in the policy moves the 431 line both ways: an 80 KB head passes under a raised limit (the
    default would refuse it), a 9 KB one is refused under a lowered one, and a field count is a limit of its
    own."""
    before = len(jail.http.requests)
    probe = _client(
        jail,
        tls=False,
        host="open.test",
        port=80,
        steps=[(_head(*fields), True)],
        policy=POLICY + f"limits: {limits}\n",
    )
    assert probe[0]["responses"][0].startswith(f"HTTP/1.1 {status}"), (probe.results, probe.run.stderr)
    assert [line["reason"] for line in probe.run.audit] == [reason]
    assert len(jail.http.requests) - before == (1 if status == "200" else 0)
    witnesses.assert_nothing_escaped()


def test_an_h2_header_list_with_more_fields_than_the_limit_is_refused(jail: Jailer, witnesses: Witnesses) -> None:
    """HPACK counts bytes only; the field count holds for HTTP/2 too: 30 fields under `request_headers: 20`
    get 431 and one line, and nothing goes upstream."""
    before = len(jail.https.requests)
    headers = [[":method", "GET"], [":path", "/hello"], *[[f"x-{index}", "1"] for index in range(30)]]
    probe = _h2(
        jail,
        "open.test",
        [{"headers": headers, "end_on_headers": True}],
        policy=POLICY + "limits: {request_headers: 20}\n",
    )
    assert probe.results[0]["streams"][0]["status"] == 431, (probe.results, probe.run.stderr)
    assert [(line["reason"], line["status"]) for line in probe.run.audit] == [("request-head-too-large", 431)]
    assert len(jail.https.requests) == before
    witnesses.assert_nothing_escaped()


# 50 connections at once, each sending 4 MiB of one header value that never ends, in 64 KiB writes, until the
# proxy closes it; the workload waits for files the test creates, so the test reads the proxy's memory before.
FLOOD = r"""
import os, socket, sys, threading, time
work = sys.argv[1]
open(os.path.join(work, "ready"), "w").close()
while not os.path.exists(os.path.join(work, "go")):
    time.sleep(0.02)

def flood():
    try:
        sock = socket.create_connection(("open.test", 80), timeout=20)
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: open.test\r\nX-Big: ")
        piece = b"a" * 65536
        for _ in range(64):
            sock.sendall(piece)
    except OSError:
        pass

threads = [threading.Thread(target=flood) for _ in range(50)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
open(os.path.join(work, "done"), "w").close()
while not os.path.exists(os.path.join(work, "stop")):
    time.sleep(0.02)
"""


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_fifty_endless_heads_at_once_leave_the_proxys_memory_flat(jail: Jailer) -> None:
    """Before the limit, one 96 MiB header value raised the proxy's RSS by ~350 MiB. Now 50 connections each
    sending 4 MiB of header (200 MiB in all) raise the proxy's peak RSS by a small fraction of that: each is cut
    off at 64 KiB (plus the one read in flight)."""
    proc = spawn_boundary(
        jail.args([str(venv_python()), "-c", FLOOD, str(jail.workdir)]), rootless=jail.rootless, expose=[jail.workdir]
    )
    try:
        _wait_for(jail.workdir / "ready")
        pid = boundary_pid(f"--log {jail.audit_path}")
        time.sleep(1.0)  # mitmproxy is imported while the workload starts: let the proxy settle first
        before = _status_kib(pid, "VmRSS")
        (jail.workdir / "go").touch()
        _wait_for(jail.workdir / "done", timeout=120)
        peak_growth = _status_kib(pid, "VmHWM") - before
        (jail.workdir / "stop").touch()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    refused = [line for line in jail.audit() if line["reason"] == "request-head-too-large"]
    assert len(refused) == 50
    assert peak_growth < 64 * 1024, f"peak RSS grew {peak_growth} KiB"
