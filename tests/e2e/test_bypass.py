"""Every path and host spelling a peer got wrong (design §6), tried with real curl through a real `boundary run`.

The policy allows ``GET https://allowed.test/public/*`` and nothing else of allowed.test. A spelling that
reaches something else is denied: 403, ``X-Boundary-Reason``, exactly one deny line, and the upstream saw
nothing. A spelling that normalizes to an allowed path is allowed, and the upstream receives the
*normalized* path: it sees exactly what was checked, so it cannot read the request in another way.

curl runs with ``--path-as-is`` wherever it would otherwise remove dot segments itself (then the test would
prove nothing about boundary).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Jailer

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

CURL = ["curl", "-sS", "--max-time", "20", "-D", "-", "--path-as-is"]
# 198.51.100.7 (TEST-NET-2, guarded by the host nft table): inside the jail 127/8 is the jail's own loopback,
# so spellings of 127.0.0.1 would test the jail's routing, not the proxy.
DOC_IP = "198.51.100.7"


@dataclass(frozen=True)
class Denied:
    reason: str


@dataclass(frozen=True)
class Allowed:
    forwarded: str  # the request target the upstream must receive


CASES = [
    # --- paths: dot segments, plain and percent-encoded (coder/boundary: `/a/../b` and `%2e%2e` bypass) ---
    pytest.param(["https://allowed.test/public/../secret"], Denied("path-not-allowed"), id="dotdot"),
    pytest.param(["https://allowed.test/public/%2e%2e/secret"], Denied("path-not-allowed"), id="encoded-dotdot"),
    pytest.param(["https://allowed.test/public/%2E%2e/secret"], Denied("path-not-allowed"), id="mixed-case-dotdot"),
    pytest.param(["https://allowed.test/public/.%2e/secret"], Denied("path-not-allowed"), id="half-encoded-dotdot"),
    # --- encoded separators (coder/boundary: `%2F`): a server that decodes before splitting sees other segments ---
    pytest.param(["https://allowed.test/public%2F..%2Fsecret"], Denied("ambiguous-path"), id="encoded-slash-climb"),
    pytest.param(["https://allowed.test/public/a%2Fb"], Denied("ambiguous-path"), id="encoded-slash"),
    # --- harmless spellings of an allowed path: allowed, and forwarded normalized ---
    pytest.param(["https://allowed.test//public/x"], Allowed("/public/x"), id="double-slash"),
    pytest.param(["https://allowed.test/public/./x"], Allowed("/public/x"), id="dot-segment"),
    # --- case: paths are case-sensitive, so /PUBLIC is another resource ---
    pytest.param(["https://allowed.test/PUBLIC/x"], Denied("path-not-allowed"), id="upper-case-path"),
    # --- NUL: C-string servers truncate at it ---
    pytest.param(["https://allowed.test/public/x%00"], Denied("ambiguous-path"), id="encoded-nul"),
    # --- Tomcat/Jetty path parameters: `..;` is `..` to a servlet container ---
    pytest.param(["https://allowed.test/public/..;/secret"], Denied("ambiguous-path"), id="dotdot-semicolon"),
    # --- backslash: IIS and WHATWG URL parsers treat `\` as `/` ---
    pytest.param(["https://allowed.test/public\\..\\secret"], Denied("ambiguous-path"), id="backslash"),
    # --- host spellings (coder/boundary: case and trailing-dot tricks) ---
    pytest.param(["https://ALLOWED.TEST/public/x"], Allowed("/public/x"), id="upper-case-host"),
    pytest.param(["https://allowed.test./public/x"], Allowed("/public/x"), id="trailing-dot-host"),
    # --- IP literals in spellings that inet_aton accepts: never a name the policy can allow. curl itself turns
    # them into 198.51.100.7 without asking DNS; the jail then sees a connection to an address no name was
    # given, whatever the Host header says ---
    pytest.param([f"https://{DOC_IP}/public/x"], Denied("ip-literal"), id="ip-dotted"),
    pytest.param(["https://3325256711/public/x"], Denied("ip-literal"), id="ip-decimal"),
    pytest.param(["https://0xc6.0x33.0x64.0x7/public/x"], Denied("ip-literal"), id="ip-hex"),
    pytest.param(["http://3325256711/public/x"], Denied("ip-literal"), id="ip-decimal-http"),
    # --- ports (coder/boundary: ports ignored): 8443 is not among the rule's default 80/443 ---
    pytest.param(["https://allowed.test:8443/public/x"], Denied("port-not-allowed"), id="other-port"),
    # --- rules for other.test must not leak to allowed.test (coder/boundary: method-/path-only rules match any
    # host) ---
    pytest.param(["-X", "DELETE", "https://allowed.test/public/x"], Denied("method-not-allowed"), id="method-only"),
    pytest.param(["https://allowed.test/secret"], Denied("path-not-allowed"), id="path-only"),
]


def status_and_headers(stdout: str) -> tuple[int, dict[str, str]]:
    """The status and headers of the last response in curl's ``-D -`` output."""
    head = stdout.partition("\r\n\r\n")[0]
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_spelling(jail: Jailer, args: list[str], expected: Denied | Allowed) -> None:
    """Each spelling gets the decision its canonical form deserves; denied ones never reach the upstream,
    allowed ones reach it with the normalized path."""
    before = len(jail.https.requests) + len(jail.http.requests)
    port = jail.https.port
    extra = ["--resolve", f"allowed.test:8443:127.0.0.1:{port}"]
    run = jail.run([*CURL, *args], policy=POLICY, extra=extra)
    assert run.result.returncode == 0, run.stderr
    status, headers = status_and_headers(run.stdout)
    new = (jail.https.requests + jail.http.requests)[before:]
    [line] = run.audit
    if isinstance(expected, Denied):
        assert status == 403, run.stdout
        assert headers.get("x-boundary-decision") == "deny"
        assert headers.get("x-boundary-reason") == expected.reason
        assert (line["decision"], line["reason"], line["status"], line["rule"]) == ("deny", expected.reason, 403, None)
        assert new == []
    else:
        assert status == 200, run.stdout
        assert (line["decision"], line["host"], line["path"], line["status"]) == (
            "allow",
            "allowed.test",
            expected.forwarded,
            200,
        )
        [request] = new
        assert (request.method, request.path) == ("GET", expected.forwarded)
