"""The 403 text: what was denied, why, how to allow it."""

import pytest

from boundary.proxy.denial import denial_text, suggested_rule
from boundary.reasons import REASONS, Reason


@pytest.mark.parametrize(
    ("host", "port", "method", "path", "rule"),
    [
        ("a.test", 443, "GET", "/x?q=1", '{domain: a.test, methods: [GET], paths: ["/x"]}'),
        ("a.test", 8443, None, None, "{domain: a.test, ports: [8443]}"),
    ],
)
def test_suggested_rule_would_allow_the_request(
    host: str, port: int, method: str | None, path: str | None, rule: str
) -> None:
    """The suggestion names host, non-default port, method and path (without the query)."""
    assert suggested_rule(host, port, method, path) == rule


def test_denial_text_is_one_line_with_reason_and_hint() -> None:
    """One line: the request, the reason, and a rule to add."""
    text = denial_text(Reason.NO_MATCHING_RULE, "GET", "https://a.test/x", "a.test", 443, "/x")
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "GET https://a.test/x" in text and "(no-matching-rule)" in text and "domain: a.test" in text


@pytest.mark.parametrize("reason", [reason for reason in Reason if reason is not Reason.ALLOWED])
def test_every_denial_says_how_to_allow_it(reason: Reason) -> None:
    """The hint is the reasons table's; where it offers a rule, the rule names the request."""
    text = denial_text(reason, "GET", "https://a.test/x", "a.test", 443, "/x")
    assert f"({reason}); to allow it, " + REASONS[reason].hint.split("{rule}")[0] in text
    assert ("{rule}" in REASONS[reason].hint) == ("domain: a.test" in text)
