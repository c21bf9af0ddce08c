"""`boundary run` end to end, as root and rootless: real curl in the jail, local upstreams, the audit log."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Jailer
from tests.support.runner import run_boundary

CURL = ["curl", "-sS", "--max-time", "20"]
AUDIT_FIELDS = {"ts", "run", "decision", "rule", "reason", "method", "scheme", "host", "port", "path", "status"}


def test_allowed_https_get_reaches_the_upstream(jail: Jailer) -> None:
    """An allowed GET gets the upstream's answer, with no CA flag: the jail trusts the run's CA."""
    run = jail.run([*CURL, "https://allowed.test/hello"])
    assert run.result.returncode == 0, run.stderr
    assert run.stdout == "hello from allowed.test\n"
    [line] = run.audit
    assert set(line) >= AUDIT_FIELDS
    assert line["decision"] == "allow" and line["reason"] == "allowed" and line["status"] == 200
    assert (line["method"], line["scheme"], line["host"], line["port"], line["path"]) == (
        "GET",
        "https",
        "allowed.test",
        443,
        "/hello",
    )
    assert line["rule"].endswith("policy.yaml:3")
    assert line["ts"].endswith("Z") and len(line["run"]) >= 8


@pytest.mark.parametrize(
    ("args", "reason", "method", "host", "path"),
    [
        (["https://allowed.test/secret"], "path-not-allowed", "GET", "allowed.test", "/secret"),
        (["-X", "POST", "https://allowed.test/hello"], "method-not-allowed", "POST", "allowed.test", "/hello"),
        (["https://denied.test/hello"], "no-matching-rule", "GET", "denied.test", "/hello"),
        (["http://allowed.test/secret"], "path-not-allowed", "GET", "allowed.test", "/secret"),
        (["http://denied.test/hello"], "no-matching-rule", "GET", "denied.test", "/hello"),
    ],
)
def test_denied_requests_get_403_with_reason(
    jail: Jailer, args: list[str], reason: str, method: str, host: str, path: str
) -> None:
    """Disallowed path, method or host, over HTTPS or HTTP: 403, the two headers, one deny line."""
    run = jail.run([*CURL, "-D", "-", *args])
    assert run.result.returncode == 0, run.stderr
    head, _, body = run.stdout.partition("\r\n\r\n")
    assert head.split()[1] == "403"
    assert "x-boundary-decision: deny" in head.lower()
    assert f"x-boundary-reason: {reason}" in head.lower()
    assert body.startswith("boundary denied") and body.count("\n") == 1
    [line] = run.audit
    assert (line["decision"], line["reason"], line["method"], line["host"], line["path"], line["status"]) == (
        "deny",
        reason,
        method,
        host,
        path,
        403,
    )
    assert line["rule"] is None
    assert not any(
        r.path == path and r.host.startswith(host)
        for r in jail.https.requests + jail.http.requests
        if r.path == "/secret"
    )


def test_allowed_plain_http_reaches_the_upstream(jail: Jailer) -> None:
    """Plain http:// is checked the same way: an allowed GET gets the upstream's answer."""
    run = jail.run([*CURL, "http://allowed.test/v1/models"])
    assert run.result.returncode == 0, run.stderr
    assert '"path": "/v1/models"' in run.stdout
    [line] = run.audit
    assert (line["decision"], line["scheme"], line["port"], line["status"]) == ("allow", "http", 80, 200)


def test_each_request_has_exactly_one_audit_line(jail: Jailer) -> None:
    """Three requests on one run, allow and deny mixed: three lines, in order, one run id."""
    script = "; ".join(
        f"curl -sS -o /dev/null --max-time 20 {url}"
        for url in ("https://allowed.test/hello", "https://denied.test/", "http://allowed.test/hello")
    )
    run = jail.run(["sh", "-c", script])
    assert run.result.returncode == 0, run.stderr
    assert [(a["decision"], a["host"], a["scheme"]) for a in run.audit] == [
        ("allow", "allowed.test", "https"),
        ("deny", "denied.test", "https"),
        ("allow", "allowed.test", "http"),
    ]
    assert len({a["run"] for a in run.audit}) == 1


def test_python_trusts_the_proxy_through_the_system_store(jail: Jailer) -> None:
    """A client that reads the system CA store (Debian's python3, default context) works unchanged."""
    code = "import urllib.request; print(urllib.request.urlopen('https://allowed.test/hello').read().decode())"
    run = jail.run(["env", "-u", "SSL_CERT_FILE", "-u", "SSL_CERT_DIR", "/usr/bin/python3", "-c", code])
    assert run.result.returncode == 0, run.stderr
    assert "hello from allowed.test" in run.stdout


@pytest.mark.parametrize(("command", "code"), [(["sh", "-c", "exit 7"], 7), (["sh", "-c", "kill -9 $$"], 137)])
def test_exit_code_is_the_workloads(jail: Jailer, command: list[str], code: int) -> None:
    """The workload's exit code passes through; death by signal N gives 128+N."""
    assert jail.run(command).result.returncode == code


def test_bad_policy_exits_125_with_a_located_message(jail: Jailer) -> None:
    """A bad policy stops the run before anything starts: exit 125 and `boundary: FILE:LINE: ...`."""
    run = jail.run(["sh", "-c", "echo started"], policy="version: 1\nallow:\n  - domain: a.test\n    metods: [GET]\n")
    assert run.result.returncode == 125
    assert "started" not in run.stdout
    assert "policy.yaml:4: allow[0]: unknown key 'metods'" in run.stderr
    assert run.stderr.count("\n") == 1


def test_missing_command_exits_125(jail: Jailer) -> None:
    """A command that does not exist is refused before the jail starts."""
    run = jail.run(["no-such-command-here"])
    assert run.result.returncode == 125
    assert "boundary: command not found: 'no-such-command-here'" in run.stderr


def test_fake_dns_answers_with_synthetic_addresses(jail: Jailer) -> None:
    """Inside the jail any name resolves to its own address in 198.18.0.0/15; AAAA gets nothing."""
    run = jail.run(["sh", "-c", "getent ahostsv4 allowed.test | head -1; getent ahostsv6 allowed.test | wc -l"])
    first, v6_count = run.stdout.split("\n")[0], run.stdout.split("\n")[1]
    assert first.startswith("198.18."), run.stdout
    assert v6_count.strip() == "0"


def test_ip_literal_is_denied(jail: Jailer) -> None:
    """A request to an IP address (never a name the jail resolved) is denied and nothing leaves."""
    run = jail.run([*CURL, "-o", "/dev/null", "-w", "%{http_code}", "http://198.51.100.7/"])
    assert run.stdout == "403"
    [line] = run.audit
    assert line["reason"] == "ip-literal"


def test_upstream_certificates_are_verified(jail: Jailer) -> None:
    """Without `--upstream-ca` the local upstream's certificate is not trusted: the client gets 502, the
    allowed request's audit line records the failure, and nothing was served."""
    before = len(jail.https.requests)
    args = jail.args([*CURL, "-o", "/dev/null", "-w", "%{http_code}", "https://allowed.test/hello"])
    at = args.index("--upstream-ca")
    del args[at : at + 2]
    result = run_boundary(args, rootless=jail.rootless, expose=[jail.workdir])
    assert result.stdout == b"502", result.stderr
    [line] = jail.audit()
    assert (line["decision"], line["status"]) == ("allow", None)
    assert "Certificate verify failed" in line["error"]
    assert len(jail.https.requests) == before
