"""The runner really runs things as root and as the rootless user (real setpriv, real mount namespaces)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support import tools
from tests.support.runner import (
    RUN_MODES,
    make_user_dir,
    prepare,
    run_boundary,
    run_command,
    run_python,
    spawn_python,
)

_IDENTITY = (
    "import json, os, sys; print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(),"
    " 'cwd': os.getcwd(), 'env': dict(os.environ), 'prefix': sys.prefix, 'caps': [l for l in"
    " open('/proc/self/status') if l.startswith('Cap')]}))"
)


def _identity(rootless: bool, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = run_python(["-c", _IDENTITY], rootless=rootless, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_the_venv_python_runs_as_the_requested_user(rootless: bool) -> None:
    """Root runs as uid 0; rootless as nobody (65534 here) when the tests are root, else as the test user."""
    info = _identity(rootless)
    expected = tools.rootless_identity()[0] if rootless else os.getuid()
    assert info["uid"] == expected
    assert info["prefix"] == str(tools.venv_dir())


@tools.requires_root
def test_rootless_runs_as_nobody_without_groups_or_capabilities() -> None:
    info = _identity(rootless=True)
    assert (info["uid"], info["gid"]) == tools.rootless_identity()
    assert info["uid"] != 0
    assert info["groups"] == []
    caps = {line.split(":")[0]: line.split()[1] for line in info["caps"]}
    assert {caps[name] for name in ("CapInh", "CapPrm", "CapEff", "CapAmb")} == {"0000000000000000"}


@tools.requires_userns
def test_rootless_environment_is_clean_with_a_fresh_home_it_owns() -> None:
    info = _identity(rootless=True, env={"EXTRA": "1"})
    env = info["env"]
    assert isinstance(env, dict)
    assert env["EXTRA"] == "1"
    assert env["PATH"] == os.environ["PATH"]
    home = Path(env["HOME"])
    assert env["XDG_STATE_HOME"] == str(home / ".local" / "state")
    assert info["cwd"] == str(home)
    # Python may add LC_CTYPE itself (C locale coercion); nothing else from the test's environment leaks.
    leaked = (
        set(env) - {"PATH", "HOME", "USER", "LOGNAME", "EXTRA", "LC_CTYPE"} - {k for k in env if k.startswith("XDG_")}
    )
    assert leaked == set()
    assert not home.exists(), "the fresh home is removed after the run"


@tools.requires_root
def test_rootful_run_inherits_the_environment_but_not_the_home() -> None:
    info = _identity(rootless=False, env={"EXTRA": "1"})
    env = info["env"]
    assert isinstance(env, dict)
    assert env["EXTRA"] == "1"
    assert env.get("SSL_CERT_FILE") == os.environ.get("SSL_CERT_FILE")
    assert env["HOME"] != os.environ.get("HOME")


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_a_given_home_survives_the_run(rootless: bool, user_tmp_path: Path) -> None:
    home = user_tmp_path / "home"
    proc = run_python(
        ["-c", "import os, pathlib; pathlib.Path(os.environ['XDG_STATE_HOME']).mkdir(parents=True)"],
        rootless=rootless,
        home=home,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert (home / ".local" / "state").is_dir()


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_user_tmp_path_is_readable_and_writable_by_the_run(rootless: bool, user_tmp_path: Path) -> None:
    (user_tmp_path / "policy.yaml").write_text("rules: []\n")
    code = (
        "import pathlib, sys; d = pathlib.Path(sys.argv[1]);"
        " print((d / 'policy.yaml').read_text(), end=''); (d / 'out').write_text('x')"
    )
    proc = run_python(["-c", code, str(user_tmp_path)], rootless=rootless)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"rules: []\n"
    assert (user_tmp_path / "out").read_text() == "x"


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_input_reaches_stdin(rootless: bool) -> None:
    proc = run_python(["-c", "import sys; print(sys.stdin.read().upper())"], rootless=rootless, input=b"hi")
    assert proc.stdout == b"HI\n"


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_boundary_version(rootless: bool) -> None:
    """The real CLI runs both ways (the package and its dependencies are importable by the rootless user)."""
    proc = run_boundary(["--version"], rootless=rootless)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"boundary" in proc.stdout


@tools.requires_root
def test_a_path_nobody_cannot_reach_is_exposed_at_its_own_path(user_tmp_path: Path) -> None:
    """A directory under a mode-700 ancestor (like a CI clone under /root) is readable at the same path,
    and the host's mount table is untouched."""
    base = make_user_dir(parent=user_tmp_path)
    locked = base / "locked"
    target = locked / "a" / "repo"
    target.mkdir(parents=True)
    locked.chmod(0o700)
    os.chown(locked, 0, 0)
    (target / "data").write_text("secret-ish")
    code = "import os, sys; print(open(sys.argv[1]).read(), os.getcwd())"
    denied = run_python(["-c", code, str(target / "data")], rootless=True)
    assert denied.returncode != 0
    assert b"Permission denied" in denied.stderr
    proc = run_python(["-c", code, str(target / "data")], rootless=True, expose=[target], cwd=target)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["secret-ish", str(target)]
    assert str(locked) not in Path("/proc/self/mountinfo").read_text()
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700


@tools.requires_root
def test_user_namespaces_work_inside_an_exposed_run(user_tmp_path: Path) -> None:
    """boundary's rootless jail (user+net+mount ns) still works under the runner's private mount namespace."""
    locked = user_tmp_path / "locked"
    target = locked / "repo"
    target.mkdir(parents=True)
    locked.chmod(0o700)
    os.chown(locked, 0, 0)
    proc = run_command(
        ["unshare", "--user", "--net", "--mount", "--map-root-user", "sh", "-c", "mount -t tmpfs t /tmp && id -u"],
        rootless=True,
        expose=[target],
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"0\n"


@tools.requires_root
def test_a_target_nobody_cannot_enter_itself_is_refused(user_tmp_path: Path) -> None:
    """Covering ancestors cannot help a directory whose own mode shuts nobody out: say so up front."""
    locked = user_tmp_path / "locked"
    target = locked / "private"
    target.mkdir(parents=True)
    for path in (locked, target):
        path.chmod(0o700)
        os.chown(path, 0, 0)
    with pytest.raises(PermissionError, match="cannot enter"):
        prepare(["true"], rootless=True, expose=[target])


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_timeout_kills_the_whole_process_group(rootless: bool, user_tmp_path: Path) -> None:
    """A run that outlives its timeout is killed with everything it started, then TimeoutExpired is raised."""
    pidfile = user_tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; p = subprocess.Popen(['sleep', '300']);"
        f" open({str(pidfile)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(300)"
    )
    with pytest.raises(subprocess.TimeoutExpired) as excinfo:
        run_python(["-c", code], rootless=rootless, timeout=3)
    assert excinfo.value.stdout == b"started\n"
    child = int(pidfile.read_text())
    # The grandchild got SIGKILL too; it is a zombie at most until its reaper notices.
    try:
        state = Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    assert state in {"gone", "Z"}


@pytest.mark.parametrize("rootless", RUN_MODES)
def test_spawned_process_can_be_signalled(rootless: bool) -> None:
    """spawn_* returns at once; proc.pid is the command itself (every wrapper execs), so signals reach it."""
    code = (
        "import os, signal, sys, time\n"
        # os.write, not print: the signal may land while print('ready') is still inside the stdout buffer.
        "signal.signal(signal.SIGTERM, lambda *a: (os.write(1, b'got TERM\\n'), os._exit(3)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn_python(["-c", code], rootless=rootless)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-c", code.encode()]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == b"got TERM\n", err.decode()
    assert proc.returncode == 3
