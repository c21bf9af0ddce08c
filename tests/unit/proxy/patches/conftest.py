"""The patched layers are specified as the proxy runs them: `start_proxy` applies the patches before its master
runs, and these tests drive mitmproxy's layers without one, so the session applies them first."""

from __future__ import annotations

import pytest

import boundary.proxy.master  # noqa: F401 - registers mitmproxy.addons bare, as the proxy does before any import
from boundary.proxy import patches


@pytest.fixture(scope="session", autouse=True)
def patched() -> None:
    patches.apply()
