"""The jail's plan, as data: the nft ruleset, resolv.conf, hosts, the mounts and the workload's environment.

Pure: nothing here touches the system. `jail.helper` applies the plan inside the new namespaces.

Theory of operation: the jail's only interface is `lo` and `local default dev lo` makes every IPv4 destination
local, so every `connect()` reaches the nat output chain below. TCP to anything outside 127/8 is redirected to
the proxy's socket, DNS (UDP and TCP port 53, any server) to the fake DNS; the filter chain drops everything else
(other UDP, ICMP, IPv6, anything not on `lo`) with named counters so a drop can be explained.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from boundary.errors import UsageError

PROXY_PORT = 15001
DNS_PORT = 53
LOOPBACK = "127.0.0.1"

# Variables that name a CA bundle. Inside the jail each points at the combined bundle (system CAs + the run's
# CA), so every client that honours one of them trusts the proxy. The system bundle path itself is also
# overmounted, which covers tools that read the system store and variables nobody listed here.
CA_BUNDLE_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "AWS_CA_BUNDLE",
    "HTTPLIB2_CA_CERTS",
    "NIX_SSL_CERT_FILE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "DENO_CERT",
    "BUN_CA_BUNDLE_PATH",
    "CARGO_HTTP_CAINFO",
    "npm_config_cafile",
)

# An outer proxy is unreachable from the jail and would only confuse clients: every connection already goes
# through boundary.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "FTP_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "ftp_proxy",
)


def nft_ruleset(proxy_port: int = PROXY_PORT, dns_port: int = DNS_PORT) -> str:
    """The jail's whole ruleset, applied atomically with `nft -f -` inside the jail's netns."""
    return f"""\
table ip boundary_nat {{
    chain output {{
        type nat hook output priority -100; policy accept;
        udp dport 53 redirect to :{dns_port}
        tcp dport 53 ip daddr != {LOOPBACK} redirect to :{dns_port}
        meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :{proxy_port}
    }}
}}
table inet boundary_filter {{
    counter dropped_not_lo {{ }}
    counter dropped_ipv6 {{ }}
    counter dropped_udp {{ }}
    counter dropped_icmp {{ }}
    counter dropped_other {{ }}
    chain output {{
        type filter hook output priority 0; policy drop;
        oifname != "lo" counter name dropped_not_lo drop
        ct state established,related accept
        meta nfproto ipv6 counter name dropped_ipv6 drop
        ip daddr 127.0.0.0/8 meta l4proto tcp accept
        ip daddr {LOOPBACK} udp dport {dns_port} accept
        meta l4proto udp counter name dropped_udp drop
        meta l4proto icmp counter name dropped_icmp drop
        counter name dropped_other drop
    }}
}}
"""


RESOLV_CONF = f"""\
# Written by boundary: every name is answered by the run's fake DNS; nothing leaves the machine.
nameserver {LOOPBACK}
options timeout:2 attempts:2
"""

# Only localhost: a host /etc/hosts entry must not send the workload straight to an address.
HOSTS = f"""\
{LOOPBACK}\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the workload runs as, in ids that are mapped identically inside the jail's user namespace."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str | None = None
    name: str | None = None


def id_map(inner_outer: Mapping[int, int]) -> str:
    """`/proc/PID/uid_map` text: one `inside outside 1` line per id."""
    return "".join(f"{inner} {outer} 1\n" for inner, outer in sorted(inner_outer.items()))


def user_maps(invoker: Identity, workload: Identity) -> tuple[str, str]:
    """uid_map and gid_map for the jail's user namespace: every id maps to itself.

    Identity maps keep file ownership and `id` truthful inside the jail and keep the workload from looking like
    root to tools that care. Rootless, the kernel allows exactly one line, the invoker's own id. As root, the
    helper keeps 0 and the workload's user and groups are added when it runs as someone else.
    """
    if invoker.uid != 0:
        return id_map({invoker.uid: invoker.uid}), id_map({invoker.gid: invoker.gid})
    uids = {0: 0, workload.uid: workload.uid}
    gids = {0: 0, workload.gid: workload.gid} | {g: g for g in workload.groups}
    return id_map(uids), id_map(gids)


def workload_env(base: Mapping[str, str], bundle_path: str, workload: Identity, invoker: Identity) -> dict[str, str]:
    """The workload's environment: the caller's, minus outer proxies, with every CA variable on our bundle."""
    env = {k: v for k, v in base.items() if k not in PROXY_VARIABLES}
    for name in CA_BUNDLE_VARIABLES:
        env[name] = bundle_path
    if workload.uid != invoker.uid and workload.home is not None:
        env["HOME"] = workload.home
        if workload.name is not None:
            env["USER"] = env["LOGNAME"] = workload.name
    return env


# --- the jail's filesystem -------------------------------------------------------------------------------------
#
# A network namespace does not isolate filesystem unix sockets (docker.sock, ssh-agent, D-Bus, X11 in
# /tmp/.X11-unix): an escape through one was reproduced. The trees where they live are hidden behind empty
# tmpfs mounts; what the workload needs from them (its working directory, `--bind` paths, boundary's own files)
# is bound back on top. Sources are opened before anything is covered, so a source under a hidden tree (the
# rundir in /tmp) still works.
#
# Every path in the plan is canonical (symlinks resolved by the caller's lookup), so a symlinked tree
# (/var/run -> /run) is covered once, at its real place, and a mount never follows a link somewhere else.
#
# Order: the pins (below), binds whose target lies outside every hidden tree, then the tmpfs covers (outer
# first), then the binds inside them (outer first), each after the directories or file it needs as a mount point.
#
# Pins keep a path's place: a directory that is a mount point in the caller's mount namespace can be neither
# renamed nor removed (rename and rmdir fail with EBUSY; the kernel asks whether the *dentry* is a mount point
# there, so a pin still counts when a later tmpfs covers it, and whatever path the workload takes to it). Every
# directory on the way to the audit log is bound on itself, read-write and recursively, before anything else:
# a workload that may write a log's parent directory could otherwise rename the log's directory (or any above)
# away and make a new one holding a forged log at the same path. (A read-only bind of the log's directory would
# stop renames inside it, not of it, and would make a project that holds its log read-only.)

# (tree, mode of the empty tmpfs). `$XDG_RUNTIME_DIR` and `$TMPDIR` are added per run, owned by the workload,
# mode 0700.
HIDDEN_TREES = (("/tmp", 0o1777), ("/run", 0o755), ("/var/run", 0o755), ("/dev/shm", 0o1777))

# The host's sysfs is writable by a root-run workload even without capabilities (file modes only: e.g.
# /sys/kernel/mm/*, cgroup files); a fresh sysfs of the jail's netns, read-only, shows no host interface either.
SYSFS = "/sys"

# Writable by uid 0 through plain file modes, no capability checked: kernel-wide sysctls (vm.*, kernel.*), the
# netns's own net.*, sysrq. Bound read-only over the jail's fresh /proc (the list bubblewrap uses).
PROC_READONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")

PathKind = Literal["dir", "file", "missing"]


@dataclass(frozen=True, slots=True)
class HostPath:
    """What the host has at a path: its canonical form (every symlink resolved) and what is there."""

    canonical: str
    kind: PathKind


Lookup = Callable[[str], HostPath]


@dataclass(frozen=True, slots=True)
class BindRequest:
    """A host path to show in the jail: `source` (which must exist) appears at `target`."""

    source: str
    target: str
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class FreshMount:
    """Mount a new, empty filesystem on `target` (nosuid, nodev)."""

    target: str
    fstype: str
    options: str = ""
    readonly: bool = False


@dataclass(frozen=True, slots=True)
class MakeDir:
    """Create directory `path` (mode 0755) as a mount point inside a fresh tmpfs; an existing one is kept."""

    path: str


@dataclass(frozen=True, slots=True)
class MakeFile:
    """Create empty file `path` (mode 0644) as a mount point inside a fresh tmpfs; an existing one is kept."""

    path: str


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind host `source` (opened before any mount) on `target`; read-only binds do not carry sub-mounts."""

    source: str
    target: str
    readonly: bool = False

    @property
    def recursive(self) -> bool:
        # A read-only remount applies to one mount only: sub-mounts of a read-only bind would stay writable.
        return not self.readonly


@dataclass(frozen=True, slots=True)
class Pin:
    """Bind host directory `path` on itself (recursively, read-write, before any other mount): from then on nothing
    in the jail can rename or remove it (EBUSY), and nothing else about it changes."""

    path: str


@dataclass(frozen=True, slots=True)
class Mask:
    """Hide one host socket outside the hidden trees: /dev/null bound over it (skipped if it is gone by then)."""

    target: str


MountAction = Pin | FreshMount | MakeDir | MakeFile | Bind | Mask

# Where sockets that lead out of the jail live outside /tmp and /run: under the home, found at start (depth
# limited). SSH ControlMaster connections (a shell on remote hosts), Docker Desktop / Colima / Rancher / OrbStack
# daemons (root on a VM), gpg-agent's fallback place.
HOME_SOCKET_DIRS = (
    (".ssh", 2),
    (".docker", 4),
    (".gnupg", 2),
    (".colima", 4),
    (".lima", 4),
    (".rd", 3),
    (".orbstack", 4),
    (".local/share/containers", 4),
)

_BIND_MODES = {"ro": True, "rw": False}


def parse_bind(text: str) -> BindRequest:
    """`--bind PATH`, `PATH:ro` or `PATH:rw`: the host path shown at the same place in the jail."""
    path, sep, mode = text.rpartition(":")
    readonly = _BIND_MODES.get(mode) if sep else None
    if readonly is None:
        path, readonly = text, False
    if not path:
        raise UsageError(f"--bind '{text}': no path given (use --bind PATH or --bind PATH:ro)")
    if not posixpath.isabs(path):
        raise UsageError(f"--bind '{text}': the path must be absolute")
    return BindRequest(path, path, readonly)


def _inside(path: str, tree: str) -> bool:
    """Whether `path` is `tree` or lies below it (both canonical)."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _depth(path: str) -> int:
    return len([part for part in path.split("/") if part])


def _ancestors_below(path: str, root: str) -> list[str]:
    """The directories strictly between `root` and `path`, outermost first."""
    found = []
    parent = posixpath.dirname(path)
    while parent != root and _inside(parent, root):
        found.append(parent)
        parent = posixpath.dirname(parent)
    return found[::-1]


def _hidden_trees(lookup: Lookup, env: Mapping[str, str], cwd: str, workload: Identity) -> list[FreshMount]:
    candidates = [(path, f"mode={mode:o}", False) for path, mode in HIDDEN_TREES]
    private = f"mode=700,uid={workload.uid},gid={workload.gid}"
    runtime_dir = env.get("XDG_RUNTIME_DIR", "")
    if posixpath.isabs(runtime_dir):  # the XDG spec: a relative value is to be ignored
        candidates.append((runtime_dir, private, False))
    # $TMPDIR holds sockets too (ssh-agent's): hidden like the runtime dir, and kept as an empty directory so
    # the programs it is set for still find it; never when it holds the working directory or the home.
    tmpdir = env.get("TMPDIR", "")
    if posixpath.isabs(tmpdir):
        candidates.append((tmpdir, private, True))
    keep = [lookup(path).canonical for path in (cwd, env.get("HOME", "")) if posixpath.isabs(path)]
    trees: dict[str, FreshMount] = {}
    for path, options, spare_ancestors in candidates:
        found = lookup(path)
        if found.kind != "dir" or found.canonical in trees:
            continue  # nothing to hide, or the same tree through a symlink (/var/run -> /run)
        if spare_ancestors and any(_inside(kept, found.canonical) for kept in keep):
            continue
        if found.canonical == "/":
            raise UsageError(f"'{path}' leads to '/': boundary will not hide the whole filesystem (check the link)")
        trees[found.canonical] = FreshMount(found.canonical, "tmpfs", options)
    return sorted(trees.values(), key=lambda mount: _depth(mount.target))


def _pins(lookup: Lookup, paths: Sequence[str]) -> list[Pin]:
    """A pin for each directory strictly between `/` and each path (canonical), outer first, each once."""
    directories: dict[str, None] = {}
    for path in paths:
        for directory in _ancestors_below(lookup(path).canonical, "/"):
            directories.setdefault(directory)
    return [Pin(directory) for directory in sorted(directories, key=_depth)]


def _resolve_bind(lookup: Lookup, request: BindRequest) -> tuple[Bind, PathKind]:
    source = lookup(request.source)
    if source.kind == "missing":
        raise UsageError(f"bind source '{request.source}' does not exist")
    return Bind(source.canonical, lookup(request.target).canonical, request.readonly), source.kind


def mount_plan(
    lookup: Lookup,
    env: Mapping[str, str],
    cwd: str,
    binds: Sequence[BindRequest],
    workload: Identity,
    sockets: Sequence[str] = (),
    pinned: Sequence[str] = (),
) -> tuple[MountAction, ...]:
    """Every mount the jail needs, in order (see the section comment above).

    `cwd` is bound back read-write when it lies strictly inside a hidden tree and no bind already shows it: a
    project under /tmp stays usable. A working directory that *is* a hidden tree starts empty. Every directory
    on the way to a path in `pinned` (below `/`, canonical) is pinned first.
    """
    pins = _pins(lookup, pinned)
    resolved = [_resolve_bind(lookup, request) for request in binds]
    # `--bind /tmp` asks to see the host's /tmp: that tree is simply not covered. (Binding it back over the
    # tmpfs would not work either: the source, opened before, is the dentry the tmpfs is then mounted on, and a
    # bind from it sees the tmpfs.)
    shown = {bind.target for bind, _kind in resolved if bind.source == bind.target}
    trees = [tree for tree in _hidden_trees(lookup, env, cwd, workload) if tree.target not in shown]
    roots = [tree.target for tree in trees]
    here = lookup(cwd)
    if (
        here.kind == "dir"
        and any(_inside(here.canonical, root) and here.canonical != root for root in roots)
        and not any(_inside(here.canonical, bind.target) for bind, _kind in resolved)
    ):
        resolved.append((Bind(here.canonical, here.canonical), "dir"))
    resolved.sort(key=lambda item: _depth(item[0].target))

    def hidden_root(path: str) -> str | None:
        inside = [root for root in roots if _inside(path, root)]
        return max(inside, key=_depth) if inside else None

    actions: list[MountAction] = [*pins, FreshMount(SYSFS, "sysfs", readonly=True)]
    actions += [bind for bind, _kind in resolved if hidden_root(bind.target) is None]
    made = set(roots)
    bound: list[str] = []  # targets already bound inside hidden trees: what lies below them exists

    def mount_point(path: str, root: str, kind: PathKind) -> None:
        for directory in _ancestors_below(path, root):
            if directory not in made and not any(_inside(directory, target) for target in bound):
                actions.append(MakeDir(directory))
                made.add(directory)
        if path not in made and not any(_inside(path, target) for target in bound):
            actions.append(MakeDir(path) if kind == "dir" else MakeFile(path))
            made.add(path)

    for tree in trees:
        outer = hidden_root(posixpath.dirname(tree.target))
        if outer is not None:
            made.discard(tree.target)
            mount_point(tree.target, outer, "dir")
        actions.append(tree)
    for bind, kind in resolved:
        root = hidden_root(bind.target)
        if root is not None:
            mount_point(bind.target, root, kind)
            actions.append(bind)
            bound.append(bind.target)
    # Last, so no bind brings them back: host sockets found outside the hidden trees (HOME_SOCKET_DIRS).
    actions += [Mask(path) for path in sockets if hidden_tree_of(actions, path) is None]
    return tuple(actions)


def hidden_tree_of(actions: Sequence[MountAction], path: str) -> str | None:
    """The hidden tree that leaves `path` (canonical) out of the jail's view, or None when the jail shows it:
    the last tmpfs or bind mounted on `path` or above it decides."""
    covering: str | None = None
    for action in actions:
        if isinstance(action, FreshMount | Bind) and _inside(path, action.target):
            hides = isinstance(action, FreshMount) and action.fstype == "tmpfs" and action.target != path
            covering = action.target if hides else None
    return covering
