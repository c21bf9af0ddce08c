"""Specification of serving a jail: the proxy imported beside the workload, and every way it can fail to start
ending as one `ProxyError` (the end-to-end cases, a broken mitmproxy under a real run, are in
tests/e2e/test_proxy_failure.py)."""

from __future__ import annotations

import asyncio
import inspect
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boundary.ca import generate_ca
from boundary.dns.fakedns import FakeDnsTable
from boundary.errors import ProxyError
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.settings import ProxySettings, StartProxy
from boundary.run.serving import _import_in_background, _start_proxy

# Never served: every case here fails before the proxy would read them (so no audit log is opened either).
SETTINGS = ProxySettings(
    matcher=Matcher(parse_policy("version: 1\n")),
    overrides={},
    log=None,  # type: ignore[arg-type]  # see above
    run_id="servingtest",
    ca=generate_ca("servingtest", datetime.now(UTC)),
    upstream_trust=Path(),
)

# --- the proxy failing to start ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("raise RuntimeError('corrupt build')\n", "RuntimeError: corrupt build"),
        ("def broken(:\n", "SyntaxError: "),
        # asyncio would re-raise SystemExit out of the loop, making 3 boundary's exit code: it becomes an error.
        ("raise SystemExit(3)\n", "ImportError: importing {module} raised SystemExit: 3"),
        ("start_proxy = None\n", "TypeError: 'NoneType' object is not callable"),
    ],
)
def test_a_proxy_that_cannot_be_imported_or_started_is_a_proxy_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, why: str
) -> None:
    """Whatever goes wrong importing the proxy module (in its background thread) or starting the proxy ends as
    one `ProxyError` naming the cause: the CLI shows it as `boundary: ...` with exit 125."""
    module = f"boundary_test_proxy_{abs(hash(source))}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)

    async def main() -> None:
        imported = _import_in_background(asyncio.get_running_loop(), module)
        async with asyncio.timeout(10):  # a guard against a hang, not a measurement
            await asyncio.wait({imported})
        with pytest.raises(ProxyError) as info:
            await _start_proxy(imported, socket.socket(), FakeDnsTable(), SETTINGS)
        message = str(info.value)
        assert message.startswith(f"the proxy could not start ({why.format(module=module)}"), message
        assert message.endswith("); the command was stopped")

    try:
        asyncio.run(main())
    finally:
        sys.modules.pop(module, None)


def test_start_proxy_takes_the_seams_arguments() -> None:
    """`_start_proxy` calls the imported module's `start_proxy` as a `StartProxy`, by keyword: the real one must
    take exactly those (mypy cannot see through the import by name)."""
    from boundary.proxy.master import start_proxy

    assert (
        list(inspect.signature(start_proxy).parameters) == list(inspect.signature(StartProxy.__call__).parameters)[1:]
    )
