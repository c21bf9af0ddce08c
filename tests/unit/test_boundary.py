"""Specification of the package itself (boundary/__init__.py): the version it says is the one installed."""

from __future__ import annotations

import importlib.metadata
import re

import boundary


def test_the_version_is_the_installed_distributions_and_pep_440() -> None:
    assert boundary.__version__ == importlib.metadata.version("boundary")
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?", boundary.__version__)
