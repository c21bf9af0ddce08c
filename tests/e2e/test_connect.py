"""An agent with a proxy configured (`HTTPS_PROXY`, `curl -x`): its CONNECT and absolute-form requests are
requests like any other, checked by their target, intercepted, audited; the proxy's own address means nothing.

`proxy.test` is resolved by the jail's fake DNS like any name; no server listens for it anywhere.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Jailer

PROXY = "http://proxy.test:3128"
CURL = ["curl", "-sS", "--max-time", "20"]
CODE = ["-o", "/dev/null", "-w", "%{http_code} %{http_connect}"]


def _sent(jail: Jailer) -> int:
    return len(jail.https.requests) + len(jail.http.requests)


def test_connect_to_an_allowed_host_is_intercepted_and_each_request_checked(jail: Jailer) -> None:
    """`curl -x` sends CONNECT allowed.test:443: answered 200, then the TLS inside is intercepted with the run's
    CA and the GET is checked and audited with its own host; upstream sees the canonical Host and SNI."""
    before = len(jail.https.requests)
    run = jail.run([*CURL, "-x", PROXY, "https://Allowed.TEST/v1/echo"])
    assert run.result.returncode == 0, run.stderr
    echoed = json.loads(run.stdout)
    assert (echoed["method"], echoed["path"], echoed["host"], echoed["sni"]) == (
        "GET",
        "/v1/echo",
        "allowed.test",
        "allowed.test",
    )
    assert len(jail.https.requests) == before + 1
    connect, get = run.audit
    assert (connect["decision"], connect["method"], connect["host"], connect["port"]) == (
        "allow",
        "CONNECT",
        "allowed.test",
        443,
    )
    assert (connect["path"], connect["status"], connect["rule"]) == (None, 200, None)
    assert (get["decision"], get["method"], get["scheme"], get["host"], get["port"], get["path"], get["status"]) == (
        "allow",
        "GET",
        "https",
        "allowed.test",
        443,
        "/v1/echo",
        200,
    )
    assert get["rule"].endswith("policy.yaml:3")


def test_a_request_in_the_tunnel_is_checked_like_any_other(jail: Jailer) -> None:
    """An allowed CONNECT is no blanket pass: a path the policy does not allow inside it gets the 403."""
    before = _sent(jail)
    run = jail.run([*CURL, *CODE, "-x", PROXY, "https://allowed.test/secret"])
    assert run.stdout == "403 200", run.stderr
    connect, get = run.audit
    assert connect["decision"] == "allow"
    assert (get["decision"], get["reason"], get["path"]) == ("deny", "path-not-allowed", "/secret")
    assert _sent(jail) == before


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("denied.test", "no-matching-rule"),
        ("allowed.test:8443", "port-not-allowed"),
        ("127.0.0.1:{port}", "ip-literal"),
    ],
)
def test_connect_to_a_target_the_policy_denies_gets_a_403(jail: Jailer, target: str, reason: str) -> None:
    """A CONNECT to a denied host, port or an IP literal (here the real upstream's own address) is answered 403
    with the X-Boundary headers and audited; no tunnel opens and the target receives nothing."""
    target = target.format(port=jail.https.port)
    before = _sent(jail)
    run = jail.run([*CURL, "-v", *CODE, "-x", PROXY, f"https://{target}/hello"])
    assert run.result.returncode != 0  # curl: CONNECT tunnel failed
    assert run.stdout == "000 403", run.stderr
    assert "< X-Boundary-Decision: deny" in run.stderr
    assert f"< X-Boundary-Reason: {reason}" in run.stderr
    [line] = run.audit
    assert (line["decision"], line["reason"], line["method"], line["status"]) == ("deny", reason, "CONNECT", 403)
    assert _sent(jail) == before


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        # CONNECT names the allowed host, the TLS inside it another one.
        (["--connect-to", "denied.test:443:allowed.test:443", "https://denied.test/hello"], "sni-mismatch"),
        (["-H", "Host: denied.test", "https://allowed.test/hello"], "host-mismatch"),
        (["-H", "Host: proxy.test", "https://allowed.test/hello"], "host-mismatch"),
    ],
)
def test_names_inside_a_tunnel_must_be_the_connect_target(jail: Jailer, args: list[str], reason: str) -> None:
    """SNI and Host inside the tunnel must name the CONNECT host: fronting through a proxy is denied too."""
    before = _sent(jail)
    run = jail.run([*CURL, *CODE, "-x", PROXY, *args])
    assert run.stdout == "403 200", run.stderr
    connect, inner = run.audit
    assert (connect["decision"], connect["host"]) == ("allow", "allowed.test")
    assert (inner["decision"], inner["reason"], inner["host"]) == ("deny", reason, "allowed.test")
    assert _sent(jail) == before


def test_absolute_form_request_is_checked_by_its_url_and_sent_there(jail: Jailer) -> None:
    """`GET http://allowed.test/...` sent to the proxy goes to allowed.test (not to the proxy's address), in
    origin-form, with the canonical Host; the audit line names the URL's host."""
    before = len(jail.http.requests)
    run = jail.run([*CURL, "-x", PROXY, "http://ALLOWED.test./v1/echo"])
    assert run.result.returncode == 0, run.stderr
    echoed = json.loads(run.stdout)
    assert (echoed["path"], echoed["host"]) == ("/v1/echo", "allowed.test")
    assert len(jail.http.requests) == before + 1
    [line] = run.audit
    assert (line["decision"], line["method"], line["scheme"], line["host"], line["port"], line["path"]) == (
        "allow",
        "GET",
        "http",
        "allowed.test",
        80,
        "/v1/echo",
    )


@pytest.mark.parametrize(
    ("args", "reason", "host"),
    [
        (["http://denied.test/hello"], "no-matching-rule", "denied.test"),
        (["-H", "Host: denied.test", "http://allowed.test/hello"], "host-mismatch", "allowed.test"),
        (["http://127.0.0.1:{port}/hello"], "ip-literal", "127.0.0.1"),
    ],
)
def test_absolute_form_request_the_policy_denies_gets_a_403(
    jail: Jailer, args: list[str], reason: str, host: str
) -> None:
    """A proxy request for a denied URL, an IP literal URL, or with a Host that disagrees with its URL: 403 with
    the reason, one deny line, nothing sent upstream."""
    args = [arg.format(port=jail.http.port) for arg in args]
    before = _sent(jail)
    run = jail.run([*CURL, "-D", "-", "-o", "/dev/null", "-x", PROXY, *args])
    assert run.result.returncode == 0, run.stderr
    assert run.stdout.split()[1] == "403"
    assert f"x-boundary-reason: {reason}" in run.stdout.lower()
    [line] = run.audit
    assert (line["decision"], line["reason"], line["host"], line["status"]) == ("deny", reason, host, 403)
    assert _sent(jail) == before


URLLIB = """
import sys, urllib.request
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            print(response.status, response.read().decode().strip())
    except urllib.error.HTTPError as e:
        print(e.code, e.headers["X-Boundary-Reason"])
    except urllib.error.URLError as e:  # a CONNECT's 403 ends the tunnel attempt: no response object
        print(e.reason)
"""


@pytest.mark.parametrize("proxy", [PROXY, "http://198.51.100.7:3128"])
def test_python_with_proxy_variables_is_served_and_checked(jail: Jailer, proxy: str) -> None:
    """Python's urllib honours HTTPS_PROXY/HTTP_PROXY (a name or an IP literal): its CONNECT and absolute-form
    requests reach allowed hosts and are denied elsewhere, each audited."""
    before = _sent(jail)
    env = ["env", f"HTTPS_PROXY={proxy}", f"HTTP_PROXY={proxy}", "python3", "-c", URLLIB]
    urls = ["https://allowed.test/hello", "http://allowed.test/hello", "https://denied.test/hello"]
    run = jail.run([*env, *urls])
    assert run.result.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "200 hello from allowed.test",
        "200 hello from allowed.test",
        "Tunnel connection failed: 403 Forbidden",
    ]
    assert _sent(jail) == before + 2
    assert [(line["decision"], line["method"], line["host"]) for line in run.audit] == [
        ("allow", "CONNECT", "allowed.test"),
        ("allow", "GET", "allowed.test"),
        ("allow", "GET", "allowed.test"),
        ("deny", "CONNECT", "denied.test"),
    ]
