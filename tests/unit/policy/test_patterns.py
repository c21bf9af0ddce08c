"""Specification of `boundary.policy.patterns`: domain patterns (their canonical form, parts, matching and when
one is over-broad), the public suffixes, and the globs of path patterns and query values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.policy.canon import normalize_host
from boundary.policy.model import DEFAULT_PORTS, Rule
from boundary.policy.patterns import (
    PUBLIC_SUFFIXES,
    broad_reason,
    domain_pattern_matches,
    domain_pattern_parts,
    normalize_domain_pattern,
    star_matches,
)
from tests.unit.policy.documents import HOSTISH

PATTERNISH = st.builds(lambda head, rest: head + rest, st.sampled_from(["", "*.", "**.", "*", "a*"]), HOSTISH)

# ---------------------------------------------------------------------------------------------------------------
# Domain patterns


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("Example.COM.", "example.com"),
        ("*", "*"),
        ("**", "**"),
        ("*.Example.com", "*.example.com"),
        ("**.example.com.", "**.example.com"),
        ("*.bücher.de", "*.xn--bcher-kva.de"),
        ("*\u3002example.com", "*.example.com"),  # an ideographic full stop separates labels
    ],
)
def test_normalize_domain_pattern(written: str, canonical: str) -> None:
    """Patterns are canonical like hosts: lower-case, one trailing dot dropped, punycode; wildcards kept."""
    assert normalize_domain_pattern(written) == canonical


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("example.com", ("exact", "example.com")),
        ("*.example.com", ("sub", "example.com")),
        ("**.example.com", ("apex", "example.com")),
        ("*", ("sub", "")),
        ("**", ("apex", "")),
    ],
)
def test_domain_pattern_parts(pattern: str, parts: tuple[str, str]) -> None:
    """A canonical pattern is a kind and a suffix."""
    assert domain_pattern_parts(pattern) == parts


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),  # never the apex
        ("*.example.com", "badexample.com", False),  # a label boundary, not a string suffix
        ("*.example.com", "example.com.evil", False),
        ("**.example.com", "example.com", True),
        ("**.example.com", "a.b.example.com", True),
        ("**.example.com", "xexample.com", False),
        ("*", "anything.example", True),
        ("**", "localhost", True),
    ],
)
def test_domain_pattern_matches(pattern: str, host: str, matches: bool) -> None:
    """`*.` is one or more labels before the suffix, `**.` zero or more; matching is by whole labels."""
    assert domain_pattern_matches(pattern, host) is matches
    assert Rule(pattern, DEFAULT_PORTS, None, None, "t:1").matches_host(host) is matches


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("example.com", None),
        ("com", None),  # an exact name is never broad
        ("*.example.com", None),
        ("**.example.co.uk", None),
        ("*", "it matches every host"),
        ("*.com", "it matches every name under the top-level domain 'com'"),
        ("**.co.uk", "'co.uk' is a public suffix, under which anyone can have a name"),
    ],
)
def test_broad_reason(pattern: str, reason: str | None) -> None:
    """A wildcard over fewer than two labels or over a listed public suffix is over-broad."""
    assert broad_reason(pattern) == reason


def test_public_suffixes_are_canonical_multi_label_names() -> None:
    """Single labels are caught by counting, so the list holds only canonical names of two or more labels."""
    assert all(normalize_host(suffix) == suffix and "." in suffix for suffix in PUBLIC_SUFFIXES)


@given(written=PATTERNISH)
def test_normalize_domain_pattern_is_idempotent(written: str) -> None:
    """A canonical domain pattern is its own canonical form."""
    try:
        canonical = normalize_domain_pattern(written)
    except ValueError:
        return
    assert normalize_domain_pattern(canonical) == canonical


# ---------------------------------------------------------------------------------------------------------------
# Path globs (`*` within a segment, `**` segments), as a Rule applies them


PATH_GLOBS = [
    # several stars in one segment behave like a regex with `[^/]*` for each
    ("/x*y*z", "/xyz", True),
    ("/x*y*z", "/x-y-y-z", True),
    ("/x*y*z", "/xzy", False),
    ("/x*y*z", "/xaz", False),
    ("/x*y*z", "/xy", False),
    ("/a*a", "/a", False),  # head and tail may not overlap
    ("/*.json", "/a.json", True),
    ("/*.json", "/a.jsonx", False),
    ("/**", "/anything", True),
    ("/pre*", "/other", False),
    # a whole `**` segment matches any number of segments, zero included
    ("/a/**", "/a", True),
    ("/a/**", "/a/", True),
    ("/a/**", "/a/b/c", True),
    ("/a/**", "/ab", False),
    ("/a/**", "/", False),
    ("/**", "/", True),
    ("/**", "/x/y", True),
    ("/**/x", "/x", True),
    ("/**/x", "/a/b/x", True),
    ("/**/x", "/a/b/x/y", False),
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/1/2/b", True),
    ("/a/**/b", "/a/1/2/c", False),
    ("/a/**/**/b", "/a/b", True),
    ("/*/**/*.json", "/x/y/z.json", True),
    ("/*/**/*.json", "/x.json", False),
    ("/a**b", "/axxb", True),  # '**' inside a segment is like '*'
    ("/a**b", "/ax/xb", False),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), PATH_GLOBS)
def test_path_globs(pattern: str, path: str, matches: bool) -> None:
    """`*` is any run of characters other than '/'; a whole `**` segment is any number of segments, none too."""
    assert Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1").matches_path(path) is matches


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/p/group%2Fproject", "/p/group%2Fproject", True),
        ("/p/group%2Fproject", "/p/group%2fproject", True),  # the case of an encoded separator does not matter
        ("/p/group%2Fproject/**", "/p/group%2Fproject/raw/x", True),
        ("/p/*/raw", "/p/group%2Fproject/raw", False),  # a wildcard never matches an encoded '/'
        ("/p/**", "/p/group%2Fproject", False),
        ("/p/*%2F*", "/p/a%2Fb", True),  # ...but it may sit next to a literal one
        ("/p/*", "/p/..%2F..%2Fsecret", False),  # nor a dot segment
        ("/p/**/x", "/p/%2e%2e/x%5C", False),
        ("/p/%2e%2e/x%5C", "/p/%2e%2e/x%5C", True),
        ("/p/*", "/p/a\\b", False),  # nor a backslash
        ("/p/a\\b", "/p/a\\b", True),
        ("/p/*", "/p/a%00", False),
        ("/p/*", "/p/..;x/%2F", False),
        ("/p/*", "/p/..%3bx", False),  # nor one whose parameters start with an encoded ';'
        ("/p/*", "/p/.%3B", False),
        ("/p/a%2F", "/p/a%2F/", False),
        ("/p/a%2F/", "/p/a%2F/", True),
        ("/p/a/%2F", "/p/a%2F", False),  # an encoded '/' next to a real one stays distinct
    ],
)
def test_raw_path_matching(pattern: str, path: str, matches: bool) -> None:
    """A raw_paths rule matches ambiguous paths as sent; what could move the request must be literal."""
    rule = Rule("a.example", DEFAULT_PORTS, None, (pattern,), "t:1", raw_paths=True)
    assert rule.matches_raw_path(path) is matches


# ---------------------------------------------------------------------------------------------------------------
# Query value globs


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("a*", "abc", True),
        ("a*", "ba", False),
        ("*", "", True),
        ("*/*", "x/y", True),
        ("x", "x", True),
        ("x", "y", False),
    ],
)
def test_query_value_patterns(pattern: str, value: str, matches: bool) -> None:
    """In a query value, `*` matches any run of characters, '/' included."""
    assert star_matches(pattern.split("*"), value) is matches
