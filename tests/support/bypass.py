"""Every path and host spelling a peer got wrong (design §6), as one table for two tests: a real `boundary run`
with curl (tests/e2e/test_bypass.py) and `boundary policy explain` (tests/unit/policy/test_tool.py).

The policy allows ``GET https://allowed.test/public/*`` and nothing else of allowed.test. A spelling that
reaches something else is denied with the reason given; a spelling that normalizes to an allowed path is
allowed, and the *normalized* path is what is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICY = """\
version: 1
allow:
  - domain: allowed.test
    methods: [GET]
    paths: ["/public/*"]
  - domain: other.test         # a method-only rule for another host
    methods: [DELETE]
  - domain: other.test         # a path-only rule for another host
    paths: ["/secret"]
"""

# 198.51.100.7 (TEST-NET-2, guarded by the host nft table): inside the jail 127/8 is the jail's own loopback,
# so spellings of 127.0.0.1 would test the jail's routing, not the proxy; those run through explain only.
DOC_IP = "198.51.100.7"


@dataclass(frozen=True)
class Denied:
    reason: str


@dataclass(frozen=True)
class Allowed:
    forwarded: str  # the request target the upstream must receive


@dataclass(frozen=True)
class Spelling:
    id: str
    url: str
    expected: Denied | Allowed
    method: str = "GET"
    e2e: bool = True  # False: meaningful for the policy alone, not through a jail (see DOC_IP)


SPELLINGS = [
    # --- paths: dot segments, plain and percent-encoded (coder/boundary: `/a/../b` and `%2e%2e` bypass) ---
    Spelling("dotdot", "https://allowed.test/public/../secret", Denied("path-not-allowed")),
    Spelling("encoded-dotdot", "https://allowed.test/public/%2e%2e/secret", Denied("path-not-allowed")),
    Spelling("mixed-case-dotdot", "https://allowed.test/public/%2E%2e/secret", Denied("path-not-allowed")),
    Spelling("half-encoded-dotdot", "https://allowed.test/public/.%2e/secret", Denied("path-not-allowed")),
    Spelling("dot-segment-climb", "https://allowed.test/public/./../secret", Denied("path-not-allowed")),
    # --- encoded separators (coder/boundary: `%2F`): a server that decodes before splitting sees other segments ---
    Spelling("encoded-slash-climb", "https://allowed.test/public%2F..%2Fsecret", Denied("ambiguous-path")),
    Spelling("encoded-slash", "https://allowed.test/public/a%2Fb", Denied("ambiguous-path")),
    Spelling("encoded-slash-lower", "https://allowed.test/public/a%2fb", Denied("ambiguous-path")),
    # --- repeated slashes: collapsed before matching, so they neither open nor close anything ---
    Spelling("double-slash", "https://allowed.test//public/x", Allowed("/public/x")),
    Spelling("double-slash-elsewhere", "https://allowed.test//secret", Denied("path-not-allowed")),
    Spelling("dot-segment", "https://allowed.test/public/./x", Allowed("/public/x")),
    # --- case: paths are case-sensitive, so /PUBLIC is another resource ---
    Spelling("upper-case-path", "https://allowed.test/PUBLIC/x", Denied("path-not-allowed")),
    # --- NUL: C-string servers truncate at it ---
    Spelling("encoded-nul", "https://allowed.test/public/x%00", Denied("ambiguous-path")),
    # --- Tomcat/Jetty path parameters: `..;` is `..` to a servlet container ---
    Spelling("dotdot-semicolon", "https://allowed.test/public/..;/secret", Denied("ambiguous-path")),
    # --- backslash: IIS and WHATWG URL parsers treat `\` as `/` ---
    Spelling("backslash", "https://allowed.test/public\\..\\secret", Denied("ambiguous-path")),
    # --- host spellings (coder/boundary: case and trailing-dot tricks): the same host, the same rules ---
    Spelling("upper-case-host", "https://ALLOWED.TEST/public/x", Allowed("/public/x")),
    Spelling("trailing-dot-host", "https://allowed.test./public/x", Allowed("/public/x")),
    Spelling("upper-case-host-denied-path", "https://ALLOWED.Test/secret", Denied("path-not-allowed")),
    Spelling("trailing-dot-host-denied-path", "https://allowed.test./secret", Denied("path-not-allowed")),
    # --- IP literals in spellings that inet_aton accepts: never a name the policy can allow. curl itself turns
    # them into the address without asking DNS; the jail then sees a connection to an address no name was given,
    # whatever the Host header says ---
    Spelling("ip-dotted", f"https://{DOC_IP}/public/x", Denied("ip-literal")),
    Spelling("ip-decimal", "https://3325256711/public/x", Denied("ip-literal")),
    Spelling("ip-hex", "https://0xc6.0x33.0x64.0x7/public/x", Denied("ip-literal")),
    Spelling("ip-decimal-http", "http://3325256711/public/x", Denied("ip-literal")),
    Spelling("ip-short-loopback", "https://127.1/public/x", Denied("ip-literal"), e2e=False),
    Spelling("ip-hex-loopback", "https://0x7f.0.0.1/public/x", Denied("ip-literal"), e2e=False),
    Spelling("ip-decimal-loopback", "https://2130706433/public/x", Denied("ip-literal"), e2e=False),
    Spelling("ip-octal-loopback", "http://0177.0.0.1/public/x", Denied("ip-literal"), e2e=False),
    Spelling("ipv6-loopback", "https://[::1]/public/x", Denied("ip-literal"), e2e=False),
    # --- ports (coder/boundary: ports ignored): 8443 is not among the rule's default 80/443 ---
    Spelling("other-port", "https://allowed.test:8443/public/x", Denied("port-not-allowed")),
    # --- rules for other.test must not leak to allowed.test (coder/boundary: method-/path-only rules match any
    # host) ---
    Spelling("method-only", "https://allowed.test/public/x", Denied("method-not-allowed"), method="DELETE"),
    Spelling("path-only", "https://allowed.test/secret", Denied("path-not-allowed")),
    Spelling("method-only-unnamed-host", "https://nowhere.test/", Denied("no-matching-rule"), method="DELETE"),
    Spelling("path-only-unnamed-host", "https://nowhere.test/secret", Denied("no-matching-rule")),
]
