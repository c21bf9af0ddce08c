"""`--resolve HOST:PORT:ADDR[:TARGET_PORT]`: the operator's own answers for names the proxy dials.

Like curl's `--resolve`, with one extension: an optional target port, so a test (or a developer) can point
`api.example.com:443` at a local server on any port. IPv6 addresses are written in brackets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from boundary.errors import UsageError
from boundary.policy.canon import normalize_host

_FORM = "expected HOST:PORT:ADDR or HOST:PORT:ADDR:PORT (IPv6 ADDR in brackets)"


@dataclass(frozen=True, slots=True)
class Override:
    host: str
    port: int
    address: str
    target_port: int


def _port(text: str, original: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"--resolve '{original}': bad port '{text}' ({_FORM})")
    return int(text)


def parse_resolve(text: str) -> Override:
    host, sep, rest = text.partition(":")
    port_text, sep2, target = rest.partition(":")
    if not (sep and sep2 and host and target):
        raise UsageError(f"--resolve '{text}': {_FORM}")
    try:
        name = normalize_host(host)
    except ValueError as e:
        raise UsageError(f"--resolve '{text}': bad host name '{host}': {e}") from e
    port = _port(port_text, text)
    if target.startswith("["):
        address, bracket, after = target[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise UsageError(f"--resolve '{text}': {_FORM}")
        target_port_text = after[1:]
    else:
        address, _, target_port_text = target.partition(":")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError as e:
        raise UsageError(f"--resolve '{text}': '{address}' is not an IP address ({_FORM})") from e
    target_port = _port(target_port_text, text) if target_port_text else port
    return Override(name, port, str(parsed), target_port)


def override_table(overrides: list[Override]) -> dict[tuple[str, int], tuple[str, int]]:
    table: dict[tuple[str, int], tuple[str, int]] = {}
    for o in overrides:
        table[(o.host, o.port)] = (o.address, o.target_port)
    return table
