"""`boundary policy replay` on the audit log of a real run: a candidate that drops a host the run used says it
would break, and the policy of the run itself changes nothing."""

from __future__ import annotations

from tests.e2e.conftest import POLICY, Jailer
from tests.support.runner import run_boundary

NARROWER = """\
version: 1
allow:
  - domain: allowed.test
    methods: [GET]
    paths: ["/hello", "/v1/*"]
"""


def test_replaying_a_real_run_under_a_narrower_policy_names_what_would_break(jail: Jailer) -> None:
    run = jail.run(
        ["sh", "-c", "curl -s -o /dev/null https://allowed.test/hello; curl -s -o /dev/null http://open.test/x"]
    )
    assert [line["reason"] for line in run.audit] == ["allowed", "allowed"], run.stderr
    candidate = jail.workdir / "narrower.yaml"
    candidate.write_text(NARROWER)
    same = jail.workdir / "same.yaml"
    same.write_text(POLICY)
    narrower = run_boundary(["policy", "replay", str(candidate), str(jail.audit_path)], rootless=jail.rootless)
    unchanged = run_boundary(["policy", "replay", str(same), str(jail.audit_path)], rootless=jail.rootless)
    assert narrower.returncode == 1, narrower.stderr
    assert b"open.test:80\n        1 x GET /x  (allowed -> no-matching-rule)" in narrower.stdout
    assert unchanged.returncode == 0 and b"0 would break, 0 would open" in unchanged.stdout
