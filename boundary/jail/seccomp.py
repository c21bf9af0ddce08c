"""The workload's seccomp filter: it may not type into the invoker's terminal.

Theory of operation. The workload keeps the invoker's controlling terminal (agents are interactive), and
`ioctl(fd, TIOCSTI, &c)` on it pushes `c` into the terminal's input queue as if typed: whatever reads the
terminal next runs it, and once boundary exits that is the invoker's shell, outside the jail (bubblewrap's
CVE-2017-5226). The kernel allows it to any process of the terminal's session where dev.tty.legacy_tiocsti=1.
A classic BPF program, installed by the workload just before exec, answers those ioctls with EPERM and allows
every other system call. no_new_privs is set by then, so installing it needs no privilege; the kernel keeps it
across exec and gives it to every descendant, and nothing can remove it.

Refused ioctl commands (`REFUSED_IOCTLS`): TIOCSTI; TIOCLINUX (on a virtual console its selection paste
injects input the same way); TIOCSETD (a line discipline swapped on the invoker's terminal outlives the run,
and the rarely used disciplines are where tty kernel bugs live, e.g. n_hdlc, n_gsm). Nothing interactive needs
them: termios, window size, job control (TIOCSPGRP) and FIONREAD stay allowed.

Kernel quirks the program respects:
- A system call number means nothing without its ABI: `seccomp_data.arch` is checked first, and only the ABIs
  of the machine are recognised (`ABIS`). On a machine not in the table boundary refuses to start the jail
  (`filter_for` raises): ioctl's number under an unknown ABI could be any call. An arch the program does not
  know at run time (impossible on the listed machines) kills the process.
- x86_64 also carries x32 calls, told apart only by bit 30 of the number: all refused with EPERM (nothing
  real is built for x32, and most kernels leave it out).
- The kernel truncates ioctl's `cmd` to unsigned int, so only the low 32 bits of args[1] are compared; a 64-bit
  compare would let `0x1_0000_5412` through as TIOCSTI.
- `seccomp_data` is in the kernel's byte order: the listed machines are little-endian, so the low half of
  args[1] is at offset 24.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from dataclasses import dataclass

from boundary.errors import JailError
from boundary.jail import syscalls

# linux/audit.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_ARM = 0x40000028
X32_SYSCALL_BIT = 0x40000000

# asm-generic/ioctls.h (x86 and arm use the generic numbers)
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
TIOCSETD = 0x5423
REFUSED_IOCTLS = (TIOCSTI, TIOCLINUX, TIOCSETD)

# linux/seccomp.h
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
RET_EPERM = SECCOMP_RET_ERRNO | errno.EPERM

# struct seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG1_LOW = 16 + 8  # little-endian

# linux/bpf_common.h: the few instructions the program uses
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K

INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }


@dataclass(frozen=True, slots=True)
class Abi:
    """One system-call ABI a machine runs: its audit arch and its number for ioctl."""

    name: str
    audit_arch: int
    ioctl: int
    refuse_x32: bool = False  # x86_64's arch also carries x32 calls (nr | X32_SYSCALL_BIT)


ABIS: dict[str, tuple[Abi, ...]] = {
    "x86_64": (Abi("x86_64", AUDIT_ARCH_X86_64, 16, refuse_x32=True), Abi("i386", AUDIT_ARCH_I386, 54)),
    "aarch64": (Abi("aarch64", AUDIT_ARCH_AARCH64, 29), Abi("arm", AUDIT_ARCH_ARM, 54)),
}

# An instruction before its jumps are resolved: a jump target is a label, or 0 for the next instruction.
_Target = str | int
_Pending = tuple[int, _Target, _Target, int]


def filter_for(machine: str) -> bytes:
    """The program (packed `struct sock_filter`s) for a machine as `uname -m` names it; JailError if unknown."""
    abis = ABIS.get(machine)
    if abis is None:
        known = ", ".join(sorted(ABIS))
        raise JailError(
            f"cannot start the jail on a '{machine}' machine: its seccomp filter knows the system calls of {known} only"
        )
    return assemble(_program(abis))


def _program(abis: tuple[Abi, ...]) -> list[_Pending | str]:
    program: list[_Pending | str] = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH)]
    for index, abi in enumerate(abis):
        program += [
            f"abi{index}",  # the accumulator holds the arch here
            (BPF_JEQ_K, 0, f"abi{index + 1}", abi.audit_arch),
            (BPF_LD_W_ABS, 0, 0, OFFSET_NR),
        ]
        if abi.refuse_x32:
            program.append((BPF_JSET_K, "deny", 0, X32_SYSCALL_BIT))
        program.append((BPF_JEQ_K, "ioctl", "allow", abi.ioctl))
    program += [f"abi{len(abis)}", (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS), "ioctl"]
    program.append((BPF_LD_W_ABS, 0, 0, OFFSET_ARG1_LOW))
    program += [(BPF_JEQ_K, "deny", 0, cmd) for cmd in REFUSED_IOCTLS]
    program += ["allow", (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), "deny", (BPF_RET_K, 0, 0, RET_EPERM)]
    return program


def assemble(program: list[_Pending | str]) -> bytes:
    """Pack instructions, resolving label targets (strings in the list mark where a label is) to the forward
    offsets classic BPF jumps take."""
    labels: dict[str, int] = {}
    instructions: list[_Pending] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)

    def offset(target: _Target, at: int) -> int:
        if isinstance(target, int):
            return target
        distance = labels[target] - at - 1
        if not 0 <= distance <= 255:  # jumps go forward only, by at most 255
            raise ValueError(f"jump to '{target}' from instruction {at} is out of reach ({distance})")
        return distance

    return b"".join(
        INSTRUCTION.pack(code, offset(jt, at), offset(jf, at), k) for at, (code, jt, jf, k) in enumerate(instructions)
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def install(program: bytes) -> None:  # pragma: no cover - runs in the workload before exec; integration-tested
    """Install the program on the calling thread (needs no_new_privs or CAP_SYS_ADMIN); OSError if refused."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // INSTRUCTION.size, ctypes.addressof(buffer))
    syscalls.prctl(syscalls.PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
