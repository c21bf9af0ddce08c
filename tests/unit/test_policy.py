"""Specification of the policy file format: what parses to what, and every error with its exact location."""

import os
from pathlib import Path

import pytest

from boundary.errors import PolicyError
from boundary.policy import (
    DEFAULT_PORTS,
    KNOWN_METHODS,
    AmbiguousPathError,
    Policy,
    Rule,
    is_ip_literal,
    load_policy,
    normalize_host,
    normalize_path,
    parse_policy,
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
        "<string>:4: allow[1]: missing required key 'domain'",
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
        rules_text("  - domain: '*.example.com'"),
        "<string>:3: allow[0].domain: wildcard domains are not supported yet: '*.example.com'",
        id="domain-wildcard",
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
        "<string>:4: allow[0].paths: ambiguous path '/a%2Fb': encoded '/'",
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
    """Until rules get an `id:` key, a rule is identified by where it starts."""
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
