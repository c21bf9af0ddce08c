"""Specification of the run/proxy seam (boundary/proxy/settings.py): the settings are frozen, and the proxy the
real `start_proxy` returns is a `RunningProxy` (the run only sees it through that protocol)."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boundary.ca import generate_ca
from boundary.policy.load import parse_policy
from boundary.policy.matcher import Matcher
from boundary.proxy.settings import ProxySettings, RunningProxy


def test_settings_cannot_change_once_made(tmp_path: Path) -> None:
    settings = ProxySettings(
        Matcher(parse_policy("version: 1\n")),
        {},
        None,
        "r",
        generate_ca("r", datetime.now(UTC)),
        tmp_path,  # type: ignore[arg-type]  # no log needed
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.run_id = "other"  # type: ignore[misc]  # what the test checks


def test_the_proxy_start_proxy_returns_has_what_the_run_uses() -> None:
    from boundary.proxy.master import Proxy, start_proxy

    assert inspect.signature(start_proxy).return_annotation in ("Proxy", Proxy)
    wanted = {name for name in vars(RunningProxy) if not name.startswith("_")}
    assert wanted == {"stopped", "why_stopped", "close"} and all(hasattr(Proxy, name) for name in wanted)
