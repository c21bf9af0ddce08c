"""`boundary doctor`: can boundary run on this machine, and if not, what to do about it.

Theory of operation. Each check is a small probe that returns a `Result` (status, what was found, a fix hint);
`CHECKS` lists them in the order a user would fix things: the interpreter and libraries, the kernel, the
tools the jail uses, the trust store, and last a real `boundary run` that must let one request through and
refuse another. Probes only read (sysctls, /proc, versions) or act inside throwaway namespaces, so the doctor
never changes the host; the verdicts from what a probe read are pure functions, tested as tables.

`ok` means ready, `warn` means boundary works here but something is worth knowing (for example: root can run
it, other users cannot), `FAIL` means a run would fail. The exit status is 1 when any check failed.
"""

from __future__ import annotations

import datetime
import http.server
import importlib.metadata
import ipaddress
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from boundary.ca import SYSTEM_BUNDLES, RunCA, find_system_bundle, generate_ca
from boundary.jail.netns import NFT
from boundary.jail.plan import nft_ruleset
from boundary.proxy.ssrf import IPAddress, IPNetwork, host_networks

__all__ = [
    "CHECKS",
    "Check",
    "Result",
    "exit_code",
    "host_addresses_result",
    "render",
    "run_checks",
    "summary",
]

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True, slots=True)
class Result:
    status: Status
    detail: str  # what was found
    fix: str = ""  # what to do about it (not ok only)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: Callable[[], Result]


def ok(detail: str) -> Result:
    return Result("ok", detail)


# ----------------------------------------------------------------------------------------------------------
# Rendering and the verdict over all checks


def render(name: str, result: Result) -> str:
    """One line per check: `ok    name: detail`, with `; fix: ...` when there is something to do."""
    line = f"{result.status:<5} {name}: {result.detail}"
    return f"{line}; fix: {result.fix}" if result.fix else line


def exit_code(results: Iterable[Result]) -> int:
    return 1 if any(result.status == "FAIL" for result in results) else 0


def summary(results: Sequence[Result]) -> str:
    failed = sum(result.status == "FAIL" for result in results)
    warned = sum(result.status == "warn" for result in results)
    if failed:
        return f"not ready: {failed} of {len(results)} checks failed (see the FAIL lines and their fixes)"
    return "ready" + (f" ({warned} warning{'s' if warned > 1 else ''})" if warned else "")


def run_checks(checks: Sequence[Check]) -> Iterator[tuple[Check, Result]]:
    """Run each check in order, as it is needed (the caller prints as they come). A probe that raises is a
    FAIL of that check, not the end of the diagnosis."""
    for check in checks:
        try:
            result = check.probe()
        except Exception as e:  # a doctor reports what broke; it does not stop at the first surprise
            result = Result("FAIL", f"the check itself failed: {type(e).__name__}: {e}", "report this as a bug")
        yield check, result


# ----------------------------------------------------------------------------------------------------------
# Versions

PYTHON_MIN: Final = (3, 12)
MITMPROXY_RANGE: Final = ((12, 3), (13, 0))  # >=12.3,<13: boundary uses its addon and proxy internals
_PIN: Final = "pip install 'mitmproxy>=12.3,<13' (scripts/setup does it)"


def python_result(version: Sequence[int]) -> Result:
    shown = ".".join(map(str, version[:3]))
    if tuple(version[:2]) >= PYTHON_MIN:
        return ok(f"{shown} (needs >= 3.12)")
    return Result("FAIL", f"{shown}, boundary needs >= 3.12", "run scripts/setup, which installs a newer Python")


def mitmproxy_result(version: str | None) -> Result:
    if version is None:
        return Result("FAIL", "not installed", _PIN)
    match = re.match(r"(\d+)\.(\d+)", version)
    low, high = MITMPROXY_RANGE
    if match is None:
        return Result("FAIL", f"unreadable version '{version}'", _PIN)
    if low <= (int(match[1]), int(match[2])) < high:
        return ok(f"{version} (needs >=12.3,<13)")
    return Result("FAIL", f"{version}, boundary needs >=12.3,<13", _PIN)


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------------------------------
# Kernel: namespaces and who may create them

NAMESPACES: Final = ("user", "net", "mnt", "pid")


def namespaces_result(present: Iterable[str]) -> Result:
    missing = [kind for kind in NAMESPACES if kind not in set(present)]
    if not missing:
        return ok(f"{', '.join(NAMESPACES)} namespaces available (/proc/self/ns)")
    return Result(
        "FAIL",
        f"the kernel lacks {', '.join(missing)} namespaces",
        "use a kernel built with CONFIG_USER_NS, CONFIG_NET_NS, CONFIG_PID_NS (every distribution kernel is)",
    )


@dataclass(frozen=True, slots=True)
class Sysctl:
    """A sysctl that can forbid user namespaces: which value forbids them, for whom, and how to undo it."""

    name: str
    blocking: int
    root_too: bool  # also blocks root (otherwise only unprivileged users)
    fix: str

    @property
    def path(self) -> str:
        return "/proc/sys/" + self.name.replace(".", "/")


# Absent sysctls are fine: each exists only on some kernels (Debian's patch, Ubuntu's AppArmor, ...).
USERNS_SYSCTLS: Final = (
    Sysctl("user.max_user_namespaces", 0, True, "sudo sysctl -w user.max_user_namespaces=15000"),
    Sysctl(
        "kernel.unprivileged_userns_clone",
        0,
        False,
        "sudo sysctl -w kernel.unprivileged_userns_clone=1, or run boundary as root (sudo)",
    ),
    Sysctl(
        "kernel.apparmor_restrict_unprivileged_userns",
        1,
        False,
        "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu >= 23.10), or an AppArmor "
        "profile granting 'userns' to this Python, or run boundary as root (sudo)",
    ),
)


def userns_result(values: Mapping[str, int | None], root: bool) -> Result:
    """Verdict from the sysctls' values (None: absent). Root is only stopped by the ones that stop root too."""
    blocking = [sysctl for sysctl in USERNS_SYSCTLS if values.get(sysctl.name) == sysctl.blocking]
    if not blocking:
        seen = [f"{s.name}={values[s.name]}" for s in USERNS_SYSCTLS if values.get(s.name) is not None]
        return ok("unprivileged user namespaces allowed" + (f" ({', '.join(seen)})" if seen else ""))
    first = blocking[0]
    said = f"{first.name}={first.blocking}"
    if first.root_too or not root:
        who = "anyone" if first.root_too else "this user"
        return Result("FAIL", f"{said}: {who} cannot create the jail's user namespace", first.fix)
    return Result("warn", f"{said}: root can run boundary, other users cannot", first.fix)


def read_sysctl(sysctl: Sysctl) -> int | None:
    try:
        return int(Path(sysctl.path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------------------------------------------------
# Probes in throwaway namespaces (util-linux `unshare`, so the doctor holds no privileged code of its own)

UNSHARE_JAIL: Final = ("unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork")
UNSHARE_NET: Final = ("unshare", "--user", "--map-root-user", "--net")
_PROBE_TIMEOUT: Final = 20.0


def command_result(what: str, returncode: int | None, stderr: str, fix: str) -> Result:
    """Verdict of a probe command: exit 0 is ok; otherwise its last stderr line says why."""
    if returncode == 0:
        return ok(what)
    said = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    how = "timed out" if returncode is None else f"exit {returncode}"
    return Result("FAIL", f"{what}: failed ({how}): {said}", fix)


def _probe(argv: Sequence[str], stdin: str = "") -> tuple[int | None, str]:
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stderr


def check_unshare() -> Result:
    if shutil.which("unshare") is None:
        return Result("warn", "cannot probe: no `unshare` command", "apt-get install util-linux")
    code, stderr = _probe([*UNSHARE_JAIL, "--", "true"])
    return command_result(
        "a user+net+mount+pid namespace can be created",
        code,
        stderr,
        "see the user-namespaces line; in a container, allow unshare (e.g. docker --security-opt "
        "seccomp=unconfined, or run boundary on the host)",
    )


def check_nft() -> Result:
    if not os.access(NFT, os.X_OK):
        return Result("FAIL", f"{NFT} not found", "apt-get install nftables (or your distribution's nftables)")
    if shutil.which("unshare") is None:
        return Result("warn", f"{NFT} present; cannot probe it: no `unshare` command", "apt-get install util-linux")
    # The jail's own ruleset, applied in a fresh network namespace that dies with the probe.
    code, stderr = _probe([*UNSHARE_NET, "--", NFT, "-f", "-"], nft_ruleset())
    return command_result(
        f"{NFT} applies the jail's ruleset in a fresh user+net namespace",
        code,
        stderr,
        "the kernel needs nf_tables with nat, redirect and ct (as root: modprobe -a nf_tables nft_nat "
        "nft_redir nft_ct; a missing module cannot be loaded from inside a user namespace)",
    )


# ----------------------------------------------------------------------------------------------------------
# Trust


def check_run_ca() -> Result:
    ca = generate_ca("doctor", datetime.datetime.now(datetime.UTC))
    if b"BEGIN CERTIFICATE" not in ca.cert_pem:
        return Result("FAIL", "the run CA has no PEM certificate", "reinstall cryptography (scripts/setup)")
    return ok("a run CA can be generated in memory (its key never touches the disk)")


def bundle_result(path: Path | None, certificates: int) -> Result:
    if path is None:
        return Result(
            "warn",
            f"no system CA bundle ({', '.join(SYSTEM_BUNDLES)}): the jail trusts the proxy only through "
            "SSL_CERT_FILE and friends, and upstreams are checked against certifi's CAs",
            "apt-get install ca-certificates",
        )
    if certificates == 0:
        return Result("FAIL", f"{path} holds no certificate", "apt-get install --reinstall ca-certificates")
    return ok(f"{path} ({certificates} certificates; the jail sees it plus the run CA)")


def check_bundle() -> Result:
    path = find_system_bundle()
    count = path.read_bytes().count(b"-----BEGIN CERTIFICATE-----") if path is not None else 0
    return bundle_result(path, count)


def host_addresses_result(netlink: Iterable[IPAddress], guarded: Sequence[IPNetwork]) -> Result:
    """Every address the kernel says the host has (netlink) must be one the SSRF guard refuses as the host's own
    (it reads /proc and ioctls, without pyroute2, to start fast); one it misses could be dialled by name."""
    addresses = list(dict.fromkeys(netlink))
    missed = [str(address) for address in addresses if not any(address in network for network in guarded)]
    if missed:
        return Result(
            "FAIL",
            f"the SSRF guard does not see the host's address(es) {', '.join(missed)}",
            "report this as a bug in boundary (boundary.proxy.ssrf.host_networks), with `ip addr`'s output",
        )
    return ok(f"the SSRF guard sees all {len(addresses)} of the host's addresses that netlink lists")


def netlink_addresses() -> list[IPAddress]:
    """The host's addresses as the kernel's netlink lists them (pyroute2: its import costs ~0.25 s, which is
    why only the doctor uses it)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return [ipaddress.ip_address(message.get_attr("IFA_ADDRESS")) for message in ipr.get_addr()]


def check_host_addresses() -> Result:
    return host_addresses_result(netlink_addresses(), host_networks())


# ----------------------------------------------------------------------------------------------------------
# The self-test: a real `boundary run` against a local HTTPS server

SELFTEST_ALLOWED: Final = "allowed.doctor.test"
SELFTEST_DENIED: Final = "denied.doctor.test"
SELFTEST_PATH: Final = "/ok"
_SELFTEST_TIMEOUT: Final = 90.0

SELFTEST_POLICY: Final = f"""\
version: 1
allow:
  - id: doctor-allowed
    domain: {SELFTEST_ALLOWED}
    ports: [443]
    methods: [GET]
    paths: ["{SELFTEST_PATH}"]
"""

# Runs inside the jail (python -I -c): one request per name, the outcome as one JSON line.
_WORKLOAD = f"""\
import json, urllib.error, urllib.request
out = {{}}
for key, host in (("allowed", "{SELFTEST_ALLOWED}"), ("denied", "{SELFTEST_DENIED}")):
    try:
        with urllib.request.urlopen("https://" + host + "{SELFTEST_PATH}", timeout=30) as r:
            out[key] = [r.status, r.read().decode(errors="replace"), r.headers.get("X-Boundary-Reason")]
    except urllib.error.HTTPError as e:
        out[key] = [e.code, e.read().decode(errors="replace"), e.headers.get("X-Boundary-Reason")]
    except Exception as e:
        out[key] = [None, type(e).__name__ + ": " + str(e), None]
print(json.dumps(out))
"""


def selftest_argv(python: str, policy: str, log: str, ca: str, port: int, root: bool) -> list[str]:
    """`boundary run` of the workload, both names mapped to the local server (never asked of real DNS)."""
    argv = [python, "-m", "boundary", "run", "--policy", policy, "--log", log, "--upstream-ca", ca]
    for host in (SELFTEST_ALLOWED, SELFTEST_DENIED):
        argv += ["--resolve", f"{host}:443:127.0.0.1:{port}"]
    if root:
        argv += ["--user", "root"]  # not $SUDO_USER, who may not reach this interpreter
    # The interpreter itself, not a venv's link to it: a checkout under /tmp is hidden in the jail (-I: the
    # workload needs the standard library only).
    return [*argv, "--", os.path.realpath(python), "-I", "-c", _WORKLOAD]


_SELFTEST_FIX = (
    "fix what the lines above report first; if they are all ok, report this with the output of "
    "`BOUNDARY_DEBUG=1 boundary doctor`"
)


def selftest_result(returncode: int | None, stdout: str, stderr: str, decisions: Sequence[str], nonce: str) -> Result:
    """Verdict of the self-test run from its exit status, the workload's JSON line and the audit decisions."""
    if returncode is None:
        return Result("FAIL", f"the self-test run did not finish within {_SELFTEST_TIMEOUT:.0f} s", _SELFTEST_FIX)
    try:
        report = json.loads(stdout.strip().splitlines()[-1])
        allowed, denied = report["allowed"], report["denied"]
    except (json.JSONDecodeError, IndexError, KeyError, TypeError):
        said = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        return Result("FAIL", f"the self-test run failed (exit {returncode}): {said}", _SELFTEST_FIX)
    if allowed[0] != 200 or allowed[1] != nonce:
        got = f"status {allowed[0]}" if allowed[0] is not None else allowed[1]
        return Result("FAIL", f"an allowed request did not get through the jail: {got}", _SELFTEST_FIX)
    if denied[0] != 403 or denied[2] != "no-matching-rule":
        got = f"status {denied[0]}" if denied[0] is not None else denied[1]
        return Result(
            "FAIL", f"a denied request was not refused with a 403: {got}", "this is a bug in boundary: report it"
        )
    if sorted(decisions) != ["allow", "deny"]:
        return Result("FAIL", f"the audit log holds {list(decisions)}, not one allow and one deny", _SELFTEST_FIX)
    return ok("in a real jail an allowed HTTPS request got through, a denied one got 403, both audited")


@contextmanager
def _local_https(directory: Path, nonce: str) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 (any free port) for both self-test names, with its own throwaway CA:
    yields (port, CA file for `--upstream-ca`)."""
    ca = generate_ca("doctor-upstream", datetime.datetime.now(datetime.UTC))
    cert, key = _leaf(ca, (SELFTEST_ALLOWED, SELFTEST_DENIED))
    ca_file, chain_file = directory / "upstream-ca.pem", directory / "upstream.pem"
    ca_file.write_bytes(ca.cert_pem)
    chain_file.write_bytes(cert + key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file)
    body = nonce.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == SELFTEST_PATH
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the workload's requests are audited by boundary; no noise on the terminal

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="doctor-upstream", daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ca_file
    finally:
        server.shutdown()
        server.server_close()


def _leaf(ca: RunCA, names: Sequence[str]) -> tuple[bytes, bytes]:
    """A server certificate for `names` signed by `ca`, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def check_selftest() -> Result:
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="boundary-doctor-") as tmp:
        directory = Path(tmp)
        policy, log = directory / "policy.yaml", directory / "audit.jsonl"
        policy.write_text(SELFTEST_POLICY)
        with _local_https(directory, nonce) as (port, ca_file):
            argv = selftest_argv(sys.executable, str(policy), str(log), str(ca_file), port, os.geteuid() == 0)
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=_SELFTEST_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return selftest_result(None, "", "", (), nonce)
        lines = log.read_text().splitlines() if log.exists() else []
        decisions = [json.loads(line).get("decision", "") for line in lines]
        return selftest_result(done.returncode, done.stdout, done.stderr, decisions, nonce)


# ----------------------------------------------------------------------------------------------------------
# The table


def _check_python() -> Result:
    return python_result(tuple(sys.version_info[:3]))


def _check_mitmproxy() -> Result:
    return mitmproxy_result(_installed("mitmproxy"))


def _check_namespaces() -> Result:
    return namespaces_result(os.listdir("/proc/self/ns"))


def _check_userns() -> Result:
    return userns_result({sysctl.name: read_sysctl(sysctl) for sysctl in USERNS_SYSCTLS}, os.geteuid() == 0)


CHECKS: Final = (
    Check("python", _check_python),
    Check("mitmproxy", _check_mitmproxy),
    Check("namespaces", _check_namespaces),
    Check("user namespaces", _check_userns),
    Check("unshare", check_unshare),
    Check("nft", check_nft),
    Check("host addresses", check_host_addresses),
    Check("run CA", check_run_ca),
    Check("system CA bundle", check_bundle),
    Check("self-test jail", check_selftest),
)
