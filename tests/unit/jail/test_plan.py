"""The jail plan: ruleset text, resolver files, id maps, the workload's environment."""

import pytest

from boundary.errors import UsageError
from boundary.jail import plan
from boundary.jail.plan import Identity


def test_ruleset_redirects_all_tcp_not_just_web_ports() -> None:
    """Every TCP destination outside 127/8 goes to the proxy, whatever its port."""
    text = plan.nft_ruleset(15001, 53)
    assert "meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :15001" in text
    assert "dport 443" not in text and "dport 80" not in text


def test_ruleset_sends_dns_to_any_server_to_the_fake_dns() -> None:
    """A workload that asks its own DNS server (UDP or TCP) still reaches only the fake DNS."""
    text = plan.nft_ruleset(15001, 5353)
    assert "udp dport 53 redirect to :5353" in text
    assert "tcp dport 53 ip daddr != 127.0.0.1 redirect to :5353" in text


@pytest.mark.parametrize(
    "rule",
    [
        "type filter hook output priority 0; policy drop;",
        'oifname != "lo" counter name dropped_not_lo drop',
        "meta nfproto ipv6 counter name dropped_ipv6 drop",
        "meta l4proto udp counter name dropped_udp drop",
        "meta l4proto icmp counter name dropped_icmp drop",
    ],
)
def test_ruleset_drops_everything_else_with_a_counter(rule: str) -> None:
    """IPv6, other UDP (QUIC included), ICMP and anything not on lo are dropped and counted."""
    assert rule in plan.nft_ruleset()


def test_resolv_conf_names_only_the_jail_dns() -> None:
    """The only nameserver is the fake DNS on the jail's loopback."""
    lines = [line for line in plan.RESOLV_CONF.splitlines() if line.startswith("nameserver")]
    assert lines == ["nameserver 127.0.0.1"]


def test_hosts_has_only_localhost() -> None:
    """No host /etc/hosts entry can point the workload at an address."""
    names = {name for line in plan.HOSTS.splitlines() for name in line.split()[1:]}
    assert names == {"localhost", "ip6-localhost", "ip6-loopback"}


@pytest.mark.parametrize(
    ("invoker", "workload", "uid_map", "gid_map"),
    [
        (Identity(1000, 1000), Identity(1000, 1000), "1000 1000 1\n", "1000 1000 1\n"),
        (Identity(0, 0), Identity(0, 0), "0 0 1\n", "0 0 1\n"),
        (
            Identity(0, 0),
            Identity(1000, 100, (100, 27)),
            "0 0 1\n1000 1000 1\n",
            "0 0 1\n27 27 1\n100 100 1\n",
        ),
    ],
)
def test_user_maps_are_identity_maps(invoker: Identity, workload: Identity, uid_map: str, gid_map: str) -> None:
    """Ids map to themselves; rootless gets exactly its own id, root adds the workload's user and groups."""
    assert plan.user_maps(invoker, workload) == (uid_map, gid_map)


def test_workload_env_points_every_ca_variable_at_the_bundle() -> None:
    """Every known CA variable leads to the combined bundle, set or not before."""
    me = Identity(1000, 1000)
    env = plan.workload_env({"SSL_CERT_FILE": "/elsewhere.pem", "PATH": "/bin"}, "/b.crt", me, me)
    assert all(env[name] == "/b.crt" for name in plan.CA_BUNDLE_VARIABLES)
    assert env["PATH"] == "/bin"


def test_workload_env_drops_outer_proxies() -> None:
    """An outer proxy is unreachable from the jail; its variables are not passed in."""
    me = Identity(1000, 1000)
    env = plan.workload_env({"HTTPS_PROXY": "http://corp:3128", "no_proxy": "x", "A": "1"}, "/b", me, me)
    assert not set(plan.PROXY_VARIABLES) & set(env)
    assert env["A"] == "1"


def test_workload_env_sets_home_of_another_user() -> None:
    """Run as another user (root with --user), HOME and USER are that user's."""
    root = Identity(0, 0)
    alice = Identity(1000, 1000, (), "/home/alice", "alice")
    env = plan.workload_env({"HOME": "/root", "USER": "root"}, "/b", alice, root)
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == ("/home/alice", "alice", "alice")


# --- the jail's filesystem --------------------------------------------------------------------------------------

ME = Identity(1000, 1000)
TMPFS_TMP = plan.FreshMount("/tmp", "tmpfs", "mode=1777")
TMPFS_RUN = plan.FreshMount("/run", "tmpfs", "mode=755")
TMPFS_SHM = plan.FreshMount("/dev/shm", "tmpfs", "mode=1777")
SYSFS = plan.FreshMount("/sys", "sysfs", readonly=True)
RESOLV = plan.BindRequest("/tmp/boundary-x/resolv.conf", "/etc/resolv.conf")


def host(*dirs: str, files: tuple[str, ...] = (), links: dict[str, str] | None = None) -> plan.Lookup:
    """A fake host: these directories and files exist, `links` maps a path prefix to its canonical place."""

    def lookup(path: str) -> plan.HostPath:
        for link, real in (links or {}).items():
            if path == link or path.startswith(link + "/"):
                path = real + path[len(link) :]
        kind: plan.PathKind = "dir" if path in dirs else "file" if path in files else "missing"
        return plan.HostPath(path, kind)

    return lookup


STANDARD = host("/tmp", "/run", "/dev/shm", "/home/me/proj", links={"/var/run": "/run"})


def test_the_socket_trees_are_hidden_once_each_behind_a_tmpfs() -> None:
    """/tmp, /run and /dev/shm get an empty tmpfs; /var/run, a symlink to /run, is not mounted a second time.
    A fresh read-only sysfs comes first."""
    actions = plan.mount_plan(STANDARD, {}, "/home/me/proj", [], ME)
    assert actions == (SYSFS, TMPFS_TMP, TMPFS_RUN, TMPFS_SHM)


def test_a_var_run_that_is_a_real_directory_gets_its_own_tmpfs() -> None:
    """Without the usual symlink, /var/run is a tree of its own and is hidden too."""
    actions = plan.mount_plan(host("/tmp", "/run", "/var/run"), {}, "/", [], ME)
    assert plan.FreshMount("/var/run", "tmpfs", "mode=755") in actions


def test_a_missing_tree_is_skipped() -> None:
    """Nothing is mounted where the host has no directory (a tmpfs needs a mount point)."""
    assert plan.mount_plan(host("/tmp"), {}, "/", [], ME) == (SYSFS, TMPFS_TMP)


def test_the_runtime_dir_under_run_is_made_and_hidden_owned_by_the_workload() -> None:
    """$XDG_RUNTIME_DIR under /run: /run's tmpfs first, then the directory is made in it and gets its own tmpfs,
    mode 0700, owned by the workload, so programs that expect it still find it (empty)."""
    lookup = host("/tmp", "/run", "/run/user/1000")
    actions = plan.mount_plan(lookup, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/", [], ME)
    assert actions == (
        SYSFS,
        TMPFS_TMP,
        TMPFS_RUN,
        plan.MakeDir("/run/user"),
        plan.MakeDir("/run/user/1000"),
        plan.FreshMount("/run/user/1000", "tmpfs", "mode=700,uid=1000,gid=1000"),
    )


@pytest.mark.parametrize("value", ["", "relative/dir", "/no/such/dir"])
def test_a_runtime_dir_that_is_unset_relative_or_missing_adds_nothing(value: str) -> None:
    """The XDG spec says a relative value is to be ignored; a missing directory has nothing to hide."""
    assert plan.mount_plan(host("/tmp"), {"XDG_RUNTIME_DIR": value}, "/", [], ME) == (SYSFS, TMPFS_TMP)


PRIVATE_TMPFS = "mode=700,uid=1000,gid=1000"


@pytest.mark.parametrize(
    ("tmpdir", "expected"),
    [
        # Outside the standard trees (ssh-agent puts its socket in $TMPDIR): hidden, kept as an empty directory.
        ("/home/me/tmp", (SYSFS, TMPFS_TMP, plan.FreshMount("/home/me/tmp", "tmpfs", PRIVATE_TMPFS))),
        # Inside /tmp: made in /tmp's tmpfs and given its own, so programs told to use it find it.
        (
            "/tmp/me",
            (SYSFS, TMPFS_TMP, plan.MakeDir("/tmp/me"), plan.FreshMount("/tmp/me", "tmpfs", PRIVATE_TMPFS)),
        ),
        ("/tmp", (SYSFS, TMPFS_TMP)),  # the usual value: /tmp is hidden anyway
        ("relative", (SYSFS, TMPFS_TMP)),
        ("/no/such/dir", (SYSFS, TMPFS_TMP)),
        ("/home/me", (SYSFS, TMPFS_TMP)),  # it holds the home: never hidden
        ("/home/me/proj", (SYSFS, TMPFS_TMP)),  # it is the working directory: never hidden
    ],
)
def test_tmpdir_is_hidden_like_the_runtime_dir_unless_it_holds_the_work(tmpdir: str, expected: tuple[object]) -> None:
    """$TMPDIR, wherever it is, gets an empty private tmpfs; not when it is (or holds) the working directory or
    the home, which must stay visible."""
    lookup = host("/tmp", "/tmp/me", "/home/me", "/home/me/tmp", "/home/me/proj")
    env = {"TMPDIR": tmpdir, "HOME": "/home/me"}
    assert plan.mount_plan(lookup, env, "/home/me/proj", [], ME) == expected


def test_a_tree_that_leads_to_the_root_is_refused_naming_it() -> None:
    """A link or variable that resolves to / would hide everything: refused, quoting the value."""
    with pytest.raises(UsageError, match=r"^'/home/me/rt' leads to '/': boundary will not hide"):
        plan.mount_plan(host("/", links={"/home/me/rt": "/"}), {"XDG_RUNTIME_DIR": "/home/me/rt"}, "/", [], ME)


def test_boundarys_files_from_tmp_are_bound_before_tmp_is_hidden() -> None:
    """resolv.conf from a rundir in /tmp onto /etc: a bind outside the hidden trees comes before the tmpfs (its
    source is opened before any mount, so the cover does not matter)."""
    lookup = host("/tmp", files=("/tmp/boundary-x/resolv.conf", "/etc/resolv.conf"))
    actions = plan.mount_plan(lookup, {}, "/", [RESOLV], ME)
    assert actions == (SYSFS, plan.Bind("/tmp/boundary-x/resolv.conf", "/etc/resolv.conf"), TMPFS_TMP)


def test_a_resolv_conf_linked_into_run_is_bound_at_its_real_place_inside_the_fresh_run() -> None:
    """/etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf (systemd-resolved): the link is followed once,
    the file and its directories are made in the fresh /run, and the bind goes there."""
    lookup = host(
        "/run",
        files=("/tmp/boundary-x/resolv.conf", "/run/systemd/resolve/stub-resolv.conf"),
        links={"/etc/resolv.conf": "/run/systemd/resolve/stub-resolv.conf"},
    )
    actions = plan.mount_plan(lookup, {}, "/", [RESOLV], ME)
    assert actions == (
        SYSFS,
        TMPFS_RUN,
        plan.MakeDir("/run/systemd"),
        plan.MakeDir("/run/systemd/resolve"),
        plan.MakeFile("/run/systemd/resolve/stub-resolv.conf"),
        plan.Bind("/tmp/boundary-x/resolv.conf", "/run/systemd/resolve/stub-resolv.conf"),
    )


def test_a_working_directory_under_tmp_is_bound_back_read_write() -> None:
    """`cd /tmp/proj && boundary run ...`: the project is not hidden; its mount point is made in the fresh /tmp."""
    actions = plan.mount_plan(host("/tmp", "/tmp/a/proj"), {}, "/tmp/a/proj", [], ME)
    assert actions == (
        SYSFS,
        TMPFS_TMP,
        plan.MakeDir("/tmp/a"),
        plan.MakeDir("/tmp/a/proj"),
        plan.Bind("/tmp/a/proj", "/tmp/a/proj"),
    )


def test_a_working_directory_that_is_a_hidden_tree_itself_starts_empty() -> None:
    """`cd /tmp && boundary run ...` does not undo the cover: the workload starts in the empty /tmp."""
    assert plan.mount_plan(host("/tmp"), {}, "/tmp", [], ME) == (SYSFS, TMPFS_TMP)


def test_a_working_directory_already_shown_by_a_bind_is_not_bound_again() -> None:
    """A read-only `--bind /tmp/a:ro` keeps /tmp/a/proj read-only: the working directory is not bound on top."""
    lookup = host("/tmp", "/tmp/a", "/tmp/a/proj")
    actions = plan.mount_plan(lookup, {}, "/tmp/a/proj", [plan.BindRequest("/tmp/a", "/tmp/a", True)], ME)
    assert actions == (SYSFS, TMPFS_TMP, plan.MakeDir("/tmp/a"), plan.Bind("/tmp/a", "/tmp/a", readonly=True))


def test_nested_binds_go_outer_first_and_make_nothing_inside_a_bound_host_directory() -> None:
    """`--bind /tmp/a/b` given before `--bind /tmp/a`: /tmp/a is bound first; /tmp/a/b then exists (it is the
    host's), so nothing is created in a host directory."""
    lookup = host("/tmp", "/tmp/a", "/tmp/a/b")
    requests = [plan.BindRequest("/tmp/a/b", "/tmp/a/b"), plan.BindRequest("/tmp/a", "/tmp/a")]
    actions = plan.mount_plan(lookup, {}, "/", requests, ME)
    assert actions == (
        SYSFS,
        TMPFS_TMP,
        plan.MakeDir("/tmp/a"),
        plan.Bind("/tmp/a", "/tmp/a"),
        plan.Bind("/tmp/a/b", "/tmp/a/b"),
    )


def test_binds_follow_links_to_the_real_place() -> None:
    """A bind of a symlink shows its target at the target's real path (the mount would follow it anyway)."""
    lookup = host("/tmp", "/var/tmp/real", links={"/tmp/link": "/var/tmp/real"})
    actions = plan.mount_plan(lookup, {}, "/", [plan.BindRequest("/tmp/link", "/tmp/link")], ME)
    assert actions == (SYSFS, plan.Bind("/var/tmp/real", "/var/tmp/real"), TMPFS_TMP)


def test_a_missing_bind_source_is_refused_naming_it() -> None:
    with pytest.raises(UsageError, match=r"^bind source '/tmp/gone' does not exist$"):
        plan.mount_plan(host("/tmp"), {}, "/", [plan.BindRequest("/tmp/gone", "/tmp/gone")], ME)


def test_read_only_binds_are_not_recursive() -> None:
    """A read-only remount covers one mount: sub-mounts are left out rather than left writable."""
    assert plan.Bind("/a", "/a", readonly=True).recursive is False
    assert plan.Bind("/a", "/a").recursive is True


@pytest.mark.parametrize(
    ("text", "request_"),
    [
        ("/tmp/data", plan.BindRequest("/tmp/data", "/tmp/data")),
        ("/tmp/data:ro", plan.BindRequest("/tmp/data", "/tmp/data", readonly=True)),
        ("/tmp/data:rw", plan.BindRequest("/tmp/data", "/tmp/data")),
        ("/tmp/a:b", plan.BindRequest("/tmp/a:b", "/tmp/a:b")),  # a colon that is not a mode is part of the path
        ("/tmp/a:b:ro", plan.BindRequest("/tmp/a:b", "/tmp/a:b", readonly=True)),
    ],
)
def test_parse_bind(text: str, request_: plan.BindRequest) -> None:
    """`--bind PATH[:ro|:rw]`: the path appears at the same place, read-write unless `:ro`."""
    assert plan.parse_bind(text) == request_


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--bind '': no path given (use --bind PATH or --bind PATH:ro)"),
        (":ro", "--bind ':ro': no path given (use --bind PATH or --bind PATH:ro)"),
        ("data", "--bind 'data': the path must be absolute"),
        ("./data:ro", "--bind './data:ro': the path must be absolute"),
    ],
)
def test_parse_bind_refuses_quoting_the_value(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        plan.parse_bind(text)
    assert str(info.value) == message


def test_proc_read_only_list_covers_sysctls() -> None:
    """/proc/sys (kernel.*, vm.*, the netns's net.*) is among the paths made read-only in the fresh /proc."""
    assert "/proc/sys" in plan.PROC_READONLY


def test_a_bind_of_a_whole_hidden_tree_leaves_it_uncovered() -> None:
    """`--bind /tmp:ro` shows the host's /tmp: no tmpfs there, just the (read-only) bind, before the other
    covers."""
    actions = plan.mount_plan(STANDARD, {}, "/", [plan.BindRequest("/tmp", "/tmp", True)], ME)
    assert actions == (SYSFS, plan.Bind("/tmp", "/tmp", readonly=True), TMPFS_RUN, TMPFS_SHM)


@pytest.mark.parametrize(
    ("path", "hidden"),
    [
        ("/usr/bin/curl", None),  # outside every hidden tree
        ("/tmp/tool", "/tmp"),
        ("/tmp/proj/bin/tool", None),  # the working directory is bound back
        ("/run/user/1000/app", "/run/user/1000"),  # the runtime dir has a tmpfs of its own, inside /run's
        ("/run/other", "/run"),
        ("/tmp", None),  # a hidden tree itself exists (empty)
    ],
)
def test_hidden_tree_of_names_the_tree_that_hides_a_path(path: str, hidden: str | None) -> None:
    """The last tmpfs or bind over a path decides whether the jail shows it."""
    lookup = host("/tmp", "/run", "/run/user/1000", "/tmp/proj")
    actions = plan.mount_plan(lookup, {"XDG_RUNTIME_DIR": "/run/user/1000"}, "/tmp/proj", [], ME)
    assert plan.hidden_tree_of(actions, path) == hidden


def test_host_sockets_outside_the_hidden_trees_are_masked_last() -> None:
    """Sockets found in the home are masked after every bind (so `--bind ~/.ssh` cannot bring one back);
    one already inside a hidden tree needs no mask."""
    binds = [plan.BindRequest("/home/me/.ssh", "/home/me/.ssh")]
    lookup = host("/tmp", "/home/me/.ssh")
    actions = plan.mount_plan(lookup, {}, "/", binds, ME, sockets=["/home/me/.ssh/cm", "/tmp/x.sock"])
    assert actions[-1] == plan.Mask("/home/me/.ssh/cm")
    assert plan.Mask("/tmp/x.sock") not in actions
    assert actions.index(plan.Bind("/home/me/.ssh", "/home/me/.ssh")) < actions.index(plan.Mask("/home/me/.ssh/cm"))


# --- pins: the audit log's place -------------------------------------------------------------------------------


def test_every_directory_on_the_way_to_a_pinned_path_is_pinned_first_outer_first() -> None:
    """`--log /var/tmp/w/logs/audit.jsonl`: /var, /var/tmp, /var/tmp/w and /var/tmp/w/logs become mount points
    before anything else is mounted, so none can be renamed away from inside (not /, which nothing renames)."""
    lookup = host("/tmp", "/var/tmp/w/logs", files=("/var/tmp/w/logs/audit.jsonl",))
    log = plan.BindRequest("/var/tmp/w/logs/audit.jsonl", "/var/tmp/w/logs/audit.jsonl", readonly=True)
    actions = plan.mount_plan(lookup, {}, "/", [log], ME, pinned=["/var/tmp/w/logs/audit.jsonl"])
    assert actions == (
        plan.Pin("/var"),
        plan.Pin("/var/tmp"),
        plan.Pin("/var/tmp/w"),
        plan.Pin("/var/tmp/w/logs"),
        SYSFS,
        plan.Bind("/var/tmp/w/logs/audit.jsonl", "/var/tmp/w/logs/audit.jsonl", readonly=True),
        TMPFS_TMP,
    )


def test_pins_follow_links_to_the_real_place_and_come_once_each() -> None:
    """A path through a link is pinned where it really is; directories shared by two paths are pinned once."""
    lookup = host("/home/me", links={"/h": "/home"})
    actions = plan.mount_plan(lookup, {}, "/", [], ME, pinned=["/h/me/a.jsonl", "/home/me/a.proxy.log"])
    assert [action for action in actions if isinstance(action, plan.Pin)] == [
        plan.Pin("/home"),
        plan.Pin("/home/me"),
    ]


def test_a_log_at_the_top_needs_no_pin() -> None:
    assert plan.mount_plan(host(), {}, "/", [], ME, pinned=["/audit.jsonl"]) == (SYSFS,)


def test_pins_under_a_hidden_tree_come_before_its_cover_and_leave_the_working_directory_read_write() -> None:
    """`cd /tmp/proj && boundary run --log audit.jsonl`: the host's /tmp and /tmp/proj are pinned before /tmp is
    covered (a pin under a cover still counts); the project is still bound back read-write, the log read-only
    on top. No pin is a bind: none makes anything read-only, none shows a hidden tree."""
    lookup = host("/tmp", "/tmp/proj", files=("/tmp/proj/audit.jsonl",))
    log = plan.BindRequest("/tmp/proj/audit.jsonl", "/tmp/proj/audit.jsonl", readonly=True)
    actions = plan.mount_plan(lookup, {}, "/tmp/proj", [log], ME, pinned=["/tmp/proj/audit.jsonl"])
    assert actions == (
        plan.Pin("/tmp"),
        plan.Pin("/tmp/proj"),
        SYSFS,
        TMPFS_TMP,
        plan.MakeDir("/tmp/proj"),
        plan.Bind("/tmp/proj", "/tmp/proj"),
        plan.Bind("/tmp/proj/audit.jsonl", "/tmp/proj/audit.jsonl", readonly=True),
    )
    assert plan.hidden_tree_of(actions, "/tmp/other") == "/tmp"
