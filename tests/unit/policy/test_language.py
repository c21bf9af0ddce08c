"""Specification of `boundary.policy.language`: what each key of a policy document means and every mistake in
its value, checked through whole documents, and the tables (`POLICY_TABLE`, `RULE_TABLE`, `DENY_RULE_TABLE`,
`SETTINGS_TABLE`, `NETWORK_TABLE`, `LIMITS_TABLE`) that describe the keys."""

from __future__ import annotations

import pytest

from boundary.policy.canon import AmbiguousPathError, normalize_path
from boundary.policy.language import (
    DENY_RULE_TABLE,
    LIMITS_TABLE,
    NETWORK_TABLE,
    POLICY_TABLE,
    RULE_TABLE,
    SETTINGS_TABLE,
)
from boundary.policy.load import parse_policy
from boundary.policy.model import IPNetwork, Limits, Policy, Rule
from boundary.policy.nodes import Table
from tests.support.tools import repo_root
from tests.unit.policy.documents import FULL, allow_rule, deny_rule, deny_text, networks, parse_error, rules_text

# ---------------------------------------------------------------------------------------------------------------
# What documents parse to

# The keys every rule has: domain, ports, methods, paths (each document's rules start on line 3).
VALID = [
    pytest.param("version: 1\n", (), (), id="no-allow-key"),
    pytest.param("version: 1\nallow:\n", (), (), id="allow-null"),
    pytest.param("version: 1\nallow: []\n", (), (), id="allow-empty"),
    pytest.param(
        FULL,
        (
            allow_rule(
                "example.com",
                3,
                ports=frozenset({443, 8443}),
                methods=frozenset({"GET", "HEAD"}),
                paths=("/hello", "/v1/*"),
            ),
        ),
        (),
        id="every-field",
    ),
    pytest.param("version: 1\nallow:\n  - domain: example.com\n", (allow_rule("example.com", 3),), (), id="defaults"),
    pytest.param(
        "version: 1\nallow:\n  - domain: Example.COM.\n", (allow_rule("example.com", 3),), (), id="host-normalized"
    ),
    pytest.param(
        "allow:\n- domain: a.example\n- {domain: b.example, ports: [80]}\nversion: 1\n",
        (allow_rule("a.example", 2), allow_rule("b.example", 3, ports=frozenset({80}))),
        (),
        id="order-kept-version-anywhere",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\n  - domain: a.example\n    methods: [POST]\n",
        (allow_rule("a.example", 3), allow_rule("a.example", 4, methods=frozenset({"POST"}))),
        (),
        id="same-domain-twice",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\n    methods: [GET, get]\n    ports: [65535, 1]\n",
        (allow_rule("a.example", 3, methods=frozenset({"GET"}), ports=frozenset({1, 65535})),),
        (),
        id="repeats-and-port-bounds",
    ),
    pytest.param(
        "version: 1\nallow:\n  - domain: a.example\n    paths: ['/', '/*', '/a%C3%A9/x*y*z/', '/~u;v']\n",
        (allow_rule("a.example", 3, paths=("/", "/*", "/a%C3%A9/x*y*z/", "/~u;v")),),
        (),
        id="normal-form-paths",
    ),
    pytest.param("\ufeffversion: 1\n", (), (), id="byte-order-mark"),
]

# The rest of the language: domain patterns, deny rules, query, raw paths, ids, settings.
LANGUAGE = [
    # domain patterns
    pytest.param(rules_text("  - domain: '*.example.com'"), (allow_rule("*.example.com", 3),), (), id="subdomains"),
    pytest.param(
        rules_text("  - domain: '**.Example.COM.'"), (allow_rule("**.example.com", 3),), (), id="apex-and-sub"
    ),
    pytest.param(rules_text("  - domain: '*.bücher.de'"), (allow_rule("*.xn--bcher-kva.de", 3),), (), id="idna-suffix"),
    pytest.param(
        rules_text("  - domain: '**.例え.テスト'"), (allow_rule("**.xn--r8jz45g.xn--zckzah", 3),), (), id="idna-apex"
    ),
    # international names are stored in their ASCII (punycode) form, the form clients send
    *(
        pytest.param(rules_text(f"  - domain: {domain}"), (allow_rule(stored, 3),), (), id=f"idna-{name}")
        for name, domain, stored in [
            ("lower-case", "bücher.de", "xn--bcher-kva.de"),
            ("upper-case", "BÜCHER.DE", "xn--bcher-kva.de"),
            ("punycode", "xn--bcher-kva.de", "xn--bcher-kva.de"),
            ("2008-as-punycode", "xn--fa-hia.de", "xn--fa-hia.de"),  # IDNA 2008 faß.de, written as punycode
            ("japanese", "例え.テスト", "xn--r8jz45g.xn--zckzah"),
            ("ideographic-full-stop", "a。example", "a.example"),  # it separates labels
        ]
    ),
    pytest.param(
        rules_text("  - domains: [a.example, '*.B.example', a.example.]"),
        (allow_rule("a.example", 3, domains=("a.example", "*.b.example")),),
        (),
        id="domains-deduplicated",
    ),
    pytest.param(
        rules_text("  - domain: '*'", "    allow_broad: true"),
        (allow_rule("*", 3, allow_broad=True),),
        (),
        id="every-host-on-purpose",
    ),
    pytest.param(
        rules_text("  - domains: ['**.co.uk', '*.github.io', '*.com', '**']", "    allow_broad: yes"),
        (allow_rule("**.co.uk", 3, domains=("**.co.uk", "*.github.io", "*.com", "**"), allow_broad=True),),
        (),
        id="broad-on-purpose",
    ),
    pytest.param(
        rules_text("  - domain: '*.example.co.uk'", "  - domain: '*.me.github.io'", "  - domain: co.uk"),
        (allow_rule("*.example.co.uk", 3), allow_rule("*.me.github.io", 4), allow_rule("co.uk", 5)),
        (),
        id="under-a-public-suffix-is-fine",
    ),
    # methods
    pytest.param(
        rules_text("  - domain: a.example", "    methods: ['*']"), (allow_rule("a.example", 3),), (), id="any"
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: ['*', '*']"),
        (allow_rule("a.example", 3),),
        (),
        id="any-twice",
    ),
    # paths
    pytest.param(
        rules_text("  - domain: a.example", "    paths: ['/a/**', '/**/x', '/a**b', '/**']"),
        (allow_rule("a.example", 3, paths=("/a/**", "/**/x", "/a**b", "/**")),),
        (),
        id="span-patterns",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: true", "    paths: ['/p/group%2Fproject', '/v/*', '/%2f']"),
        (allow_rule("a.example", 3, paths=("/p/group%2Fproject", "/v/*", "/%2f"), raw_paths=True),),
        (),
        id="raw-paths",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    raw_paths: no"), (allow_rule("a.example", 3),), (), id="raw-paths-no"
    ),
    # query
    pytest.param(
        rules_text("  - domain: a.example", "    query: {service: git-upload-pack, 'a b': '*', x: ''}"),
        (allow_rule("a.example", 3, query=(("service", "git-upload-pack"), ("a b", "*"), ("x", ""))),),
        (),
        id="query",
    ),
    # id and comment
    pytest.param(
        rules_text("  - domain: a.example", "    id: team/api.read-1", "    comment: the API, read-only"),
        (allow_rule("a.example", 3, id="team/api.read-1", comment="the API, read-only"),),
        (),
        id="id-and-comment",
    ),
    # settings
    pytest.param(
        "version: 1\ndefaults: {ports: [8443, 8443]}\nallow:\n  - domain: a.example\n  - domain: b.example\n"
        "    ports: [443]\ndeny:\n  - domain: c.example\n",
        (allow_rule("a.example", 4, ports=frozenset({8443})), allow_rule("b.example", 5, ports=frozenset({443}))),
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
        (allow_rule("a.example", 5),),
        (deny_rule("a.example", 3, paths=("/admin/**",), query=(("x", "1"),), id="no-admin"),),
        id="deny-before-allow-in-the-file",
    ),
    pytest.param("version: 1\ndeny:\ninclude:\n", (), (), id="null-lists"),
    pytest.param("version: 1\ninclude: []\ndeny: []\n", (), (), id="empty-lists"),
]


@pytest.mark.parametrize(("text", "allow", "deny"), [*VALID, *LANGUAGE])
def test_documents_parse_to_rules(text: str, allow: tuple[Rule, ...], deny: tuple[Rule, ...]) -> None:
    """Each document parses to exactly these allow and deny rules, normalized, in file order, each citing the line
    it starts on."""
    assert parse_policy(text) == Policy(allow, "<string>", deny)


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
def test_network_allow_private_parses_to_networks(text: str, allowed: tuple[IPNetwork, ...]) -> None:
    """`network.allow_private` becomes the policy's `allow_private`: networks, in order, each once."""
    assert parse_policy(text).allow_private == allowed


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


# ---------------------------------------------------------------------------------------------------------------
# Every mistake, refused with its location


def rule_key_errors(key: str, *cases: tuple[str, str, str]) -> list[object]:
    """Cases of a rule `domain: a.example` whose `KEY: VALUE` on line 4 is refused there: `(id, VALUE, why)`."""
    return [
        pytest.param(
            rules_text("  - domain: a.example", f"    {key}: {value}"), f"<string>:4: allow[0].{key}: {why}", id=case_id
        )
        for case_id, value, why in cases
    ]


ERRORS = [
    # the document and its lists of rules
    pytest.param(
        "- version: 1\n",
        "<string>:1: expected a mapping with 'version' and 'allow', got a list",
        id="top-level-list",
    ),
    pytest.param("allow: []\n", "<string>:1: missing required key 'version'", id="version-missing"),
    pytest.param("version: 2\n", "<string>:1: version: unsupported version 2 (expected 1)", id="version-2"),
    pytest.param("version: '1'\n", "<string>:1: version: unsupported version '1' (expected 1)", id="version-string"),
    pytest.param("version: 1.0\n", "<string>:1: version: unsupported version 1.0 (expected 1)", id="version-float"),
    pytest.param("version:\n", "<string>:1: version: unsupported version null (expected 1)", id="version-null"),
    pytest.param("version: [1]\n", "<string>:1: version: unsupported version a list (expected 1)", id="version-list"),
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
    pytest.param("version: 1\ndeny: x\n", "<string>:2: deny: expected a list of rules, got 'x'", id="deny-scalar"),
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
        rules_text("  - domain: a.example", "    domains: [b.example]"),
        "<string>:4: allow[0]: use only one of 'domain' and 'domains'",
        id="domain-and-domains",
    ),
    pytest.param(
        rules_text("  - domains: [b.example]", "    domain: a.example"),
        "<string>:4: allow[0]: use only one of 'domains' and 'domain'",
        id="domains-and-domain",
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
    # domains
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
    # over-broad patterns, and allow_broad
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
    *rule_key_errors(
        "methods",
        ("methods-scalar", "GET", "expected a list of methods, got 'GET'"),
        ("methods-empty", "[]", "empty list (omit 'methods' to allow any method)"),
        ("method-list", "[GET, [POST]]", "expected a method name, got a list"),
        ("method-null", "[null]", "expected a method name, got null"),
        ("any-method-and-more", "['*', GET]", "'*' (any method) cannot be combined with other methods"),
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods:", "      - GET", "      - GETT"),
        "<string>:6: allow[0].methods: unknown method 'GETT'",
        id="method-unknown",
    ),
    pytest.param(
        rules_text("  - domain: a.example", "    methods: [*]"),
        "<string>:4: invalid YAML: expected alphabetic or numeric character, but found ']' (while scanning an alias)",
        id="any-method-unquoted",
    ),
    # ports
    *rule_key_errors(
        "ports",
        ("ports-scalar", "443", "expected a list of ports, got 443"),
        ("ports-empty", "[]", "empty list (omit 'ports' for the default 80 and 443)"),
        ("port-string", '["x"]', "expected a port number, got 'x'"),
        ("port-quoted", '["443"]', "expected a port number, got '443'"),
        ("port-yaml-octal", "[0755]", "expected a port number, got 0755"),
        ("port-hex", "[0x1bb]", "expected a port number, got 0x1bb"),
        ("port-float", "[443.0]", "expected a port number, got 443.0"),
        ("port-zero", "[0]", "port 0 out of range (1-65535)"),
        ("port-too-big", "[65536]", "port 65536 out of range (1-65535)"),
        ("port-negative", "[-1]", "expected a port number, got -1"),
        # a YAML boolean is never taken as port 1 or 0
        ("port-bool-true", "[true]", "expected a port number, got true"),
        ("port-bool-false", "[false]", "expected a port number, got false"),
        ("port-bool-yes", "[yes]", "expected a port number, got yes"),
        ("port-bool-on", "[on]", "expected a port number, got on"),
        ("port-bool-True", "[True]", "expected a port number, got True"),
    ),
    # paths
    *rule_key_errors(
        "paths",
        ("paths-scalar", "/hello", "expected a list of paths, got '/hello'"),
        ("paths-empty", "[]", "empty list (omit 'paths' to allow any path)"),
        ("path-int", "[1]", "expected a path pattern, got 1"),
        ("path-relative", "[hello]", "path must start with '/': 'hello'"),
        ("path-query", "['/a?b=1']", "path cannot contain a query: '/a?b=1'"),
        (
            "path-ambiguous",
            "['/a%2Fb']",
            "ambiguous path '/a%2Fb': encoded '/' (only a rule with 'raw_paths: true' may name it)",
        ),
        ("path-dot-segments", "['/a/../b']", "path '/a/../b' is not in normal form (write '/b')"),
        ("path-double-slash", "['//a']", "path '//a' is not in normal form (write '/a')"),
        (
            "path-escaped-unreserved",
            "['/%7euser', '/caf%c3%a9']",
            "path '/%7euser' is not in normal form (write '/~user')",
        ),
        ("path-lower-case-escape", "['/caf%c3%a9']", "path '/caf%c3%a9' is not in normal form (write '/caf%C3%A9')"),
    ),
    # query
    *rule_key_errors(
        "query",
        ("query-scalar", "service", "expected a mapping of parameter names to patterns, got 'service'"),
        ("query-list", "[service]", "expected a mapping of parameter names to patterns, got a list"),
        ("query-empty", "{}", "empty mapping (omit 'query' to ignore the query string)"),
        ("query-int-name", "{1: x}", "expected a parameter name, got 1"),
        ("query-empty-name", "{'': x}", "expected a parameter name, got ''"),
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
    # id and comment (an id's uniqueness across the policy is test_load's)
    *rule_key_errors(
        "id",
        ("id-int", "7", "expected an id (a string), got 7"),
        ("id-reserved", "preset:mine", "invalid id 'preset:mine': 'preset:' is reserved for presets"),
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
        rules_text("  - domain: a.example", "    comment: 5"),
        "<string>:4: allow[0].comment: expected a comment (a string), got 5",
        id="comment-int",
    ),
    # deny rules
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
    # the first problem is reported, with the index of the rule it is in
    pytest.param(
        rules_text("  - domain: a.example", "  - domain: b.example", "  - domain: c.example", "    ports: [0]"),
        "<string>:6: allow[2].ports: port 0 out of range (1-65535)",
        id="third-rule",
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
    # defaults
    pytest.param(
        "version: 1\ndefaults: 443\n",
        "<string>:2: defaults: expected a mapping of settings, got 443",
        id="defaults-int",
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
    # network: the SSRF guard's settings
    pytest.param(
        "version: 1\nnetwork:\n  allow_private: [127.0.0.1/8]\n",
        "<string>:3: network.allow_private: invalid address range '127.0.0.1/8': host bits set (write '127.0.0.0/8')",
        id="network-host-bits",
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n",
        "<string>:5: network.allow_private: invalid address range '10.0.0.0/33': expected an IPv4 or IPv6 "
        "address or CIDR range such as 10.0.0.0/8 or fd00::/8",
        id="network-prefix-too-long",
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private: [localhost]\n",
        "<string>:3: network.allow_private: invalid address range 'localhost': expected an IPv4 or IPv6 "
        "address or CIDR range such as 10.0.0.0/8 or fd00::/8",
        id="network-a-name",
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private: [10]\n",
        "<string>:3: network.allow_private: expected an address range such as 10.0.0.0/8, got 10",
        id="network-a-number",
    ),
    pytest.param(
        "version: 1\nnetwork:\n  allow_private: 10.0.0.0/8\n",
        "<string>:3: network.allow_private: expected a list of address ranges, got '10.0.0.0/8'",
        id="network-not-a-list",
    ),
    pytest.param(
        "version: 1\nnetwork:\n",
        "<string>:2: network: expected a mapping of network settings, got null",
        id="network-null",
    ),
    # limits: what one request head may hold
    pytest.param(
        "version: 1\nlimits:\n  request_head: 4095\n",
        "<string>:3: limits.request_head: 4095 out of range (4096-16777216)",
        id="limits-too-small",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_head: 17MiB\n",
        "<string>:3: limits.request_head: '17MiB' out of range (4096-16777216)",
        id="limits-too-large",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_head: 64kb\n",
        "<string>:3: limits.request_head: expected a size in bytes such as 65536 or 64KiB, got '64kb'",
        id="limits-unknown-unit",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_head: 0x10000\n",
        "<string>:3: limits.request_head: expected a size in bytes such as 65536 or 64KiB, got 0x10000",
        id="limits-hex",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_head: 65536.0\n",
        "<string>:3: limits.request_head: expected a size in bytes such as 65536 or 64KiB, got 65536.0",
        id="limits-float",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_headers: 10001\n",
        "<string>:3: limits.request_headers: 10001 out of range (1-10000)",
        id="limits-too-many-headers",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_headers: 1KiB\n",
        "<string>:3: limits.request_headers: expected a number of header fields such as 1, got '1KiB'",
        id="limits-headers-with-unit",
    ),
    pytest.param(
        "version: 1\nlimits:\n  request_headers: '12'\n",
        "<string>:3: limits.request_headers: expected a number of header fields such as 1, got '12'",
        id="limits-headers-quoted",
    ),
    pytest.param(
        "version: 1\nlimits: 65536\n", "<string>:2: limits: expected a mapping of limits, got 65536", id="limits-scalar"
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_name_their_location(text: str, message: str) -> None:
    """Each mistake raises PolicyError `FILE:LINE: key.path: message` quoting the bad value."""
    assert parse_error(text) == message


# ---------------------------------------------------------------------------------------------------------------
# Path patterns are stored in the form requests are matched in


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
# The tables

TABLES = [
    pytest.param(POLICY_TABLE, id="policy"),
    pytest.param(RULE_TABLE, id="rule"),
    pytest.param(DENY_RULE_TABLE, id="deny-rule"),
    pytest.param(SETTINGS_TABLE, id="settings"),
    pytest.param(NETWORK_TABLE, id="network"),
    pytest.param(LIMITS_TABLE, id="limits"),
]


@pytest.mark.parametrize("table", TABLES)
def test_tables_describe_every_key(table: Table) -> None:
    """Every key of every table has a description (editors and docs show it) and a unique name."""
    names = [key.name for key in table.keys]
    assert len(names) == len(set(names))
    assert all(key.description.strip() for key in table.keys)


def test_deny_rules_have_the_allow_rule_keys_but_two() -> None:
    """A deny rule has every key an allow rule has except `raw_paths` and `allow_broad`, each explained."""
    allow = {key.name for key in RULE_TABLE.keys}
    deny = {key.name for key in DENY_RULE_TABLE.keys}
    assert allow - deny == {"raw_paths", "allow_broad"} == set(DENY_RULE_TABLE.elsewhere)


@pytest.mark.parametrize("table", TABLES)
def test_docs_cover_every_key(table: Table) -> None:
    """docs/policy.md documents every key of every table."""
    text = (repo_root() / "docs" / "policy.md").read_text(encoding="utf-8")
    for key in table.keys:
        assert f"`{key.name}`" in text or f"`defaults.{key.name}`" in text, key.name
