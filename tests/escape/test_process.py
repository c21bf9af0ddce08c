"""Escape probes against boundary's processes: kill what can be seen, kill boundary, share a host with another run."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import Jailer
from tests.escape.conftest import Witnesses, run_probe
from tests.support.runner import boundary_pid, make_user_dir, pids_matching, spawn_boundary


def _http(host: str, path: str) -> str:
    return f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n"


def test_killing_every_visible_process_leaves_the_proxy_in_charge(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: kill the proxy (SIGKILL and SIGTERM to every pid the workload can see), then connect out, hoping
    for an unfiltered path. The proxy lives outside the jail's pid namespace: nothing it can see is the proxy,
    and afterwards a denied request is still denied (its name leads to the canary) and an allowed one still
    works."""
    canary = f"--resolve=denied.test:80:127.0.0.1:{witnesses.tcp['127.0.0.1'].port}"
    probe = run_probe(
        jail,
        *("killall", "+", "tcp", "denied.test", "80", _http("denied.test", "/hello"), "+"),
        *("tcp", "allowed.test", "80", _http("allowed.test", "/hello")),
        extra=[canary],
    )
    killall, denied, allowed = probe.results
    assert set(killall["signalled"]) == {"1"}, killall  # init only: nothing of the host is visible
    assert denied["data"].startswith("HTTP/1.1 403"), denied
    assert allowed["data"].startswith("HTTP/1.1 200"), allowed
    assert [(line["decision"], line["host"]) for line in probe.run.audit] == [
        ("deny", "denied.test"),
        ("allow", "allowed.test"),
    ]
    witnesses.assert_nothing_escaped()


def _namespace_members(links: set[str]) -> list[int]:
    """Host pids of processes in any of the namespaces named by ``links`` (``net:[4026...]`` as readlink says)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for kind in ("net", "mnt", "pid"):
            try:
                if os.readlink(entry / "ns" / kind) in links:
                    members.append(int(entry.name))
                    break
            except OSError:
                continue
    return members


def test_kill_9_of_boundary_leaves_nothing_behind(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: get boundary killed with SIGKILL (no clean-up code runs), hoping the workload or its background
    children outlive it, unconfined, or that the jail's namespaces, mounts or files stay behind. The kernel
    kills the whole pid namespace; no process is left in the jail's net, mount or pid namespace (mounts
    and netns die with their last process), and the run's directory is gone."""
    marker = f"sleep 3{os.getpid() % 1000:03d}"
    ready, namespaces = jail.workdir / "ready", jail.workdir / "namespaces"
    record = "; ".join(f"readlink /proc/self/ns/{kind} >> {namespaces}" for kind in ("net", "mnt", "pid"))
    command = ["sh", "-c", f"{record}; {marker} & {marker} & touch {ready}; wait"]
    proc = spawn_boundary(jail.args(command), rootless=jail.rootless, expose=[jail.workdir])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pids_matching(marker)) >= 2
        links = set(namespaces.read_text().split())
        assert len(links) == 3 and _namespace_members(links), links
        os.kill(boundary_pid(f"--log {jail.audit_path}"), signal.SIGKILL)
        _stdout, stderr = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while (pids_matching(marker) or _namespace_members(links)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pids_matching(marker) == set()
        assert pids_matching(f"--log {jail.audit_path}") == set()
        assert _namespace_members(links) == []
        run_id = re.search(rb"boundary: run ([0-9a-f]+):", stderr)
        assert run_id is not None, stderr
        leftovers = glob.glob(os.path.join(tempfile.gettempdir(), f"boundary-{run_id.group(1).decode()}-*"))
        for leftover in leftovers:  # don't litter the host, then fail
            shutil.rmtree(leftover, ignore_errors=True)
        assert leftovers == [], "the run's directory outlived boundary"
    finally:
        proc.kill()
        proc.wait()
    witnesses.assert_nothing_escaped()


CONCURRENT = """\
version: 1
allow:
  - domain: {name}
"""


def test_concurrent_runs_do_not_see_each_others_traffic_or_decisions(jail: Jailer, witnesses: Witnesses) -> None:
    """Attack: a second run on the same host with a wider policy. Run A allows only allowed.test, run B only
    open.test; while both run, each asks for both names. Each run enforces only its own policy (A's allowed
    name is denied in B and the reverse), and each audit log holds only its own run's lines."""
    other = Jailer(jail.rootless, make_user_dir("boundary-escape-b-"), jail.ca_file, jail.https, jail.http)
    other.workdir.chmod(0o777)
    sync = jail.workdir  # both runs see it
    runs = {"a": (jail, "allowed.test"), "b": (other, "open.test")}
    procs = {}
    try:
        for key, (jailer, name) in runs.items():
            peer = "b" if key == "a" else "a"
            fetch = "; ".join(
                f"curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}\\n' http://{host}/hello"
                for host in ("allowed.test", "open.test")
            )
            script = (
                f"{fetch}; touch {sync}/{key}-done; "
                f"i=0; while [ ! -e {sync}/{peer}-done ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; "
                f"{fetch}"
            )
            procs[key] = spawn_boundary(
                jailer.args(["sh", "-c", script], CONCURRENT.format(name=name)),
                rootless=jailer.rootless,
                expose=[jailer.workdir, sync],
            )
        outputs = {key: proc.communicate(timeout=90) for key, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        audits = {key: jailer.audit() for key, (jailer, _name) in runs.items()}
        subprocess.run(["rm", "-rf", str(other.workdir)], check=False)
    assert (sync / "a-done").exists() and (sync / "b-done").exists()
    assert outputs["a"][0].decode().split() == ["200", "403", "200", "403"], outputs["a"]
    assert outputs["b"][0].decode().split() == ["403", "200", "403", "200"], outputs["b"]
    for key, own in (("a", "allowed.test"), ("b", "open.test")):
        lines = audits[key]
        assert len({line["run"] for line in lines}) == 1, lines
        assert [(line["host"], line["decision"]) for line in lines] == [
            (host, "allow" if host == own else "deny") for host in ("allowed.test", "open.test") * 2
        ]
    assert audits["a"][0]["run"] != audits["b"][0]["run"]
    witnesses.assert_nothing_escaped()
