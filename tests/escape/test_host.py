"""Escape probes that leave the network alone: host sockets in the filesystem and the abstract namespace,
other processes (ptrace, setns), the jail's own firewall, and the run's CA key."""

from __future__ import annotations

import os
import shlex

from tests.e2e.conftest import Jailer
from tests.escape.conftest import (
    OUTSIDE,
    Witnesses,
    parse_probe_output,
    probe_argv,
    run_probe,
    run_probe_with_host_pids,
)
from tests.support.runner import run_boundary


def test_unix_sockets_on_the_host_filesystem_are_out_of_reach(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: a netns does not isolate filesystem sockets (docker.sock, ssh-agent, D-Bus, X11): connect to a
    world-writable listener in the host's /tmp and in the user's $XDG_RUNTIME_DIR. The jail covers both with
    its own tmpfs, so the paths do not exist there."""
    tmp, xdg = witnesses.unix["tmp"].path, witnesses.unix["xdg"].path
    probe = run_probe(jail, "unix", tmp, "+", "unix", xdg, env={"XDG_RUNTIME_DIR": str(witnesses.xdg_runtime_dir)})
    assert [r["result"] for r in probe.results] == ["ENOENT", "ENOENT"], probe.results or probe.run.stderr
    witnesses.assert_nothing_escaped()


def test_abstract_unix_socket_on_the_host_is_out_of_reach(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: abstract unix sockets have no file to hide; they belong to the network namespace, so the host's
    (X11's @/tmp/.X11-unix, containerd's, ...) are not there for a workload in the jail's netns."""
    probe = run_probe(jail, "unix", witnesses.unix["abstract"].path)
    assert [r["result"] for r in probe.results] == ["ECONNREFUSED"], probe.results or probe.run.stderr
    witnesses.assert_nothing_escaped()


def test_ptrace_of_processes_outside_the_jail_fails(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: PTRACE_ATTACH to a process outside the jail and run code there: boundary itself (which holds the
    CA key and sits in the host netns), its helper, pytest; then to every pid visible, including the jail's
    init, which keeps capabilities in the jail's namespaces. The pid namespace hides the outside, the
    workload has no CAP_SYS_PTRACE and init is not dumpable."""
    probe = run_probe_with_host_pids(jail, "ptrace")
    [result] = probe.results
    assert result["result"] == "failed", result
    assert "1" in result["attach"], result  # init was visible and tried
    assert all(outcome in {"ESRCH", "EPERM"} for outcome in result["attach"].values()), result
    witnesses.assert_nothing_escaped()


def test_setns_into_host_namespaces_fails(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: join another process's namespaces (setns on /proc/PID/ns/*, nsenter): the jail's init, and host
    pids of boundary and pytest, both directly and from a nested user namespace where the workload holds
    every capability over what it creates. Host pids are not even visible; init's need capabilities the
    workload does not have in their owning namespaces."""
    probe = run_probe_with_host_pids(jail, "setns")
    [result] = probe.results
    assert result["result"] == "failed", result
    assert result["nsenter"] != 0, result
    # Init's namespaces were tried (rootless, init is not dumpable, so even listing them is refused).
    assert any(key == "1" or key.startswith("1/") for key in result["direct"]), result
    witnesses.assert_nothing_escaped()


def test_ip_and_nft_changes_inside_the_jail_fail(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: open the jail from inside: `nft flush ruleset`, add a route around lo, add an interface, take lo
    down. The workload has no CAP_NET_ADMIN: every command fails, and afterwards UDP is still dropped and
    TCP still meets the proxy. (The probe refuses to run these anywhere but in a netns other than the host's.)"""
    host_netns = str(os.stat("/proc/self/ns/net").st_ino)
    probe = run_probe(
        jail,
        *("netadmin", host_netns, "+", "udp", OUTSIDE, "443", "+"),
        *("tcp", OUTSIDE, "80", f"GET / HTTP/1.1\\r\\nHost: {OUTSIDE}\\r\\nConnection: close\\r\\n"),
    )
    netadmin, udp, tcp = probe.results
    assert netadmin["result"] == "failed", netadmin
    assert netadmin["commands"] and 0 not in netadmin["commands"].values(), netadmin
    assert udp["result"] != "reply", udp
    assert tcp["data"].startswith("HTTP/1.1 403"), tcp
    witnesses.assert_nothing_escaped()


def test_the_ca_private_key_is_nowhere_the_workload_can_read(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: steal the run's CA key to mint certificates the jail trusts. It exists only in boundary's
    memory: no readable file holds it (searched by matching public key), no mitmproxy confdir was made, and
    boundary's process, its only holder, is not even visible in the jail's pid namespace."""
    hunt = shlex.join(probe_argv("keyhunt"))
    script = (
        f'{hunt} "$SSL_CERT_FILE" /tmp /var/tmp "$HOME" /run /etc/ssl; '
        "ls /proc | grep -cE '^[0-9]+$'; "
        'cat "$HOME/.mitmproxy/mitmproxy-ca.pem"'
    )
    probe = run_probe(jail, command=["sh", "-c", script])
    [hunt_result] = probe.results
    assert "boundary run" in hunt_result["subject"], hunt_result  # the hunt looked for the right key
    assert (hunt_result["result"], hunt_result["found"]) == ("failed", []), hunt_result
    processes = probe.run.stdout.splitlines()[1]
    assert int(processes) <= 4  # init, sh, ls, grep: nothing of the host
    assert "No such file" in probe.run.stderr
    witnesses.assert_nothing_escaped()


def test_the_audit_log_cannot_be_rewritten_from_inside(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: cover one's tracks. The audit log (here in the workload's own, writable directory) and the
    proxy's diagnostics log are the invoking user's files, so a rootless workload could otherwise append
    forged lines, truncate, delete or replace them. They are read-only mounts in the jail: every attempt
    fails, and afterwards the log holds only boundary's own lines for this run."""
    logs = [str(jail.audit_path), str(jail.audit_path.with_suffix(".proxy.log"))]
    probe = run_probe(jail, "tamper", *logs)
    [result] = probe.results
    assert result["result"] == "failed", result
    for path in logs:
        assert all(outcome in {"EROFS", "EBUSY", "EACCES", "EPERM"} for outcome in result["files"][path].values())
    lines = jail.audit()
    assert lines == probe.run.audit
    assert all(line["run"] == lines[0]["run"] for line in lines)
    witnesses.assert_nothing_escaped()


def test_earlier_runs_logs_in_the_default_place_cannot_be_rewritten(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: without `--log`, every run's log sits in $XDG_STATE_HOME/boundary/runs: rewrite an earlier
    run's lines, or plant a forged log beside them. The whole directory is a read-only mount in the jail."""
    state = jail.workdir / "state"
    env = {"XDG_STATE_HOME": str(state)}
    first = run_boundary(default_log_args(jail, ["true"]), rootless=jail.rootless, env=env, expose=[jail.workdir])
    assert first.returncode == 0, first.stderr
    runs = state / "boundary" / "runs"
    [earlier] = runs.glob("*.jsonl")
    before = earlier.read_bytes()
    second = run_boundary(
        default_log_args(jail, probe_argv("tamper", str(runs))), rootless=jail.rootless, env=env, expose=[jail.workdir]
    )
    [result] = parse_probe_output(second.stdout.decode())
    assert result["result"] == "failed", result
    assert result["files"][str(runs)] == {"create": "EROFS"}, result
    assert str(earlier) in result["files"], result
    assert earlier.read_bytes() == before
    assert not (runs / "forged.jsonl").exists()
    witnesses.assert_nothing_escaped()


def default_log_args(jail: Jailer, command: list[str]) -> list[str]:
    """`jail.args` without `--log`: the run logs to its default place."""
    args = jail.args(command)
    at = args.index("--log")
    return args[:at] + args[at + 2 :]
