"""Specification of the reasons table (boundary/reasons.py): every reason has its status, emitter, hint and doc
line; every one is produced by some code and none that code produces is missing; docs/policy.md and the README
list exactly these reasons, and docs/policy.md says of each what the table says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from boundary.reasons import REASONS, Reason

ROOT = Path(__file__).resolve().parents[2]


def test_every_reason_has_a_row() -> None:
    assert set(REASONS) == set(Reason)


@pytest.mark.parametrize("reason", [reason for reason in Reason if reason is not Reason.ALLOWED])
def test_every_denial_has_a_hint_and_a_doc_line(reason: Reason) -> None:
    info = REASONS[reason]
    assert info.hint and info.doc and not info.hint.endswith(".")


def test_only_the_policy_and_the_proxy_answer_with_their_own_status() -> None:
    """403 for a policy, identity or internal denial (407 for a missing proxy token); 400/431 for a request no
    server should see; 502 when
    the SSRF guard refused the dial; none when there is no HTTP answer (TLS failed, protocol switch)."""
    assert {reason: info.status for reason, info in REASONS.items() if info.status not in (403, None)} == {
        Reason.INVALID_METHOD: 400,
        Reason.MALFORMED_HEADER: 400,
        Reason.PROTOCOL_ERROR: 400,
        Reason.REQUEST_HEAD_TOO_LARGE: 431,
        Reason.PROXY_AUTH_REQUIRED: 407,
        Reason.BLOCKED_ADDRESS: 502,
    }


def test_every_reason_is_produced_by_some_code() -> None:
    """A reason no code gives is a hint nobody sees and a line in the docs that lies."""
    source = "\n".join(path.read_text() for path in (ROOT / "boundary").rglob("*.py") if path.name != "reasons.py")
    unused = [reason.name for reason in Reason if f"Reason.{reason.name}" not in source]
    assert unused == []


def _documented(text: str) -> dict[str, str]:
    """The reason column of docs/policy.md's Decisions table -> its 'when' column."""
    table = text.split("## Decisions", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z-]+)` \| (.+?) \|$", table, re.M))


def test_the_docs_decisions_table_is_the_reasons_table() -> None:
    documented = _documented((ROOT / "docs" / "policy.md").read_text())
    assert documented == {reason.value: info.doc for reason, info in REASONS.items()}


def test_the_readme_names_every_reason_of_the_audit_line() -> None:
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `reason` |"))
    assert set(re.findall(r"`([a-z]+(?:-[a-z]+)+|allowed)`", row)) >= {reason.value for reason in Reason}
