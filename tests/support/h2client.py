"""A raw HTTP/2 client for probes: it sends exactly the frames it is told, nothing a client library would fix.

Run as a script inside a jail: ``python h2client.py SPEC`` where SPEC is JSON::

    {"host": "allowed.test", "port": 443,
     "streams": [{"headers": [[":method", "GET"], [":path", "/hello"], ...],
                  "data": ["latin-1 text", ...],      # DATA frames, in order (an empty string: an empty frame)
                  "trailers": [[name, value], ...],   # optional, ends the stream
                  "end_on_headers": false}]}          # END_STREAM on HEADERS (no data may follow)

``:scheme`` and ``:authority`` default to ``https`` and the host. Headers go out unvalidated (names and values
as latin-1 bytes), so a probe can send what a well-behaved client never would. It prints one JSON line:
``{"streams": [{"status": int | null, "reason": str | null, "reset": int | null}], "end": str}``.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
from typing import Any

import h2.config
import h2.connection
import h2.events


def _fields(pairs: list[list[str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


def run(spec: dict[str, Any]) -> dict[str, Any]:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(
        socket.create_connection((spec["host"], spec["port"]), timeout=10), server_hostname=spec["host"]
    )
    if sock.selected_alpn_protocol() != "h2":
        return {"streams": [], "end": f"alpn {sock.selected_alpn_protocol()!r}"}
    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    results: dict[int, dict[str, Any]] = {}
    for stream in spec["streams"]:
        stream_id = conn.get_next_available_stream_id()
        results[stream_id] = {"status": None, "reason": None, "reset": None}
        pseudo = {name for name, _ in stream["headers"]}
        headers = [
            *([[":scheme", "https"]] if ":scheme" not in pseudo else []),
            *([[":authority", spec["host"]]] if ":authority" not in pseudo else []),
            *stream["headers"],
        ]
        ordered = sorted(headers, key=lambda pair: not pair[0].startswith(":"))  # pseudo-headers first
        conn.send_headers(stream_id, _fields(ordered), end_stream=bool(stream.get("end_on_headers")))
        if not stream.get("end_on_headers"):
            data = stream.get("data", [])
            trailers = stream.get("trailers")
            for index, chunk in enumerate(data):
                last = index == len(data) - 1 and not trailers
                conn.send_data(stream_id, chunk.encode("latin-1"), end_stream=last)
            if trailers:
                conn.send_headers(stream_id, _fields(trailers), end_stream=True)
            elif not data:
                conn.end_stream(stream_id)
        sock.sendall(conn.data_to_send())
    open_streams = set(results)
    end = "open"
    try:
        while open_streams:
            data = sock.recv(65536)
            if not data:
                end = "closed"
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    head = dict(event.headers)
                    results[event.stream_id]["status"] = int(head[b":status"])
                    reason = head.get(b"x-boundary-reason")
                    results[event.stream_id]["reason"] = reason.decode() if reason else None
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    open_streams.discard(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    results[event.stream_id]["reset"] = int(event.error_code or 0)
                    open_streams.discard(event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    end = f"goaway {int(event.error_code or 0)}"
                    open_streams.clear()
            sock.sendall(conn.data_to_send())
        else:
            end = "done"
    except (OSError, h2.exceptions.ProtocolError) as e:
        end = type(e).__name__
    return {"streams": [results[key] for key in sorted(results)], "end": end}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))), flush=True)
