"""Session-wide test machinery.

* ``host_guard`` (session, autouse): as root, the host nft table (one per session: ``boundary_test_guard_<pid>``)
  that rejects and counts traffic to the never-routed ranges (tests/support/hostguard.py). The session fails
  if its counter is not 0 at the end.
  Tests may read it mid-session: ``before = host_guard.packets()``.
* Privilege marks: ``@pytest.mark.root`` (= ``tools.requires_root``) skips unless root;
  ``@pytest.mark.userns`` (= ``tools.requires_userns``) and ``@pytest.mark.rootless`` skip unless the
  rootless user can create user namespaces.
* ``CI=true``: every skipped test (xfail excepted) and every skipped module is turned into a failure that
  quotes the skip reason, so CI cannot pass by silently not running the privileged tests.
* ``user_tmp_path``: a temporary directory (not under /tmp, which the jail hides) that the rootless user owns.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support import tools
from tests.support.hostguard import HostGuard, HostGuardError, nft_binary
from tests.support.runner import make_user_dir

_ESCAPES = pytest.StashKey[int]()


# --- host nft guard ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def host_guard(request: pytest.FixtureRequest) -> Iterator[HostGuard]:
    """The host-side guard (inactive unless root). Fails the session if a guarded packet tried to leave."""
    guard = HostGuard(nft_binary())
    if tools.is_root():
        try:
            guard.sweep()  # tables left by crashed runs (never another live session's)
            guard.install()
        except HostGuardError as exc:
            pytest.exit(f"cannot install the host nft guard as root: {exc}", returncode=3)
    yield guard
    if not guard.active:
        return
    try:
        packets, octets = guard.counts()
    finally:
        guard.remove()
    request.config.stash[_ESCAPES] = packets
    if packets:
        pytest.fail(
            f"host nft guard: {packets} packet(s) ({octets} bytes) to a never-routed test range "
            f"tried to leave the host during this session: something escaped a jail or the proxy",
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Belt and braces: the fixture's failure already makes the run fail; make sure nothing masks it.
    if session.config.stash.get(_ESCAPES, 0) > 0 and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- privilege marks ---------------------------------------------------------------------------------------


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        tools.skip_unless_root()
    if item.get_closest_marker("userns") is not None or item.get_closest_marker("rootless") is not None:
        tools.skip_unless_userns()


# --- CI: no silent skips -----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if tools.ci_enabled() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where no test may skip: {tools.skip_reason(report.longrepr)}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if tools.ci_enabled() and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"module skipped under CI=true, where no test may skip: {tools.skip_reason(report.longrepr)}"
    return report


# --- directories -------------------------------------------------------------------------------------------


@pytest.fixture
def user_tmp_path() -> Iterator[Path]:
    """A fresh directory owned by the rootless user (mode 755) under /var/tmp: put files that a rootless
    boundary, or the command it jails, must read (policy, CA, scripts) here. Removed afterwards."""
    path = make_user_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
