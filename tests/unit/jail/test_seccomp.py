"""The workload's seccomp program, run on a small classic-BPF evaluator for the instructions it may contain.

The evaluator follows the kernel's semantics for those instructions (32-bit loads from `seccomp_data`, forward
jumps, return); an instruction it does not know fails the test, so the program cannot grow past what is
checked here. tests/integration/jail/test_seccomp.py runs the same program in the kernel.
"""

from __future__ import annotations

import errno
import struct

import pytest

from boundary.errors import JailError
from boundary.jail import seccomp
from boundary.jail.seccomp import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_ARM,
    AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_KILL_PROCESS,
    TIOCLINUX,
    TIOCSETD,
    TIOCSTI,
    X32_SYSCALL_BIT,
)

EPERM = seccomp.SECCOMP_RET_ERRNO | errno.EPERM
TCGETS, TCSETSW, TIOCGWINSZ, TIOCSWINSZ, TIOCSPGRP, FIONREAD = 0x5401, 0x5403, 0x5413, 0x5414, 0x5410, 0x541B
SECCOMP_DATA = struct.Struct("=iIQ6Q")  # nr, arch, instruction_pointer, args[6]


def run(program: bytes, arch: int, nr: int, *args: int) -> int:
    """What the program returns for one system call (args are u64, as the kernel fills them in)."""
    data = SECCOMP_DATA.pack(nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    instructions = [seccomp.INSTRUCTION.unpack_from(program, i) for i in range(0, len(program), 8)]
    accumulator, pc = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]  # running off the end raises: the kernel refuses such a program
        pc += 1
        if code == seccomp.BPF_LD_W_ABS:
            assert k % 4 == 0 and k + 4 <= SECCOMP_DATA.size, k  # the kernel checks this when loading
            (accumulator,) = struct.unpack_from("=I", data, k)
        elif code == seccomp.BPF_JEQ_K:
            pc += jt if accumulator == k else jf
        elif code == seccomp.BPF_JSET_K:
            pc += jt if accumulator & k else jf
        elif code == seccomp.BPF_RET_K:
            return int(k)
        else:
            raise AssertionError(f"instruction {code:#x} is not one the evaluator knows")


X86_64 = seccomp.filter_for("x86_64")
AARCH64 = seccomp.filter_for("aarch64")


@pytest.mark.parametrize(
    ("program", "arch", "nr", "cmd", "expected"),
    [
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 16, TIOCSTI, EPERM, id="x86_64-tiocsti"),
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 16, TIOCLINUX, EPERM, id="x86_64-tioclinux"),
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 16, TIOCSETD, EPERM, id="x86_64-tiocsetd"),
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 16, 0x1_0000_0000 | TIOCSTI, EPERM, id="x86_64-tiocsti-high-bits"),
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 16, 0xFFFF_FFFF_0000_0000 | TIOCSTI, EPERM, id="x86_64-high-ones"),
        pytest.param(X86_64, AUDIT_ARCH_I386, 54, TIOCSTI, EPERM, id="i386-tiocsti"),
        pytest.param(X86_64, AUDIT_ARCH_I386, 54, TIOCLINUX, EPERM, id="i386-tioclinux"),
        pytest.param(AARCH64, AUDIT_ARCH_AARCH64, 29, TIOCSTI, EPERM, id="aarch64-tiocsti"),
        pytest.param(AARCH64, AUDIT_ARCH_AARCH64, 29, 0x1_0000_0000 | TIOCSTI, EPERM, id="aarch64-high-bits"),
        pytest.param(AARCH64, AUDIT_ARCH_ARM, 54, TIOCSTI, EPERM, id="arm-tiocsti"),
        pytest.param(AARCH64, AUDIT_ARCH_ARM, 54, TIOCSETD, EPERM, id="arm-tiocsetd"),
    ],
)
def test_typing_into_a_terminal_is_refused_with_eperm(
    program: bytes, arch: int, nr: int, cmd: int, expected: int
) -> None:
    """ioctl TIOCSTI, TIOCLINUX and TIOCSETD get EPERM under every ABI of the machine, whatever the upper 32
    bits of cmd say (the kernel ignores them)."""
    assert run(program, arch, nr, 0, cmd) == expected


@pytest.mark.parametrize("cmd", [TCGETS, TCSETSW, TIOCGWINSZ, TIOCSWINSZ, TIOCSPGRP, FIONREAD, TIOCSTI + 1])
@pytest.mark.parametrize(
    ("program", "arch", "nr"),
    [
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 16, id="x86_64"),
        pytest.param(X86_64, AUDIT_ARCH_I386, 54, id="i386"),
        pytest.param(AARCH64, AUDIT_ARCH_AARCH64, 29, id="aarch64"),
        pytest.param(AARCH64, AUDIT_ARCH_ARM, 54, id="arm"),
    ],
)
def test_the_ioctls_of_an_interactive_program_are_allowed(program: bytes, arch: int, nr: int, cmd: int) -> None:
    """termios, window size, job control and FIONREAD stay usable: an agent's terminal UI works as before."""
    assert run(program, arch, nr, 0, cmd) == SECCOMP_RET_ALLOW


@pytest.mark.parametrize(
    ("program", "arch", "nr"),
    [
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 54, id="x86_64-setsockopt"),  # 54 is ioctl for i386 only
        pytest.param(X86_64, AUDIT_ARCH_I386, 16, id="i386-lchown"),  # 16 is ioctl for x86_64 only
        pytest.param(AARCH64, AUDIT_ARCH_AARCH64, 54, id="aarch64-54"),
        pytest.param(AARCH64, AUDIT_ARCH_ARM, 29, id="arm-pause"),
        pytest.param(X86_64, AUDIT_ARCH_X86_64, 59, id="x86_64-execve"),
    ],
)
def test_other_calls_with_the_same_argument_are_allowed(program: bytes, arch: int, nr: int) -> None:
    """The number is read in its ABI: a call that is ioctl under another ABI is not mistaken for it."""
    assert run(program, arch, nr, 0, TIOCSTI) == SECCOMP_RET_ALLOW


@pytest.mark.parametrize("nr", [16, 39, 59, 512, 547])
def test_every_x32_call_is_refused(nr: int) -> None:
    """x32 calls (x86_64's arch with bit 30 in the number) are refused with EPERM, ioctl or not."""
    assert run(X86_64, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | nr, 0, TCGETS) == EPERM


@pytest.mark.parametrize(
    ("program", "arch"),
    [
        pytest.param(X86_64, AUDIT_ARCH_AARCH64, id="aarch64-on-x86_64"),
        pytest.param(X86_64, AUDIT_ARCH_ARM, id="arm-on-x86_64"),
        pytest.param(AARCH64, AUDIT_ARCH_X86_64, id="x86_64-on-aarch64"),
        pytest.param(AARCH64, AUDIT_ARCH_I386, id="i386-on-aarch64"),
        pytest.param(X86_64, 0, id="no-arch"),
    ],
)
def test_an_abi_the_machine_does_not_run_kills_the_process(program: bytes, arch: int) -> None:
    """An arch the program does not know means numbers it cannot read: fail closed."""
    assert run(program, arch, 16, 0, TCGETS) == SECCOMP_RET_KILL_PROCESS
    assert run(program, arch, 16, 0, TIOCSTI) == SECCOMP_RET_KILL_PROCESS


@pytest.mark.parametrize("machine", ["riscv64", "ppc64le", "s390x", "i686", "armv7l", "aarch64_be", ""])
def test_a_machine_without_a_table_entry_refuses_to_start_the_jail(machine: str) -> None:
    """On a machine whose ABIs boundary does not know, the jail does not start; the error names it."""
    with pytest.raises(JailError) as raised:
        seccomp.filter_for(machine)
    assert str(raised.value) == (
        f"cannot start the jail on a '{machine}' machine: its seccomp filter knows the system calls of "
        "aarch64, x86_64 only"
    )


def test_the_program_is_whole_instructions_within_the_kernels_limit() -> None:
    """Each program is packed struct sock_filter (8 bytes each), far below BPF_MAXINSNS (4096)."""
    for program in (X86_64, AARCH64):
        assert len(program) % 8 == 0
        assert 0 < len(program) // 8 < 64


def test_assemble_resolves_labels_to_forward_offsets() -> None:
    """A label names the instruction that follows it; a jump's offset counts from the next instruction."""
    program = seccomp.assemble(
        [(seccomp.BPF_JEQ_K, "b", "a", 7), "a", (seccomp.BPF_RET_K, 0, 0, 1), "b", (seccomp.BPF_RET_K, 0, 0, 2)]
    )
    assert [seccomp.INSTRUCTION.unpack_from(program, i) for i in (0, 8, 16)] == [
        (seccomp.BPF_JEQ_K, 1, 0, 7),
        (seccomp.BPF_RET_K, 0, 0, 1),
        (seccomp.BPF_RET_K, 0, 0, 2),
    ]


def test_assemble_refuses_a_backward_jump() -> None:
    """Classic BPF jumps only forward; a label behind the jump is a bug in the program, not a loop."""
    with pytest.raises(ValueError, match="jump to 'top' from instruction 1 is out of reach"):
        seccomp.assemble(["top", (seccomp.BPF_RET_K, 0, 0, 0), (seccomp.BPF_JEQ_K, "top", 0, 0)])
