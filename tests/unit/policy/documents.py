"""Policy documents the specs of `boundary.policy` parse, the rules they parse to, and the one way a spec reads a
refusal: shared by the mirror test files of the `boundary.policy` modules."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import strategies as st

from boundary.errors import PolicyError
from boundary.policy.load import parse_policy
from boundary.policy.model import DEFAULT_PORTS, IPNetwork, Rule

# Text shaped like host names, for property tests: letters of both cases, digits, dots, hyphens, non-ASCII, `_`.
HOSTISH = st.text(alphabet="aZ0x9-.\u00fc_", max_size=20)

FULL = """\
version: 1
allow:
  - domain: example.com
    methods: [get, HEAD]
    paths: ["/hello", "/v1/*"]
    ports: [443, 8443]
"""


def rules_text(*lines: str) -> str:
    """A document whose rule lines start on line 3 (`version` on 1, `allow:` on 2)."""
    return "version: 1\nallow:\n" + "".join(line + "\n" for line in lines)


def deny_text(*lines: str) -> str:
    """A document whose deny rule lines start on line 3 (`version` on 1, `deny:` on 2)."""
    return "version: 1\ndeny:\n" + "".join(line + "\n" for line in lines)


def allow_rule(domain: str, line: int, **fields: Any) -> Rule:
    """An allow rule as the parser builds it from `<string>`, with the default ports unless told otherwise."""
    fields.setdefault("ports", DEFAULT_PORTS)
    fields.setdefault("methods", None)
    fields.setdefault("paths", None)
    return Rule(domain=domain, source=f"<string>:{line}", **fields)


def deny_rule(domain: str, line: int, **fields: Any) -> Rule:
    """A deny rule as the parser builds it: every port unless told otherwise."""
    fields.setdefault("ports", None)
    return allow_rule(domain, line, action="deny", **fields)


def parse_error(text: str, source: str = "<string>") -> str:
    """The message of the PolicyError that parsing `text` as `source` raises (failing the test if it parses)."""
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source)
    return str(raised.value)


def networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    """The address ranges a policy's `allow_private` holds for these."""
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)
