"""Tests of the test WebSocket codec and client (tests/support/websocket.py): RFC 6455's own examples, every
length encoding, and the client script run by path against a real local upstream."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.support import websocket
from tests.support.tools import venv_python
from tests.support.upstreams import Upstream, start_http_upstream

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def test_accept_key_is_rfc_6455s_example() -> None:
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frames_are_rfc_6455s_examples() -> None:
    """§5.7: a single-frame unmasked and masked text message "Hello"."""
    assert websocket.encode_frame(websocket.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    masked = bytes.fromhex("818537fa213d7f9f4d5158")
    assert websocket.encode_frame(websocket.TEXT, b"Hello", mask=MASK) == masked
    assert websocket.decode_frame(masked) == websocket.Frame(True, websocket.TEXT, True, b"Hello")


@pytest.mark.parametrize(("length", "header"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)])
@pytest.mark.parametrize("mask", [None, MASK])
def test_every_length_encoding_round_trips(length: int, header: int, mask: bytes | None) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    data = websocket.encode_frame(websocket.BINARY, payload, mask=mask, fin=False)
    assert len(data) == header + (4 if mask else 0) + length
    assert websocket.decode_frame(data) == websocket.Frame(False, websocket.BINARY, mask is not None, payload)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes.fromhex("c100"), "reserved bits"),
        (bytes.fromhex("8105486565"), "cut short"),
        (bytes.fromhex("810048"), "bytes after the frame"),
    ],
)
def test_malformed_frames_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        websocket.decode_frame(data)


def test_a_mask_is_four_bytes() -> None:
    with pytest.raises(ValueError, match="4 bytes, not 3"):
        websocket.encode_frame(websocket.TEXT, b"x", mask=b"abc")


@pytest.fixture
def plain() -> Iterator[Upstream]:
    with start_http_upstream() as up:
        yield up


def _script(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [str(venv_python()), websocket.__file__, *args], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_script_reports_each_echo_and_the_close(plain: Upstream) -> None:
    out = _script(f"ws://127.0.0.1:{plain.port}/ws", "text:200", "binary:70000", "fragmented:1000", "ping")
    assert (out["status"], out["close"], out["eof"]) == (101, 1000, True)
    results = out["results"]
    assert isinstance(results, list)
    assert [(r["spec"], r["echo"]) for r in results] == [
        ("text:200", True),
        ("binary:70000", True),
        ("fragmented:1000", True),
        ("ping", True),
    ]
    assert [len(p) for _, p in plain.websocket_messages] == [r["size"] for r in results[:3]]


def test_the_script_reports_a_refused_handshake(plain: Upstream) -> None:
    """A handshake the server does not accept (here: /hello, a plain route) ends the run with its status."""
    assert _script(f"ws://127.0.0.1:{plain.port}/hello", "text:1") == {"status": 200, "reason": None}
