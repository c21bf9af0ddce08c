"""Tests of the Anthropic Messages API stand-in and of the helpers that run the real Claude Code CLI.

Clients connect to 127.0.0.1 with ``api.anthropic.com`` as TLS server name; nothing is resolved. The CLI
runs in a network namespace that has only ``lo`` (it cannot reach anything off this machine).
"""

from __future__ import annotations

import http.client
import json
import socket
import stat
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.anthropic_standin import (
    DEFAULT_ANSWER,
    DUMMY_API_KEY,
    AnthropicStandin,
    DnsRecorder,
    find_claude,
    netns_unavailable_reason,
    prepare_claude_home,
    run_claude_in_loopback_netns,
    spawn_in_loopback_netns,
    start_anthropic_standin,
)
from tests.support.upstreams import TestCA, start_canary, start_http_upstream

API = "api.anthropic.com"


@cache
def _netns_reason() -> str | None:
    return netns_unavailable_reason()


def needs_netns() -> None:
    reason = _netns_reason()
    if reason is not None:
        pytest.skip(reason)


def needs_claude() -> Path:
    needs_netns()
    claude = find_claude()
    if claude is None:
        pytest.skip("the Claude Code native binary is not installed (run the npm install step first)")
    return claude


@pytest.fixture
def standin(ca: TestCA) -> Iterator[AnthropicStandin]:
    with start_anthropic_standin(ca, [API]) as s:
        yield s


def api_request(
    ca: TestCA, standin: AnthropicStandin, method: str, path: str, payload: object | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTPS request to the stand-in at 127.0.0.1 with SNI/Host api.anthropic.com."""
    raw = socket.create_connection(("127.0.0.1", standin.port), timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=30)
    conn.sock = ca.client_context().wrap_socket(raw, server_hostname=API)
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Host": API, "x-api-key": DUMMY_API_KEY, "anthropic-version": "2023-06-01"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, decoded data) of each server-sent event."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


MESSAGE = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


# ------------------------------------------------------------------------------------------ the stand-in


def test_streaming_message_follows_the_messages_api_event_sequence(ca: TestCA, standin: AnthropicStandin) -> None:
    """``stream: true`` answers the Messages API SSE sequence, each event's name matching its data type."""
    status, headers, data = api_request(ca, standin, "POST", "/v1/messages?beta=true", {**MESSAGE, "stream": True})
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = parse_sse(data)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == payload["type"] for name, payload in events)


def test_streaming_message_carries_answer_stop_reason_and_usage(ca: TestCA, standin: AnthropicStandin) -> None:
    """The text deltas join to the answer; message_delta says end_turn and reports output tokens."""
    _, _, data = api_request(ca, standin, "POST", "/v1/messages", {**MESSAGE, "stream": True})
    sequence = parse_sse(data)
    events = dict(sequence)
    deltas = [payload["delta"] for name, payload in sequence if name == "content_block_delta"]
    assert "".join(delta["text"] for delta in deltas) == DEFAULT_ANSWER
    assert {delta["type"] for delta in deltas} == {"text_delta"}
    start = events["message_start"]["message"]
    assert (start["role"], start["model"], start["content"], start["stop_reason"]) == (
        "assistant",
        "claude-test",
        [],
        None,
    )
    delta = events["message_delta"]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 0


def test_non_streaming_message_is_one_json_message(ca: TestCA, standin: AnthropicStandin) -> None:
    """Without ``stream`` the answer is one JSON message with the text, end_turn and usage."""
    status, headers, data = api_request(ca, standin, "POST", "/v1/messages", MESSAGE)
    message = json.loads(data)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert "request-id" in headers
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": DEFAULT_ANSWER}]
    assert message["stop_reason"] == "end_turn"
    assert set(message["usage"]) >= {"input_tokens", "output_tokens"}


def test_answer_text_is_configurable(ca: TestCA) -> None:
    """The answer given at start (and changed later) is the text of the next messages."""
    with start_anthropic_standin(ca, [API], answer="first answer") as s:
        _, _, first = api_request(ca, s, "POST", "/v1/messages", MESSAGE)
        s.answer = "second answer"
        _, _, second = api_request(ca, s, "POST", "/v1/messages", MESSAGE)
    assert json.loads(first)["content"][0]["text"] == "first answer"
    assert json.loads(second)["content"][0]["text"] == "second answer"


def test_count_tokens_answers_input_tokens(ca: TestCA, standin: AnthropicStandin) -> None:
    """POST /v1/messages/count_tokens answers a positive ``input_tokens``."""
    status, _, data = api_request(ca, standin, "POST", "/v1/messages/count_tokens", MESSAGE)
    assert status == 200
    assert json.loads(data)["input_tokens"] > 0


def test_unknown_path_is_a_json_404(ca: TestCA, standin: AnthropicStandin) -> None:
    """Paths the stand-in does not serve answer 404 with an Anthropic-style JSON error."""
    status, _, data = api_request(ca, standin, "GET", "/api/claude_code/settings")
    assert status == 404
    assert json.loads(data)["error"]["type"] == "not_found_error"


def test_malformed_message_body_is_a_400(ca: TestCA, standin: AnthropicStandin) -> None:
    """A /v1/messages body that is not a JSON object answers 400 invalid_request_error."""
    status, _, data = api_request(ca, standin, "POST", "/v1/messages", ["not", "an", "object"])
    assert status == 400
    assert json.loads(data)["error"]["type"] == "invalid_request_error"


def test_every_request_is_recorded_with_headers_and_sni(ca: TestCA, standin: AnthropicStandin) -> None:
    """Each request is recorded with method, raw path, headers and the SNI it came with."""
    api_request(ca, standin, "POST", "/v1/messages?beta=true", MESSAGE)
    api_request(ca, standin, "GET", "/nowhere")
    assert standin.paths() == ["POST /v1/messages?beta=true", "GET /nowhere"]
    [message] = standin.message_requests()
    assert message.header("x-api-key") == DUMMY_API_KEY
    assert message.sni == API
    assert json.loads(message.body)["model"] == "claude-test"
    assert standin.errors == []


# ------------------------------------------------------------------------------------ claude home and find


def test_prepare_claude_home_writes_onboarding_state_and_env(tmp_path: Path) -> None:
    """prepare_claude_home marks onboarding done and returns a full env with the key and switches."""
    ca_pem = tmp_path / "ca.pem"
    env = prepare_claude_home(tmp_path / "home", base_url="https://localhost:1", ca_pem=ca_pem)
    state = json.loads((tmp_path / "home" / ".claude.json").read_text())
    assert state["hasCompletedOnboarding"] is True
    assert (tmp_path / "home" / ".claude").is_dir()
    assert env["HOME"] == str(tmp_path / "home")
    assert env["ANTHROPIC_API_KEY"] == DUMMY_API_KEY
    assert env["ANTHROPIC_BASE_URL"] == "https://localhost:1"
    assert env["NODE_EXTRA_CA_CERTS"] == str(ca_pem)
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["DISABLE_AUTOUPDATER"] == "1"


def test_find_claude_returns_an_executable_or_none() -> None:
    """find_claude returns an executable file named ``claude`` or None."""
    claude = find_claude()
    if claude is None:
        pytest.skip("the Claude Code native binary is not installed")
    assert claude.name == "claude"
    assert claude.stat().st_mode & stat.S_IXUSR


# ------------------------------------------------------------------------------- the loopback-only netns


def test_netns_child_reaches_the_listener_handed_back(tmp_path: Path) -> None:
    """A process in the namespace reaches 127.0.0.1:PORT there, served by this process on the handed-back socket."""
    needs_netns()
    code = (
        "import http.client; c = http.client.HTTPConnection('127.0.0.1', 8080, timeout=30); "
        "c.request('GET', '/hello', headers={'Host': 'inside.test'}); print(c.getresponse().read().decode(), end='')"
    )
    child = spawn_in_loopback_netns(
        [sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path, tcp_ports=[8080]
    )
    with start_http_upstream(sock=child.listeners[8080]):
        child.start()
        out, err = child.proc.communicate(timeout=60)
    assert child.proc.returncode == 0, err
    assert out == b"hello from inside.test\n"


def test_netns_child_cannot_reach_the_host_loopback(tmp_path: Path) -> None:
    """127.0.0.1 inside the namespace is not the host's: a host-side canary sees no connection."""
    needs_netns()
    with start_canary() as canary:
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {canary.port}), timeout=5)\n"
            "    print('connected')\n"
            "except ConnectionRefusedError:\n"
            "    print('refused')\n"
        )
        child = spawn_in_loopback_netns([sys.executable, "-c", code], env={}, cwd=tmp_path)
        child.start()
        out, err = child.proc.communicate(timeout=60)
        assert out == b"refused\n", err
        assert canary.hits == []


def test_netns_has_no_route_off_the_machine(tmp_path: Path) -> None:
    """Inside the namespace a non-loopback destination is unreachable (TEST-NET-1, never routed)."""
    needs_netns()
    code = (
        "import errno, socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=5)\n"
        "except OSError as exc:\n"
        "    print(errno.errorcode.get(exc.errno, exc.errno))\n"
    )
    child = spawn_in_loopback_netns([sys.executable, "-c", code], env={}, cwd=tmp_path)
    child.start()
    out, err = child.proc.communicate(timeout=60)
    assert out == b"ENETUNREACH\n", err


def test_netns_dns_is_recorded_and_answers_nxdomain(tmp_path: Path) -> None:
    """Lookups in the namespace reach the DnsRecorder, which records them and answers NXDOMAIN."""
    needs_netns()
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('nowhere.example.test', 443, socket.AF_INET)\n"
        "    print('resolved')\n"
        "except socket.gaierror:\n"
        "    print('not found')\n"
    )
    child = spawn_in_loopback_netns([sys.executable, "-c", code], env={}, cwd=tmp_path, resolv_dir=tmp_path / "etc")
    assert child.dns_socket is not None
    dns = DnsRecorder(child.dns_socket)
    try:
        child.start()
        out, err = child.proc.communicate(timeout=60)
    finally:
        dns.close()
    assert out == b"not found\n", err
    assert dns.names() == ["nowhere.example.test"]


def test_netns_dns_answers_configured_names(tmp_path: Path) -> None:
    """A name given to the DnsRecorder resolves to its loopback address inside the namespace."""
    needs_netns()
    code = "import socket; print(socket.getaddrinfo('api.anthropic.com', 443, socket.AF_INET)[0][4][0])"
    child = spawn_in_loopback_netns([sys.executable, "-c", code], env={}, cwd=tmp_path, resolv_dir=tmp_path / "etc")
    assert child.dns_socket is not None
    dns = DnsRecorder(child.dns_socket, answers={API: "127.0.0.1"})
    try:
        child.start()
        out, err = child.proc.communicate(timeout=60)
    finally:
        dns.close()
    assert out == b"127.0.0.1\n", err


# --------------------------------------------------------------------------------------- the real CLI


def test_claude_cli_prints_the_standin_answer_via_base_url(ca: TestCA, tmp_path: Path) -> None:
    """``claude -p`` with ANTHROPIC_BASE_URL=https://localhost:PORT prints the stand-in's answer."""
    claude = needs_claude()
    run = run_claude_in_loopback_netns(claude, "Say hello", ca=ca, workdir=tmp_path)
    assert not run.timed_out, run.describe()
    assert run.returncode == 0, run.describe()
    assert DEFAULT_ANSWER in run.stdout, run.describe()
    messages = [r for r in run.requests if r.method == "POST" and r.path.split("?")[0] == "/v1/messages"]
    assert messages, run.describe()
    assert json.loads(messages[0].body)["stream"] is True
    assert messages[0].header("x-api-key") == DUMMY_API_KEY
    assert run.standin_errors == []


def test_claude_cli_reaches_the_standin_by_its_normal_name(ca: TestCA, tmp_path: Path) -> None:
    """With no base URL the CLI calls https://api.anthropic.com (here: the stand-in) and prints the answer."""
    claude = needs_claude()
    run = run_claude_in_loopback_netns(claude, "Say hello", ca=ca, workdir=tmp_path, normal_name=True)
    assert not run.timed_out, run.describe()
    assert run.returncode == 0, run.describe()
    assert DEFAULT_ANSWER in run.stdout, run.describe()
    assert any(r.path.startswith("/v1/messages") and r.sni == API for r in run.requests), run.describe()
    assert API in run.dns_names, run.describe()
