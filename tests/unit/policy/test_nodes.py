"""Specification of `boundary.policy.nodes`: YAML composed into nodes (`compose_yaml` and the node helpers) and
the key-table machinery every mapping of a document is read with, checked through whole documents."""

from __future__ import annotations

from typing import NoReturn

import pytest

from boundary.policy.nodes import compose_yaml, is_str_node, node_line, show_node
from tests.unit.policy.documents import parse_error, rules_text

NODE_ERRORS = [
    # YAML itself, refused at the line where reading it stopped
    pytest.param(
        "version: 1\nallow: [\n",
        "<string>:3: invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)",
        id="invalid-yaml",
    ),
    pytest.param(
        "version: 1\n---\nversion: 1\n",
        "<string>:2: invalid YAML: but found another document (expected a single document in the stream)",
        id="two-documents",
    ),
    pytest.param(
        "version: 1\nallow: *nothing\n",
        "<string>:2: invalid YAML: found undefined alias 'nothing'",
        id="undefined-alias",
    ),
    pytest.param(
        "version: 1\n\nallow: \x07\n",
        "<string>:3: invalid YAML: unacceptable character #x0007: special characters are not allowed",
        id="control-character",
    ),
    pytest.param("[" * 1000, "<string>:1: invalid YAML: nested too deeply", id="deep-nesting"),
    # keys: every table refuses an unknown, a repeated and a non-string key, where the key is
    pytest.param("version: 1\nalow: []\n", "<string>:2: unknown key 'alow'", id="unknown-top-key"),
    pytest.param(
        "version: 1\nversion: 1\n", "<string>:2: duplicate key 'version' (first on line 1)", id="duplicate-top"
    ),
    pytest.param("version: 1\n7: x\n", "<string>:2: expected a string key, got 7", id="int-key"),
    pytest.param("version: 1\n<<: {allow: []}\n", "<string>:2: expected a string key, got <<", id="merge-key-refused"),
    pytest.param(
        rules_text("  - domain: a.example", "    metods: [GET]"),
        "<string>:4: allow[0]: unknown key 'metods'",
        id="unknown-rule-key",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    domain: b.example"),
        "<string>:4: allow[0]: duplicate key 'domain' (first on line 3)",
        id="duplicate-rule-key",
    ),
    pytest.param(
        # YAML would silently keep the last of two `methods:`; the parser refuses instead
        rules_text("  - domain: a.example", "    methods: [GET]", "    methods: [DELETE]"),
        "<string>:5: allow[0]: duplicate key 'methods' (first on line 4)",
        id="duplicate-rule-key-yaml-would-collapse",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    [x]: y"),
        "<string>:4: allow[0]: expected a string key, got a list",
        id="list-key",
    ),
    pytest.param(
        "version: 1\ndefaults: {port: [1]}\n", "<string>:2: defaults: unknown key 'port'", id="defaults-unknown-key"
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_privat: [10.0.0.0/8]\n",
        "<string>:3: network: unknown key 'allow_privat'",
        id="network-unknown-key",
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private: []\n  allow_private: []\n",
        "<string>:4: network: duplicate key 'allow_private' (first on line 3)",
        id="network-duplicate-key",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_body: 1\n",
        "<string>:3: limits: unknown key 'request_body'",
        id="limits-unknown",
    ),
]


@pytest.mark.parametrize(("text", "message"), NODE_ERRORS)
def test_node_errors_name_their_location(text: str, message: str) -> None:
    """Invalid YAML, and an unknown, repeated or non-string key in any mapping, is a PolicyError
    `FILE:LINE: key.path: message` at the line of the problem."""
    assert parse_error(text) == message


class _Invalid(Exception):
    pass


def _raise(line: int, message: str) -> NoReturn:
    raise _Invalid(line, message)


def test_compose_yaml_hands_invalid_yaml_to_the_caller_by_line() -> None:
    """The YAML reading `policytool` shares: the node tree, None for an empty text, and a syntax error as
    (line, message) to the caller's `fail`, which adds its own source and exception."""
    assert compose_yaml("", _raise) is None
    root = compose_yaml("a: 1\nb: [x, 'y', ~]\n", _raise)
    assert root is not None and node_line(root) == 1
    [(_a, one), (_b, items)] = root.value
    assert (node_line(items), show_node(one), show_node(items), show_node(root)) == (2, "1", "a list", "a mapping")
    assert [(show_node(item), is_str_node(item)) for item in items.value] == [
        ("'x'", True),
        ("'y'", True),
        ("null", False),
    ]
    with pytest.raises(_Invalid) as raised:
        compose_yaml("a: 1\nb: [\n", _raise)
    assert raised.value.args[0] == 3
    assert raised.value.args[1].startswith("invalid YAML: ")
