"""A minimal RFC 6455 WebSocket for tests: the frame codec, the handshake's accept key and a blocking client.

The upstreams' ``/ws`` echo route (tests/support/upstreams.py) and the client the e2e tests run inside the jail
share this codec. Standard library only: the client runs by path with the venv's Python,

    python websocket.py URL SPEC...

and prints one JSON object: the handshake's ``status`` (and boundary's ``reason`` header when denied), then per
SPEC (``text:N``, ``binary:N``, ``fragmented:N`` (a text message in three frames), ``ping``) what came back, then
the close code the server answered with. Payloads are random; the client compares each echo with what it sent
and reports the size and SHA-256 of what it sent (``echo``, ``size``, ``sha256``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import ssl
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "WebSocketClient",
    "accept_key",
    "close_payload",
    "decode_frame",
    "encode_frame",
    "extended_length_size",
    "parse_frame",
    "read_frame",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 20.0


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server answers to ``Sec-WebSocket-Key: key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()


def _apply_mask(mask: bytes, payload: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def encode_frame(opcode: int, payload: bytes, *, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame; a client must give a 4-byte ``mask``, a server none."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    flag = 0x80 if mask is not None else 0
    if len(payload) < 126:
        head.append(flag | len(payload))
    elif len(payload) < 1 << 16:
        head += struct.pack("!BH", flag | 126, len(payload))
    else:
        head += struct.pack("!BQ", flag | 127, len(payload))
    if mask is None:
        return bytes(head) + payload
    if len(mask) != 4:
        raise ValueError(f"a frame mask is 4 bytes, not {len(mask)}")
    return bytes(head) + mask + _apply_mask(mask, payload)


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    masked: bool
    payload: bytes  # unmasked


def extended_length_size(second_byte: int) -> int:
    """How many length bytes follow a frame's first two: 0, 2 (length 126) or 8 (length 127)."""
    return {126: 2, 127: 8}.get(second_byte & 0x7F, 0)


def parse_frame(head: bytes, read: Callable[[int], bytes]) -> Frame:
    """The frame whose first two bytes are ``head``; ``read(n)`` returns exactly the next n bytes."""
    fin, opcode, masked = bool(head[0] & 0x80), head[0] & 0x0F, bool(head[1] & 0x80)
    if head[0] & 0x70:
        raise ValueError(f"frame with reserved bits set: {head[0]:#04x}")
    size = extended_length_size(head[1])
    length = int.from_bytes(read(size), "big") if size else head[1] & 0x7F
    mask = read(4) if masked else b""
    payload = read(length)
    return Frame(fin, opcode, masked, _apply_mask(mask, payload) if masked else payload)


def read_frame(read: Callable[[int], bytes]) -> Frame:
    return parse_frame(read(2), read)


def decode_frame(data: bytes) -> Frame:
    """The one whole frame ``data`` holds."""
    stream = io.BytesIO(data)

    def read(n: int) -> bytes:
        piece = stream.read(n)
        if len(piece) != n:
            raise ValueError(f"frame cut short: {len(piece)} of {n} bytes")
        return piece

    frame = read_frame(read)
    if stream.read(1):
        raise ValueError("bytes after the frame")
    return frame


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


class WebSocketClient:
    """A blocking client: :meth:`connect` does the handshake; ``status`` is what the server answered."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        self.status = 0
        self.headers: dict[str, str] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        address: tuple[str, int] | None = None,
        context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> WebSocketClient:
        """Handshake with ``url``, dialling ``address`` if given (else the URL's host, resolved); ``wss`` trusts
        ``context`` or the default CAs."""
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        raw = socket.create_connection(address or (host, parts.port or (443 if secure else 80)), timeout=timeout)
        tls = context or ssl.create_default_context()
        sock: socket.socket = tls.wrap_socket(raw, server_hostname=host) if secure else raw
        client = cls(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        request = (
            f"GET {target or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode())
        status_line = client._file.readline().decode("latin-1")
        client.status = int(status_line.split(" ", 2)[1])
        while (line := client._file.readline().decode("latin-1").rstrip("\r\n")) != "":
            name, _, value = line.partition(":")
            client.headers[name.strip().lower()] = value.strip()
        if client.status == 101 and client.headers.get("sec-websocket-accept") != accept_key(key):
            raise ValueError(f"bad Sec-WebSocket-Accept {client.headers.get('sec-websocket-accept')!r}")
        return client

    def _read(self, n: int) -> bytes:
        data = self._file.read(n)
        if len(data) != n:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        return data

    def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self._sock.sendall(encode_frame(opcode, payload, mask=os.urandom(4), fin=fin))

    def receive(self) -> tuple[int, bytes]:
        """The next message (fragments joined) or control frame, as (opcode, payload)."""
        frame = read_frame(self._read)
        opcode, data = frame.opcode, bytearray(frame.payload)
        while not frame.fin:
            frame = read_frame(self._read)
            data += frame.payload
        return opcode, bytes(data)

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def _text(size: int) -> bytes:
    """About ``size`` bytes of UTF-8 with one- to four-byte characters (a fragment may split one)."""
    chars = "aé€😀"
    return "".join(chars[b % 4] for b in os.urandom(size // 2 + 1)).encode()[:size].decode(errors="ignore").encode()


def _exchange(client: WebSocketClient, spec: str) -> dict[str, Any]:
    kind, _, size_text = spec.partition(":")
    size = int(size_text or "0")
    if kind == "ping":
        payload = os.urandom(16)
        client.send(PING, payload)
        opcode, answer = client.receive()
        return {"spec": spec, "echo": opcode == PONG and answer == payload}
    if kind == "binary":
        payload, opcode = os.urandom(size), BINARY
        client.send(BINARY, payload)
    else:
        payload, opcode = _text(size), TEXT
        if kind == "fragmented":
            third = size // 3
            client.send(TEXT, payload[:third], fin=False)
            client.send(CONTINUATION, payload[third : 2 * third], fin=False)
            client.send(CONTINUATION, payload[2 * third :])
        else:
            client.send(TEXT, payload)
    got_opcode, answer = client.receive()
    echo = got_opcode == opcode and answer == payload
    return {"spec": spec, "echo": echo, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def main(argv: list[str]) -> int:
    url, specs = argv[0], argv[1:]
    client = WebSocketClient.connect(url)
    out: dict[str, Any] = {"status": client.status, "reason": client.headers.get("x-boundary-reason")}
    if client.status == 101:
        out["results"] = [_exchange(client, spec) for spec in specs]
        client.send(CLOSE, close_payload(1000, "done"))
        opcode, answer = client.receive()
        out["close"] = struct.unpack("!H", answer[:2])[0] if opcode == CLOSE and len(answer) >= 2 else None
        out["eof"] = client._file.read(1) == b""  # the server closes the TCP connection after the close handshake
    client.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
