"""Specification of serving a jail: the proxy imported beside the workload, and every way it can fail to start
ending as one `ProxyError` (the end-to-end cases, a broken mitmproxy under a real run, are in
tests/e2e/test_proxy_failure.py)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from boundary.errors import ProxyError
from boundary.run.serving import ProxySettings, _import_in_background, _start_proxy

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
            await _start_proxy(imported)
        message = str(info.value)
        assert message.startswith(f"the proxy could not start ({why.format(module=module)}"), message
        assert message.endswith("); the command was stopped")

    try:
        asyncio.run(main())
    finally:
        sys.modules.pop(module, None)


def test_proxy_settings_are_exactly_what_start_proxy_takes_besides_socket_and_table() -> None:
    """`_serve` passes the settings to `start_proxy` by name (`**vars(settings)`): a field added to one side
    only would fail every run at start, so the two lists are tied here."""
    from boundary.proxy.master import start_proxy

    taken = set(inspect.signature(start_proxy).parameters) - {"listen", "table"}
    assert {field.name for field in fields(ProxySettings)} == taken
