"""Start one jail with `boundary.jail.helper` alone (no proxy, no DNS server) and play their parts crudely.

    python tests/integration/jail/driver.py [--bind SRC=TARGET]... [--ro-bind SRC=TARGET]... [--ruleset FILE]
                                            [--cwd DIR] [--rundir-parent DIR] [--pin PATH]... -- COMMAND...
    python -m tests.integration.jail.driver [...] -- COMMAND...          (from the repo root; same thing)

The driver builds a `JailSpec` the way `boundary.run.session` does (identity = the current uid/gid, the plan's
ruleset, a generated resolv.conf and hosts bound over /etc, the plan's mounts for its environment, working
directory and binds), calls `start_jail`, and then serves the sockets
the helper handed over, so a test can see where the jail's traffic really went:

* proxy socket (TCP 127.0.0.1:15001 inside the jail): every connection is accepted and its original
  destination read with `SO_ORIGINAL_DST`. The client sends one line; the reply is one line:
  ``COUNTERS`` -> the jail's nft counters as JSON (read through the workload's namespaces, see
  ``--nft-counters``); ``SIGNAL NAME`` -> `jail.signal(SIGNAME)`, reply ``ok``; anything else ->
  ``orig ADDR:PORT``.
* DNS UDP socket: every datagram is echoed back; DNS TCP socket: each connection gets ``dns-tcp``.

Everything the driver sees is reported as one JSON object per line on stderr, prefixed with ``driver-event ``
and written with a single `write`: an event is never split, though it may land in the middle of a line the
workload wrote in pieces (conftest.split_events cuts it out). The driver exits
with the helper's exit code, i.e. the workload's (128+N for a signal). If `start_jail` raises `JailError`, the
driver reports the message and every process still left among its children, and exits 125; if the mount plan
refuses its inputs (`UsageError`), it reports a ``plan-error`` and exits 125 before any jail exists.

Only the standard library and `boundary` are imported: the driver runs by path, as root or as `nobody`.
(``driver.py --nft-counters PID`` is the driver's own helper process for ``COUNTERS``; not for tests.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from boundary.errors import JailError, UsageError
from boundary.jail import syscalls
from boundary.jail.helper import Jail, JailSpec, start_jail
from boundary.jail.mounts import host_path
from boundary.jail.netns import NFT
from boundary.jail.plan import HOSTS, RESOLV_CONF, BindRequest, Identity, mount_plan, nft_ruleset

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout, for tests.support
from tests.support.runner import hidden_checkout

EVENT_PREFIX = "driver-event "
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; a getsockopt at level SOL_IP
FILTER_TABLE = "boundary_filter"


def event(**fields: Any) -> None:
    os.write(2, (EVENT_PREFIX + json.dumps(fields, sort_keys=True) + "\n").encode())


def original_destination(conn: socket.socket) -> str:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)  # struct sockaddr_in
    port, address = struct.unpack_from("!H4s", raw, 2)
    return f"{socket.inet_ntoa(address)}:{port}"


def workload_pid(init_pid: int) -> int:
    """The workload's pid in our pid namespace: the jail's init has exactly one child, the workload.

    (The workload is the process to read namespaces through: the helper and init are not dumpable, so a
    rootless driver may not open their /proc/PID/ns links; the exec'd workload is dumpable again.)
    """
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    return int(children[0])


def read_counters(pid: int) -> str:
    """The jail's nft counters, read by a fresh single-threaded copy of this script (`--nft-counters`)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--nft-counters", str(pid)], capture_output=True, timeout=10, check=False
    )
    if proc.returncode != 0:
        return json.dumps({"error": proc.stderr.decode(errors="replace").strip()})
    return json.dumps(json.loads(proc.stdout))  # one line


def nft_counters_main(pid: int) -> None:
    """Enter the user and network namespaces of `pid` and exec `nft -j list counters` on the jail's table.

    setns(CLONE_NEWUSER) needs a single-threaded caller, hence a process of its own. The creator of a user
    namespace (root, or the rootless user) has every capability in it, so joining it is allowed; the uid inside
    may be non-zero (rootless), so CAP_NET_ADMIN survives the exec only through the ambient set.
    """
    user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
    net = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    os.setns(user, os.CLONE_NEWUSER)
    os.setns(net, os.CLONE_NEWNET)
    syscalls.raise_ambient(syscalls.CAP_NET_ADMIN)
    os.execv(NFT, [NFT, "-j", "list", "counters", "table", "inet", FILTER_TABLE])


def serve_proxy(jail: Jail) -> None:
    while True:
        try:
            conn, _peer = jail.proxy_socket.accept()
        except OSError:
            return
        threading.Thread(target=handle_proxy_connection, args=(conn, jail), daemon=True).start()


def handle_proxy_connection(conn: socket.socket, jail: Jail) -> None:
    with conn:
        conn.settimeout(10)
        destination = original_destination(conn)
        line = conn.makefile("rb").readline().decode(errors="replace").strip()
        event(kind="proxy", orig=destination, line=line)
        if line == "COUNTERS":
            reply = read_counters(workload_pid(jail.init_pid))
        elif line.startswith("SIGNAL "):
            jail.signal(signal.Signals[f"SIG{line.split()[1]}"])
            reply = "ok"
        else:
            reply = f"orig {destination}"
        conn.sendall(reply.encode() + b"\n")


def serve_dns_udp(sock: socket.socket) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        event(kind="dns-udp", data=data.decode(errors="replace"), peer=f"{peer[0]}:{peer[1]}")
        sock.sendto(data, peer)


def serve_dns_tcp(listener: socket.socket) -> None:
    while True:
        try:
            conn, _peer = listener.accept()
        except OSError:
            return
        with conn:
            event(kind="dns-tcp", orig=original_destination(conn))
            conn.sendall(b"dns-tcp\n")


def leftover_children() -> list[dict[str, Any]]:
    """Every process whose parent is this driver (there should be none after a failed set-up)."""
    mine = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = dict(line.split(":\t", 1) for line in (entry / "status").read_text().splitlines() if ":\t" in line)
            if status.get("PPid", "").strip() == mine:
                found.append({"pid": int(entry.name), "name": status.get("Name", "").strip()})
    return found


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", action="append", default=[], metavar="SRC=TARGET", help="an extra bind mount")
    parser.add_argument("--ro-bind", action="append", default=[], metavar="SRC=TARGET", help="a read-only one")
    parser.add_argument("--rundir-parent", default=None, help="where the rundir goes (default: /var/tmp)")
    parser.add_argument("--ruleset", type=Path, help="apply this nft ruleset instead of the plan's")
    parser.add_argument("--cwd", default=None, help="the workload's working directory (default: ours)")
    parser.add_argument("--pin", action="append", default=[], metavar="PATH", help="pin every directory on the way")
    parser.add_argument("command", nargs="+")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--nft-counters"]:
        nft_counters_main(int(argv[1]))
    args = parse_args(argv)
    uid, gid = os.getuid(), os.getgid()
    identity = Identity(uid, gid)
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK | os.X_OK) else None
    if args.rundir_parent:
        base = Path(args.rundir_parent)
    rundir = Path(tempfile.mkdtemp(prefix="boundary-jail-driver-", dir=base))
    try:
        rundir.chmod(0o755)
        (rundir / "resolv.conf").write_text(RESOLV_CONF)
        (rundir / "hosts").write_text(HOSTS)
        binds = [
            BindRequest(str(rundir / "resolv.conf"), "/etc/resolv.conf"),
            BindRequest(str(rundir / "hosts"), "/etc/hosts"),
        ]
        for readonly, texts in ((False, args.bind), (True, args.ro_bind)):
            for text in texts:
                source, _, target = text.partition("=")
                binds.append(BindRequest(source, target, readonly))
        # Probes run the venv's python from the checkout: shown read-only when a clone lies in /tmp.
        binds += [BindRequest(str(path), str(path), True) for path in hidden_checkout()]
        cwd = args.cwd or os.getcwd()
        try:
            mounts = mount_plan(host_path, os.environ, cwd, binds, identity, pinned=args.pin)
        except UsageError as e:
            event(kind="plan-error", message=str(e))
            return 125
        spec = JailSpec(
            argv=tuple(args.command),
            env=dict(os.environ),
            cwd=cwd,
            invoker=identity,
            workload=identity,
            ruleset=args.ruleset.read_text() if args.ruleset else nft_ruleset(),
            mounts=mounts,
        )
        try:
            jail = start_jail(spec)  # forks: no thread may exist before this
        except JailError as e:
            event(kind="jail-error", message=str(e), leftovers=leftover_children())
            return 125
        event(
            kind="started",
            rundir=str(rundir),  # removed when the driver exits, unless it is killed: then the test does it
            helper_pid=jail.helper_pid,
            init_pid=jail.init_pid,
            proxy_proto=jail.proxy_socket.proto,
            dns_tcp_proto=jail.dns_tcp_socket.proto,
            proxy_address=list(jail.proxy_socket.getsockname()),
            dns_udp_address=list(jail.dns_udp_socket.getsockname()),
        )
        threading.Thread(target=serve_proxy, args=(jail,), daemon=True).start()
        threading.Thread(target=serve_dns_udp, args=(jail.dns_udp_socket,), daemon=True).start()
        threading.Thread(target=serve_dns_tcp, args=(jail.dns_tcp_socket,), daemon=True).start()
        _pid, status = os.waitpid(jail.helper_pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
        event(kind="exited", code=code)
        return code
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
