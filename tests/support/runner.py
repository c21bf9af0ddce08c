"""Run boundary (or any command) the way a user would: as root, or as an unprivileged user.

Theory of operation
-------------------
``rootless=False`` runs the command as the test process's own user (root in CI) with the test's environment.
``rootless=True`` runs it as an unprivileged user: when the tests are root, ``nobody``/``nogroup`` through
``setpriv`` with no supplementary groups and no capabilities; when they are not, simply as themselves.

Every run gets a fresh home (``HOME`` and the ``XDG_*_HOME`` directories under it), owned by the user that
runs, so boundary's state (CA, audit log) never lands in the real home. A rootless run also gets a clean
environment: ``PATH``, ``HOME``, ``XDG_*_HOME``, ``USER``/``LOGNAME`` and whatever ``env`` adds, nothing else;
a rootful run inherits the test's environment (plus ``env``).

Temporary directories live under ``/var/tmp`` (see ``tmp_base``), not ``/tmp``: boundary's jail mounts
a tmpfs over ``/tmp`` and ``/run``, so a home, a script or a policy there would vanish for the jailed command.

The checkout may sit where ``nobody`` cannot go (a CI clone under ``/root``, mode 700). Host permissions are
not ours to change, so a rootless run then starts in a private mount namespace: each needed path (the repo,
the venv, ``expose=...``) is bind-mounted to a staging directory, a tmpfs (mode 755) is mounted over the
topmost ancestor that blocks ``nobody``, the path is recreated inside it and the staged bind mounted back.
The command sees every path exactly where the tests see it (so the editable install's ``.pth``, absolute
paths in policies and ``sys.executable`` all keep working); the rest of the blocked ancestor is hidden from
it, which it could not read anyway. Nothing is mounted in the host's namespace. The venv's interpreter itself
must be runnable by ``nobody``: scripts/setup ensures that (it copies pyenv's Python out of /root).

Processes start in a new session, so ``os.killpg(proc.pid, sig)`` reaches everything they started that did
not leave the group; the unshare/sh/setpriv wrappers all ``exec``, so ``proc.pid`` is the command itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import termios
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Required, TypedDict, Unpack

import pytest

from boundary.jail.plan import HIDDEN_TREES
from tests.support.tools import (
    ROOTLESS_USER,
    is_root,
    repo_root,
    requires_root,
    requires_userns,
    rootless_identity,
    setpriv_argv,
    venv_dir,
    venv_python,
)

#: ``@pytest.mark.parametrize("rootless", RUN_MODES)``: once as root (needs root), once rootless (needs
#: unprivileged user namespaces), with ids ``root`` and ``rootless``.
RUN_MODES = (
    pytest.param(False, id="root", marks=requires_root),
    pytest.param(True, id="rootless", marks=requires_userns),
)

_XDG_DIRS = {
    "XDG_STATE_HOME": ".local/state",
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_CACHE_HOME": ".cache",
}
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

StdIO = int | IO[Any] | None


# --- pure parts --------------------------------------------------------------------------------------------


def may_traverse(mode: int, owner: int, group: int, uid: int, gids: Collection[int]) -> bool:
    """Whether ``uid`` (with groups ``gids``) may search a directory with this mode and ownership.

    POSIX picks exactly one class: owner if the uid matches, else group if a gid matches, else other. (ACLs
    are not considered.) Root may always search.
    """
    if uid == 0:
        return True
    if uid == owner:
        return bool(mode & stat.S_IXUSR)
    if group in gids:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def blocking_ancestor(
    path: Path, uid: int, gids: Collection[int], stat_fn: Callable[[Path], os.stat_result] = os.stat
) -> Path | None:
    """The topmost proper ancestor of absolute ``path`` that ``uid`` cannot search, or ``None``."""
    for ancestor in reversed(path.parents):  # "/" first
        st = stat_fn(ancestor)
        if not may_traverse(st.st_mode, st.st_uid, st.st_gid, uid, gids):
            return ancestor
    return None


def outermost(paths: Iterable[Path]) -> list[Path]:
    """``paths`` without duplicates and without any path inside another one of them, order kept."""
    unique = list(dict.fromkeys(paths))
    return [p for p in unique if not any(other != p and p.is_relative_to(other) for other in unique)]


def expose_script(targets: Sequence[Path], covers: Sequence[Path], stage: Path, cwd: Path) -> str:
    """sh script (run as root in a private mount namespace) that makes each target reachable at its own path
    by covering each blocking ancestor in ``covers`` with a tmpfs, enters ``cwd`` again (it may have been
    covered), then ``exec "$@"``. See the module doc."""
    q = shlex.quote
    lines = ["set -eu", "umask 022"]
    for index, target in enumerate(targets):
        lines += [
            f"mkdir -p {q(str(stage / str(index)))}",
            f"mount --bind {q(str(target))} {q(str(stage / str(index)))}",
        ]
    lines += [f"mount -t tmpfs -o mode=0755 boundary-expose {q(str(cover))}" for cover in covers]
    for index, target in enumerate(targets):
        staged = q(str(stage / str(index)))
        lines += [f"mkdir -p {q(str(target))}", f"mount --bind {staged} {q(str(target))}", f"umount -l {staged}"]
    # cd makes sh export PWD and OLDPWD: drop them, so an exposed run's environment is the same as any other's.
    lines += [f"cd {q(str(cwd))}", "unset OLDPWD PWD", 'exec "$@"']
    return "\n".join(lines) + "\n"


def run_env(home: Path, *, rootless: bool, base: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of a run: see the module doc. ``extra`` wins over everything."""
    if rootless:
        user = ROOTLESS_USER if is_root() else base.get("USER", "")
        env = {"PATH": base.get("PATH", _DEFAULT_PATH)}
        if user:
            env |= {"USER": user, "LOGNAME": user}
    else:
        # Not the CI job's own step summary: a test's run must not append to it (tests that want one set it).
        env = {name: value for name, value in base.items() if name != "GITHUB_STEP_SUMMARY"}
    env["HOME"] = str(home)
    env |= {name: str(home / sub) for name, sub in _XDG_DIRS.items()}
    return env | dict(extra or {})


def topmost_process(pids: Collection[int], parent_of: Callable[[int], int]) -> int | None:
    """Of ``pids`` (a process and the forks that share its command line), the one whose parent is not among
    them; ``None`` if there is not exactly one."""
    roots = [pid for pid in pids if parent_of(pid) not in pids]
    return roots[0] if len(roots) == 1 else None


# --- temporary directories ---------------------------------------------------------------------------------


def tmp_base() -> Path:
    """Where test-owned temporary directories go: ``$BOUNDARY_TEST_TMPDIR``, else ``/var/tmp``.

    Not ``/tmp`` (nor ``/run``): boundary's jail covers those with a tmpfs, so the jailed command would not
    see what a test put there.
    """
    override = os.environ.get("BOUNDARY_TEST_TMPDIR")
    if override:
        return Path(override)
    var_tmp = Path("/var/tmp")
    if var_tmp.is_dir() and os.access(var_tmp, os.W_OK | os.X_OK):
        return var_tmp
    return Path(tempfile.gettempdir())


def make_user_dir(prefix: str = "boundary-test-", parent: Path | None = None) -> Path:
    """A fresh directory (mode 755) that the rootless user owns, so rootless boundary can read files a test
    writes there (root-written files are 644) and create its own. The caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent or tmp_base()))
    path.chmod(0o755)
    if is_root():
        uid, gid = rootless_identity()
        os.chown(path, uid, gid)
    return path


@contextlib.contextmanager
def shared_user_dir(prefix: str) -> Iterator[Path]:
    """A `make_user_dir` the workload may write in both modes (mode 0777: as root it runs without
    CAP_DAC_OVERRIDE), removed with what it holds afterwards."""
    path = make_user_dir(prefix)
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- invocations -------------------------------------------------------------------------------------------


@dataclass
class Invocation:
    """A fully prepared run: what to exec, with which environment, where, and what to delete afterwards."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    scratch: Path | None = None  # removed after the run (the fresh home and the staging area live here)
    exposed: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def prepare(
    argv: Sequence[str | os.PathLike[str]],
    *,
    rootless: bool,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    home: Path | None = None,
    expose: Iterable[Path] = (),
) -> Invocation:
    """Build the run of ``argv`` (see the module doc). ``home`` defaults to a fresh directory that is removed
    after the run; pass one to read boundary's state afterwards. ``cwd`` defaults to the home."""
    scratch = Path(tempfile.mkdtemp(prefix="boundary-run-", dir=tmp_base()))
    try:
        scratch.chmod(0o755)
        as_other_user = rootless and is_root()
        uid, gid = rootless_identity() if as_other_user else (os.getuid(), os.getgid())
        if home is None:
            home = scratch / "home"
        if not home.exists():
            home.mkdir(mode=0o700)
            os.chown(home, uid, gid)
        command = [os.fspath(arg) for arg in argv]
        invocation = Invocation(
            argv=command,
            env=run_env(home, rootless=rootless, base=os.environ, extra=env),
            cwd=Path(cwd) if cwd is not None else home,
            scratch=scratch,
        )
        if not as_other_user:
            return invocation
        prefix = setpriv_argv(uid, gid)
        wanted = outermost(p.resolve() for p in [repo_root(), venv_dir(), *expose])
        blocked = {p: blocking_ancestor(p, uid, {gid}) for p in wanted}
        targets = [p for p, cover in blocked.items() if cover is not None]
        for target in targets:
            st = target.stat()
            if not may_traverse(st.st_mode, st.st_uid, st.st_gid, uid, {gid}):
                raise PermissionError(f"uid {uid} cannot enter {target} itself (mode {st.st_mode & 0o7777:o})")
        if targets:
            covers = outermost(cover for cover in blocked.values() if cover is not None)
            stage = scratch / "stage"
            stage.mkdir()
            script = expose_script(targets, covers, stage, invocation.cwd.absolute())
            prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "expose", *prefix]
            invocation.exposed = targets
        invocation.argv = [*prefix, *command]
        return invocation
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class _Where(TypedDict, total=False):
    """Where and as whom a command runs (see ``prepare``); ``rootless`` is always given."""

    rootless: Required[bool]
    env: Mapping[str, str] | None
    cwd: str | os.PathLike[str] | None
    home: Path | None
    expose: Iterable[Path]


class RunArgs(_Where, total=False):
    timeout: float
    input: bytes | None


class SpawnArgs(_Where, total=False):
    stdin: StdIO
    stdout: StdIO
    stderr: StdIO


def run_command(
    argv: Sequence[str | os.PathLike[str]],
    *,
    rootless: bool,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60,
    input: bytes | None = None,
    home: Path | None = None,
    expose: Iterable[Path] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` to completion, capturing stdout and stderr (stdin is ``input``, else /dev/null).

    On timeout the whole process group is killed and ``subprocess.TimeoutExpired`` raised.
    """
    inv = prepare(argv, rootless=rootless, env=env, cwd=cwd, home=home, expose=expose)
    try:
        with subprocess.Popen(
            inv.argv,
            env=inv.env,
            cwd=inv.cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                _kill_group(proc)
                stdout, stderr = proc.communicate()
                raise subprocess.TimeoutExpired(inv.argv, timeout, stdout, stderr) from exc
            finally:
                if proc.poll() is None:
                    _kill_group(proc)
            return subprocess.CompletedProcess(inv.argv, proc.returncode, stdout, stderr)
    finally:
        inv.cleanup()


def spawn_command(
    argv: Sequence[str | os.PathLike[str]],
    *,
    rootless: bool,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    home: Path | None = None,
    expose: Iterable[Path] = (),
    stdin: StdIO = subprocess.DEVNULL,
    stdout: StdIO = subprocess.PIPE,
    stderr: StdIO = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` and return at once (for tests that signal or talk to it). The caller waits for it; its
    scratch directory is removed when the Popen object is collected or at interpreter exit."""
    inv = prepare(argv, rootless=rootless, env=env, cwd=cwd, home=home, expose=expose)
    try:
        proc = subprocess.Popen(
            inv.argv, env=inv.env, cwd=inv.cwd, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True
        )
    except BaseException:
        inv.cleanup()
        raise
    weakref.finalize(proc, inv.cleanup)
    return proc


def python_argv(python_args: Sequence[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
    """The venv's interpreter with ``python_args`` (the venv path itself, not its resolved target)."""
    return [venv_python(), *python_args]


def run_python(
    python_args: Sequence[str | os.PathLike[str]], **how: Unpack[RunArgs]
) -> subprocess.CompletedProcess[bytes]:
    """``run_command`` of the venv's Python with ``python_args``."""
    return run_command(python_argv(python_args), **how)


def boundary_argv(args: Sequence[str]) -> list[str | os.PathLike[str]]:
    """The venv's ``python -m boundary ARGS``, with the checkout shown to a `run` jail (``checkout_shown``)."""
    return python_argv(["-m", "boundary", *checkout_shown(args)])


@dataclass
class OnTerminal:
    """`boundary` started on a fresh pty that is its controlling terminal, as from an interactive shell."""

    proc: subprocess.Popen[bytes]
    master: int  # the terminal's side: what a user types, what the screen shows
    slave: int  # the shell's side, kept open: what is queued there is what the invoking shell would read next
    invocation: Invocation


@contextlib.contextmanager
def boundary_on_terminal(args: Sequence[str], *, rootless: bool, expose: Iterable[Path] = ()) -> Iterator[OnTerminal]:
    """Run ``boundary ARGS`` with a new pty as stdin/stdout/stderr and controlling terminal (its own session);
    killed if still running, and the pty closed, on exit."""
    master, slave = os.openpty()
    invocation: Invocation | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        if rootless:
            os.chown(os.ttyname(slave), *rootless_identity())
        invocation = prepare(boundary_argv(args), rootless=rootless, expose=expose)

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            invocation.argv,
            env=invocation.env,
            cwd=invocation.cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=controlling_terminal,
        )
        yield OnTerminal(proc, master, slave, invocation)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(slave)
        os.close(master)
        if invocation is not None:
            invocation.cleanup()


def checkout_shown(args: Sequence[str]) -> list[str]:
    """`boundary run` ARGS plus a read-only `--bind` of the checkout and the venv where they lie under a tree
    the jail hides (a clone in /tmp): the jailed commands of the tests (the venv's python, probes, the Claude
    Code CLI in .cache) live there."""
    if list(args[:1]) != ["run"]:
        return list(args)
    return ["run", *(arg for p in hidden_checkout() for arg in ("--bind", f"{p}:ro")), *args[1:]]


def hidden_checkout() -> list[Path]:
    """The checkout and the venv, where they lie under a tree the jail hides."""
    hidden_trees = [Path(tree).resolve() for tree, _mode in HIDDEN_TREES]
    return [p for p in outermost(q.resolve() for q in (repo_root(), venv_dir())) if hidden_below(p, hidden_trees)]


def hidden_below(path: Path, trees: Iterable[Path]) -> bool:
    return any(path != tree and path.is_relative_to(tree) for tree in trees)


def run_boundary(args: list[str], **how: Unpack[RunArgs]) -> subprocess.CompletedProcess[bytes]:
    """``python -m boundary ARGS`` from the venv, to completion (see ``run_command``)."""
    return run_python(["-m", "boundary", *checkout_shown(args)], **how)


def spawn_python(python_args: Sequence[str | os.PathLike[str]], **how: Unpack[SpawnArgs]) -> subprocess.Popen[bytes]:
    """``spawn_command`` of the venv's Python with ``python_args``."""
    return spawn_command(python_argv(python_args), **how)


def spawn_boundary(args: list[str], **how: Unpack[SpawnArgs]) -> subprocess.Popen[bytes]:
    """``python -m boundary ARGS`` from the venv, started in the background (see ``spawn_command``)."""
    return spawn_python(["-m", "boundary", *checkout_shown(args)], **how)


# --- processes ---------------------------------------------------------------------------------------------


def pids_matching(marker: str) -> set[int]:
    """Processes whose command line contains ``marker`` (``pgrep -f``)."""
    found = subprocess.run(["pgrep", "-f", "--", marker], capture_output=True, text=True, check=False)
    return {int(pid) for pid in found.stdout.split()}


def _parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def boundary_pid(marker: str, *, forks: int = 3, timeout: float = 30) -> int:
    """The pid of the boundary process whose command line contains ``marker`` (e.g. ``--log AUDIT_PATH``), once
    it has started its jail: boundary, its helper and the jail's init are forks sharing that command line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pids_matching(marker)
        if len(pids) >= forks:
            root = topmost_process(pids, _parent_of)
            if root is not None:
                return root
        time.sleep(0.05)
    raise AssertionError(f"no boundary process with {marker!r} in its command line started within {timeout} s")
