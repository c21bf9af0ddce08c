"""Fixtures for end-to-end runs of `boundary run` with real clients against local upstreams.

Test names are mapped to the local servers with `--resolve`; the servers' CA reaches the proxy with
`--upstream-ca`. Every test runs both as root and rootless (boundary started as an unprivileged user).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.runner import make_user_dir, run_boundary, shared_user_dir
from tests.support.upstreams import TestCA, Upstream, start_http_upstream, start_https_upstream

NAMES = ("allowed.test", "denied.test", "open.test")

POLICY = """\
version: 1
allow:
  - domain: allowed.test
    methods: [GET]
    paths: ["/hello", "/v1/*"]
  - domain: open.test
"""

MODES = [
    pytest.param(False, id="root", marks=pytest.mark.root),
    pytest.param(True, id="rootless", marks=pytest.mark.rootless),
]


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """World-readable files every run needs (the upstream CA)."""
    path = make_user_dir("boundary-e2e-shared-")
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ca_file(test_ca: TestCA, shared_dir: Path) -> Path:
    return test_ca.write_ca_pem(shared_dir)


@pytest.fixture(scope="session")
def https_upstream(test_ca: TestCA) -> Iterator[Upstream]:
    with start_https_upstream(test_ca, NAMES) as upstream:
        yield upstream


@pytest.fixture(scope="session")
def http_upstream() -> Iterator[Upstream]:
    with start_http_upstream() as upstream:
        yield upstream


@pytest.fixture(params=MODES)
def rootless(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@dataclass
class JailRun:
    result: subprocess.CompletedProcess[bytes]
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return self.result.stdout.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.result.stderr.decode(errors="replace")


@dataclass
class Jailer:
    """Runs commands under `boundary run` with the e2e policy, upstreams and CA."""

    rootless: bool
    workdir: Path
    ca_file: Path
    https: Upstream
    http: Upstream

    def resolves(self) -> list[str]:
        out = []
        for name in NAMES:
            out += ["--resolve", f"{name}:443:127.0.0.1:{self.https.port}"]
            out += ["--resolve", f"{name}:80:127.0.0.1:{self.http.port}"]
        return out

    def args(self, command: Sequence[str], policy: str = POLICY, extra: Sequence[str] = ()) -> list[str]:
        policy_file = self.workdir / "policy.yaml"
        policy_file.write_text(policy)
        policy_file.chmod(0o644)
        return [
            "run",
            "--policy",
            str(policy_file),
            "--log",
            str(self.audit_path),
            *self.resolves(),
            "--upstream-ca",
            str(self.ca_file),
            *extra,
            "--",
            *command,
        ]

    @property
    def audit_path(self) -> Path:
        return self.workdir / "audit.jsonl"

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def run(
        self, command: Sequence[str], policy: str = POLICY, extra: Sequence[str] = (), timeout: float = 60
    ) -> JailRun:
        if self.audit_path.exists():
            self.audit_path.unlink()
        result = run_boundary(
            self.args(command, policy, extra), rootless=self.rootless, expose=[self.workdir], timeout=timeout
        )
        return JailRun(result, self.audit())


@pytest.fixture
def workdir() -> Iterator[Path]:
    with shared_user_dir("boundary-e2e-") as path:
        yield path


@pytest.fixture
def jail(rootless: bool, workdir: Path, ca_file: Path, https_upstream: Upstream, http_upstream: Upstream) -> Jailer:
    return Jailer(rootless, workdir, ca_file, https_upstream, http_upstream)
