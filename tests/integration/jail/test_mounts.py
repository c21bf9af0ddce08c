"""The jail's mount namespace (boundary/jail/mounts.py carrying out plan.mount_plan), for real, as root and
rootless: host unix sockets under /tmp, /run and $XDG_RUNTIME_DIR are out of reach, the working directory and
binds stay usable, boundary's own files survive the covers, /proc/sys and /sys are read-only.

What a test makes under /tmp is open to the workload's user, and each negative probe of a socket has a control
run on the host, as that same user, that reaches it: only the jail makes the difference.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boundary.jail.plan import RESOLV_CONF
from tests.integration.jail.conftest import JailRunner, probe_argv
from tests.support import tools
from tests.support.canaries import UnixCanary
from tests.support.runner import make_user_dir, run_command, shared_user_dir


def _owned_by_workload(path: Path, rootless: bool) -> Path:
    if rootless and tools.is_root():
        os.chown(path, *tools.rootless_identity())
    return path


@pytest.fixture
def tmp_dir(rootless: bool) -> Iterator[Path]:
    """A fresh directory under /tmp (a tree the jail hides), owned by the workload's user."""
    path = Path(f"/tmp/boundary-it-{secrets.token_hex(4)}")
    path.mkdir()
    yield _owned_by_workload(path, rootless)
    shutil.rmtree(path, ignore_errors=True)


def _on_the_host(rootless: bool, *probe: str) -> dict[str, Any]:
    """One probe run on the host, unjailed, as the user the jail's workload runs as: the control."""
    proc = run_command(probe_argv(probe), rootless=rootless, timeout=30)
    [line] = proc.stdout.decode().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


def test_a_unix_socket_in_tmp_is_out_of_reach(jail: JailRunner, rootless: bool, tmp_dir: Path) -> None:
    """A host socket in /tmp that the workload's user reaches on the host (think /tmp/.X11-unix/X0 or an
    ssh-agent): in the jail the path does not exist, and the listener accepts nothing."""
    path = str(tmp_dir / "agent.sock")
    with UnixCanary(path) as canary:
        assert _on_the_host(rootless, "unix", path)["reply"] == "canary"
        before = canary.heard
        run = jail.probe(["unix", path])
        assert [p["result"] for p in run.probes()] == ["ENOENT"], run.describe()
        assert canary.heard == before


@pytest.mark.root
def test_a_unix_socket_in_run_is_out_of_reach_also_through_var_run(jail: JailRunner, rootless: bool) -> None:
    """A host socket in /run (docker.sock, the D-Bus system bus) is not in the jail, neither at its path nor
    through the /var/run link; the listener accepts nothing. (Only root may create one in /run.)"""
    name = f"boundary-it-{secrets.token_hex(4)}.sock"
    with UnixCanary(f"/run/{name}") as canary:
        assert _on_the_host(rootless, "unix", f"/var/run/{name}")["reply"] == "canary"
        before = canary.heard
        run = jail.probe(["unix", f"/run/{name}"], ["unix", f"/var/run/{name}"])
        assert [p["result"] for p in run.probes()] == ["ENOENT", "ENOENT"], run.describe()
        assert canary.heard == before


def test_the_runtime_dir_is_hidden_but_exists_for_the_workload(jail: JailRunner, rootless: bool) -> None:
    """$XDG_RUNTIME_DIR (a stand-in under /var/tmp, outside the usual trees, holding a host socket like the
    session bus) gets its own empty tmpfs: the socket is gone, the directory is there, mode 0700, the workload's."""
    runtime = make_user_dir("boundary-it-xdg-")
    try:
        runtime.chmod(0o700)
        path = str(runtime / "bus")
        with UnixCanary(path) as canary:
            assert _on_the_host(rootless, "unix", path)["reply"] == "canary"
            before = canary.heard
            script = (
                f'echo "entries=$(ls -A {runtime} | wc -l)"\n'
                f'echo "stat=$(stat -c "%a %u" {runtime})"\n'
                f"{shlex.join(probe_argv(['unix', path]))}\n"
            )
            run = jail.shell(script, env={"XDG_RUNTIME_DIR": str(runtime)})
            uid = tools.rootless_identity()[0] if rootless else os.getuid()
            assert run.value("entries") == "0", run.describe()
            assert run.value("stat") == f"700 {uid}"
            assert [p["result"] for p in run.probes()] == ["ENOENT"]
            assert canary.heard == before
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_an_abstract_unix_socket_on_the_host_is_unreachable(jail: JailRunner, rootless: bool) -> None:
    """Abstract unix sockets (no file: X11 and D-Bus often listen on one too) belong to a network namespace: the
    jail's own netns has none of the host's, so the connection is refused and the listener accepts nothing."""
    name = f"boundary-it-{secrets.token_hex(4)}"
    with UnixCanary(f"@{name}") as canary:
        assert _on_the_host(rootless, "unix", canary.path)["reply"] == "canary"
        before = canary.heard
        run = jail.probe(["unix", canary.path])
        assert [p["result"] for p in run.probes()] == ["ECONNREFUSED"], run.describe()
        assert canary.heard == before


def test_boundarys_files_from_a_rundir_in_tmp_survive_the_cover(jail: JailRunner) -> None:
    """resolv.conf and hosts come from a rundir under /tmp (where boundary's tempdir usually is): they are
    bound over /etc although /tmp itself is then hidden."""
    run = jail.run(
        ["sh", "-c", "cat /etc/resolv.conf; ls -A /tmp | grep -c boundary-jail-driver"], ["--rundir-parent", "/tmp"]
    )
    assert run.stdout == RESOLV_CONF + "0\n", run.describe()


def test_a_working_directory_under_tmp_stays_usable(jail: JailRunner, tmp_dir: Path) -> None:
    """`cd /tmp/project && boundary run ...`: the project is bound back read-write at the same place; the rest
    of /tmp stays hidden."""
    project = tmp_dir / "project"
    project.mkdir()
    (project / "README").write_text("project file\n")
    (tmp_dir / "secret").write_text("not the project\n")
    os.chown(project, *os.stat(tmp_dir)[4:6])
    run = jail.shell(
        'echo "pwd=$(pwd)"; echo "readme=$(cat README)"; echo made > out.txt; '
        f'echo "sibling=$(ls -A {tmp_dir} | tr "\\n" " ")"',
        cwd=project,
    )
    assert run.value("pwd") == str(project), run.describe()
    assert run.value("readme") == "project file"
    assert run.value("sibling") == "project "
    assert (project / "out.txt").read_text() == "made\n"


def test_a_bind_shows_a_hidden_path_read_write(jail: JailRunner, tmp_dir: Path) -> None:
    """A bound directory under /tmp is there in the jail: readable, and writes land on the host."""
    (tmp_dir / "in.txt").write_text("from the host\n")
    run = jail.shell(
        f'cat {tmp_dir}/in.txt; echo "from the jail" > {tmp_dir}/out.txt', ["--bind", f"{tmp_dir}={tmp_dir}"]
    )
    assert run.stdout == "from the host\n", run.describe()
    assert (tmp_dir / "out.txt").read_text() == "from the jail\n"


def test_a_read_only_bind_cannot_be_written(jail: JailRunner, tmp_dir: Path) -> None:
    """A read-only bind is readable; writing fails with EROFS and nothing reaches the host."""
    (tmp_dir / "in.txt").write_text("from the host\n")
    run = jail.shell(
        f'cat {tmp_dir}/in.txt; echo x > {tmp_dir}/in.txt; echo "code=$?"; touch {tmp_dir}/new 2>&1',
        ["--ro-bind", f"{tmp_dir}={tmp_dir}"],
    )
    assert run.lines("from the host") == [""], run.describe()
    assert run.value("code") != "0"
    assert "Read-only file system" in run.stderr + run.stdout
    assert (tmp_dir / "in.txt").read_text() == "from the host\n"
    assert not (tmp_dir / "new").exists()


@pytest.mark.parametrize(
    "path",
    [
        "/proc/sys/net/ipv4/ip_forward",  # the jail's own netns: a root-run workload could open forwarding
        "/proc/sys/vm/swappiness",  # kernel-wide: writable by uid 0 through file modes alone
        "/sys/kernel/mm/transparent_hugepage/defrag",  # kernel-wide, in sysfs
    ],
)
def test_sysctls_and_sysfs_are_read_only(jail: JailRunner, rootless: bool, path: str) -> None:
    """Opening a sysctl or sysfs file for writing fails with EROFS for a root-run workload (uid 0, which the
    file modes let write, though it has no capability). Rootless, the file modes refuse first (EACCES). The probe
    only opens and closes: it never writes."""
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    run = jail.probe(["write", path])
    expected = {"EROFS", "EACCES"} if rootless else {"EROFS"}
    [probe] = run.probes()
    assert probe["result"] in expected, run.describe()


def test_the_rest_of_proc_still_works(jail: JailRunner) -> None:
    """Only the sysctl and device subtrees are read-only: a process's own /proc entries still work, sysctls
    still read."""
    run = jail.shell(
        'echo "self=$(grep -c ^Pid: /proc/self/status)"; echo "ipfwd=$(cat /proc/sys/net/ipv4/ip_forward)"; '
        'echo "comm=$(cat /proc/$$/comm)"; echo x > /proc/$$/comm && echo "renamed=$(cat /proc/$$/comm)"'
    )
    assert run.value("self") == "1", run.describe()
    assert run.value("ipfwd") in {"0", "1"}
    assert run.value("renamed") == "x"


def test_a_bind_target_inside_a_hidden_tree_is_made_there(jail: JailRunner) -> None:
    """A file bound to a place inside a hidden tree that the host lacks (as /etc/resolv.conf -> /run/systemd/
    resolve/stub-resolv.conf needs when the link is dangling): its directories and the file are made in the
    fresh /run, where the bind then lands. The host's /run gets nothing."""
    target = f"/run/boundary-it-{secrets.token_hex(4)}/resolve/stub.conf"
    run = jail.shell(f'cat {target}; stat -c "mode=%a" {os.path.dirname(target)}', ["--bind", f"/etc/passwd={target}"])
    assert run.stdout == Path("/etc/passwd").read_text() + "mode=755\n", run.describe()
    assert not os.path.lexists(os.path.dirname(os.path.dirname(target)))


def test_shared_memory_and_sysfs_are_the_jails_own(jail: JailRunner) -> None:
    """/dev/shm (POSIX shared memory and semaphores of host processes) is an empty tmpfs; /sys is a fresh
    sysfs of the jail's network namespace, which shows `lo` only."""
    marker = Path(f"/dev/shm/boundary-it-{secrets.token_hex(4)}")
    marker.write_text("host shm\n")
    try:
        run = jail.shell('echo "shm=$(ls -A /dev/shm | wc -l)"; echo "net=$(ls /sys/class/net | tr "\\n" " ")"')
    finally:
        marker.unlink()
    assert run.value("shm") == "0", run.describe()
    assert run.value("net") == "lo "


def test_binding_a_whole_hidden_tree_shows_the_hosts(jail: JailRunner, tmp_dir: Path) -> None:
    """A read-only bind of /tmp itself leaves the host's /tmp in place (read-only): the user asked to see it."""
    run = jail.shell(f"ls -d {tmp_dir}; touch {tmp_dir}/new", ["--ro-bind", "/tmp=/tmp"])
    assert run.stdout == f"{tmp_dir}\n", run.describe()
    assert "Read-only file system" in run.stderr
    assert not (tmp_dir / "new").exists()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory outside the hidden trees that the workload may write in both modes (mode 0777)."""
    with shared_user_dir("boundary-it-pin-") as path:
        yield path


RENAMES = """\
require_jail
try() {{ name=$1; shift; if err=$("$@" 2>&1); then echo "$name=ok"; else echo "$name=$err"; fi; }}
try logs mv {d}/w/logs {d}/w/logs.old
try parent mv {d}/w {d}/w.old
try rmdir rmdir {d}/w/logs/empty {d}/w/logs
try inside sh -c 'echo made > {d}/w/logs/new && mv {d}/w/logs/new {d}/w/logs/renamed'
try nested unshare -Urm sh -c 'umount -l {d}/w/logs 2>/dev/null; umount -l {d}/w 2>/dev/null; mv {d}/w/logs {d}/w/x'
"""


def test_pinned_directories_cannot_be_renamed_or_removed_but_stay_writable(
    jail: JailRunner, rootless: bool, open_dir: Path
) -> None:
    """Every directory on the way to a pinned path is a mount point in the jail: renaming or removing the log's
    directory, or its parent, fails with EBUSY (rootless also from a nested user namespace, where the pins are
    locked; root's workload cannot make one), while what lies inside stays the workload's to write and rename.
    The control run without pins renames both."""
    logs = open_dir / "w" / "logs"
    (logs / "empty").mkdir(parents=True)
    for directory in (open_dir / "w", logs, logs / "empty"):
        directory.chmod(0o777)
    script = RENAMES.format(d=open_dir)
    run = jail.shell(script, ["--pin", str(logs / "audit.jsonl")])
    for name in ("logs", "parent", "rmdir", *(["nested"] if rootless else [])):
        assert "Device or resource busy" in run.value(name), run.describe()
    assert run.value("nested") != "ok"
    assert run.value("inside") == "ok"
    assert (logs / "renamed").read_text() == "made\n"
    assert logs.is_dir()

    control = jail.shell(script)
    assert (control.value("logs"), control.value("parent")) == ("ok", "ok"), control.describe()
    assert (open_dir / "w.old" / "logs.old").is_dir()
