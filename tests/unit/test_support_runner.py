"""The runner's pure parts: permission arithmetic, path exposure planning and run environments."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from boundary.jail.plan import HIDDEN_TREES
from tests.support.runner import (
    blocking_ancestor,
    checkout_shown,
    expose_script,
    hidden_below,
    make_user_dir,
    may_traverse,
    outermost,
    run_env,
    shared_user_dir,
    tmp_base,
    topmost_process,
)
from tests.support.tools import repo_root

UID, GID = 65534, 65534


@pytest.mark.parametrize(
    ("mode", "owner", "group", "uid", "gids", "expected"),
    [
        (0o755, 0, 0, UID, {GID}, True),  # other x
        (0o700, 0, 0, UID, {GID}, False),  # root's home
        (0o750, 0, GID, UID, {GID}, True),  # group x
        (0o705, 0, GID, UID, {GID}, False),  # group class chosen, it lacks x even though other has it
        (0o070, UID, 0, UID, {GID}, False),  # owner class chosen, it lacks x
        (0o100, UID, 0, UID, {GID}, True),  # owner x
        (0o000, 5, 5, 0, set(), True),  # root searches anything
    ],
)
def test_may_traverse_uses_exactly_one_permission_class(
    mode: int, owner: int, group: int, uid: int, gids: set[int], expected: bool
) -> None:
    assert may_traverse(stat.S_IFDIR | mode, owner, group, uid, gids) is expected


def _fake_stat(modes: dict[str, int]) -> Callable[[Path], os.stat_result]:
    def stat_fn(path: Path) -> os.stat_result:
        mode = modes.get(str(path), 0o755)
        return os.stat_result((stat.S_IFDIR | mode, 0, 0, 1, 0, 0, 0, 0, 0, 0))

    return stat_fn


def test_blocking_ancestor_is_none_when_every_ancestor_is_searchable() -> None:
    assert blocking_ancestor(Path("/work/main"), UID, {GID}, _fake_stat({})) is None


def test_blocking_ancestor_is_the_topmost_blocked_directory() -> None:
    """A tmpfs over the topmost blocked ancestor unblocks everything below it."""
    modes = {"/root": 0o700, "/root/ci": 0o700}
    found = blocking_ancestor(Path("/root/ci/repo"), UID, {GID}, _fake_stat(modes))
    assert found == Path("/root")


def test_blocking_ancestor_ignores_the_path_itself() -> None:
    """Only ancestors can be covered: the target's own mode travels with its bind mount."""
    found = blocking_ancestor(Path("/work/main"), UID, {GID}, _fake_stat({"/work/main": 0o700}))
    assert found is None


def test_outermost_drops_duplicates_and_nested_paths_keeping_order() -> None:
    paths = [Path("/r/repo"), Path("/r/repo/.venv"), Path("/v/venv"), Path("/r/repo")]
    assert outermost(paths) == [Path("/r/repo"), Path("/v/venv")]


def test_expose_script_stages_covers_and_rebinds_in_that_order() -> None:
    """Bind each target aside, cover the blocked ancestor, rebind at the original path, then exec."""
    script = expose_script([Path("/root/ci/repo")], [Path("/root")], Path("/var/tmp/s"), Path("/root/ci/repo"))
    assert script.splitlines() == [
        "set -eu",
        "umask 022",
        "mkdir -p /var/tmp/s/0",
        "mount --bind /root/ci/repo /var/tmp/s/0",
        "mount -t tmpfs -o mode=0755 boundary-expose /root",
        "mkdir -p /root/ci/repo",
        "mount --bind /var/tmp/s/0 /root/ci/repo",
        "umount -l /var/tmp/s/0",
        "cd /root/ci/repo",
        "unset OLDPWD PWD",
        'exec "$@"',
    ]


def test_expose_script_quotes_paths() -> None:
    script = expose_script([Path("/root/a b")], [Path("/root")], Path("/s"), Path("/"))
    assert "mount --bind '/root/a b' /s/0" in script


def test_rootless_env_is_clean_but_keeps_path() -> None:
    base = {"PATH": "/usr/bin:/bin", "SSL_CERT_FILE": "/etc/ssl/x", "HOME": "/root"}
    env = run_env(Path("/h"), rootless=True, base=base, extra={"FOO": "1"})
    assert env["PATH"] == "/usr/bin:/bin"
    assert env["HOME"] == "/h"
    assert env["XDG_STATE_HOME"] == "/h/.local/state"
    assert env["FOO"] == "1"
    assert "SSL_CERT_FILE" not in env


def test_rootful_env_inherits_but_moves_home_and_xdg_dirs() -> None:
    base = {"PATH": "/bin", "SSL_CERT_FILE": "/etc/ssl/x", "HOME": "/root", "XDG_CONFIG_HOME": "/root/.config"}
    env = run_env(Path("/h"), rootless=False, base=base, extra=None)
    assert env["SSL_CERT_FILE"] == "/etc/ssl/x"
    assert env["HOME"] == "/h"
    assert env["XDG_CONFIG_HOME"] == "/h/.config"


def test_extra_env_wins_over_the_defaults() -> None:
    env = run_env(Path("/h"), rootless=True, base={}, extra={"HOME": "/elsewhere", "PATH": "/p"})
    assert env["HOME"] == "/elsewhere"
    assert env["PATH"] == "/p"


def test_tmp_base_is_not_a_directory_the_jail_hides() -> None:
    """boundary's jail covers /tmp and /run with a tmpfs: test files there would vanish for the jailed command."""
    base = tmp_base().resolve()
    if "BOUNDARY_TEST_TMPDIR" not in os.environ:
        assert not base.is_relative_to("/tmp")
        assert not base.is_relative_to("/run")


def test_a_shared_user_dir_is_world_writable_and_gone_afterwards() -> None:
    with shared_user_dir("boundary-test-shared-") as path:
        (path / "file").write_text("x")
        assert stat.S_IMODE(path.stat().st_mode) == 0o777
    assert not path.exists()


def test_make_user_dir_is_world_searchable_and_owned_by_the_rootless_user(tmp_path: Path) -> None:
    path = make_user_dir(parent=tmp_path)
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o755
    if os.geteuid() == 0:
        assert st.st_uid != 0
    else:
        assert st.st_uid == os.getuid()


@pytest.mark.parametrize(
    ("parents", "expected"),
    [
        ({10: 1, 11: 10, 12: 11}, 10),  # boundary -> helper -> init
        ({10: 1}, 10),
        ({10: 1, 20: 1}, None),  # two unrelated runs: ambiguous
        ({}, None),
    ],
)
def test_topmost_process_is_the_one_whose_parent_is_outside_the_set(
    parents: dict[int, int], expected: int | None
) -> None:
    assert topmost_process(set(parents), parents.__getitem__) == expected


@pytest.mark.parametrize(
    ("path", "hidden"),
    [("/tmp/clone", True), ("/tmp", False), ("/var/tmp/clone", False), ("/run/user/0/x", True), ("/tmpx/a", False)],
)
def test_hidden_below_means_strictly_inside_a_hidden_tree(path: str, hidden: bool) -> None:
    """A checkout strictly inside /tmp or /run is hidden in the jail; /tmp itself, or a look-alike, is not."""
    assert hidden_below(Path(path), [Path("/tmp"), Path("/run")]) is hidden


def test_checkout_shown_binds_the_checkout_only_for_run_and_only_where_hidden() -> None:
    """Other commands pass unchanged; `run` gets a read-only bind of the checkout exactly when it lies under
    a tree the jail hides (so a clone in /tmp can run its own suite)."""
    assert checkout_shown(["policy", "check", "p.yaml"]) == ["policy", "check", "p.yaml"]
    args = checkout_shown(["run", "--policy", "p.yaml", "--", "true"])
    binds = [args[i + 1] for i, arg in enumerate(args) if arg == "--bind"]
    assert args[-4:] == ["--policy", "p.yaml", "--", "true"] and args[0] == "run"
    checkout_hidden = hidden_below(repo_root().resolve(), [Path(t).resolve() for t, _ in HIDDEN_TREES])
    assert (f"{repo_root().resolve()}:ro" in binds) is checkout_hidden


def test_a_run_never_writes_to_the_ci_jobs_step_summary() -> None:
    base = {"PATH": "/usr/bin", "GITHUB_STEP_SUMMARY": "/job/summary.md"}
    assert "GITHUB_STEP_SUMMARY" not in run_env(Path("/h"), rootless=False, base=base, extra=None)
    wanted = run_env(Path("/h"), rootless=False, base=base, extra={"GITHUB_STEP_SUMMARY": "/t/s.md"})
    assert wanted["GITHUB_STEP_SUMMARY"] == "/t/s.md"
