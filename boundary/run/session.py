"""One `boundary run`: check every input, build the jail, serve it, return the workload's exit code.

Order matters for start-up time: everything that can fail on bad input is checked first (nothing has started
yet), then the jail is forked while the process is still single-threaded, and only then is mitmproxy imported —
the workload is already running and its first connections wait in the proxy socket's backlog.

Fail closed: if the proxy cannot be imported or started, or its master ends while the workload runs, the jail has
no way out; the run ends with a `ProxyError` (one line, exit 125) and the workload is killed.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from boundary import audit
from boundary.ca import RunCA, combined_bundle, find_system_bundle, generate_ca, join_pem
from boundary.errors import BoundaryError, UsageError
from boundary.jail import helper, mounts
from boundary.jail.plan import (
    HOSTS,
    RESOLV_CONF,
    BindRequest,
    Identity,
    MountAction,
    hidden_tree_of,
    mount_plan,
    nft_ruleset,
    parse_bind,
    workload_env,
)
from boundary.policy.load import load_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.settings import ProxySettings
from boundary.run.resolve import override_table, parse_resolve

if TYPE_CHECKING:  # imported after the fork (see `_run_in`)
    from boundary.run.summary import Summary, Tally

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"  # GitHub Actions: a file a step appends Markdown to, shown on the job's page


@dataclass(frozen=True, slots=True)
class RunOptions:
    policy: str
    argv: tuple[str, ...]
    log: str | None = None
    resolve: tuple[str, ...] = ()
    upstream_ca: tuple[str, ...] = ()
    user: str | None = None
    binds: tuple[str, ...] = ()  # --bind PATH[:ro]
    quiet: bool = False  # --quiet: none of boundary's own lines but errors and warnings
    fail_on_deny: bool = False  # --fail-on-deny: a command that succeeded fails if anything was denied


def identities(user: str | None, env: dict[str, str], uid: int, gid: int) -> tuple[Identity, Identity]:
    """(invoker, workload). As root the workload is `--user`, else `SUDO_USER`, else root without capabilities."""
    invoker = Identity(uid, gid, tuple(os.getgroups()))
    name = user if user is not None else (env.get("SUDO_USER") if uid == 0 else None)
    if name is None or (name == "root" and uid == 0):
        return invoker, invoker
    if uid != 0:
        try:
            own_name: str | None = pwd.getpwuid(uid).pw_name
        except KeyError:  # a uid without a passwd entry (common in containers) has no name to ask for
            own_name = None
        if user is not None and user != own_name:
            raise UsageError(f"--user '{user}': only root can run the workload as another user")
        return invoker, invoker
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UsageError(f"--user '{name}': no such user") from None
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return invoker, Identity(entry.pw_uid, entry.pw_gid, groups, entry.pw_dir, name)


def _check_command(argv: tuple[str, ...], env: dict[str, str]) -> None:
    if not argv:
        raise UsageError("no command given: boundary run --policy FILE -- COMMAND [ARGS...]")
    if shutil.which(argv[0], path=env.get("PATH", os.defpath)) is None:
        raise UsageError(f"command not found: '{argv[0]}'")


def _check_command_visible(command: str, env: dict[str, str], plan: tuple[MountAction, ...]) -> None:
    """A command under a tree the jail hides (a tool in /tmp, a venv there) would only fail inside with
    "No such file": say so before anything starts, and how to show it."""
    found = shutil.which(command, path=env.get("PATH", os.defpath))
    if found is None:
        return
    absolute = os.path.abspath(found)
    # The path as the jail will look it up (through any symlink it is), and where it leads.
    for path in (
        os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute)),
        os.path.realpath(absolute),
    ):
        tree = hidden_tree_of(plan, path)
        if tree is not None:
            top = os.path.join(tree, os.path.relpath(path, tree).split("/")[0])  # e.g. the checkout, not bin/
            raise UsageError(
                f"command '{command}' is {path}, under {tree}, which the jail hides (host sockets live there);"
                f" show it with --bind {top}:ro, or run it from elsewhere"
            )


def _user_binds(texts: tuple[str, ...]) -> tuple[BindRequest, ...]:
    """`--bind` values, checked before anything starts: absolute, existing."""
    binds = []
    for text in texts:
        request = parse_bind(text)
        if not os.path.exists(request.source):
            raise UsageError(f"--bind '{text}': no such file or directory")
        binds.append(request)
    return tuple(binds)


def read_upstream_cas(paths: tuple[str, ...]) -> bytes:
    blobs = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise UsageError(f"--upstream-ca '{path}': {e.strerror}") from e
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise UsageError(f"--upstream-ca '{path}': no PEM certificate in the file")
        blobs.append(data)
    return join_pem(*blobs)


def upstream_trust_pem(extra: bytes) -> bytes:
    """What the proxy trusts upstream: the system store (or certifi's), plus the operator's `--upstream-ca`."""
    system = find_system_bundle()
    if system is not None:
        base = system.read_bytes()
    else:
        import certifi  # mitmproxy's own default, always installed with it

        base = Path(certifi.where()).read_bytes()
    return join_pem(base, extra)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def _setup_logging(stream: TextIO) -> None:
    # mitmproxy logs through `logging`; the workload owns the terminal, so diagnostics go to a file.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # mitmproxy's INFO lines come per request ("Streaming response from ..."): ~5% of a request's cost, and
    # the audit log already has one line per decision. Its warnings and errors stay; boundary's own INFO too.
    root.setLevel(logging.WARNING)
    logging.getLogger("boundary").setLevel(logging.INFO)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Every input of a run, checked once before anything starts: what the rest of the run works from."""

    options: RunOptions
    env: dict[str, str]  # boundary's own environment, which the workload's is made from
    matcher: Matcher
    overrides: dict[tuple[str, int], tuple[str, int]]  # --resolve
    extra_cas: bytes  # --upstream-ca, PEM
    invoker: Identity
    workload: Identity
    user_binds: tuple[BindRequest, ...]  # --bind
    run_id: str
    started: datetime

    @property
    def log_path(self) -> Path:
        if self.options.log:
            return Path(self.options.log)
        return audit.default_log_path(self.run_id, self.env, self.started)


def plan(options: RunOptions, env: dict[str, str]) -> RunPlan:
    """Check every input of `options` (BoundaryError, quoting the bad one, on the first problem)."""
    matcher = Matcher(load_policy(options.policy))
    overrides = override_table([parse_resolve(text) for text in options.resolve])
    extra_cas = read_upstream_cas(options.upstream_ca)
    invoker, workload = identities(options.user, env, os.getuid(), os.getgid())
    user_binds = _user_binds(options.binds)
    _check_command(options.argv, env)
    return RunPlan(
        options=options,
        env=env,
        matcher=matcher,
        overrides=overrides,
        extra_cas=extra_cas,
        invoker=invoker,
        workload=workload,
        user_binds=user_binds,
        run_id=audit.new_run_id(),
        started=datetime.now(UTC),
    )


def run(options: RunOptions) -> int:
    checked = plan(options, dict(os.environ))
    log_path = checked.log_path
    # No link on the log's path that the workload could have planted in an earlier run (see audit.LinkTrust).
    trust = audit.LinkTrust(checked.workload.uid)
    log = audit.AuditLog(log_path, trust)
    step = StepSummary.open(checked.env.get(STEP_SUMMARY), trust)  # before the workload exists; never fails
    ca = generate_ca(checked.run_id, checked.started)
    rundir = Path(tempfile.mkdtemp(prefix=f"boundary-{checked.run_id}-"))
    code: int | None = None
    ended: Summary | None = None
    try:
        code, tally = _run_in(rundir, checked, log, ca)
        ended = tally.summary()
    finally:
        # The jail is gone by now. Its mounts kept the log's place from inside; whatever else took it must not
        # leave the operator reading another file at the path boundary named: that outranks any other outcome.
        replaced = log.replaced()
        log.close()
        shutil.rmtree(rundir, ignore_errors=True)
        try:
            if replaced:
                raise BoundaryError(audit.replaced_message(replaced, code))
            if code is not None and ended is not None:
                code = _report(checked, code, ended, step)
            if not options.log and not options.quiet:
                print(f"boundary: audit log: {log_path}", file=sys.stderr)
        finally:
            step.close()
    return code


def _report(plan: RunPlan, code: int, ended: Summary, step: StepSummary) -> int:
    """The end of a run that ran: the exit summary (unless `--quiet`), the step summary, `--fail-on-deny`;
    the run's exit status."""
    from boundary.run import summary  # loaded by `_run_in` already

    options = plan.options
    if not options.quiet:
        for line in summary.lines(ended):
            print(line, file=sys.stderr)
    step.append(summary.markdown(ended, f"run {plan.run_id}: policy {options.policy}"))
    final = summary.exit_code(code, ended, fail_on_deny=options.fail_on_deny)
    if final != code:
        print(summary.denied_message(ended), file=sys.stderr)
    return final


class StepSummary:
    """The GitHub step summary file (`$GITHUB_STEP_SUMMARY`), if set: opened before the run, appended to at
    its end. It must never fail the run: a file that cannot be opened or written is said once on stderr.

    Opened like the audit log (`audit.open_directory`, `O_NOFOLLOW`): boundary may be root, the workload not,
    and the workload could have planted a link where the file goes, to have root append to a file of its
    choosing. Opened before the workload starts, so this run's workload cannot race it.
    """

    def __init__(self, path: str | None, fd: int | None, problem: str | None) -> None:
        self._path, self._fd, self._problem = path, fd, problem

    @classmethod
    def open(cls, path: str | None, trust: audit.LinkTrust) -> StepSummary:
        if not path:
            return cls(None, None, None)
        parent, name = os.path.split(path)
        if name in ("", ".", ".."):
            return cls(path, None, "that names a directory, not a file")
        try:
            directory = audit.open_directory(parent or ".", trust)[0]
            try:
                return cls(path, audit.open_log_file(name, directory), None)
            finally:
                os.close(directory)
        except (OSError, audit.LinkRefused) as e:
            return cls(path, None, str(e) if isinstance(e, audit.LinkRefused) else (e.strerror or str(e)))

    def append(self, text: str) -> None:
        """Append `text` after a blank line (whatever the file held before stays apart), or say why not."""
        if self._path is None:
            return
        if self._fd is not None:
            data = ("\n" + text).encode()
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
            except OSError as e:
                self._problem = e.strerror or str(e)
        if self._problem is not None:
            print(
                f"boundary: cannot write the step summary '{self._path}' (${STEP_SUMMARY}): {self._problem};"
                " the run goes on without it",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _run_in(rundir: Path, plan: RunPlan, log: audit.AuditLog, ca: RunCA) -> tuple[int, Tally]:
    options, env, invoker, workload = plan.options, plan.env, plan.invoker, plan.workload
    rundir.chmod(0o755)  # the helper may bind these files as another uid
    system_bundle = find_system_bundle()
    bundle = rundir / "ca-bundle.crt"
    _write(bundle, combined_bundle(system_bundle.read_bytes() if system_bundle else b"", ca.cert_pem))
    _write(rundir / "resolv.conf", RESOLV_CONF.encode())
    _write(rundir / "hosts", HOSTS.encode())
    upstream_trust = rundir / "upstream-trust.pem"
    _write(upstream_trust, upstream_trust_pem(plan.extra_cas))
    binds = [
        BindRequest(str(rundir / "resolv.conf"), "/etc/resolv.conf"),
        BindRequest(str(rundir / "hosts"), "/etc/hosts"),
    ]
    bundle_in_jail = str(bundle)
    if system_bundle is not None:
        binds.append(BindRequest(str(bundle), str(system_bundle)))
        bundle_in_jail = str(system_bundle)
    # The logs are the invoker's files, which a workload of the same uid could forge or delete: read-only binds
    # (of the whole per-run directory by default, so earlier runs' logs are safe too). And their place must hold:
    # every directory on the way is pinned (a mount point, which nothing in the jail can rename or remove).
    proxy_log_name = log.path.with_suffix(".proxy.log").name
    proxy_log_fd = log.open_beside(proxy_log_name, "proxy log")
    proxy_log_stream = os.fdopen(proxy_log_fd, "a", encoding="utf-8", errors="replace")
    proxy_log = os.path.join(log.directory, proxy_log_name)
    logs = [log.directory] if options.log is None else [log.canonical, proxy_log]
    protected = [BindRequest(path, path, readonly=True) for path in logs]
    take_terminal = _owns_terminal()
    spec = helper.JailSpec(
        argv=options.argv,
        env=workload_env(env, bundle_in_jail, workload, invoker),
        cwd=os.getcwd(),
        invoker=invoker,
        workload=workload,
        ruleset=nft_ruleset(),
        mounts=mount_plan(
            mounts.host_path,
            env,
            os.getcwd(),
            [*binds, *plan.user_binds, *protected],
            workload,
            sockets=mounts.home_sockets(workload.home or env.get("HOME")),
            pinned=[log.canonical],
        ),
        take_terminal=take_terminal,
    )
    _check_command_visible(options.argv[0], env, spec.mounts)
    if not options.quiet:
        print(f"boundary: run {plan.run_id}: policy {options.policy}, audit log {log.path}", file=sys.stderr)
    jail = helper.start_jail(spec)
    # The jail's binds hold their files now: remove the directory at once, so even a `kill -9` of boundary
    # leaves nothing behind. The proxy reads the upstream trust through an open descriptor.
    trust_fd = os.open(upstream_trust, os.O_RDONLY | os.O_CLOEXEC)
    upstream_trust = Path(f"/proc/self/fd/{trust_fd}")
    shutil.rmtree(rundir, ignore_errors=True)
    helper.harden_self()
    _setup_logging(proxy_log_stream)
    # Imported only now: asyncio, the DNS server and the gate load while the helper builds the jail.
    from boundary.run import serving, summary

    tally = summary.Tally()  # counts each decision as the proxy writes its audit line
    log.observe(tally.count)
    try:
        settings = ProxySettings(plan.matcher, plan.overrides, log, plan.run_id, ca, upstream_trust)
        return serving.serve(jail, settings), tally
    finally:
        jail.kill()
        os.close(trust_fd)
        if take_terminal:
            _reclaim_terminal()


def _owns_terminal() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _reclaim_terminal() -> None:
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(0, os.getpgrp())
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, previous)


__all__ = ["BoundaryError", "RunOptions", "RunPlan", "plan", "run"]
