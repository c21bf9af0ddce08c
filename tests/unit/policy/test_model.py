"""Specification of `boundary.policy.model`: the frozen Rule (its defaults, equality, and how it matches paths,
raw paths and queries) and the methods a policy may name."""

from __future__ import annotations

import pytest

from boundary.policy.canon import query_readings
from boundary.policy.load import parse_policy
from boundary.policy.model import DEFAULT_PORTS, KNOWN_METHODS, Rule
from tests.unit.policy.documents import FULL


def test_rule_defaults() -> None:
    """A Rule built from the first five fields means what a rule naming only those keys means."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1")
    assert (rule.id, rule.domains, rule.query, rule.raw_paths, rule.allow_broad, rule.action) == (
        "t:1",
        ("a.example",),
        None,
        False,
        False,
        "allow",
    )
    assert rule.unconditional
    assert not Rule("a.example", DEFAULT_PORTS, None, None, "t:1", query=(("a", "b"),)).unconditional


def test_rule_equality_ignores_compiled_patterns() -> None:
    """Rules compare and hash by their written fields only."""
    a = Rule("a.example", DEFAULT_PORTS, frozenset({"GET"}), ("/x",), "t:1")
    b = Rule("a.example", DEFAULT_PORTS, frozenset({"GET"}), ("/x",), "t:1")
    assert a == b
    assert hash(a) == hash(b)
    assert "_globs" not in repr(a)


def test_known_methods() -> None:
    """The methods a policy may name."""
    expected = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
    assert expected == KNOWN_METHODS


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/hello", True),
        ("/hello/", False),
        ("/v1/", True),  # '*' may match nothing
        ("/v1/users", True),
        ("/v1/users/1", False),  # '*' stays within one segment
        ("/v1", False),
        ("/HELLO", False),  # paths are case-sensitive
    ],
)
def test_rule_matches_path_patterns(path: str, matches: bool) -> None:
    """Patterns match whole normalized paths; '*' is any run of characters other than '/'."""
    (parsed,) = parse_policy(FULL).rules
    assert parsed.matches_path(path) is matches


def test_rule_without_paths_matches_any_path() -> None:
    """`paths` omitted means every path."""
    assert Rule("a.example", DEFAULT_PORTS, None, None, "t:1").matches_path("/any/thing")


def test_raw_path_matching_needs_raw_paths() -> None:
    """Without raw_paths nothing matches raw; with raw_paths and no paths, everything does."""
    assert not Rule("a.example", DEFAULT_PORTS, None, None, "t:1").matches_raw_path("/a%2Fb")
    assert Rule("a.example", DEFAULT_PORTS, None, None, "t:1", raw_paths=True).matches_raw_path("/a%2Fb")


@pytest.mark.parametrize(
    ("query", "strict", "loose"),
    [
        ("service=git-upload-pack", True, True),
        ("service=git-upload-pack&other=1", True, True),
        ("service=git%2Dupload-pack", True, True),
        ("", False, False),
        ("other=1", False, False),
        ("service=git-receive-pack", False, False),
        ("service=git-upload-pack&service=git-receive-pack", False, True),  # strict: every value; loose: any
        ("service=git-upload-pack;service=x", False, True),  # strict: every reading; loose: any
        ("service=git-upload-pack+", False, False),
    ],
)
def test_query_match_strict_and_loose(query: str, strict: bool, loose: bool) -> None:
    """An allow rule (strict) needs every value in every reading to match; a deny rule (loose) one of them."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1", query=(("service", "git-upload-pack"),))
    readings = query_readings(query)
    assert rule.matches_query(readings) is strict
    assert rule.matches_query(readings, loose=True) is loose


def test_rule_query_none_matches_anything() -> None:
    """A rule without `query` ignores the query string."""
    rule = Rule("a.example", DEFAULT_PORTS, None, None, "t:1")
    assert rule.matches_query(query_readings("x=1"))
    assert rule.matches_query(query_readings("x=1"), loose=True)
