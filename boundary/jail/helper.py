"""Process choreography of the jail. Runs before any thread or event loop exists in boundary.

    boundary (host netns, serves the proxy)
      └─ helper   unshare(user|net|mount); waits for its id maps; lo + local route + nft; binds the proxy and
         │        DNS sockets and sends their fds up; the plan's mounts (jail.mounts); unshare(pid)
         └─ init  PID 1 of the new pid ns: fresh /proc (sysctls read-only), forwards signals, reaps, exits with
            │     the workload's code
            └─ workload  own process group (terminal foreground), no capabilities, no_new_privs, no descriptor
                         but 0-2, the seccomp filter (jail.seccomp: no typing into the terminal), exec

Why this shape:
- `unshare(CLONE_NEWUSER)` needs a single-threaded caller, hence a fresh fork before boundary starts threads.
- The id maps are written by boundary from outside: as root it may write several lines (the workload's user),
  which the helper itself could not.
- The listening sockets are created *inside* the jail's netns and served outside; `SO_ORIGINAL_DST` works on
  them from any netns, so nothing (no veth, no host rule) exists on the host.
- Each process has PDEATHSIG=SIGKILL towards its parent and init is PID 1 of a pid namespace: if boundary dies,
  even by `kill -9`, the helper dies, init dies, and the kernel kills everything left in the namespace.
- Nothing in the pid namespace can name boundary's pid, and boundary is not dumpable: no ptrace way out.
- A descriptor is a way out that no namespace closes (a socket of the invoker's, connected outside): init and
  the workload close every one above 2, whatever boundary's invoker left open without close-on-exec.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass

from boundary.errors import JailError
from boundary.jail import mounts, netns, seccomp, syscalls
from boundary.jail.plan import Identity, MountAction, user_maps

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)

EXIT_EXEC_FAILED = 127


@dataclass(frozen=True, slots=True)
class JailSpec:
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    invoker: Identity
    workload: Identity
    ruleset: str
    mounts: tuple[MountAction, ...]  # plan.mount_plan: carried out in the jail's private mount ns
    take_terminal: bool = False  # stdin is a terminal whose foreground group is ours


@dataclass(slots=True)
class Jail:
    """A started jail: the sockets to serve and the helper to wait for."""

    helper_pid: int
    init_pid: int
    proxy_socket: socket.socket
    dns_udp_socket: socket.socket
    dns_tcp_socket: socket.socket

    def signal(self, signum: int) -> None:
        """Forward a signal to the jail's init, which passes it on to the workload."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signum)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.helper_pid, signal.SIGKILL)


# --- boundary's side -------------------------------------------------------------------------------------------

_MSG_UNSHARED = b"U"
_MSG_MAPPED = b"M"
_MSG_READY = b"R"
_MSG_INIT = b"P"
_MSG_ERROR = b"E"


def start_jail(spec: JailSpec) -> Jail:
    """Fork the helper and walk it through set-up; raise JailError (nothing left running) if any step fails."""
    program = seccomp.filter_for(os.uname().machine)  # an unknown machine refuses here, before anything runs
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child; covered by the integration tests
        ours.close()
        _helper_main(theirs, spec, program, parent=os.getppid())
    theirs.close()
    try:
        _expect(ours, _MSG_UNSHARED)
        _write_id_maps(pid, spec)
        ours.send(_MSG_MAPPED)
        message, fds, _flags, _addr = socket.recv_fds(ours, 4096, 3)
        if not message.startswith(_MSG_READY) or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            _raise_helper_error(message)
        proxy, dns_udp, dns_tcp = (socket.socket(fileno=fd) for fd in fds)
        init_message = _expect(ours, _MSG_INIT)
        (init_pid,) = struct.unpack("=i", init_message[1:])
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        ours.close()
    return Jail(pid, init_pid, proxy, dns_udp, dns_tcp)


def _expect(sock: socket.socket, tag: bytes) -> bytes:
    message = sock.recv(4096)
    if not message.startswith(tag):
        _raise_helper_error(message)
    return message


def _raise_helper_error(message: bytes) -> None:
    if message.startswith(_MSG_ERROR):
        raise JailError(message[1:].decode(errors="replace"))
    raise JailError("the jail helper exited during set-up")


def _write_id_maps(pid: int, spec: JailSpec) -> None:
    uid_map, gid_map = user_maps(spec.invoker, spec.workload)
    try:
        if spec.invoker.uid != 0:
            # An unprivileged writer may only map its own gid after giving up setgroups.
            _write_proc(pid, "setgroups", "deny")
        _write_proc(pid, "uid_map", uid_map)
        _write_proc(pid, "gid_map", gid_map)
    except OSError as e:
        raise JailError(f"cannot write the jail's user id maps: {e.strerror}") from e


def _write_proc(pid: int, name: str, text: str) -> None:
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(text)


# --- the helper ------------------------------------------------------------------------------------------------


def _helper_main(chan: socket.socket, spec: JailSpec, program: bytes, parent: int) -> None:  # pragma: no cover - child
    try:
        _die_with(parent)
        try:
            os.unshare(os.CLONE_NEWUSER | os.CLONE_NEWNET | os.CLONE_NEWNS)
        except OSError as e:
            raise JailError(_unshare_hint(e)) from e
        chan.send(_MSG_UNSHARED)
        _expect(chan, _MSG_MAPPED)
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
        netns.bring_up_loopback()
        netns.add_address_for_addrconfig()
        netns.add_local_default_route()
        netns.apply_ruleset(spec.ruleset)
        sockets = netns.listening_sockets()
        mounts.apply(spec.mounts)
        socket.send_fds(chan, [_MSG_READY], [s.fileno() for s in sockets])
        for s in sockets:
            s.close()
        os.unshare(os.CLONE_NEWPID)
        init_pid = os.fork()
        if init_pid == 0:
            chan.close()
            _init_main(spec, program, helper=os.getppid())
        chan.send(_MSG_INIT + struct.pack("=i", init_pid))
        chan.close()
    except BaseException as e:
        try:
            chan.send(_MSG_ERROR + _describe(e).encode())
        finally:
            os._exit(125)
    _exit_like(_wait_for(init_pid))


def _unshare_hint(e: OSError) -> str:
    text = f"cannot create the jail's namespaces: {e.strerror}"
    if os.getuid() != 0:
        text += (
            " (unprivileged user namespaces may be disabled: check sysctl kernel.unprivileged_userns_clone,"
            " user.max_user_namespaces and, on Ubuntu >= 23.10, kernel.apparmor_restrict_unprivileged_userns;"
            " or run boundary as root)"
        )
    return text


def _describe(e: BaseException) -> str:
    if isinstance(e, JailError):
        return str(e)
    if isinstance(e, OSError):
        subject = f"{e.filename}: " if e.filename is not None else ""  # e.g. the workload's cwd for chdir
        return f"jail set-up failed: {subject}{e.strerror or e}"
    return f"jail set-up failed: {type(e).__name__}: {e}"


def _die_with(parent: int) -> None:  # pragma: no cover - child process
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
        os._exit(125)


def _wait_for(pid: int) -> int:  # pragma: no cover - child process
    while True:
        waited, status = os.waitpid(pid, 0)
        if waited == pid:
            return status


def exit_code(status: int) -> int:
    """A wait status as a shell would report it: the exit code, or 128+N after death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _exit_like(status: int) -> None:  # pragma: no cover - child process
    os._exit(exit_code(status))


# --- init, PID 1 of the jail's pid namespace -------------------------------------------------------------------


def _init_main(spec: JailSpec, program: bytes, helper: int) -> None:  # pragma: no cover - child process
    try:
        _die_with(helper)
        syscalls.close_descriptors_from(3)  # init needs none, and forks the workload
        syscalls.mount("proc", "/proc", "proc", syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)
        mounts.readonly_proc()
    except BaseException as e:
        print(f"boundary: {_describe(e)}", file=sys.stderr)
        os._exit(125)
    workload = os.fork()
    if workload == 0:
        _exec_workload(spec, program)
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda s, _f: _forward(workload, s))
    while True:
        pid, status = os.waitpid(-1, 0)  # reap orphans too: init's job
        if pid == workload:
            _exit_like(status)


def _forward(pid: int, signum: int) -> None:  # pragma: no cover - child process
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _exec_workload(spec: JailSpec, program: bytes) -> None:  # pragma: no cover - child process
    try:
        os.setpgid(0, 0)
        if spec.take_terminal:
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            os.tcsetpgrp(0, os.getpgrp())
            signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        _drop_privileges(spec.workload, spec.invoker)
        os.chdir(spec.cwd)
        syscalls.close_descriptors_from(3)  # again, right before exec: nothing but 0-2 may cross into the jail
        seccomp.install(program)  # last: needs no_new_privs, set by _drop_privileges
    except BaseException as e:
        print(f"boundary: cannot start the workload: {_describe(e)}", file=sys.stderr)
        os._exit(125)
    try:
        os.execvpe(spec.argv[0], list(spec.argv), spec.env)
    except OSError as e:
        print(f"boundary: cannot run '{spec.argv[0]}': {e.strerror}", file=sys.stderr)
        os._exit(EXIT_EXEC_FAILED)


def _drop_privileges(workload: Identity, invoker: Identity) -> None:  # pragma: no cover - child process
    """No capability in any set, no way to regain one, as the workload's own ids."""
    syscalls.prctl(syscalls.PR_SET_SECUREBITS, syscalls.SECUREBITS_LOCKED_DOWN)
    syscalls.drop_bounding_set()
    if workload.uid != os.getuid():
        os.setgroups(list(workload.groups))
        os.setresgid(workload.gid, workload.gid, workload.gid)
        os.setresuid(workload.uid, workload.uid, workload.uid)
    syscalls.clear_capabilities()
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)


def harden_self() -> None:
    """Boundary itself (the proxy) becomes non-dumpable: no ptrace and no /proc/PID/mem from its own uid."""
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
