"""Where things are, and what this machine can do: paths, external tools and privilege checks for tests.

Privilege checks come in two forms, both skipping with a reason that says what is missing (and with
``CI=true`` a skip is a failure, see ``tests/conftest.py``):

* marks: ``@requires_root`` / ``@requires_userns`` (or ``pytestmark = requires_root``); the check runs in
  ``pytest_runtest_setup`` so that collecting a test never runs anything;
* calls: ``skip_unless_root()`` / ``skip_unless_userns()`` inside a test or fixture.
"""

from __future__ import annotations

import functools
import grp
import os
import platform
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

#: The unprivileged identity rootless runs use when the tests run as root.
ROOTLESS_USER = "nobody"
ROOTLESS_GROUPS = ("nogroup", "nobody")  # Debian's name first, then everyone else's

ROOT_SKIP_REASON = "needs root (run as root or in CI)"

#: Marks: ``root`` = needs euid 0; ``userns`` = needs unprivileged user namespaces for the rootless user.
requires_root = pytest.mark.root
requires_userns = pytest.mark.userns

_CLAUDE_PACKAGE_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def repo_root() -> Path:
    """The checkout this test suite belongs to."""
    return Path(__file__).resolve().parents[2]


def venv_dir() -> Path:
    """The virtualenv scripts/setup made (``$BOUNDARY_VENV`` overrides, as in scripts/setup)."""
    override = os.environ.get("BOUNDARY_VENV")
    return Path(override) if override else repo_root() / ".venv"


def venv_python() -> Path:
    """The venv's interpreter (not resolved: resolving it would leave the venv)."""
    return venv_dir() / "bin" / "python"


def claude_binary() -> Path | None:
    """The Claude Code native binary that ``scripts/setup --with-test-tools`` installs, if present."""
    arch = _CLAUDE_PACKAGE_ARCH.get(platform.machine().lower())
    if arch is None:
        return None
    path = repo_root() / ".cache" / "npm" / "node_modules" / "@anthropic-ai" / f"claude-code-linux-{arch}" / "claude"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def require_tool(name: str) -> Path:
    """The absolute path of ``name`` on PATH (sbin directories included); skips the test when it is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        pytest.skip(f"needs {name!r} on PATH (scripts/setup installs the test tools)")
    return Path(found)


def require_claude() -> Path:
    """The Claude Code binary; skips the test when scripts/setup --with-test-tools has not installed it."""
    path = claude_binary()
    if path is None:
        pytest.skip("needs the Claude Code CLI in .cache/npm (run scripts/setup --with-test-tools)")
    return path


def is_root() -> bool:
    return os.geteuid() == 0


def rootless_identity() -> tuple[int, int]:
    """``(uid, gid)`` a rootless run uses: ``nobody``/``nogroup`` as root, else the current user."""
    if not is_root():
        return os.getuid(), os.getgid()
    uid = pwd.getpwnam(ROOTLESS_USER).pw_uid
    for name in ROOTLESS_GROUPS:
        try:
            return uid, grp.getgrnam(name).gr_gid
        except KeyError:
            continue
    return uid, pwd.getpwnam(ROOTLESS_USER).pw_gid


def setpriv_argv(uid: int, gid: int) -> list[str]:
    """Prefix that runs a command as ``uid``/``gid`` with no supplementary groups and no capabilities.

    Switching from root to a non-zero uid already empties the permitted and effective sets; clearing the
    inheritable set also empties the ambient set, so nothing survives the exec.
    """
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all", "--"]


def skip_unless_root() -> None:
    if not is_root():
        pytest.skip(ROOT_SKIP_REASON)


def userns_probe_argv() -> list[str]:
    """The probe: can the rootless user make a user+net namespace? As root that user is ``nobody``."""
    probe = ["unshare", "--user", "--net", "--map-root-user", "true"]
    if not is_root():
        return probe
    uid, gid = rootless_identity()
    return [*setpriv_argv(uid, gid), *probe]


@functools.cache
def userns_unavailable_reason() -> str | None:
    """``None`` when unprivileged user namespaces work for the rootless user, else why they do not.

    Decided by trying, not by reading sysctls: AppArmor, seccomp, ``user.max_user_namespaces`` and container
    runtimes all get a say, and only the kernel knows the sum.
    """
    argv = userns_probe_argv()
    who = ROOTLESS_USER if is_root() else f"uid {os.getuid()}"
    try:
        proc = subprocess.run(argv, capture_output=True, cwd="/", timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"needs unprivileged user namespaces: cannot run {argv[0]!r}: {exc}"
    if proc.returncode == 0:
        return None
    detail = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
    return (
        f"needs unprivileged user namespaces, but `unshare --user --net --map-root-user true` as {who} "
        f"failed: {detail} (see kernel.apparmor_restrict_unprivileged_userns, user.max_user_namespaces; "
        "or run as root)"
    )


def skip_unless_userns() -> None:
    reason = userns_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


# --- CI policy: a skip is a failure ------------------------------------------------------------------------

_TRUTHY = {"1", "true", "yes", "on"}


def ci_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this is a CI run (``CI=true``), where every test must run: a skip fails the run."""
    return environ.get("CI", "").strip().lower() in _TRUTHY


def skip_reason(longrepr: object) -> str:
    """The reason out of a skipped report's ``longrepr`` (a ``(path, lineno, "Skipped: why")`` tuple)."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return str(longrepr)
