"""Specification of the policy file format: what parses to what, and every error with its exact location."""

import errno
import ipaddress
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.errors import CasesError, PolicyError
from boundary.policy.canon import (
    AmbiguousPathError,
    is_canonical_host,
    is_ip_literal,
    normalize_host,
    normalize_path,
    query_readings,
    raw_target_matchable,
)
from boundary.policy.language import (
    DENY_RULE_TABLE,
    LIMITS_TABLE,
    NETWORK_TABLE,
    POLICY_TABLE,
    RULE_TABLE,
    SETTINGS_TABLE,
)
from boundary.policy.load import IncludeLoader, load_policy, parse_policy, read_text
from boundary.policy.model import DEFAULT_PORTS, KNOWN_METHODS, Limits, Policy, Rule
from boundary.policy.nodes import compose_yaml, is_str_node, node_line, show_node
from boundary.policy.patterns import (
    PUBLIC_SUFFIXES,
    broad_reason,
    domain_pattern_matches,
    domain_pattern_parts,
    normalize_domain_pattern,
    star_matches,
)

FULL = """\
version: 1
allow:
  - domain: example.com
    methods: [get, HEAD]
    paths: ["/hello", "/v1/*"]
    ports: [443, 8443]
"""


def rule(
    domain: str,
    line: int,
    *,
    ports: frozenset[int] = DEFAULT_PORTS,
    methods: frozenset[str] | None = None,
    paths: tuple[str, ...] | None = None,
) -> Rule:
    return Rule(domain=domain, ports=ports, methods=methods, paths=paths, source=f"<string>:{line}")


VALID = [
    pytest.param("version: 1\n", (), id="no-allow-key"),
    pytest.param("version: 1\nallow:\n", (), id="allow-null"),
    pytest.param("version: 1\nallow: []\n", (), id="allow-empty"),
    pytest.param(
        FULL,
        (
            rule(
                "example.com",
                3,
                ports=frozenset({443, 8443}),
                methods=frozenset({"GET", "HEAD"}),
                paths=("/hello", "/v1/*"),
            ),
        ),
        id="every-field",
    ),
    pytest.param("version: 1\nallow:\n  - domain: example.com\n", (rule("example.com", 3),), id="defaults"),
    pytest.param("version: 1\nallow:\n  - domain: Example.COM.\n", (rule("example.com", 3),), id="host-normalized"),
    pytest.param(
        "allow:\n- domain: a.example\n- {domain: b.example, ports: [80]}\nversion: 1\n",
        (rule("a.example", 2), rule("b.example", 3, ports=frozenset({80}))),
        id="order-kept-version-anywhere",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\n  - domain: a.example\n    methods: [POST]\n",
        (rule("a.example", 3), rule("a.example", 4, methods=frozenset({"POST"}))),
        id="same-domain-twice",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\n    methods: [GET, get]\n    ports: [65535, 1]\n",
        (rule("a.example", 3, methods=frozenset({"GET"}), ports=frozenset({1, 65535})),),
        id="repeats-and-port-bounds",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\n    paths: ['/', '/*', '/a%C3%A9/x*y*z/', '/~u;v']\n",
        (rule("a.example", 3, paths=("/", "/*", "/a%C3%A9/x*y*z/", "/~u;v")),),
        id="normal-form-paths",
    ),
    pytest.param("\ufeffversion: 1\n", (), id="byte-order-mark"),
]


@pytest.mark.parametrize(("text", "rules"), VALID)
def test_valid_policies_parse_to_rules(text: str, rules: tuple[Rule, ...]) -> None:
    """Valid documents parse to exactly these rules, in file order, each citing the line it starts on."""
    assert parse_policy(text) == Policy(rules=rules, source="<string>")


def rules_text(*lines: str) -> str:
    """A document whose rule lines start on line 3 (`version` on 1, `allow:` on 2)."""
    return "version: 1\nallow:\n" + "".join(line + "\n" for line in lines)


ERRORS = [
    # the document as a whole
    pytest.param("", "<string>:1: empty policy (expected 'version: 1')", id="empty"),
    pytest.param("# nothing\n", "<string>:1: empty policy (expected 'version: 1')", id="only-comment"),
    pytest.param("---\n", "<string>:1: empty policy (expected 'version: 1')", id="null-document"),
    pytest.param(
        "- version: 1\n",
        "<string>:1: expected a mapping with 'version' and 'allow', got a list",
        id="top-level-list",
    ),
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
    # top-level keys
    pytest.param("allow: []\n", "<string>:1: missing required key 'version'", id="version-missing"),
    pytest.param("version: 2\n", "<string>:1: version: unsupported version 2 (expected 1)", id="version-2"),
    pytest.param("version: '1'\n", "<string>:1: version: unsupported version '1' (expected 1)", id="version-string"),
    pytest.param("version: 1.0\n", "<string>:1: version: unsupported version 1.0 (expected 1)", id="version-float"),
    pytest.param("version:\n", "<string>:1: version: unsupported version null (expected 1)", id="version-null"),
    pytest.param("version: [1]\n", "<string>:1: version: unsupported version a list (expected 1)", id="version-list"),
    pytest.param("version: 1\nalow: []\n", "<string>:2: unknown key 'alow'", id="unknown-top-key"),
    pytest.param(
        "version: 1\nversion: 1\n", "<string>:2: duplicate key 'version' (first on line 1)", id="duplicate-top"
    ),
    pytest.param("version: 1\n7: x\n", "<string>:2: expected a string key, got 7", id="int-key"),
    pytest.param("version: 1\n<<: {allow: []}\n", "<string>:2: expected a string key, got <<", id="merge-key-refused"),
    pytest.param(
        "version: 1\nallow: example.com\n",
        "<string>:2: allow: expected a list of rules, got 'example.com'",
        id="allow-scalar",
    ),
    pytest.param(
        "version: 1\nallow: {domain: example.com}\n",
        "<string>:2: allow: expected a list of rules, got a mapping",
        id="allow-mapping",
    ),
    # rule shape
    pytest.param(
        rules_text("  - example.com"),
        "<string>:3: allow[0]: expected a mapping with 'domain', got 'example.com'",
        id="rule-scalar",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "  - methods: [GET]"),
        "<string>:4: allow[1]: missing required key 'domain' or 'domains'",
        id="domain-missing",
    ),
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
        rules_text("  - domain: a.example", "    [x]: y"),
        "<string>:4: allow[0]: expected a string key, got a list",
        id="list-key",
    ),
    # domain
    pytest.param(
        rules_text("  - domain: [a.example]"),
        "<string>:3: allow[0].domain: expected a host name, got a list",
        id="domain-list",
    ),
    pytest.param(
        rules_text("  - domain: true"),
        "<string>:3: allow[0].domain: expected a host name, got true",
        id="domain-bool",
    ),
    pytest.param(
        rules_text("  - domain: 'a*.example.com'"),
        "<string>:3: allow[0].domain: invalid host name 'a*.example.com':"
        " '*' and '**' may only form the whole first label, as in '*.example.com'",
        id="domain-wildcard-inside-label",
    ),
    pytest.param(
        rules_text("  - domain: 10.0.0.1"),
        "<string>:3: allow[0].domain: IP addresses cannot be named yet: '10.0.0.1'",
        id="domain-ipv4",
    ),
    pytest.param(
        rules_text("  - domain: 127.1"),
        "<string>:3: allow[0].domain: IP addresses cannot be named yet: 127.1",
        id="domain-ipv4-short-is-a-yaml-float",
    ),
    pytest.param(
        rules_text("  - domain: 2130706433"),
        "<string>:3: allow[0].domain: IP addresses cannot be named yet: 2130706433",
        id="domain-ipv4-integer",
    ),
    pytest.param(
        rules_text("  - domain: '[::1]'"),
        "<string>:3: allow[0].domain: IP addresses cannot be named yet: '[::1]'",
        id="domain-ipv6",
    ),
    pytest.param(
        rules_text("  - domain: a_b.example"),
        "<string>:3: allow[0].domain: invalid host name 'a_b.example':"
        " label 'a_b' must be letters, digits and inner hyphens",
        id="domain-underscore",
    ),
    pytest.param(
        rules_text("  - domain: example.com:443"),
        "<string>:3: allow[0].domain: invalid host name 'example.com:443':"
        " label 'com:443' must be letters, digits and inner hyphens",
        id="domain-with-port",
    ),
    pytest.param(
        rules_text("  - domain: faß.de"),
        "<string>:3: allow[0].domain: invalid host name 'faß.de':"
        " label 'faß' is not in IDNA normal form (IDNA 2003 maps it to 'fass')",
        id="domain-idna-remapped",
    ),
    pytest.param(
        rules_text("  - domain: ''"),
        "<string>:3: allow[0].domain: invalid host name '': empty host name",
        id="domain-empty",
    ),
    # methods
    pytest.param(
        rules_text("  - domain: a.example", "    methods: GET"),
        "<string>:4: allow[0].methods: expected a list of methods, got 'GET'",
        id="methods-scalar",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: []"),
        "<string>:4: allow[0].methods: empty list (omit 'methods' to allow any method)",
        id="methods-empty",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods:", "      - GET", "      - GETT"),
        "<string>:6: allow[0].methods: unknown method 'GETT'",
        id="method-unknown",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: [GET, [POST]]"),
        "<string>:4: allow[0].methods: expected a method name, got a list",
        id="method-list",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: [null]"),
        "<string>:4: allow[0].methods: expected a method name, got null",
        id="method-null",
    ),
    # ports
    pytest.param(
        rules_text("  - domain: a.example", "    ports: 443"),
        "<string>:4: allow[0].ports: expected a list of ports, got 443",
        id="ports-scalar",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: []"),
        "<string>:4: allow[0].ports: empty list (omit 'ports' for the default 80 and 443)",
        id="ports-empty",
    ),
    pytest.param(
        rules_text("  - domain: a.example", '    ports: ["x"]'),
        "<string>:4: allow[0].ports: expected a port number, got 'x'",
        id="port-string",
    ),
    pytest.param(
        rules_text("  - domain: a.example", '    ports: ["443"]'),
        "<string>:4: allow[0].ports: expected a port number, got '443'",
        id="port-quoted",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: [0755]"),
        "<string>:4: allow[0].ports: expected a port number, got 0755",
        id="port-yaml-octal",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: [0x1bb]"),
        "<string>:4: allow[0].ports: expected a port number, got 0x1bb",
        id="port-hex",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: [443.0]"),
        "<string>:4: allow[0].ports: expected a port number, got 443.0",
        id="port-float",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: [0]"),
        "<string>:4: allow[0].ports: port 0 out of range (1-65535)",
        id="port-zero",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: [65536]"),
        "<string>:4: allow[0].ports: port 65536 out of range (1-65535)",
        id="port-too-big",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    ports: [-1]"),
        "<string>:4: allow[0].ports: expected a port number, got -1",
        id="port-negative",
    ),
    # paths
    pytest.param(
        rules_text("  - domain: a.example", "    paths: /hello"),
        "<string>:4: allow[0].paths: expected a list of paths, got '/hello'",
        id="paths-scalar",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: []"),
        "<string>:4: allow[0].paths: empty list (omit 'paths' to allow any path)",
        id="paths-empty",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: [1]"),
        "<string>:4: allow[0].paths: expected a path pattern, got 1",
        id="path-int",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: [hello]"),
        "<string>:4: allow[0].paths: path must start with '/': 'hello'",
        id="path-relative",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/a?b=1']"),
        "<string>:4: allow[0].paths: path cannot contain a query: '/a?b=1'",
        id="path-query",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/a%2Fb']"),
        "<string>:4: allow[0].paths: ambiguous path '/a%2Fb': encoded '/'"
        " (only a rule with 'raw_paths: true' may name it)",
        id="path-ambiguous",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/a/../b']"),
        "<string>:4: allow[0].paths: path '/a/../b' is not in normal form (write '/b')",
        id="path-dot-segments",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['//a']"),
        "<string>:4: allow[0].paths: path '//a' is not in normal form (write '/a')",
        id="path-double-slash",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/%7euser', '/caf%c3%a9']"),
        "<string>:4: allow[0].paths: path '/%7euser' is not in normal form (write '/~user')",
        id="path-escaped-unreserved",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/caf%c3%a9']"),
        "<string>:4: allow[0].paths: path '/caf%c3%a9' is not in normal form (write '/caf%C3%A9')",
        id="path-lower-case-escape",
    ),
    # the first problem is reported, with the index of the rule it is in
    pytest.param(
        rules_text("  - domain: a.example", "  - domain: b.example", "  - domain: c.example", "    ports: [0]"),
        "<string>:6: allow[2].ports: port 0 out of range (1-65535)",
        id="third-rule",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_invalid_policies_are_rejected_with_location(text: str, message: str) -> None:
    """Each invalid document raises PolicyError `FILE:LINE: key.path: message` quoting the bad value."""
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert str(raised.value) == message


def test_errors_name_the_source_given() -> None:
    """The `source` argument is the FILE in every message."""
    with pytest.raises(PolicyError, match=r"^team\.yaml:1: version: "):
        parse_policy("version: 3\n", "team.yaml")


@pytest.mark.parametrize("text", ["version: 1\n", "version: 1\nallow: []\n"])
def test_policy_remembers_its_source(text: str) -> None:
    """A policy remembers the source it was parsed from."""
    assert parse_policy(text, "p.yaml").source == "p.yaml"


def test_duplicate_keys_are_rejected_not_collapsed() -> None:
    """YAML would silently keep the last of two `methods:`; the parser refuses instead."""
    text = rules_text("  - domain: a.example", "    methods: [GET]", "    methods: [DELETE]")
    with pytest.raises(PolicyError, match=r"^<string>:5: allow\[0\]: duplicate key 'methods' \(first on line 4\)$"):
        parse_policy(text)


@pytest.mark.parametrize("spelling", ["true", "false", "yes", "on", "True"])
def test_booleans_are_not_ports(spelling: str) -> None:
    """A YAML boolean is never taken as port 1 or 0."""
    text = rules_text("  - domain: a.example", f"    ports: [{spelling}]")
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert str(raised.value) == f"<string>:4: allow[0].ports: expected a port number, got {spelling}"


@pytest.mark.parametrize(
    ("domain", "stored"),
    [
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.DE", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("xn--fa-hia.de", "xn--fa-hia.de"),  # IDNA 2008 faß.de, written as punycode
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("a。example", "a.example"),  # ideographic full stop separates labels
    ],
)
def test_idna_domains_are_stored_as_punycode(domain: str, stored: str) -> None:
    """International names are stored in their ASCII (punycode) form, the form clients send."""
    (parsed,) = parse_policy(rules_text(f"  - domain: {domain}")).rules
    assert parsed.domain == stored


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.com", "example.com"),
        ("EXAMPLE.Com", "example.com"),
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("a-b.c0", "a-b.c0"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
        (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),
        ("\u212aelvin.example", "kelvin.example"),  # KELVIN SIGN lower-cases to ASCII k
    ],
)
def test_normalize_host_canonical_forms(given: str, expected: str) -> None:
    """normalize_host lower-cases, strips one trailing dot and punycodes."""
    assert normalize_host(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty host name"),
        (".", "empty host name"),
        ("example.com..", "empty label"),
        ("a..b", "empty label"),
        ("-a.com", "label '-a' must be letters, digits and inner hyphens"),
        ("a-.com", "label 'a-' must be letters, digits and inner hyphens"),
        ("a b.com", "label 'a b' must be letters, digits and inner hyphens"),
        ("x" * 64 + ".com", f"label {'x' * 64!r} is longer than 63 characters"),
        (".".join(["a" * 63] * 4), "longer than 253 characters"),
        ("1.2.3.4.5", "last label '5' is numeric"),
        ("a.0x7f", "last label '0x7f' is numeric"),
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "not in IDNA normal form"),
        ("\u00df.de", "not in IDNA normal form"),
        ("a\ud800.com", "is not valid IDNA"),
        ("a\u0000b.com", "must be letters, digits and inner hyphens"),
    ],
)
def test_normalize_host_rejects_invalid_names(given: str, message: str) -> None:
    """Anything that is not a DNS host name raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalize_host(given)


@pytest.mark.parametrize(
    ("host", "is_ip"),
    [
        ("127.0.0.1", True),
        ("127.1", True),
        ("0x7f.0.0.1", True),
        ("0X7F.1", True),
        ("2130706433", True),
        ("017700000001", True),
        ("127.0.0.1.", True),
        ("::1", True),
        ("[::1]", True),
        ("[fe80::1%eth0]", True),
        ("::ffff:127.0.0.1", True),
        ("example.com", False),
        ("1.2.3.4.5", False),
        ("08", False),
        ("[example.com]", False),
        ("a:b", False),
        ("1\x002", False),
        # fullwidth digits are no address to inet_aton (and normalize_host refuses them)
        ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", False),
        ("", False),
    ],
)
def test_is_ip_literal(host: str, is_ip: bool) -> None:
    """Every spelling glibc would connect to without DNS counts as an IP address."""
    assert is_ip_literal(host) is is_ip


def test_rule_id_is_its_source() -> None:
    """A rule without an `id:` key is identified by where it starts."""
    (parsed,) = parse_policy(FULL, "p.yaml").rules
    assert parsed.id == parsed.source == "p.yaml:3"


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/hello", True),
        ("/hello/", False),
        ("/v1/", True),  # '*' may match nothing
        ("/v1/users", True),
        ("/v1/users/1", False),  # '*' stays within one segment
        ("/v1", False),
        ("/HELLO", False),  # paths are case-sensitive
    ],
)
def test_rule_matches_path_patterns(path: str, matches: bool) -> None:
    """Patterns match whole normalized paths; '*' is any run of characters other than '/'."""
    (parsed,) = parse_policy(FULL).rules
    assert parsed.matches_path(path) is matches


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/x*y*z", "/xyz", True),
        ("/x*y*z", "/x-y-y-z", True),
        ("/x*y*z", "/xzy", False),
        ("/x*y*z", "/xaz", False),
        ("/x*y*z", "/xy", False),
        ("/a*a", "/a", False),  # head and tail may not overlap
        ("/*.json", "/a.json", True),
        ("/*.json", "/a.jsonx", False),
        ("/**", "/anything", True),
        ("/pre*", "/other", False),
    ],
)
def test_rule_star_matching_within_a_segment(pattern: str, path: str, matches: bool) -> None:
    """Several stars in one segment behave like a regex with `[^/]*` for each."""
    assert Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1").matches_path(path) is matches


def test_rule_without_paths_matches_any_path() -> None:
    """`paths` omitted means every path."""
    assert Rule("a.example", DEFAULT_PORTS, None, None, "t:1").matches_path("/any/thing")


def test_rule_equality_ignores_compiled_patterns() -> None:
    """Rules compare and hash by their written fields only."""
    a = Rule("a.example", DEFAULT_PORTS, frozenset({"GET"}), ("/x",), "t:1")
    b = Rule("a.example", DEFAULT_PORTS, frozenset({"GET"}), ("/x",), "t:1")
    assert a == b
    assert hash(a) == hash(b)
    assert "_globs" not in repr(a)


def test_known_methods() -> None:
    """The methods a policy may name."""
    expected = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
    assert expected == KNOWN_METHODS


@pytest.mark.parametrize(
    ("target", "normal"),
    [
        ('/a"b', "/a%22b"),
        ("/a<b>c", "/a%3Cb%3Ec"),
        ("/x/{id}", "/x/%7Bid%7D"),
        ("/a[0]", "/a%5B0%5D"),
        ("/a|b^c`d", "/a%7Cb%5Ec%60d"),
        ("/a%22b", "/a%22b"),  # the escaped spelling is already the normal form
        ("/a%7bb", "/a%7Bb"),
        ('/a"b/../c', "/c"),
        ('/a"b?q="{x}', '/a%22b?q="{x}'),  # the query is kept as sent: query rules read it decoded
    ],
)
def test_normalize_path_encodes_characters_a_path_may_not_hold_raw(target: str, normal: str) -> None:
    """RFC 3986 allows none of `"<>[]^`{|}` raw in a path and servers decode their escapes: `/a"b` and `/a%22b`
    are one path, matched and forwarded escaped."""
    assert normalize_path(target) == normal


def test_a_path_pattern_with_raw_disallowed_characters_names_the_encoded_path() -> None:
    """Patterns are encoded like requests, so a pattern written with `"` or `{}` still matches either spelling."""
    text = "version: 1\nallow:\n  - domain: a.example\n    paths: ['/a\"b', '/x/{id}/*', '/y%22']\n"
    (rule,) = parse_policy(text).rules
    assert rule.paths == ("/a%22b", "/x/%7Bid%7D/*", "/y%22")
    for request in ('/a"b', "/a%22b", "/x/{id}/1", "/x/%7bid%7d/1", '/y"'):
        assert rule.matches_path(normalize_path(request))


def test_a_raw_path_pattern_with_raw_disallowed_characters_is_encoded_too() -> None:
    """A raw_paths pattern is encoded the same way (the matcher encodes a raw target before matching it)."""
    text = "version: 1\nallow:\n  - domain: a.example\n    raw_paths: true\n    paths: ['/a\"b%2F*']\n"
    (rule,) = parse_policy(text).rules
    assert rule.paths == ("/a%22b%2F*",)
    assert rule.matches_raw_path("/a%22b%2Fc")


def test_policy_patterns_must_survive_normalize_path() -> None:
    """A pattern the parser accepts is its own normal form, so requests can match it."""
    (parsed,) = parse_policy(FULL).rules
    assert parsed.paths is not None
    assert all(normalize_path(pattern) == pattern for pattern in parsed.paths)
    with pytest.raises(AmbiguousPathError):
        normalize_path("/a/%2e%2e/..")


# ---------------------------------------------------------------------------------------------------------------
# load_policy


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    """A file parses with its name, as given, as the source of the policy and of each rule."""
    path = tmp_path / "p.yaml"
    path.write_text(FULL, encoding="utf-8")
    policy = load_policy(path)
    assert policy.source == str(path)
    assert [r.source for r in policy.rules] == [f"{path}:3"]


def test_load_policy_reports_errors_with_the_file_name(tmp_path: Path) -> None:
    """Errors in a file name that file."""
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nallow:\n  - domain: a.example\n    metods: [GET]\n", encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(str(path))
    assert str(raised.value) == f"{path}:4: allow[0]: unknown key 'metods'"


def test_load_policy_missing_file(tmp_path: Path) -> None:
    """A missing file is a PolicyError quoting the path and the system's reason."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: cannot read policy: {os.strerror(2)}"


def test_load_policy_directory(tmp_path: Path) -> None:
    """A directory is not a policy file."""
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path)
    assert str(raised.value) == f"{tmp_path}: cannot read policy: {os.strerror(21)}"


def test_load_policy_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are refused with their offset."""
    path = tmp_path / "p.yaml"
    path.write_bytes(b"version: 1\n\xff\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: cannot read policy: not UTF-8 text (byte 11)"


def test_read_text_drops_bom_and_raises_the_given_error(tmp_path: Path) -> None:
    """read_text serves every file the CLI reads: the BOM goes, and a failure is the caller's error class."""
    path = tmp_path / "cases.yaml"
    path.write_bytes(b"\xef\xbb\xbf- a\n")
    assert read_text(str(path), "cases", CasesError) == "- a\n"
    path.write_bytes(b"- \xff\n")
    with pytest.raises(CasesError) as raised:
        read_text(str(path), "cases", CasesError)
    assert str(raised.value) == f"{path}: cannot read cases: not UTF-8 text (byte 2)"


# ---------------------------------------------------------------------------------------------------------------
# The policy language: domain patterns, deny rules, query, raw paths, ids, settings


def new_rule(domain: str, line: int, **fields: Any) -> Rule:
    """A rule as the parser builds it from `<string>`, with the default ports unless told otherwise."""
    fields.setdefault("ports", DEFAULT_PORTS)
    fields.setdefault("methods", None)
    fields.setdefault("paths", None)
    return Rule(domain=domain, source=f"<string>:{line}", **fields)


def deny_rule(domain: str, line: int, **fields: Any) -> Rule:
    """A deny rule as the parser builds it: every port unless told otherwise."""
    fields.setdefault("ports", None)
    return new_rule(domain, line, action="deny", **fields)


def deny_text(*lines: str) -> str:
    """A document whose deny rule lines start on line 3 (`version` on 1, `deny:` on 2)."""
    return "version: 1\ndeny:\n" + "".join(line + "\n" for line in lines)


LANGUAGE = [
    # domain patterns
    pytest.param(rules_text("  - domain: '*.example.com'"), (new_rule("*.example.com", 3),), (), id="subdomains"),
    pytest.param(rules_text("  - domain: '**.Example.COM.'"), (new_rule("**.example.com", 3),), (), id="apex-and-sub"),
    pytest.param(rules_text("  - domain: '*.bücher.de'"), (new_rule("*.xn--bcher-kva.de", 3),), (), id="idna-suffix"),
    pytest.param(
        rules_text("  - domain: '**.例え.テスト'"), (new_rule("**.xn--r8jz45g.xn--zckzah", 3),), (), id="idna-apex"
    ),
    pytest.param(
        rules_text("  - domains: [a.example, '*.B.example', a.example.]"),
        (new_rule("a.example", 3, domains=("a.example", "*.b.example")),),
        (),
        id="domains-deduplicated",
    ),
    pytest.param(
        rules_text("  - domain: '*'", "    allow_broad: true"),
        (new_rule("*", 3, allow_broad=True),),
        (),
        id="every-host-on-purpose",
    ),
    pytest.param(
        rules_text("  - domains: ['**.co.uk', '*.github.io', '*.com', '**']", "    allow_broad: yes"),
        (new_rule("**.co.uk", 3, domains=("**.co.uk", "*.github.io", "*.com", "**"), allow_broad=True),),
        (),
        id="broad-on-purpose",
    ),
    pytest.param(
        rules_text("  - domain: '*.example.co.uk'", "  - domain: '*.me.github.io'", "  - domain: co.uk"),
        (new_rule("*.example.co.uk", 3), new_rule("*.me.github.io", 4), new_rule("co.uk", 5)),
        (),
        id="under-a-public-suffix-is-fine",
    ),
    # methods
    pytest.param(rules_text("  - domain: a.example", "    methods: ['*']"), (new_rule("a.example", 3),), (), id="any"),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: ['*', '*']"), (new_rule("a.example", 3),), (), id="any-twice"
    ),
    # paths
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/a/**', '/**/x', '/a**b', '/**']"),
        (new_rule("a.example", 3, paths=("/a/**", "/**/x", "/a**b", "/**")),),
        (),
        id="span-patterns",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: true", "    paths: ['/p/group%2Fproject', '/v/*', '/%2f']"),
        (new_rule("a.example", 3, paths=("/p/group%2Fproject", "/v/*", "/%2f"), raw_paths=True),),
        (),
        id="raw-paths",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: no"), (new_rule("a.example", 3),), (), id="raw-paths-no"
    ),
    # query
    pytest.param(
        rules_text("  - domain: a.example", "    query: {service: git-upload-pack, 'a b': '*', x: ''}"),
        (new_rule("a.example", 3, query=(("service", "git-upload-pack"), ("a b", "*"), ("x", ""))),),
        (),
        id="query",
    ),
    # id and comment
    pytest.param(
        rules_text("  - domain: a.example", "    id: team/api.read-1", "    comment: the API, read-only"),
        (new_rule("a.example", 3, id="team/api.read-1", comment="the API, read-only"),),
        (),
        id="id-and-comment",
    ),
    # settings
    pytest.param(
        "version: 1\ndefaults: {ports: [8443, 8443]}\nallow:\n  - domain: a.example\n  - domain: b.example\n"
        "    ports: [443]\ndeny:\n  - domain: c.example\n",
        (new_rule("a.example", 4, ports=frozenset({8443})), new_rule("b.example", 5, ports=frozenset({443}))),
        (deny_rule("c.example", 8),),
        id="default-ports",
    ),
    pytest.param("version: 1\ndefaults: {}\n", (), (), id="empty-defaults"),
    # deny rules
    pytest.param(
        deny_text("  - domain: a.example", "  - domain: '*'", "    methods: [delete]", "    ports: [443]"),
        (),
        (deny_rule("a.example", 3), deny_rule("*", 4, methods=frozenset({"DELETE"}), ports=frozenset({443}))),
        id="deny-rules-may-be-broad-and-cover-every-port",
    ),
    pytest.param(
        "version: 1\ndeny:\n  - {domain: a.example, paths: ['/admin/**'], query: {x: '1'}, id: no-admin}\n"
        "allow:\n  - domain: a.example\n",
        (new_rule("a.example", 5),),
        (deny_rule("a.example", 3, paths=("/admin/**",), query=(("x", "1"),), id="no-admin"),),
        id="deny-before-allow-in-the-file",
    ),
    pytest.param("version: 1\ndeny:\ninclude:\n", (), (), id="null-lists"),
    pytest.param("version: 1\ninclude: []\ndeny: []\n", (), (), id="empty-lists"),
]


@pytest.mark.parametrize(("text", "allow", "deny"), LANGUAGE)
def test_language_parses_to_rules(text: str, allow: tuple[Rule, ...], deny: tuple[Rule, ...]) -> None:
    """Each document parses to exactly these allow and deny rules, normalized, in file order."""
    assert parse_policy(text) == Policy(allow, "<string>", deny)


LANGUAGE_ERRORS = [
    # domain / domains
    pytest.param(
        rules_text("  - domain: a.example", "    domains: [b.example]"),
        "<string>:4: allow[0]: use only one of 'domain' and 'domains'",
        id="domain-and-domains",
    ),
    pytest.param(
        rules_text("  - domains: [b.example]", "    domain: a.example"),
        "<string>:4: allow[0]: use only one of 'domains' and 'domain'",
        id="domains-and-domain",
    ),
    pytest.param(
        rules_text("  - paths: ['/x']"),
        "<string>:3: allow[0]: missing required key 'domain' or 'domains'",
        id="path-only-rule",
    ),
    pytest.param(
        rules_text("  - methods: [GET]", "    ports: [443]"),
        "<string>:3: allow[0]: missing required key 'domain' or 'domains'",
        id="method-only-rule",
    ),
    pytest.param(
        rules_text("  - domains: a.example"),
        "<string>:3: allow[0].domains: expected a list of host names, got 'a.example'",
        id="domains-scalar",
    ),
    pytest.param(
        rules_text("  - domains: []"),
        "<string>:3: allow[0].domains: empty list (name at least one host)",
        id="domains-empty",
    ),
    pytest.param(
        rules_text("  - domains:", "    - a.example", "    - b_c.example"),
        "<string>:5: allow[0].domains: invalid host name 'b_c.example':"
        " label 'b_c' must be letters, digits and inner hyphens",
        id="domains-item-invalid",
    ),
    pytest.param(
        rules_text("  - domains: [a.example, 10.0.0.1]"),
        "<string>:3: allow[0].domains: IP addresses cannot be named yet: '10.0.0.1'",
        id="domains-ip",
    ),
    # wildcard spellings
    *(
        pytest.param(
            rules_text(f"  - domain: '{pattern}'"),
            f"<string>:3: allow[0].domain: invalid host name '{pattern}': {why}",
            id=f"wildcard-{pattern}",
        )
        for pattern, why in [
            ("a.*.com", "'*' and '**' may only form the whole first label, as in '*.example.com'"),
            ("*.*.com", "'*' and '**' may only form the whole first label, as in '*.example.com'"),
            ("***.example.com", "'*' and '**' may only form the whole first label, as in '*.example.com'"),
            ("*example.com", "'*' and '**' may only form the whole first label, as in '*.example.com'"),
            ("example.*", "'*' and '**' may only form the whole first label, as in '*.example.com'"),
            ("*.", "empty host name"),
            ("*..example.com", "empty label"),
            ("*.10.0.0.1", "last label '1' is numeric"),
            ("*.faß.de", "label 'faß' is not in IDNA normal form (IDNA 2003 maps it to 'fass')"),
        ]
    ),
    # over-broad patterns
    *(
        pytest.param(
            rules_text(f"  - domain: '{pattern}'"),
            f"<string>:3: allow[0].domain: over-broad domain '{pattern}': {why}"
            " (add 'allow_broad: true' to the rule if you mean it)",
            id=f"broad-{pattern}",
        )
        for pattern, why in [
            ("*", "it matches every host"),
            ("**", "it matches every host"),
            ("*.com", "it matches every name under the top-level domain 'com'"),
            ("**.IO.", "it matches every name under the top-level domain 'io'"),
            ("*.рф", "it matches every name under the top-level domain 'xn--p1ai'"),
            ("**.co.uk", "'co.uk' is a public suffix, under which anyone can have a name"),
            ("*.GitHub.io", "'github.io' is a public suffix, under which anyone can have a name"),
            ("*.s3.amazonaws.com", "'s3.amazonaws.com' is a public suffix, under which anyone can have a name"),
        ]
    ),
    pytest.param(
        rules_text("  - domains: [a.example, '*.dev']", "    allow_broad: false"),
        "<string>:3: allow[0].domains: over-broad domain '*.dev': it matches every name under the top-level domain"
        " 'dev' (add 'allow_broad: true' to the rule if you mean it)",
        id="broad-in-domains",
    ),
    pytest.param(
        rules_text("  - domain: '*'", "    allow_broad: 'true'"),
        "<string>:4: allow[0].allow_broad: expected true or false, got 'true'",
        id="allow-broad-string",
    ),
    # methods
    pytest.param(
        rules_text("  - domain: a.example", "    methods: ['*', GET]"),
        "<string>:4: allow[0].methods: '*' (any method) cannot be combined with other methods",
        id="any-method-and-more",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: [*]"),
        "<string>:4: invalid YAML: expected alphabetic or numeric character, but found ']' (while scanning an alias)",
        id="any-method-unquoted",
    ),
    # query
    pytest.param(
        rules_text("  - domain: a.example", "    query: service"),
        "<string>:4: allow[0].query: expected a mapping of parameter names to patterns, got 'service'",
        id="query-scalar",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query: [service]"),
        "<string>:4: allow[0].query: expected a mapping of parameter names to patterns, got a list",
        id="query-list",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query: {}"),
        "<string>:4: allow[0].query: empty mapping (omit 'query' to ignore the query string)",
        id="query-empty",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query: {1: x}"),
        "<string>:4: allow[0].query: expected a parameter name, got 1",
        id="query-int-name",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query: {'': x}"),
        "<string>:4: allow[0].query: expected a parameter name, got ''",
        id="query-empty-name",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query:", "      a: x", "      a: y"),
        "<string>:6: allow[0].query: duplicate parameter 'a' (first on line 5)",
        id="query-duplicate",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query:", "      page: 1"),
        "<string>:5: allow[0].query.page: expected a value pattern (a string; quote numbers), got 1",
        id="query-int-value",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query: {a: }"),
        "<string>:4: allow[0].query.a: expected a value pattern (a string; quote numbers), got null",
        id="query-null-value",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    query: {a: [x]}"),
        "<string>:4: allow[0].query.a: expected a value pattern (a string; quote numbers), got a list",
        id="query-list-value",
    ),
    # raw paths
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: 1"),
        "<string>:4: allow[0].raw_paths: expected true or false, got 1",
        id="raw-paths-int",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/a%2F#x']", "    raw_paths: true"),
        "<string>:4: allow[0].paths: ambiguous path '/a%2F#x': fragment '#' in request target",
        id="raw-path-fragment",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: true", "    paths: ['/a/../b']"),
        "<string>:5: allow[0].paths: path '/a/../b' is not in normal form (write '/b')",
        id="raw-path-normalizable-must-be-normal",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: true", "    paths: ['/caf\u00e9%2F']"),
        "<string>:5: allow[0].paths: ambiguous path '/caf\u00e9%2F': control, space or non-ASCII character",
        id="raw-path-non-ascii",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: 'true'", "    paths: ['/a%2F']"),
        "<string>:4: allow[0].raw_paths: expected true or false, got 'true'",
        id="raw-paths-checked-before-the-paths-that-need-it",
    ),
    # id and comment
    pytest.param(
        rules_text("  - domain: a.example", "    id: 7"),
        "<string>:4: allow[0].id: expected an id (a string), got 7",
        id="id-int",
    ),
    *(
        pytest.param(
            rules_text("  - domain: a.example", f"    id: '{bad}'"),
            f"<string>:4: allow[0].id: invalid id '{bad}': letters, digits and '._:/@+-', starting with a letter or"
            " digit, at most 100 characters",
            id=f"id-invalid-{bad[:8]}",
        )
        for bad in ["a b", "-x", "", "a\u00e9", "x" * 101, "a#b"]
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    id: preset:mine"),
        "<string>:4: allow[0].id: invalid id 'preset:mine': 'preset:' is reserved for presets",
        id="id-reserved",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    id: x", "  - domain: b.example", "    id: x"),
        "<string>:6: allow[1].id: duplicate id 'x' (also the id of the rule at <string>:3)",
        id="id-duplicate",
    ),
    pytest.param(
        "version: 1\nallow:\n  - {domain: a.example, id: x}\ndeny:\n  - domain: b.example\n    id: x\n",
        "<string>:6: deny[0].id: duplicate id 'x' (also the id of the rule at <string>:3)",
        id="id-duplicate-across-allow-and-deny",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    comment: 5"),
        "<string>:4: allow[0].comment: expected a comment (a string), got 5",
        id="comment-int",
    ),
    # deny rules
    pytest.param("version: 1\ndeny: x\n", "<string>:2: deny: expected a list of rules, got 'x'", id="deny-scalar"),
    pytest.param(
        deny_text("  - methods: [POST]"),
        "<string>:3: deny[0]: missing required key 'domain' or 'domains'",
        id="deny-without-domain",
    ),
    pytest.param(
        deny_text("  - domain: a.example", "    raw_paths: true"),
        "<string>:4: deny[0]: unknown key 'raw_paths'"
        " (deny rules always apply to ambiguous paths: their paths are taken to match)",
        id="deny-raw-paths",
    ),
    pytest.param(
        deny_text("  - domain: '*'", "    allow_broad: true"),
        "<string>:4: deny[0]: unknown key 'allow_broad' (deny rules may be as broad as they like)",
        id="deny-allow-broad",
    ),
    pytest.param(
        deny_text("  - domain: a.example", "    paths: ['/a%2F']"),
        "<string>:4: deny[0].paths: ambiguous path '/a%2F': encoded '/' (only a rule with 'raw_paths: true' may name"
        " it)",
        id="deny-ambiguous-path",
    ),
    pytest.param(
        deny_text("  - domain: a.example", "    ports: []"),
        "<string>:4: deny[0].ports: empty list (omit 'ports' for the default 80 and 443)",
        id="deny-ports-empty",
    ),
    # settings
    pytest.param(
        "version: 1\ndefaults: 443\n",
        "<string>:2: defaults: expected a mapping of settings, got 443",
        id="defaults-int",
    ),
    pytest.param(
        "version: 1\ndefaults: {port: [1]}\n", "<string>:2: defaults: unknown key 'port'", id="defaults-unknown-key"
    ),
    pytest.param(
        "version: 1\ndefaults:\n  ports: []\n",
        "<string>:3: defaults.ports: empty list (omit 'ports' for the built-in 80 and 443)",
        id="defaults-ports-empty",
    ),
    pytest.param(
        "version: 1\ndefaults:\n  ports: [0]\n",
        "<string>:3: defaults.ports: port 0 out of range (1-65535)",
        id="defaults-port-zero",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\ndefaults: {ports: ['x']}\n",
        "<string>:4: defaults.ports: expected a port number, got 'x'",
        id="defaults-checked-even-after-rules",
    ),
    # include
    pytest.param(
        "version: 1\ninclude: x.yaml\n",
        "<string>:2: include: expected a list of files or presets, got 'x.yaml'",
        id="include-scalar",
    ),
    pytest.param(
        "version: 1\ninclude: [1]\n",
        "<string>:2: include: expected a file name or 'preset:NAME', got 1",
        id="include-int",
    ),
    pytest.param(
        "version: 1\ninclude: ['']\n",
        "<string>:2: include: expected a file name or 'preset:NAME', got ''",
        id="include-empty-name",
    ),
    pytest.param(
        "version: 1\ninclude:\n  - preset:pypi\n  - preset:pypy\n",
        "<string>:4: include: unknown preset 'preset:pypy' (known presets: anthropic, github-readonly, npm, openai,"
        " pypi)",
        id="include-unknown-preset",
    ),
    pytest.param(
        "version: 1\ninclude: [other.yaml]\n",
        "<string>:2: include: cannot include 'other.yaml': no file loader (use load_policy)",
        id="include-file-without-loader",
    ),
]


@pytest.mark.parametrize(("text", "message"), LANGUAGE_ERRORS)
def test_language_errors_name_their_location(text: str, message: str) -> None:
    """Each mistake raises PolicyError `FILE:LINE: key.path: message` quoting the bad value."""
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert str(raised.value) == message


def test_rule_default_id_uses_the_source() -> None:
    """Without `id:`, a rule's id is FILE:LINE, and an explicit id may not take one that is in use."""
    text = "version: 1\nallow:\n  - domain: a.example\n  - domain: b.example\n    id: p.yaml:3\n"
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, "p.yaml")
    assert str(raised.value) == "p.yaml:5: allow[1].id: duplicate id 'p.yaml:3' (also the id of the rule at p.yaml:3)"


def test_preset_rule_ids() -> None:
    """A preset's rules are numbered in the order the preset lists them, allow rules then deny rules."""
    policy = parse_policy("version: 1\ninclude: [preset:github-readonly]\n")
    assert [r.id for r in policy.rules] == [f"preset:github-readonly/{n}" for n in (1, 2, 3)]
    assert [r.id for r in policy.deny] == [f"preset:github-readonly/{n}" for n in (4, 5)]
    assert all(r.source.startswith("preset:github-readonly:") for r in (*policy.rules, *policy.deny))
    assert policy.includes == ("preset:github-readonly",)


# ---------------------------------------------------------------------------------------------------------------
# include


def memory_loader(files: Mapping[str, str]) -> IncludeLoader:
    """An IncludeLoader over in-memory files, resolving references like load_policy does."""

    def load(reference: str, including: str) -> tuple[str, str]:
        name = posixpath.normpath(posixpath.join(posixpath.dirname(including), reference))
        if name not in files:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        text = files[name]
        if text.startswith("\udcff"):
            raise UnicodeDecodeError("utf-8", b"abc\xff", 3, 4, "invalid start byte")
        return name, text

    return load


def parse_files(files: Mapping[str, str]) -> Policy:
    return parse_policy(files["main.yaml"], "main.yaml", load=memory_loader(files))


def allow_doc(*domains: str, include: str = "") -> str:
    """A document (rules from line 3, or 4 with an include) allowing each domain."""
    head = f"version: 1\ninclude: [{include}]\n" if include else "version: 1\n"
    return head + "allow:\n" + "".join(f"  - domain: {domain}\n" for domain in domains)


def test_included_rules_come_first() -> None:
    """Included documents' rules precede the including file's own, each citing its own file and line."""
    policy = parse_files(
        {"main.yaml": allow_doc("m.example", include="b.yaml, preset:openai"), "b.yaml": allow_doc("b.example")}
    )
    assert [(r.domain, r.source) for r in policy.rules] == [
        ("b.example", "b.yaml:3"),
        ("api.openai.com", "preset:openai:3"),
        ("m.example", "main.yaml:4"),
    ]
    assert policy.includes == ("b.yaml", "preset:openai")
    assert policy.source == "main.yaml"


def test_includes_resolve_relative_to_the_including_file() -> None:
    """`include: [c.yaml]` in sub/b.yaml means sub/c.yaml; `..` climbs from there."""
    policy = parse_files(
        {
            "main.yaml": allow_doc(include="sub/b.yaml"),
            "sub/b.yaml": allow_doc("b.example", include="c.yaml, ../top.yaml"),
            "sub/c.yaml": allow_doc("c.example"),
            "top.yaml": allow_doc("top.example"),
        }
    )
    assert [r.source for r in policy.rules] == ["sub/c.yaml:3", "top.yaml:3", "sub/b.yaml:4"]


def test_a_document_is_included_once() -> None:
    """Two paths to the same document (a diamond) include it once: its rules and ids appear once."""
    policy = parse_files(
        {
            "main.yaml": allow_doc("m.example", include="b.yaml, c.yaml, preset:pypi"),
            "b.yaml": allow_doc("b.example", include="d.yaml, preset:pypi"),
            "c.yaml": allow_doc("c.example", include="./d.yaml"),
            "d.yaml": "version: 1\nallow:\n  - {domain: d.example, id: d}\n",
        }
    )
    assert [r.domain for r in policy.rules] == [
        "d.example",
        "pypi.org",
        "files.pythonhosted.org",
        "b.example",
        "c.example",
        "m.example",
    ]
    assert policy.includes == ("b.yaml", "d.yaml", "preset:pypi", "c.yaml")


def test_defaults_stay_in_their_file() -> None:
    """`defaults` applies to the rules of its own file, not to the files it includes, nor to the includer."""
    policy = parse_files(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\ndefaults: {ports: [8443]}\nallow:\n  - domain: m.example\n",
            "b.yaml": allow_doc("b.example", include="c.yaml"),
            "c.yaml": "version: 1\ndefaults: {ports: [22]}\nallow:\n  - domain: c.example\n",
        }
    )
    assert {r.domain: r.ports for r in policy.rules} == {
        "c.example": frozenset({22}),
        "b.example": DEFAULT_PORTS,
        "m.example": frozenset({8443}),
    }


def test_deny_rules_of_included_files() -> None:
    """Deny rules from every document are collected too, included ones first."""
    policy = parse_files(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\ndeny:\n  - domain: m.example\n",
            "b.yaml": "version: 1\ndeny:\n  - domain: b.example\n",
        }
    )
    assert [r.source for r in policy.deny] == ["b.yaml:3", "main.yaml:4"]
    assert policy.rules == ()


def chain(length: int) -> dict[str, str]:
    """main.yaml -> f1.yaml -> ... -> f{length}.yaml."""
    files = {"main.yaml": allow_doc(include="f1.yaml")}
    for n in range(1, length):
        files[f"f{n}.yaml"] = allow_doc(include=f"f{n + 1}.yaml")
    files[f"f{length}.yaml"] = allow_doc("end.example")
    return files


INCLUDE_ERRORS = [
    pytest.param(
        {
            "main.yaml": allow_doc(include="b.yaml"),
            "b.yaml": "version: 1\nallow:\n  - domain: a\n    methods: [GETT]\n",
        },
        "b.yaml:4: allow[0].methods: unknown method 'GETT'",
        id="error-in-included-file",
    ),
    pytest.param(
        {
            "main.yaml": allow_doc(include="sub/b.yaml"),
            "sub/b.yaml": allow_doc(include="c.yaml"),
            "sub/c.yaml": "version: 1\nalow: []\n",
        },
        "sub/c.yaml:2: unknown key 'alow'",
        id="error-two-levels-down",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": ""},
        "b.yaml:1: empty policy (expected 'version: 1')",
        id="included-file-empty",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": "allow: []\n"},
        "b.yaml:1: missing required key 'version'",
        id="included-file-without-version",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": "version: 1\nallow: [\n"},
        "b.yaml:3: invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)",
        id="included-file-invalid-yaml",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="main.yaml")},
        "main.yaml:2: include: cycle: main.yaml -> main.yaml",
        id="includes-itself",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="./sub/../main.yaml")},
        "main.yaml:2: include: cycle: main.yaml -> main.yaml",
        id="includes-itself-by-another-name",
    ),
    pytest.param(
        {
            "main.yaml": allow_doc(include="b.yaml"),
            "b.yaml": allow_doc(include="c.yaml"),
            "c.yaml": "version: 1\ninclude:\n  - preset:npm\n  - b.yaml\n",
        },
        "c.yaml:4: include: cycle: b.yaml -> c.yaml -> b.yaml",
        id="cycle-below-the-root",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": allow_doc(include="main.yaml")},
        "b.yaml:2: include: cycle: main.yaml -> b.yaml -> main.yaml",
        id="cycle-through-the-root",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="nope.yaml")},
        f"main.yaml:2: include: cannot read 'nope.yaml': {os.strerror(errno.ENOENT)}",
        id="missing-file",
    ),
    pytest.param(
        {"main.yaml": allow_doc(include="bad.yaml"), "bad.yaml": "\udcff"},
        "main.yaml:2: include: cannot read 'bad.yaml': not UTF-8 text (byte 3)",
        id="not-utf8",
    ),
    pytest.param(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\nallow:\n  - domain: m.example\n    id: x\n",
            "b.yaml": "version: 1\nallow:\n  - {domain: b.example, id: x}\n",
        },
        "main.yaml:5: allow[0].id: duplicate id 'x' (also the id of the rule at b.yaml:3)",
        id="duplicate-id-across-files",
    ),
    pytest.param(chain(15), None, id="fifteen-levels-are-fine"),
    pytest.param(chain(16), "f15.yaml:2: include: includes nested more than 16 deep", id="sixteen-levels-are-not"),
]


@pytest.mark.parametrize(("files", "message"), INCLUDE_ERRORS)
def test_include_errors_name_the_file_they_are_in(files: dict[str, str], message: str | None) -> None:
    """A problem in or with an included document names that document's FILE:LINE (None: no problem)."""
    if message is None:
        assert parse_files(files).rules[0].domain == "end.example"
        return
    with pytest.raises(PolicyError) as raised:
        parse_files(files)
    assert str(raised.value) == message


def test_load_policy_includes_files_relative_to_the_including_file(tmp_path: Path) -> None:
    """load_policy reads included files from the including file's directory, and names them that way."""
    (tmp_path / "team").mkdir()
    (tmp_path / "p.yaml").write_text(allow_doc("p.example", include="team/base.yaml"), encoding="utf-8")
    (tmp_path / "team" / "base.yaml").write_text(allow_doc("b.example", include="more.yaml"), encoding="utf-8")
    (tmp_path / "team" / "more.yaml").write_text("\ufeff" + allow_doc("m.example"), encoding="utf-8")
    policy = load_policy(tmp_path / "p.yaml")
    base, more = str(tmp_path / "team" / "base.yaml"), str(tmp_path / "team" / "more.yaml")
    assert [r.source for r in policy.rules] == [f"{more}:3", f"{base}:4", f"{tmp_path / 'p.yaml'}:4"]
    assert policy.includes == (base, more)


def test_load_policy_include_errors(tmp_path: Path) -> None:
    """A missing included file is reported where the include is; a cycle through real files is named."""
    (tmp_path / "p.yaml").write_text(allow_doc(include="absent.yaml"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "p.yaml")
    assert str(raised.value) == f"{tmp_path / 'p.yaml'}:2: include: cannot read 'absent.yaml': {os.strerror(2)}"
    (tmp_path / "p.yaml").write_text(allow_doc(include="p.yaml"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "p.yaml")
    assert (
        str(raised.value) == f"{tmp_path / 'p.yaml'}:2: include: cycle: {tmp_path / 'p.yaml'} -> {tmp_path / 'p.yaml'}"
    )


def test_load_policy_cycle_through_a_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root named `./p.yaml` is the same document as `p.yaml` for cycle detection."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(allow_doc(include="p.yaml"), encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy("./p.yaml")
    assert str(raised.value) == "./p.yaml:2: include: cycle: ./p.yaml -> p.yaml"


def test_load_policy_include_not_utf8(tmp_path: Path) -> None:
    """An included file that is not UTF-8 is refused at the include, with the offset."""
    (tmp_path / "p.yaml").write_text(allow_doc(include="b.yaml"), encoding="utf-8")
    (tmp_path / "b.yaml").write_bytes(b"version: 1\n\xff\n")
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path / "p.yaml")
    assert str(raised.value) == f"{tmp_path / 'p.yaml'}:2: include: cannot read 'b.yaml': not UTF-8 text (byte 11)"


# ---------------------------------------------------------------------------------------------------------------
# Domain patterns


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("Example.COM.", "example.com"),
        ("*", "*"),
        ("**", "**"),
        ("*.Example.com", "*.example.com"),
        ("**.example.com.", "**.example.com"),
        ("*.bücher.de", "*.xn--bcher-kva.de"),
        ("*\u3002example.com", "*.example.com"),  # an ideographic full stop separates labels
    ],
)
def test_normalize_domain_pattern(written: str, canonical: str) -> None:
    """Patterns are canonical like hosts: lower-case, one trailing dot dropped, punycode; wildcards kept."""
    assert normalize_domain_pattern(written) == canonical


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("example.com", ("exact", "example.com")),
        ("*.example.com", ("sub", "example.com")),
        ("**.example.com", ("apex", "example.com")),
        ("*", ("sub", "")),
        ("**", ("apex", "")),
    ],
)
def test_domain_pattern_parts(pattern: str, parts: tuple[str, str]) -> None:
    """A canonical pattern is a kind and a suffix."""
    assert domain_pattern_parts(pattern) == parts


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),  # never the apex
        ("*.example.com", "badexample.com", False),  # a label boundary, not a string suffix
        ("*.example.com", "example.com.evil", False),
        ("**.example.com", "example.com", True),
        ("**.example.com", "a.b.example.com", True),
        ("**.example.com", "xexample.com", False),
        ("*", "anything.example", True),
        ("**", "localhost", True),
    ],
)
def test_domain_pattern_matches(pattern: str, host: str, matches: bool) -> None:
    """`*.` is one or more labels before the suffix, `**.` zero or more; matching is by whole labels."""
    assert domain_pattern_matches(pattern, host) is matches
    assert Rule(pattern, DEFAULT_PORTS, None, None, "t:1").matches_host(host) is matches


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("example.com", None),
        ("com", None),  # an exact name is never broad
        ("*.example.com", None),
        ("**.example.co.uk", None),
        ("*", "it matches every host"),
        ("*.com", "it matches every name under the top-level domain 'com'"),
        ("**.co.uk", "'co.uk' is a public suffix, under which anyone can have a name"),
    ],
)
def test_broad_reason(pattern: str, reason: str | None) -> None:
    """A wildcard over fewer than two labels or over a listed public suffix is over-broad."""
    assert broad_reason(pattern) == reason


def test_public_suffixes_are_canonical_multi_label_names() -> None:
    """Single labels are caught by counting, so the list holds only canonical names of two or more labels."""
    assert all(normalize_host(suffix) == suffix and "." in suffix for suffix in PUBLIC_SUFFIXES)


# ---------------------------------------------------------------------------------------------------------------
# Path, raw path and query matching on a Rule


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/a/**", "/a", True),
        ("/a/**", "/a/", True),
        ("/a/**", "/a/b/c", True),
        ("/a/**", "/ab", False),
        ("/a/**", "/", False),
        ("/**", "/", True),
        ("/**", "/x/y", True),
        ("/**/x", "/x", True),
        ("/**/x", "/a/b/x", True),
        ("/**/x", "/a/b/x/y", False),
        ("/a/**/b", "/a/b", True),
        ("/a/**/b", "/a/1/2/b", True),
        ("/a/**/b", "/a/1/2/c", False),
        ("/a/**/**/b", "/a/b", True),
        ("/*/**/*.json", "/x/y/z.json", True),
        ("/*/**/*.json", "/x.json", False),
        ("/a**b", "/axxb", True),  # '**' inside a segment is like '*'
        ("/a**b", "/ax/xb", False),
    ],
)
def test_span_patterns(pattern: str, path: str, matches: bool) -> None:
    """A whole `**` segment matches any number of segments, zero included."""
    assert Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1").matches_path(path) is matches


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/p/group%2Fproject", "/p/group%2Fproject", True),
        ("/p/group%2Fproject", "/p/group%2fproject", True),  # the case of an encoded separator does not matter
        ("/p/group%2Fproject/**", "/p/group%2Fproject/raw/x", True),
        ("/p/*/raw", "/p/group%2Fproject/raw", False),  # a wildcard never matches an encoded '/'
        ("/p/**", "/p/group%2Fproject", False),
        ("/p/*%2F*", "/p/a%2Fb", True),  # ...but it may sit next to a literal one
        ("/p/*", "/p/..%2F..%2Fsecret", False),  # nor a dot segment
        ("/p/**/x", "/p/%2e%2e/x%5C", False),
        ("/p/%2e%2e/x%5C", "/p/%2e%2e/x%5C", True),
        ("/p/*", "/p/a\\b", False),  # nor a backslash
        ("/p/a\\b", "/p/a\\b", True),
        ("/p/*", "/p/a%00", False),
        ("/p/*", "/p/..;x/%2F", False),
        ("/p/*", "/p/..%3bx", False),  # nor one whose parameters start with an encoded ';'
        ("/p/*", "/p/.%3B", False),
        ("/p/a%2F", "/p/a%2F/", False),
        ("/p/a%2F/", "/p/a%2F/", True),
        ("/p/a/%2F", "/p/a%2F", False),  # an encoded '/' next to a real one stays distinct
    ],
)
def test_raw_path_matching(pattern: str, path: str, matches: bool) -> None:
    """A raw_paths rule matches ambiguous paths as sent; what could move the request must be literal."""
    rule = Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1", raw_paths=True)
    assert rule.matches_raw_path(path) is matches


def test_raw_path_matching_needs_raw_paths() -> None:
    """Without raw_paths nothing matches raw; with raw_paths and no paths, everything does."""
    assert not Rule("a.example", DEFAULT_PORTS, None, None, "t:1").matches_raw_path("/a%2Fb")
    assert Rule("a.example", DEFAULT_PORTS, None, None, "t:1", raw_paths=True).matches_raw_path("/a%2Fb")


@pytest.mark.parametrize(
    ("target", "matchable"),
    [("/a%2Fb", True), ("/a/../..", True), ("/a\\b?x", True), ("a%2F", False), ("/a#b", False), ("/a b", False)],
)
def test_raw_target_matchable(target: str, matchable: bool) -> None:
    """Only visible-ASCII origin-form targets without a fragment are ever matched raw."""
    assert raw_target_matchable(target) is matchable


@pytest.mark.parametrize(
    ("query", "readings"),
    [
        ("", ({},)),
        ("a=1&b=2&a=3", ({"a": ["1", "3"], "b": ["2"]},)),
        ("a&b=&=c", ({"a": [""], "b": [""], "": ["c"]},)),
        ("a=%41%2f&%62=x", ({"a": ["A/"], "b": ["x"]},)),
        ("a=x+y", ({"a": ["x+y"]}, {"a": ["x y"]})),
        ("a=1;b=2", ({"a": ["1;b=2"]}, {"a": ["1"], "b": ["2"]})),
        ("a=%zz%", ({"a": ["%zz%"]},)),
        ("a=%ff", ({"a": ["\udcff"]},)),
        ("&&a=1&", ({"a": ["1"]},)),
    ],
)
def test_query_readings(query: str, readings: tuple[dict[str, list[str]], ...]) -> None:
    """Every plausible reading: '+' as plus and as space, ';' as data and as separator."""
    assert query_readings(query) == readings


@pytest.mark.parametrize(
    ("query", "strict", "loose"),
    [
        ("service=git-upload-pack", True, True),
        ("service=git-upload-pack&other=1", True, True),
        ("service=git%2Dupload-pack", True, True),
        ("", False, False),
        ("other=1", False, False),
        ("service=git-receive-pack", False, False),
        ("service=git-upload-pack&service=git-receive-pack", False, True),  # strict: every value; loose: any
        ("service=git-upload-pack;service=x", False, True),  # strict: every reading; loose: any
        ("service=git-upload-pack+", False, False),
    ],
)
def test_query_match_strict_and_loose(query: str, strict: bool, loose: bool) -> None:
    """An allow rule (strict) needs every value in every reading to match; a deny rule (loose) one of them."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1", query=(("service", "git-upload-pack"),))
    readings = query_readings(query)
    assert rule.matches_query(readings) is strict
    assert rule.matches_query(readings, loose=True) is loose


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("a*", "abc", True),
        ("a*", "ba", False),
        ("*", "", True),
        ("*/*", "x/y", True),
        ("x", "x", True),
        ("x", "y", False),
    ],
)
def test_query_value_patterns(pattern: str, value: str, matches: bool) -> None:
    """In a query value, `*` matches any run of characters, '/' included."""
    assert star_matches(pattern.split("*"), value) is matches


def test_rule_query_none_matches_anything() -> None:
    """A rule without `query` ignores the query string."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1")
    assert rule.matches_query(query_readings("x=1"))
    assert rule.matches_query(query_readings("x=1"), loose=True)


def test_rule_defaults() -> None:
    """A Rule built from the first five fields means what a rule naming only those keys means."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1")
    assert (rule.id, rule.domains, rule.query, rule.raw_paths, rule.allow_broad, rule.action) == (
        "t:1",
        ("a.example",),
        None,
        False,
        False,
        "allow",
    )
    assert rule.unconditional
    assert not Rule("a.example", DEFAULT_PORTS, None, None, "t:1", query=(("a", "b"),)).unconditional


# ---------------------------------------------------------------------------------------------------------------
# The tables


def test_tables_describe_every_key() -> None:
    """Every key of every table has a description (editors and docs show it) and a unique name."""
    for table in (POLICY_TABLE, RULE_TABLE, DENY_RULE_TABLE, SETTINGS_TABLE):
        names = [key.name for key in table.keys]
        assert len(names) == len(set(names))
        assert all(key.description.strip() for key in table.keys)


def test_deny_rules_have_the_allow_rule_keys_but_two() -> None:
    """A deny rule has every key an allow rule has except `raw_paths` and `allow_broad`, each explained."""
    allow = {key.name for key in RULE_TABLE.keys}
    deny = {key.name for key in DENY_RULE_TABLE.keys}
    assert allow - deny == {"raw_paths", "allow_broad"} == set(DENY_RULE_TABLE.elsewhere)


# ---------------------------------------------------------------------------------------------------------------
# Properties

HOSTISH = st.text(alphabet="aZ0x9-.\u00fc_", max_size=20)
PATTERNISH = st.builds(lambda head, rest: head + rest, st.sampled_from(["", "*.", "**.", "*", "a*"]), HOSTISH)


@given(host=st.one_of(HOSTISH, st.sampled_from(["0x7f.1", "127.1", "a.0x", "1e5", "a." * 130 + "b"])))
def test_canonical_host_fast_path_agrees(host: str) -> None:
    """A host the fast check accepts is exactly its normalize_host form, and no IP literal."""
    if is_canonical_host(host):
        assert normalize_host(host) == host
        assert not is_ip_literal(host)


@given(written=PATTERNISH)
def test_normalize_domain_pattern_is_idempotent(written: str) -> None:
    """A canonical domain pattern is its own canonical form."""
    try:
        canonical = normalize_domain_pattern(written)
    except ValueError:
        return
    assert normalize_domain_pattern(canonical) == canonical


def test_docs_cover_every_key() -> None:
    """docs/policy.md documents every key of every table."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    for table in (POLICY_TABLE, RULE_TABLE, SETTINGS_TABLE, NETWORK_TABLE, LIMITS_TABLE):
        for key in table.keys:
            assert f"`{key.name}`" in text or f"`defaults.{key.name}`" in text, key.name


# --- network: the SSRF guard's settings -----------------------------------------------------------------------


def networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


NETWORK_VALID = [
    pytest.param("version: 1\n", (), id="no-network"),
    pytest.param("version: 1\nnetwork: {}\n", (), id="empty-mapping"),
    pytest.param("version: 1\nnetwork: {allow_private: []}\n", (), id="empty-list"),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private: [127.0.0.0/8, 10.1.2.3, 'fd00::/8', '::1', 10.1.2.3/32]\n",
        networks("127.0.0.0/8", "10.1.2.3/32", "fd00::/8", "::1/128"),
        id="ranges-and-single-addresses-deduplicated",
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private:\n    - 169.254.169.254/32\n    - 0.0.0.0/0\n",
        networks("169.254.169.254/32", "0.0.0.0/0"),
        id="block-list",
    ),
]


@pytest.mark.parametrize(("text", "allowed"), NETWORK_VALID)
def test_network_allow_private_parses_to_networks(
    text: str, allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> None:
    """`network.allow_private` becomes the policy's `allow_private`: networks, in order, each once."""
    assert parse_policy(text).allow_private == allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "version: 1\nnetwork:\n  allow_private: [127.0.0.1/8]\n",
            "<string>:3: network.allow_private: invalid address range '127.0.0.1/8': host bits set "
            "(write '127.0.0.0/8')",
            id="host-bits",
        ),
        pytest.param(
            "version: 1\nnetwork:\n  allow_private:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n",
            "<string>:5: network.allow_private: invalid address range '10.0.0.0/33': expected an IPv4 or IPv6 "
            "address or CIDR range such as 10.0.0.0/8 or fd00::/8",
            id="prefix-too-long",
        ),
        pytest.param(
            "version: 1\nnetwork:\n  allow_private: [localhost]\n",
            "<string>:3: network.allow_private: invalid address range 'localhost': expected an IPv4 or IPv6 "
            "address or CIDR range such as 10.0.0.0/8 or fd00::/8",
            id="a-name",
        ),
        pytest.param(
            "version: 1\nnetwork:\n  allow_private: [10]\n",
            "<string>:3: network.allow_private: expected an address range such as 10.0.0.0/8, got 10",
            id="a-number",
        ),
        pytest.param(
            "version: 1\nnetwork:\n  allow_private: 10.0.0.0/8\n",
            "<string>:3: network.allow_private: expected a list of address ranges, got '10.0.0.0/8'",
            id="not-a-list",
        ),
        pytest.param(
            "version: 1\nnetwork:\n",
            "<string>:2: network: expected a mapping of network settings, got null",
            id="null",
        ),
        pytest.param(
            "version: 1\nnetwork:\n  allow_privat: [10.0.0.0/8]\n",
            "<string>:3: network: unknown key 'allow_privat'",
            id="unknown-key",
        ),
        pytest.param(
            "version: 1\nnetwork:\n  allow_private: []\n  allow_private: []\n",
            "<string>:4: network: duplicate key 'allow_private' (first on line 3)",
            id="duplicate-key",
        ),
    ],
)
def test_network_errors_name_their_location(text: str, message: str) -> None:
    """Every mistake in `network` is refused with FILE:LINE, the key path and the quoted value."""
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert str(info.value) == message


def test_network_settings_of_included_files_apply() -> None:
    """`allow_private` is for the whole run: the ranges of every document count, included ones first."""
    policy = parse_files(
        {
            "main.yaml": "version: 1\ninclude: [b.yaml]\nnetwork: {allow_private: [10.0.0.0/8, 127.0.0.0/8]}\n",
            "b.yaml": "version: 1\nnetwork: {allow_private: [127.0.0.0/8]}\n",
        }
    )
    assert policy.allow_private == networks("127.0.0.0/8", "10.0.0.0/8")


def test_network_errors_in_an_included_file_name_that_file() -> None:
    """A bad range in an included file is reported at its own file and line."""
    with pytest.raises(PolicyError, match=r"^b\.yaml:3: network\.allow_private: invalid address range 'x'"):
        parse_files(
            {"main.yaml": allow_doc(include="b.yaml"), "b.yaml": "version: 1\nnetwork:\n  allow_private: [x]\n"}
        )


# --- limits: what one request head may hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limits"),
    [
        pytest.param("version: 1\n", Limits(65536, 256), id="defaults"),
        pytest.param("version: 1\nlimits: {}\n", Limits(65536, 256), id="empty-mapping"),
        pytest.param("version: 1\nlimits: {request_head: 8192}\n", Limits(8192, 256), id="bytes"),
        pytest.param("version: 1\nlimits: {request_head: 1MiB}\n", Limits(1048576, 256), id="mebibytes"),
        pytest.param("version: 1\nlimits: {request_head: 16 KiB}\n", Limits(16384, 256), id="spaced-unit"),
        pytest.param("version: 1\nlimits: {request_head: 4096, request_headers: 1}\n", Limits(4096, 1), id="low"),
        pytest.param(
            "version: 1\nlimits: {request_head: 16MiB, request_headers: 10000}\n",
            Limits(16777216, 10000),
            id="high",
        ),
    ],
)
def test_limits_parse_to_the_policy_limits(text: str, limits: Limits) -> None:
    """`limits` sizes are bytes, plain or with a KiB/MiB suffix; what is not given keeps its default."""
    assert parse_policy(text).limits == limits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "version: 1\nlimits:\n  request_head: 4095\n",
            "<string>:3: limits.request_head: 4095 out of range (4096-16777216)",
            id="too-small",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_head: 17MiB\n",
            "<string>:3: limits.request_head: '17MiB' out of range (4096-16777216)",
            id="too-large",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_head: 64kb\n",
            "<string>:3: limits.request_head: expected a size in bytes such as 65536 or 64KiB, got '64kb'",
            id="unknown-unit",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_head: 0x10000\n",
            "<string>:3: limits.request_head: expected a size in bytes such as 65536 or 64KiB, got 0x10000",
            id="hex",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_head: 65536.0\n",
            "<string>:3: limits.request_head: expected a size in bytes such as 65536 or 64KiB, got 65536.0",
            id="float",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_headers: 10001\n",
            "<string>:3: limits.request_headers: 10001 out of range (1-10000)",
            id="too-many-headers",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_headers: 1KiB\n",
            "<string>:3: limits.request_headers: expected a number of header fields such as 1, got '1KiB'",
            id="headers-with-unit",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_headers: '12'\n",
            "<string>:3: limits.request_headers: expected a number of header fields such as 1, got '12'",
            id="headers-quoted",
        ),
        pytest.param(
            "version: 1\nlimits:\n  request_body: 1\n", "<string>:3: limits: unknown key 'request_body'", id="unknown"
        ),
        pytest.param(
            "version: 1\nlimits: 65536\n", "<string>:2: limits: expected a mapping of limits, got 65536", id="scalar"
        ),
    ],
)
def test_limits_errors_name_their_location(text: str, message: str) -> None:
    """Every mistake in `limits` is refused with FILE:LINE, the key path and the quoted value."""
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert str(info.value) == message


def test_limits_in_an_included_file_are_refused_at_that_file() -> None:
    """Limits are for the whole run, so only the top file sets them: an included file saying otherwise would
    be silently overruled or would overrule the file the operator runs."""
    with pytest.raises(PolicyError) as info:
        parse_files(
            {
                "main.yaml": allow_doc("a.test", include="b.yaml"),
                "b.yaml": "version: 1\nlimits:\n  request_head: 8192\n",
            }
        )
    assert str(info.value) == "b.yaml:3: limits: limits apply to the whole run: set them in the top policy file"


def test_limits_of_the_top_file_hold_with_includes() -> None:
    policy = parse_files(
        {"main.yaml": "version: 1\ninclude: [b.yaml]\nlimits: {request_headers: 40}\n", "b.yaml": allow_doc("b.test")}
    )
    assert policy.limits == Limits(65536, 40)


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
