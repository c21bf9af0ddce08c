"""Specification of the shared bypass table (tests/support/bypass.py): well-formed, and complete."""

from boundary.policy.load import parse_policy
from boundary.reasons import POLICY_REASONS
from tests.support.bypass import POLICY, SPELLINGS, Allowed, Denied


def test_the_policy_parses_into_three_allow_rules() -> None:
    assert len(parse_policy(POLICY).rules) == 3


def test_spelling_ids_are_unique() -> None:
    """Each id names one parametrized test, in e2e and in explain."""
    ids = [spelling.id for spelling in SPELLINGS]
    assert len(ids) == len(set(ids))


def test_every_expected_denial_names_a_matcher_reason() -> None:
    assert all(isinstance(s.expected, Allowed) or s.expected.reason in POLICY_REASONS for s in SPELLINGS)


def test_the_table_covers_every_spelling_the_issue_names() -> None:
    """Dot segments, %2e%2e, %2E%2e, %2F, //, host case, trailing dot, the three IP spellings, a port, and
    method-only and path-only rules for another host: each is in the table with a denied variant."""
    denied = [s for s in SPELLINGS if isinstance(s.expected, Denied)]
    needles = ["/../", "%2e%2e", "%2E%2e", "%2F", "//secret", "ALLOWED", "test./", "127.1", "0x7f.0.0.1"]
    for needle in [*needles, "2130706433", ":8443"]:
        assert any(needle in s.url for s in denied), needle
    assert {"method-only", "path-only"} <= {s.id for s in denied}


def test_only_loopback_spellings_stay_out_of_the_jail() -> None:
    """Inside the jail 127/8 and ::1 are the jail's own loopback, so only those skip the e2e run."""
    skipped = [s.url for s in SPELLINGS if not s.e2e]
    assert skipped
    assert all(any(ip in url for ip in ("127.1", "0x7f.", "2130706433", "0177.", "[::1]")) for url in skipped)
