"""Fixtures the unit tests of the test-support servers share: a test CA and its certificate as a PEM file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.upstreams import TestCA


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def ca_pem(ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ca.write_ca_pem(tmp_path_factory.mktemp("ca"))
