"""The learn round trip through real runs: a workload under a permissive policy, `boundary learn` on its log,
then the same workload under the learned policy in enforce mode is allowed exactly as before, and a new host
or a new method on a known path is denied. The learned policy passes `boundary policy check --strict`."""

from __future__ import annotations

from tests.e2e.conftest import Jailer
from tests.support.runner import run_boundary

PERMISSIVE = """\
version: 1
allow:
  - domain: allowed.test
  - domain: open.test
"""

WORKLOAD = (
    "curl -s -o /dev/null -w '%{http_code} ' https://allowed.test/v1/a; "
    "curl -s -o /dev/null -w '%{http_code} ' https://allowed.test/v1/b; "
    "curl -s -o /dev/null -w '%{http_code} ' -X POST -d x http://open.test/upload"
)
NEW = (
    "curl -s -o /dev/null -w '%{http_code} ' https://denied.test/hello; "
    "curl -s -o /dev/null -w '%{http_code} ' -X DELETE https://allowed.test/v1/a; "
    "curl -s -o /dev/null -w '%{http_code} ' -X GET http://open.test/upload"
)


def test_audit_then_learn_then_enforce_allows_the_same_and_denies_anything_new(jail: Jailer) -> None:
    first = jail.run(["sh", "-c", WORKLOAD], policy=PERMISSIVE)
    assert first.stdout.split() == ["200", "200", "200"], first.stderr
    learned = jail.workdir / "learned.yaml"
    made = run_boundary(["learn", str(jail.audit_path), "-o", str(learned)], rootless=jail.rootless)
    assert made.returncode == 0, made.stderr
    checked = run_boundary(["policy", "check", "--strict", str(learned)], rootless=jail.rootless)
    assert checked.returncode == 0, (checked.stdout, learned.read_text())
    text = learned.read_text()
    again = jail.run(["sh", "-c", WORKLOAD], policy=text)
    assert again.stdout.split() == ["200", "200", "200"], (again.audit, text)
    new = jail.run(["sh", "-c", NEW], policy=text)
    assert new.stdout.split() == ["403", "403", "403"], (new.audit, text)
    assert [line["reason"] for line in new.audit] == ["no-matching-rule", "method-not-allowed", "method-not-allowed"]
