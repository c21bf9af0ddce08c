"""Specification of `boundary doctor`'s checks: the verdict of each from what its probe found (tables), the
rendering and exit status, and the real probes of this machine (which can run boundary: all say ok).

The self-test jail itself runs for real in tests/e2e/test_doctor.py, as root and rootless.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher, Request
from boundary.reasons import Reason
from boundary.run import doctor
from boundary.run.doctor import (
    CHECKS,
    SELFTEST_ALLOWED,
    SELFTEST_DENIED,
    SELFTEST_PATH,
    SELFTEST_POLICY,
    Check,
    Result,
    bundle_result,
    command_result,
    exit_code,
    host_addresses_result,
    mitmproxy_result,
    namespaces_result,
    python_result,
    render,
    run_checks,
    selftest_argv,
    selftest_result,
    summary,
    userns_result,
)
from tests.support.tools import requires_userns

OK, WARN, FAIL = "ok", "warn", "FAIL"

# --- rendering and the overall verdict ---------------------------------------------------------------------


def test_render_ok() -> None:
    """A passing check is one line: status, name, what was found."""
    assert render("nft", Result("ok", "works")) == "ok    nft: works"


def test_render_with_fix() -> None:
    """A check that is not ok also says how to fix it, on the same line."""
    line = render("nft", Result("FAIL", "/usr/sbin/nft not found", "apt-get install nftables"))
    assert line == "FAIL  nft: /usr/sbin/nft not found; fix: apt-get install nftables"


@pytest.mark.parametrize(
    ("statuses", "code", "said"),
    [
        ((OK, OK), 0, "ready"),
        ((OK, WARN), 0, "ready (1 warning)"),
        ((WARN, WARN, OK), 0, "ready (2 warnings)"),
        ((OK, FAIL, WARN), 1, "not ready: 1 of 3 checks failed (see the FAIL lines and their fixes)"),
    ],
)
def test_exit_code_and_summary(statuses: tuple[doctor.Status, ...], code: int, said: str) -> None:
    """Ready (exit 0) unless a check failed; warnings do not stop boundary from running."""
    results = [Result(status, "x") for status in statuses]
    assert (exit_code(results), summary(results)) == (code, said)


def test_a_crashing_probe_is_a_failed_check() -> None:
    """A probe that raises fails its own check; the checks after it still run, in table order."""

    def broken() -> Result:
        raise OSError("boom")

    table = (Check("first", broken), Check("second", lambda: Result("ok", "fine")))
    ran = [(check.name, result.status, result.detail) for check, result in run_checks(table)]
    assert ran == [("first", FAIL, "the check itself failed: OSError: boom"), ("second", OK, "fine")]


def test_the_checks() -> None:
    """The doctor checks what the issue lists, in the order a user would fix things, the self-test last."""
    assert [check.name for check in CHECKS] == [
        "python",
        "mitmproxy",
        "namespaces",
        "user namespaces",
        "unshare",
        "nft",
        "host addresses",
        "run CA",
        "system CA bundle",
        "self-test jail",
    ]


# --- versions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "status"), [((3, 12, 0), OK), ((3, 13, 1), OK), ((4, 0, 0), OK), ((3, 11, 9), FAIL)]
)
def test_python_version(version: tuple[int, int, int], status: str) -> None:
    """Python 3.12 or newer."""
    assert python_result(version).status == status


@pytest.mark.parametrize(
    ("version", "status"),
    [
        ("12.3.0", OK),
        ("12.3.1", OK),
        ("12.9.0rc1", OK),
        ("12.2.9", FAIL),
        ("13.0.0", FAIL),
        ("11.1.3", FAIL),
        ("garbage", FAIL),
        (None, FAIL),
    ],
)
def test_mitmproxy_version(version: str | None, status: str) -> None:
    """mitmproxy >=12.3,<13 (boundary uses its internals); a missing one says how to install it."""
    result = mitmproxy_result(version)
    assert result.status == status
    if status == FAIL:
        assert "mitmproxy>=12.3,<13" in result.fix


# --- the kernel --------------------------------------------------------------------------------------------


def test_namespaces_all_present() -> None:
    """All four namespace kinds present: ok (others, like cgroup or uts, do not matter)."""
    assert namespaces_result(["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]).status == OK


def test_namespaces_missing_one() -> None:
    """A missing kind is named."""
    result = namespaces_result(["mnt", "net", "user"])
    assert (result.status, result.detail) == (FAIL, "the kernel lacks pid namespaces")


MAX = "user.max_user_namespaces"
CLONE = "kernel.unprivileged_userns_clone"
APPARMOR = "kernel.apparmor_restrict_unprivileged_userns"


@pytest.mark.parametrize(
    ("values", "root", "status", "named"),
    [
        ({}, False, OK, None),  # none of the sysctls exists on this kernel
        ({MAX: 15000, CLONE: 1, APPARMOR: 0}, False, OK, None),
        ({MAX: 0}, True, FAIL, MAX),  # stops root too
        ({MAX: 0}, False, FAIL, MAX),
        ({CLONE: 0}, False, FAIL, CLONE),
        ({CLONE: 0}, True, WARN, CLONE),  # root still can
        ({APPARMOR: 1}, False, FAIL, APPARMOR),
        ({APPARMOR: 1}, True, WARN, APPARMOR),
        ({MAX: 15000, APPARMOR: 1, CLONE: 0}, False, FAIL, CLONE),  # the first in table order is named
    ],
)
def test_user_namespace_restrictions(values: Mapping[str, int], root: bool, status: str, named: str | None) -> None:
    """The sysctls that forbid user namespaces, with the Ubuntu AppArmor restriction; root is only stopped by
    the ones that stop root too. A restriction names the sysctl and the command that lifts it."""
    result = userns_result(values, root)
    assert result.status == status
    if named is not None:
        assert result.detail.startswith(f"{named}=")
        assert named in result.fix


@pytest.mark.parametrize(
    ("code", "stderr", "status", "detail"),
    [
        (0, "", OK, "probe"),
        (1, "unshare: unshare failed: Operation not permitted\n", FAIL, "probe: failed (exit 1): unshare: "
         "unshare failed: Operation not permitted"),
        (1, "", FAIL, "probe: failed (exit 1): no message"),
        (None, "", FAIL, "probe: failed (timed out): no message"),
    ],
)  # fmt: skip
def test_probe_command_verdict(code: int | None, stderr: str, status: str, detail: str) -> None:
    """A probe command passes by exiting 0; otherwise the detail quotes its last stderr line."""
    result = command_result("probe", code, stderr, "the fix")
    assert (result.status, result.detail) == (status, detail)
    assert result.fix == ("" if status == OK else "the fix")


# --- trust -------------------------------------------------------------------------------------------------


def test_bundle_missing_is_a_warning() -> None:
    """Without a system bundle boundary still runs (SSL_CERT_FILE and certifi), so it is a warning."""
    assert bundle_result(None, 0).status == WARN


def test_bundle_found() -> None:
    """A bundle with certificates is ok and says where it is."""
    result = bundle_result(Path("/etc/ssl/certs/ca-certificates.crt"), 144)
    assert (result.status, result.detail.split(" ")[0]) == (OK, "/etc/ssl/certs/ca-certificates.crt")


def test_bundle_empty_fails() -> None:
    """A bundle without a single certificate would make every upstream fail verification."""
    assert bundle_result(Path("/etc/ssl/certs/ca-certificates.crt"), 0).status == FAIL


# --- host addresses: netlink against the SSRF guard's view ------------------------------------------------


def _addresses(*texts: str) -> list[Any]:
    return [ipaddress.ip_address(text) for text in texts]


def test_host_addresses_all_seen_is_ok() -> None:
    guarded = [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("192.0.2.2/32"),
        ipaddress.ip_network("::1/128"),
    ]
    result = host_addresses_result(_addresses("127.0.0.1", "192.0.2.2", "::1", "127.0.0.1"), guarded)
    assert (result.status, result.detail) == (
        OK,
        "the SSRF guard sees all 3 of the host's addresses that netlink lists",
    )


def test_a_host_address_the_guard_misses_fails_and_names_it() -> None:
    """An address only netlink knows could be reached by a name that resolves to it: that is a FAIL."""
    result = host_addresses_result(_addresses("127.0.0.1", "fd00::2"), [ipaddress.ip_network("127.0.0.0/8")])
    assert result.status == FAIL and "fd00::2" in result.detail and "127.0.0.1" not in result.detail


def test_the_guard_sees_every_address_netlink_lists_on_this_machine() -> None:
    """The real probe, through pyroute2: the guard's reading of /proc agrees with the kernel's netlink."""
    assert doctor.check_host_addresses().status == OK, doctor.check_host_addresses()


# --- the self-test: its run and its verdict ----------------------------------------------------------------


def test_selftest_policy_decides_as_the_verdict_expects() -> None:
    """The self-test policy allows GET /ok on the allowed name and denies the other name as no-matching-rule:
    the two outcomes `selftest_result` requires."""
    matcher = Matcher(parse_policy(SELFTEST_POLICY, "doctor"))
    allowed = matcher.decide(Request("https", SELFTEST_ALLOWED, 443, "GET", SELFTEST_PATH))
    denied = matcher.decide(Request("https", SELFTEST_DENIED, 443, "GET", SELFTEST_PATH))
    assert (allowed.reason, denied.reason) == (Reason.ALLOWED, Reason.NO_MATCHING_RULE)


@pytest.mark.parametrize("root", [True, False])
def test_selftest_argv(root: bool) -> None:
    """`boundary run` with both names mapped to the local server (neither ever asked of real DNS), the
    upstream's CA, an audit log; as root the workload stays root (not $SUDO_USER)."""
    argv = selftest_argv("/venv/python", "/d/p.yaml", "/d/a.jsonl", "/d/ca.pem", 8443, root)
    cut = argv.index("--")
    options, workload = argv[:cut], argv[cut + 1 :]
    assert options[:4] == ["/venv/python", "-m", "boundary", "run"]
    pairs = list(zip(options[4::2], options[5::2], strict=True))
    assert ("--policy", "/d/p.yaml") in pairs
    assert ("--log", "/d/a.jsonl") in pairs
    assert ("--upstream-ca", "/d/ca.pem") in pairs
    assert ("--resolve", f"{SELFTEST_ALLOWED}:443:127.0.0.1:8443") in pairs
    assert ("--resolve", f"{SELFTEST_DENIED}:443:127.0.0.1:8443") in pairs
    assert (("--user", "root") in pairs) == root
    assert workload[:3] == ["/venv/python", "-I", "-c"]


def test_selftest_workload_is_the_real_interpreter_not_a_venv_link(tmp_path: Path) -> None:
    """A venv's `bin/python` is a link, and a checkout under /tmp is hidden in the jail: the workload runs the
    interpreter the link leads to."""
    link = tmp_path / "python"
    link.symlink_to(sys.executable)
    argv = selftest_argv(str(link), "/d/p.yaml", "/d/a.jsonl", "/d/ca.pem", 8443, False)
    assert argv[0] == str(link)
    assert argv[argv.index("--") + 1] == os.path.realpath(sys.executable)


NONCE = "n0nce"
GOOD = {"allowed": [200, NONCE, None], "denied": [403, "boundary denied ...", "no-matching-rule"]}


def report(**changes: list[object]) -> str:
    return "noise before\n" + json.dumps(GOOD | changes) + "\n"


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "decisions", "status", "detail_start"),
    [
        (0, report(), "", ["allow", "deny"], OK, "in a real jail"),
        (0, report(), "", ["deny", "allow"], OK, "in a real jail"),
        (None, "", "", [], FAIL, "the self-test run did not finish"),
        (125, "", "x\nboundary: jail set-up failed: EPERM\n", [], FAIL, "the self-test run failed (exit 125): "
         "boundary: jail set-up failed: EPERM"),
        (0, "not json\n", "", [], FAIL, "the self-test run failed (exit 0): no output"),
        (0, report(allowed=[502, "bad gateway", None]), "", ["allow", "deny"], FAIL, "an allowed request did not "
         "get through the jail: status 502"),
        (0, report(allowed=[None, "URLError: refused", None]), "", [], FAIL, "an allowed request did not get "
         "through the jail: URLError: refused"),
        (0, report(allowed=[200, "someone else", None]), "", ["allow", "deny"], FAIL, "an allowed request"),
        (0, report(denied=[200, "secret", None]), "", ["allow", "deny"], FAIL, "a denied request was not refused "
         "with a 403: status 200"),
        (0, report(denied=[403, "elsewhere", None]), "", ["allow", "deny"], FAIL, "a denied request was not"),
        (0, report(), "", ["allow"], FAIL, "the audit log holds ['allow']"),
    ],
)  # fmt: skip
def test_selftest_verdict(
    code: int | None, stdout: str, stderr: str, decisions: list[str], status: str, detail_start: str
) -> None:
    """Ready only if the allowed request reached the local server (its nonce came back), the denied one got
    boundary's 403, and the audit log holds one allow and one deny. A denied request that got through is a
    bug in boundary, and the fix says so."""
    result = selftest_result(code, stdout, stderr, decisions, NONCE)
    assert result.status == status
    assert result.detail.startswith(detail_start), result.detail
    if "denied request" in result.detail:
        assert "bug" in result.fix


def test_selftest_workload_is_valid_python() -> None:
    """The script the jail runs compiles (it only ever runs inside a jail)."""
    script = selftest_argv(sys.executable, "p", "l", "c", 1, False)[-1]
    compile(script, "<doctor workload>", "exec")
    assert f'https://" + host + "{SELFTEST_PATH}' in script


# --- the real probes of this machine -----------------------------------------------------------------------

PLAIN = [check for check in CHECKS if check.name not in {"unshare", "nft", "self-test jail"}]
NAMESPACED = [check for check in CHECKS if check.name in {"unshare", "nft"}]


@pytest.mark.parametrize("check", PLAIN, ids=lambda check: check.name)
def test_this_machine(check: Check) -> None:
    """On this machine (the test machine can run boundary) every read-only probe says ok."""
    result = check.probe()
    assert result == Result("ok", result.detail), render(check.name, result)


@requires_userns
@pytest.mark.parametrize("check", NAMESPACED, ids=lambda check: check.name)
def test_this_machine_namespaces(check: Check) -> None:
    """The probes in throwaway namespaces (unshare; nft applying the jail's ruleset) say ok here."""
    result = check.probe()
    assert result == Result("ok", result.detail), render(check.name, result)
