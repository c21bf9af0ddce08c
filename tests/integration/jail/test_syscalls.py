"""The raw Linux calls of boundary/jail/syscalls.py, and what they leave the jailed workload with.

Unit level: each call runs in a forked child of the test process, so the test process keeps its
capabilities. The ``rootless`` child first becomes the unprivileged user (when the tests are root) and
unshares a user namespace, as the rootless helper does: its capabilities are then the namespace's ones.

Integration level: the workload of a real jail (root and rootless) reads its own /proc/self/status.
"""

from __future__ import annotations

import errno
import json
import os
import warnings
from collections.abc import Callable

from boundary.jail import syscalls
from tests.integration.jail.conftest import JailRunner
from tests.support import tools

CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
NO_CAPS = "0000000000000000"


def _status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        return {key: value.strip() for key, value in (line.split(":", 1) for line in f if ":" in line)}


def _become_rootless() -> None:
    if tools.is_root():
        uid, gid = tools.rootless_identity()
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    os.unshare(os.CLONE_NEWUSER)


def in_child(body: Callable[[], object], *, rootless: bool) -> object:
    """Run ``body`` in a forked child and return its JSON-able result; an exception in the child becomes
    ``{"error": errno, "message": str(exc), "type": name}``."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Other tests' servers may have threads; the child only makes syscalls and writes a pipe, no locks.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:  # whatever happens, the child must never return into pytest
            os.close(read_end)
            try:
                if rootless:
                    _become_rootless()
                result: object = {"result": body()}
            except BaseException as exc:
                result = {"error": getattr(exc, "errno", None), "message": str(exc), "type": type(exc).__name__}
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


def test_dropping_the_bounding_set_and_clearing_capabilities_empties_every_set(rootless: bool) -> None:
    """drop_bounding_set() then clear_capabilities() leave the inheritable, permitted, effective, bounding
    and ambient sets all empty (they were not before)."""

    def body() -> dict[str, dict[str, str]]:
        before = _status()
        syscalls.drop_bounding_set()
        syscalls.clear_capabilities()
        after = _status()
        return {"before": {k: before[k] for k in CAP_SETS}, "after": {k: after[k] for k in CAP_SETS}}

    outcome = in_child(body, rootless=rootless)
    assert isinstance(outcome, dict) and "result" in outcome, outcome
    assert outcome["result"]["before"]["CapEff"] != NO_CAPS
    assert outcome["result"]["before"]["CapBnd"] != NO_CAPS
    assert outcome["result"]["after"] == dict.fromkeys(CAP_SETS, NO_CAPS)


def test_no_new_privs_is_set_by_prctl(rootless: bool) -> None:
    """prctl(PR_SET_NO_NEW_PRIVS, 1) turns NoNewPrivs on for the calling process."""

    def body() -> tuple[str, str]:
        before = _status()["NoNewPrivs"]
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        return before, _status()["NoNewPrivs"]

    assert in_child(body, rootless=rootless) == {"result": ["0", "1"]}


def test_raise_ambient_puts_one_capability_in_the_ambient_set(rootless: bool) -> None:
    """raise_ambient(CAP_NET_ADMIN) makes exactly that capability ambient (so nft, exec'd by a non-zero uid,
    keeps it); PR_CAP_AMBIENT_CLEAR_ALL takes it away again."""

    def body() -> tuple[str, str]:
        syscalls.raise_ambient(syscalls.CAP_NET_ADMIN)
        raised = _status()["CapAmb"]
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        return raised, _status()["CapAmb"]

    assert in_child(body, rootless=rootless) == {"result": [f"{1 << syscalls.CAP_NET_ADMIN:016x}", NO_CAPS]}


def test_a_failed_mount_raises_oserror_naming_source_and_target(rootless: bool) -> None:
    """mount() turns a failure into OSError with the errno and a message naming what was mounted where.
    (The child has a private mount namespace, so even a mount that succeeded would stay there.)"""

    def body() -> None:
        os.unshare(os.CLONE_NEWNS)
        syscalls.mount("/nonexistent-boundary-source", "/nonexistent-boundary-target", None, syscalls.MS_BIND)

    assert in_child(body, rootless=rootless) == {
        "error": errno.ENOENT,
        "message": "[Errno 2] mount /nonexistent-boundary-source on /nonexistent-boundary-target: "
        "No such file or directory",
        "type": "FileNotFoundError",
    }


def test_a_refused_prctl_raises_oserror_with_its_option(rootless: bool) -> None:
    """prctl() with an option the kernel does not know raises OSError(EINVAL) naming the option."""

    def body() -> None:
        syscalls.prctl(0x7FFF)

    outcome = in_child(body, rootless=rootless)
    assert outcome == {"error": errno.EINVAL, "message": "[Errno 22] prctl(32767): Invalid argument", "type": "OSError"}


# --- what the workload is left with ---------------------------------------------------------------------


def test_the_workload_has_no_capability_and_no_new_privs(jail: JailRunner, rootless: bool) -> None:
    """Inside the jail every capability set is empty and NoNewPrivs is on, as root too: there the workload
    is uid 0 and still has nothing (secure bits stop uid 0 from regaining capabilities at exec, which is how
    the `grep` that reads the status was started)."""
    run = jail.shell("grep -E '^(Cap|NoNewPrivs)' /proc/self/status; echo \"uid=$(id -u)\"")
    status = dict(line.split(":\t") for line in run.stdout.splitlines() if ":\t" in line)
    assert {k: status[k] for k in CAP_SETS} == dict.fromkeys(CAP_SETS, NO_CAPS), run.describe()
    assert status["NoNewPrivs"] == "1"
    expected_uid = tools.rootless_identity()[0] if rootless else os.getuid()
    assert int(run.value("uid")) == expected_uid


def test_a_nested_user_namespace_gives_no_power_over_the_jails_network(jail: JailRunner, rootless: bool) -> None:
    """The workload may make a user namespace of its own (rootless, it then has every capability there), but
    the jail's netns belongs to the jail's user namespace: nft and ip are still refused. (Root's workload
    cannot even map uid 0 without CAP_SETFCAP.) Guarded: runs only inside the jail."""
    run = jail.shell(
        "require_jail\n"
        "unshare --user --map-root-user sh -c '\n"
        '  echo "nested-caps=$(grep ^CapEff /proc/self/status | cut -f2)"\n'
        '  "$0" list ruleset >/dev/null 2>&1; echo "nested-nft=$?"\n'
        '  "$1" link set lo down 2>/dev/null; echo "nested-link-down=$?"\n'
        '\' "$NFT" "$IP"\n'
        'echo "unshare=$?"\n'
        '$IP -o link | sed "s/^/link: /"\n'
    )
    assert run.returncode == 0, run.describe()
    [link] = run.lines("link: ")
    assert "<LOOPBACK,UP,LOWER_UP>" in link
    assert all(code != "0" for code in run.lines("nested-nft=")), run.describe()
    assert all(code != "0" for code in run.lines("nested-link-down="))
    if rootless:
        # The attempt was real: full capabilities in the nested namespace, and still refused.
        assert int(run.value("nested-caps"), 16) >> syscalls.CAP_NET_ADMIN & 1, run.describe()
        assert run.value("nested-nft") != "0"
    else:
        assert run.value("unshare") != "0", run.describe()


def test_close_descriptors_from_closes_every_one_from_there_up(rootless: bool) -> None:
    """close_descriptors_from(N) closes N and everything above it, however high (here 5000, past the usual
    1024 limit), and leaves every descriptor below N open."""

    def body() -> dict[str, list[int]]:
        source = os.open("/dev/null", os.O_RDONLY)
        for fd in (999, 1000, 1001, 5000):
            os.dup2(source, fd)
        syscalls.close_descriptors_from(1000)
        still_open = []
        for fd in (999, 1000, 1001, 5000):
            try:
                os.fstat(fd)
                still_open.append(fd)
            except OSError as exc:
                assert exc.errno == errno.EBADF
        return {"open": still_open}

    assert in_child(body, rootless=rootless) == {"result": {"open": [999]}}
