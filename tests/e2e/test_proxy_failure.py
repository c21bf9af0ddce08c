"""Fail closed when the proxy fails: the workload is stopped, boundary exits 125 with one `boundary: ...` line.

The failures are real ones, caused from outside boundary: `PYTHONPATH` puts a broken `mitmproxy` package in front
of the real one, for boundary's own process only (boundary imports mitmproxy after the jail is running). The
workload would sleep for ten minutes; it carries a marker argument so the test can prove it is gone.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Jailer
from tests.support.runner import run_boundary

_REAL_MITMPROXY = Path(importlib.util.find_spec("mitmproxy").origin or "").parent  # type: ignore[union-attr]  # mitmproxy is installed: the spec exists

# Each package replaces `mitmproxy`; the last one is the real package with its master's main loop failing
# once it runs, i.e. after the proxy started serving the jail's socket.
BROKEN = {
    "import-error": "raise ImportError('this mitmproxy build is corrupt')\n",
    "syntax-error": "def broken(:\n",
    "system-exit": "raise SystemExit(0)\n",
    "master-dies": f"""\
__path__ = [{str(_REAL_MITMPROXY)!r}]
from mitmproxy import master as _master


async def _run(self):
    raise RuntimeError("the master's event loop broke")


_master.Master.run = _run
""",
    # An upgrade that dropped a private function boundary's patches wrap: refused before the master starts.
    "patch-target-gone": f"""\
__path__ = [{str(_REAL_MITMPROXY)!r}]
from mitmproxy.proxy.layers.http import _http1

del _http1.make_error_response
""",
}
MESSAGES = {
    "import-error": "boundary: the proxy could not start (ImportError: this mitmproxy build is corrupt)",
    "syntax-error": "boundary: the proxy could not start (SyntaxError: ",
    "system-exit": (
        "boundary: the proxy could not start (ImportError: importing boundary.proxy.master raised SystemExit: 0)"
    ),
    "master-dies": "boundary: the proxy stopped (RuntimeError: the master's event loop broke)",
    "patch-target-gone": (
        "boundary: the proxy could not start (RuntimeError: mitmproxy "
        f"{importlib.metadata.version('mitmproxy')} (with h11 "
    ),
}


def _workload_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line carries `marker` (in any pid namespace: /proc shows them all)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline.split(b"\0"):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("failure", list(BROKEN))
def test_a_failing_proxy_stops_the_workload_and_exits_125(jail: Jailer, failure: str) -> None:
    """Whether mitmproxy cannot be imported (an error, a syntax error, even a `SystemExit` that would otherwise
    become boundary's exit code) or its master dies while serving: the jail has no way out, so boundary stops
    the workload at once and exits 125 with one line saying what happened."""
    shadow = jail.workdir / "shadow"
    (shadow / "mitmproxy").mkdir(parents=True)
    (shadow / "mitmproxy" / "__init__.py").write_text(BROKEN[failure])
    for path in (shadow, shadow / "mitmproxy"):
        path.chmod(0o755)
    (shadow / "mitmproxy" / "__init__.py").chmod(0o644)
    marker = f"boundary-test-workload-{secrets.token_hex(4)}"
    workload = ["python3", "-c", "import time; time.sleep(600)", marker]
    result = run_boundary(
        jail.args(workload),
        rootless=jail.rootless,
        env={"PYTHONPATH": str(shadow), "PYTHONDONTWRITEBYTECODE": "1"},
        expose=[jail.workdir],
        timeout=120,  # a guard against a hang (the workload would sleep 600 s), not a measurement
    )
    stderr = result.stderr.decode(errors="replace").splitlines()
    assert result.returncode == 125, stderr
    assert stderr[-1].startswith(MESSAGES[failure]), stderr
    assert stderr[-1].endswith("; the command was stopped"), stderr
    assert [line for line in stderr if not line.startswith("boundary: run ")] == [stderr[-1]]
    assert _workload_processes(marker) == []
    if failure == "patch-target-gone":
        assert "_http1.make_error_response" in stderr[-1], stderr
