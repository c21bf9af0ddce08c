"""The jail's filesystem through a real `boundary run`, as root and rootless: host unix sockets in /tmp, /run
and $XDG_RUNTIME_DIR are out of reach (abstract ones too), the working directory under /tmp and `--bind` paths
stay usable, sysctls are read-only — while the run's own files (resolv.conf, CA bundle, from a rundir in /tmp)
keep the jail working: each run also makes an allowed HTTPS request.

Each socket probe has a control: the same probe run on the host, as the same user, reaches the listener.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Jailer
from tests.integration.jail.conftest import probe_argv
from tests.support import tools
from tests.support.canaries import UnixCanary
from tests.support.runner import make_user_dir, run_boundary, run_command

ALLOWED = "curl -sS --max-time 20 https://allowed.test/hello"
HELLO = "hello from allowed.test"


@pytest.fixture
def tmp_dir(rootless: bool) -> Iterator[Path]:
    """A fresh directory under /tmp (a tree the jail hides), owned by the workload's user."""
    path = Path(f"/tmp/boundary-e2e-{secrets.token_hex(4)}")
    path.mkdir()
    if rootless and tools.is_root():
        os.chown(path, *tools.rootless_identity())
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run(
    jail: Jailer,
    script: str,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, str, str]:
    """`boundary run ... -- sh -c SCRIPT` with the e2e policy; its rundir goes to /tmp (TMPDIR), the tree the
    jail covers. Returns (exit code, stdout, stderr)."""
    result = run_boundary(
        jail.args(["sh", "-c", script], extra=extra),
        rootless=jail.rootless,
        env={"TMPDIR": "/tmp", **(env or {})},
        cwd=cwd,
        expose=[jail.workdir],
        timeout=90,
    )
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def _probes(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"probe"')]


def _on_the_host(rootless: bool, *probe: str) -> dict[str, Any]:
    """The same probe, unjailed, as the workload's user: the control."""
    proc = run_command(probe_argv(probe), rootless=rootless, timeout=30)
    [line] = proc.stdout.decode().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


def test_host_sockets_in_tmp_and_the_runtime_dir_are_out_of_reach(jail: Jailer, tmp_dir: Path) -> None:
    """Sockets in /tmp (X11, ssh-agent) and in $XDG_RUNTIME_DIR (the session bus; here a stand-in under
    /var/tmp) do not exist in the jail; neither listener accepts anything; the jail still reaches an allowed
    host through its rundir-in-/tmp resolv.conf and CA bundle."""
    runtime = make_user_dir("boundary-e2e-xdg-")
    try:
        runtime.chmod(0o700)
        with UnixCanary(str(tmp_dir / "X0")) as x11, UnixCanary(str(runtime / "bus")) as bus:
            for canary in (x11, bus):
                assert _on_the_host(jail.rootless, "unix", str(canary.path))["reply"] == "canary"
            before = (x11.heard, bus.heard)
            probes = probe_argv(["unix", str(x11.path)], ["unix", str(bus.path)])
            code, out, err = _run(jail, f"{ALLOWED}; echo; {shlex.join(probes)}", env={"XDG_RUNTIME_DIR": str(runtime)})
            assert code == 0, err
            assert out.startswith(HELLO + "\n")
            assert [p["result"] for p in _probes(out)] == ["ENOENT", "ENOENT"]
            assert (x11.heard, bus.heard) == before
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.root
def test_a_host_socket_in_run_is_out_of_reach(jail: Jailer) -> None:
    """A socket in /run (docker.sock) is in the jail neither at /run nor through /var/run."""
    name = f"boundary-e2e-{secrets.token_hex(4)}.sock"
    with UnixCanary(f"/run/{name}") as canary:
        assert _on_the_host(jail.rootless, "unix", f"/run/{name}")["reply"] == "canary"
        before = canary.heard
        code, out, err = _run(jail, shlex.join(probe_argv(["unix", f"/run/{name}"], ["unix", f"/var/run/{name}"])))
        assert code == 0, err
        assert [p["result"] for p in _probes(out)] == ["ENOENT", "ENOENT"]
        assert canary.heard == before


def test_an_abstract_socket_on_the_host_is_unreachable(jail: Jailer) -> None:
    """An abstract unix socket belongs to the host's network namespace: refused in the jail, nothing accepted."""
    name = f"boundary-e2e-{secrets.token_hex(4)}"
    with UnixCanary(f"@{name}") as canary:
        assert _on_the_host(jail.rootless, "unix", canary.path)["reply"] == "canary"
        before = canary.heard
        code, out, err = _run(jail, shlex.join(probe_argv(["unix", canary.path])))
        assert code == 0, err
        assert [p["result"] for p in _probes(out)] == ["ECONNREFUSED"]
        assert canary.heard == before


def test_tmpdir_is_an_empty_private_directory_in_the_jail(jail: Jailer, tmp_dir: Path) -> None:
    """$TMPDIR (here /tmp/<x>, where an ssh-agent socket waits) exists in the jail, empty and writable by the
    workload (`mktemp` works), and the host's socket in it is out of reach."""
    with UnixCanary(str(tmp_dir / "agent.sock")) as agent:
        assert _on_the_host(jail.rootless, "unix", str(agent.path))["reply"] == "canary"
        before = agent.heard
        probe = shlex.join(probe_argv(["unix", str(agent.path)]))
        script = f'ls -A "$TMPDIR"; f=$(mktemp) && echo made:"$f"; {probe}; {ALLOWED}'
        code, out, err = _run(jail, script, env={"TMPDIR": str(tmp_dir)})
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith(f"made:{tmp_dir}/tmp."), out  # nothing listed: the directory is empty
        assert [p["result"] for p in _probes(out)] == ["ENOENT"]
        assert lines[-1] == HELLO
        assert agent.heard == before
        assert [p.name for p in tmp_dir.iterdir()] == ["agent.sock"]  # the jail's file stayed in the jail


def test_a_working_directory_under_tmp_stays_usable(jail: Jailer, tmp_dir: Path) -> None:
    """`cd /tmp/project && boundary run -- ...`: the project is there, writable; the rest of /tmp is hidden."""
    project = tmp_dir / "project"
    project.mkdir()
    (project / "notes.txt").write_text("project file\n")
    (tmp_dir / "elsewhere.txt").write_text("not the project\n")
    os.chown(project, *os.stat(tmp_dir)[4:6])
    script = f"pwd; cat notes.txt; echo made > out.txt; ls -A {tmp_dir}; {ALLOWED}"
    code, out, err = _run(jail, script, cwd=project)
    assert code == 0, err
    assert out == f"{project}\nproject file\nproject\n{HELLO}\n"
    assert (project / "out.txt").read_text() == "made\n"


def test_a_bind_under_tmp_is_readable_and_writable(jail: Jailer, tmp_dir: Path) -> None:
    """`--bind DIR` shows a hidden directory again: the workload reads the host's file and its write lands on
    the host."""
    (tmp_dir / "in.txt").write_text("from the host\n")
    code, out, err = _run(
        jail, f"cat {tmp_dir}/in.txt; echo from-the-jail > {tmp_dir}/out.txt", extra=["--bind", str(tmp_dir)]
    )
    assert code == 0, err
    assert out == "from the host\n"
    assert (tmp_dir / "out.txt").read_text() == "from-the-jail\n"


def test_a_read_only_bind_is_not_writable(jail: Jailer, tmp_dir: Path) -> None:
    """`--bind DIR:ro`: readable; writing fails (read-only file system) and the host file is unchanged."""
    (tmp_dir / "in.txt").write_text("from the host\n")
    script = f'cat {tmp_dir}/in.txt; echo x >> {tmp_dir}/in.txt || echo "refused"; touch {tmp_dir}/new || true'
    code, out, err = _run(jail, script, extra=["--bind", f"{tmp_dir}:ro"])
    assert code == 0, err
    assert out == "from the host\nrefused\n"
    assert "Read-only file system" in err
    assert (tmp_dir / "in.txt").read_text() == "from the host\n"
    assert not (tmp_dir / "new").exists()


def test_sysctls_are_read_only(jail: Jailer) -> None:
    """Opening /proc/sys/net/ipv4/ip_forward or /proc/sys/vm/swappiness for writing fails: EROFS for a root-run
    workload (uid 0, whom the file modes let write even without capabilities), EACCES or EROFS rootless. The
    probe opens and closes, never writes."""
    code, out, err = _run(
        jail, shlex.join(probe_argv(["write", "/proc/sys/net/ipv4/ip_forward"], ["write", "/proc/sys/vm/swappiness"]))
    )
    assert code == 0, err
    expected = {"EROFS", "EACCES"} if jail.rootless else {"EROFS"}
    results = [p["result"] for p in _probes(out)]
    assert len(results) == 2 and set(results) <= expected, out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("relative/dir", "boundary: --bind 'relative/dir': the path must be absolute\n"),
        ("/nonexistent/boundary-dir", "boundary: --bind '/nonexistent/boundary-dir': no such file or directory\n"),
    ],
)
def test_a_bad_bind_stops_before_any_jail(jail: Jailer, value: str, message: str) -> None:
    """A relative or missing `--bind` path: one line quoting it, exit 125, nothing run."""
    code, out, err = _run(jail, "echo ran", extra=["--bind", value])
    assert (code, out, err) == (125, "", message)
