"""Carry out the plan's mount table in the jail's private mount namespace; look paths up for the plan.

`host_path` is an ordinary read of the host (it runs in boundary before any jail exists). `apply` runs in the
helper, after `unshare(CLONE_NEWNS)`: bind sources are opened (O_PATH) first, while every path is still
visible, and mounted later through `/proc/self/fd/N`, so a source that a tmpfs covers meanwhile (the rundir in
/tmp, a project under /tmp) still works. They must be opened *after* the unshare: a bind source has to belong
to the caller's mount namespace (EINVAL otherwise). A bind through such an fd sees whatever is mounted on the
source itself by then, so no source may be a place the plan mounts on later (the plan sees to it).
`readonly_proc` runs in the jail's init, on its fresh /proc.
"""

from __future__ import annotations

import contextlib
import os
import stat

from boundary.errors import JailError
from boundary.jail import syscalls
from boundary.jail.plan import (
    HOME_SOCKET_DIRS,
    PROC_READONLY,
    Bind,
    FreshMount,
    HostPath,
    MakeDir,
    MakeFile,
    Mask,
    MountAction,
    Pin,
)

# statvfs flags -> mount flags. A rootless read-only remount must repeat the flags the kernel locked on the
# host's mounts (nosuid, nodev, noexec, atime) or it fails with EPERM.
_CARRIED_FLAGS = (
    (os.ST_NOSUID, syscalls.MS_NOSUID),
    (os.ST_NODEV, syscalls.MS_NODEV),
    (os.ST_NOEXEC, syscalls.MS_NOEXEC),
    (os.ST_NOATIME, syscalls.MS_NOATIME),
    (os.ST_NODIRATIME, syscalls.MS_NODIRATIME),
    (os.ST_RELATIME, syscalls.MS_RELATIME),
)


def host_path(path: str) -> HostPath:
    """The plan's view of `path` on the host: canonical form and kind ("missing" if nothing is there)."""
    canonical = os.path.realpath(path)
    if os.path.isdir(canonical):
        return HostPath(canonical, "dir")
    if os.path.lexists(canonical):
        return HostPath(canonical, "file")
    return HostPath(canonical, "missing")


def home_sockets(home: str | None) -> list[str]:
    """Unix sockets under the home's `HOME_SOCKET_DIRS` (each to its depth; links not followed), canonical."""
    if not home or not os.path.isabs(home):
        return []
    found: list[str] = []
    for relative, depth in HOME_SOCKET_DIRS:
        top = os.path.join(home, relative)
        for directory, subdirs, files in os.walk(top):
            if directory[len(top) :].count(os.sep) + 1 >= depth:
                subdirs.clear()
            for name in files:
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.append(os.path.realpath(path))
    return found


def apply(actions: tuple[MountAction, ...]) -> None:  # pragma: no cover - runs in the helper
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    sources: dict[str, int] = {}
    try:
        for action in actions:
            if isinstance(action, Bind) and action.source not in sources:
                sources[action.source] = _open_source(action.source)
            elif isinstance(action, Mask) and os.devnull not in sources:
                sources[os.devnull] = _open_source(os.devnull)
        for action in actions:
            _apply_one(action, sources)
    finally:
        for fd in sources.values():
            os.close(fd)


def _open_source(path: str) -> int:  # pragma: no cover - runs in the helper
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise JailError(f"cannot bind '{path}' into the jail: {e.strerror}") from e


def _apply_one(action: MountAction, sources: dict[str, int]) -> None:  # pragma: no cover - runs in the helper
    match action:
        case Pin(path):
            # By path: this comes first, so the jail still sees exactly the host here (canonical, no link).
            try:
                syscalls.mount(path, path, None, syscalls.MS_BIND | syscalls.MS_REC)
            except OSError as e:
                reason = os.strerror(e.errno) if e.errno else str(e)
                raise JailError(f"cannot pin '{path}' in the jail (to keep the audit log's place): {reason}") from e
        case FreshMount(target, fstype, options, readonly):
            flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | (syscalls.MS_RDONLY if readonly else 0)
            syscalls.mount(fstype, target, fstype, flags, options or None)
        case MakeDir(path):
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
                os.chmod(path, 0o755)  # not the umask's choice: the workload may be another uid
        case MakeFile(path):
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
                os.chmod(path, 0o644)
        case Mask(target):
            # A socket that went away since boundary looked has nothing left to hide.
            with contextlib.suppress(FileNotFoundError):
                syscalls.mount(f"/proc/self/fd/{sources[os.devnull]}", target, None, syscalls.MS_BIND)
        case Bind(source, target, readonly):
            flags = syscalls.MS_BIND | (syscalls.MS_REC if action.recursive else 0)
            try:
                syscalls.mount(f"/proc/self/fd/{sources[source]}", target, None, flags)
                if readonly:
                    make_readonly(target)
            except OSError as e:
                reason = os.strerror(e.errno) if e.errno else str(e)  # not syscalls' "mount /proc/self/fd/N ..."
                raise JailError(f"cannot bind '{source}' on '{target}' in the jail: {reason}") from e


def make_readonly(target: str) -> None:  # pragma: no cover - runs in the helper or init
    """Remount the bind mount at `target` read-only, keeping the flags the kernel may have locked."""
    carried = os.statvfs(target).f_flag
    flags = syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY
    for statvfs_flag, mount_flag in _CARRIED_FLAGS:
        if carried & statvfs_flag:
            flags |= mount_flag
    syscalls.mount(None, target, None, flags)


def readonly_proc() -> None:  # pragma: no cover - runs in init, after its fresh /proc is mounted
    for path in PROC_READONLY:
        if os.path.lexists(path):  # /proc/sysrq-trigger needs CONFIG_MAGIC_SYSRQ
            syscalls.mount(path, path, None, syscalls.MS_BIND)
            make_readonly(path)
