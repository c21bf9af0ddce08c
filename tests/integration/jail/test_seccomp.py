"""What the workload of a real jail (root and rootless) may do with a terminal and with inherited descriptors:
boundary/jail/seccomp.py's filter in the kernel, and the descriptors init and the workload close before exec.

The terminal probe gives itself a terminal to attack: in a child that starts a new session it opens a pty,
makes it its controlling terminal (TIOCSTI needs that, or CAP_SYS_ADMIN) and puts it in raw mode, so anything
pushed into its input can be read back at once. Run outside the jail, the same probe shows each attack works.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from tests.integration.jail.conftest import DRIVER, JailRunner, split_events
from tests.support import tools
from tests.support.canaries import received_so_far
from tests.support.runner import prepare, python_argv

TTY_PROBE = r"""
import ctypes, errno, fcntl, json, mmap, os, platform, termios, tty

TIOCSTI, TIOCLINUX, TIOCSETD = 0x5412, 0x541C, 0x5423
libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)  # cmd as the full 64-bit register
libc.syscall.restype = ctypes.c_long


def outcome(ret):
    return "ok" if ret >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def i386_ioctl(fd, cmd, char):
    # int 0x80 from a 64-bit process takes the kernel's i386 compat path (ioctl is 54 there; arguments in ebx,
    # ecx, edx): push rbx; mov eax, 54; mov ebx, edi; mov ecx, esi; int 0x80; pop rbx; ret. The byte's address
    # must fit 32 bits, hence MAP_32BIT (0x40).
    page = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40,
                     prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code = bytes.fromhex("53 b8 36000000 89fb 89f1 cd80 5b c3")
    page.write(code + bytes(64 - len(code)) + char)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    ret = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint)(base)(fd, cmd, base + 64)
    return "ok" if ret >= 0 else errno.errorcode.get(-ret, str(-ret))


def in_child(body):
    # A child per step: setsid needs a non-leader, and int 0x80 kills a process whose kernel lacks ia32.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, json.dumps(body()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return json.loads(data) if data else f"died with status {status}"


def probes():
    os.setsid()
    _master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    tty.setraw(slave)
    # Every argument is a named buffer: the kernel writes into some, so none may be freed before the call.
    x, subcode, n_tty, size, settings = (ctypes.c_char(b"x"), ctypes.c_char(b"\x0b"), ctypes.c_int(0),
                                        ctypes.create_string_buffer(8), ctypes.create_string_buffer(64))
    results = {
        "tiocsti": outcome(libc.ioctl(slave, TIOCSTI, ctypes.addressof(x))),
        "tiocsti-high-bits": outcome(libc.ioctl(slave, (1 << 32) | TIOCSTI, ctypes.addressof(x))),
        "tioclinux": outcome(libc.ioctl(slave, TIOCLINUX, ctypes.addressof(subcode))),
        "tiocsetd": outcome(libc.ioctl(slave, TIOCSETD, ctypes.addressof(n_tty))),  # the line discipline it has
        "tiocgwinsz": outcome(libc.ioctl(slave, termios.TIOCGWINSZ, ctypes.addressof(size))),
        "tcgets": outcome(libc.ioctl(slave, termios.TCGETS, ctypes.addressof(settings))),
    }
    if platform.machine() == "x86_64":
        results["x32-getpid"] = outcome(libc.syscall(ctypes.c_long(0x40000000 | 39)))
        results["i386-tiocsti"] = in_child(lambda: i386_ioctl(slave, TIOCSTI, b"y"))
    os.set_blocking(slave, False)
    try:
        results["typed"] = os.read(slave, 64).decode()
    except BlockingIOError:
        results["typed"] = ""
    return results

print("tty=" + json.dumps(in_child(probes)), flush=True)
"""


def _tty_probe_outside() -> dict[str, Any]:
    proc = subprocess.run([tools.venv_python(), "-c", TTY_PROBE], capture_output=True, timeout=30, check=True)
    [line] = [line for line in proc.stdout.decode().splitlines() if line.startswith("tty=")]
    return dict(json.loads(line.removeprefix("tty=")))


def _legacy_tiocsti() -> bool:
    try:
        return Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() != "0"
    except FileNotFoundError:  # kernels before 6.2 have no switch: always allowed
        return True


def test_the_workload_runs_under_exactly_one_seccomp_filter(jail: JailRunner) -> None:
    """The workload's status says seccomp mode 2 (filter) with one filter, and no_new_privs."""
    run = jail.shell("grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status")
    status = dict(line.split(":\t") for line in run.stdout.splitlines() if ":\t" in line)
    assert status == {"NoNewPrivs": "1", "Seccomp": "2", "Seccomp_filters": "1"}, run.describe()


def test_typing_into_a_terminal_is_refused_under_every_abi(jail: JailRunner) -> None:
    """Inside the jail TIOCSTI gets EPERM on the workload's own controlling terminal (native, with high bits
    set in cmd, and through the i386 compat entry on x86_64), as do TIOCLINUX, TIOCSETD and every x32 call;
    nothing was typed; reading the terminal's settings and size still works. Outside, the same probe types."""
    run = jail.run([str(tools.venv_python()), "-c", TTY_PROBE])
    assert run.returncode == 0, run.describe()
    inside = json.loads(run.value("tty"))
    outside = _tty_probe_outside()
    refused = ["tiocsti", "tiocsti-high-bits", "tioclinux", "tiocsetd"]
    if "x32-getpid" in inside:
        refused += ["x32-getpid", "i386-tiocsti"]
    assert {name: inside[name] for name in refused} == dict.fromkeys(refused, "EPERM"), inside
    assert (inside["tiocgwinsz"], inside["tcgets"], inside["typed"]) == ("ok", "ok", ""), inside
    # The probe is a real attack: unfiltered, it types (the i386 entry exists only with ia32 emulation).
    if tools.is_root() or _legacy_tiocsti():
        assert outside["tiocsti"] == outside["tiocsti-high-bits"] == "ok", outside
        assert outside["typed"].startswith("xx"), outside
    assert outside["tiocsetd"] == "ok", outside
    assert outside.get("i386-tiocsti") in {None, "ok", "died with status 11", "died with status 139"}, outside


# Writes to each descriptor named on the command line, lists its own, and (with --wait) waits for a line.
FD_PROBE = r"""
import errno, json, os, sys
writes = {}
for fd in map(int, sys.argv[1:]):
    try:
        os.write(fd, b"escaped through an inherited descriptor\n")
        writes[fd] = "written"
    except OSError as e:
        writes[fd] = errno.errorcode[e.errno]
listed = sorted(int(n) for n in os.listdir("/proc/self/fd"))  # includes the listing's own descriptor
print("fds=" + json.dumps({"open": listed, "writes": writes}), flush=True)
sys.stdin.readline()
"""


def _read_line(stream: IO[bytes], deadline: float) -> str:
    fd, line = stream.fileno(), b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no output before the deadline (got {line!r})"
        chunk = os.read(fd, 1)
        assert chunk, f"EOF (got {line!r})"
        line += chunk
    return line.decode()


def test_descriptors_the_jail_inherits_reach_neither_init_nor_the_workload(rootless: bool) -> None:
    """The driver (as boundary) inherits a TCP connection to a host listener, a pipe and a descriptor far above
    the usual limit, none close-on-exec. The workload finds them all closed (EBADF; only 0-2 and its own
    listing are open), the listener hears nothing, and the jail's init holds nothing above 2 either."""
    listener = socket.create_server(("127.0.0.1", 0))
    leaked = socket.create_connection(listener.getsockname())
    outside, _ = listener.accept()
    listener.close()
    pipe_read, pipe_write = os.pipe()
    high = 4000
    os.dup2(pipe_write, high, inheritable=True)
    inherited = [leaked.fileno(), pipe_write, high]
    for fd in inherited:
        os.set_inheritable(fd, True)
    argv = python_argv([DRIVER, "--", str(tools.venv_python()), "-c", FD_PROBE, *map(str, inherited)])
    inv = prepare(argv, rootless=rootless)
    try:
        with subprocess.Popen(
            inv.argv,
            env=inv.env,
            cwd=inv.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=inherited,
        ) as proc:
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            deadline = time.monotonic() + 30
            _, [started] = split_events(_read_line(proc.stderr, deadline))
            report = json.loads(_read_line(proc.stdout, deadline).removeprefix("fds="))
            init_fds = sorted(int(n) for n in os.listdir(f"/proc/{started['init_pid']}/fd"))
            proc.stdin.write(b"done\n")
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
    finally:
        for fd in (pipe_write, high):
            os.close(fd)
        leaked.close()
        inv.cleanup()
    heard = received_so_far(outside)
    outside.close()
    with os.fdopen(pipe_read, "rb") as pipe:
        piped = pipe.read()
    assert report["writes"] == {str(fd): "EBADF" for fd in inherited}, report
    assert report["open"] == [0, 1, 2, 3], report
    assert (heard, piped) == (b"", b"")
    assert init_fds == [0, 1, 2], init_fds
