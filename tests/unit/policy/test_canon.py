"""Specification of `boundary.policy.canon`: the canonical forms of what a request names (hosts, IP literals,
request-target paths, raw targets, query strings)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boundary.policy.canon import (
    is_canonical_host,
    is_ip_literal,
    normalize_host,
    normalize_path,
    query_readings,
    raw_target_matchable,
)
from tests.unit.policy.documents import HOSTISH

# ---------------------------------------------------------------------------------------------------------------
# Hosts


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.com", "example.com"),
        ("EXAMPLE.Com", "example.com"),
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("a-b.c0", "a-b.c0"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
        (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),
        ("\u212aelvin.example", "kelvin.example"),  # KELVIN SIGN lower-cases to ASCII k
    ],
)
def test_normalize_host_canonical_forms(given: str, expected: str) -> None:
    """normalize_host lower-cases, strips one trailing dot and punycodes."""
    assert normalize_host(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty host name"),
        (".", "empty host name"),
        ("example.com..", "empty label"),
        ("a..b", "empty label"),
        ("-a.com", "label '-a' must be letters, digits and inner hyphens"),
        ("a-.com", "label 'a-' must be letters, digits and inner hyphens"),
        ("a b.com", "label 'a b' must be letters, digits and inner hyphens"),
        ("x" * 64 + ".com", f"label {'x' * 64!r} is longer than 63 characters"),
        (".".join(["a" * 63] * 4), "longer than 253 characters"),
        ("1.2.3.4.5", "last label '5' is numeric"),
        ("a.0x7f", "last label '0x7f' is numeric"),
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "not in IDNA normal form"),
        ("\u00df.de", "not in IDNA normal form"),
        ("a\ud800.com", "is not valid IDNA"),
        ("a\u0000b.com", "must be letters, digits and inner hyphens"),
    ],
)
def test_normalize_host_rejects_invalid_names(given: str, message: str) -> None:
    """Anything that is not a DNS host name raises ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalize_host(given)


@pytest.mark.parametrize(
    ("host", "is_ip"),
    [
        ("127.0.0.1", True),
        ("127.1", True),
        ("0x7f.0.0.1", True),
        ("0X7F.1", True),
        ("2130706433", True),
        ("017700000001", True),
        ("127.0.0.1.", True),
        ("::1", True),
        ("[::1]", True),
        ("[fe80::1%eth0]", True),
        ("::ffff:127.0.0.1", True),
        ("example.com", False),
        ("1.2.3.4.5", False),
        ("08", False),
        ("[example.com]", False),
        ("a:b", False),
        ("1\x002", False),
        # fullwidth digits are no address to inet_aton (and normalize_host refuses them)
        ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", False),
        ("", False),
    ],
)
def test_is_ip_literal(host: str, is_ip: bool) -> None:
    """Every spelling glibc would connect to without DNS counts as an IP address."""
    assert is_ip_literal(host) is is_ip


@given(host=st.one_of(HOSTISH, st.sampled_from(["0x7f.1", "127.1", "a.0x", "1e5", "a." * 130 + "b"])))
def test_canonical_host_fast_path_agrees(host: str) -> None:
    """A host the fast check accepts is exactly its normalize_host form, and no IP literal."""
    if is_canonical_host(host):
        assert normalize_host(host) == host
        assert not is_ip_literal(host)


# ---------------------------------------------------------------------------------------------------------------
# Paths and raw targets


@pytest.mark.parametrize(
    ("target", "normal"),
    [
        ('/a"b', "/a%22b"),
        ("/a<b>c", "/a%3Cb%3Ec"),
        ("/x/{id}", "/x/%7Bid%7D"),
        ("/a[0]", "/a%5B0%5D"),
        ("/a|b^c`d", "/a%7Cb%5Ec%60d"),
        ("/a%22b", "/a%22b"),  # the escaped spelling is already the normal form
        ("/a%7bb", "/a%7Bb"),
        ('/a"b/../c', "/c"),
        ('/a"b?q="{x}', '/a%22b?q="{x}'),  # the query is kept as sent: query rules read it decoded
    ],
)
def test_normalize_path_encodes_characters_a_path_may_not_hold_raw(target: str, normal: str) -> None:
    """RFC 3986 allows none of `"<>[]^`{|}` raw in a path and servers decode their escapes: `/a"b` and `/a%22b`
    are one path, matched and forwarded escaped."""
    assert normalize_path(target) == normal


@pytest.mark.parametrize(
    ("target", "matchable"),
    [("/a%2Fb", True), ("/a/../..", True), ("/a\\b?x", True), ("a%2F", False), ("/a#b", False), ("/a b", False)],
)
def test_raw_target_matchable(target: str, matchable: bool) -> None:
    """Only visible-ASCII origin-form targets without a fragment are ever matched raw."""
    assert raw_target_matchable(target) is matchable


# ---------------------------------------------------------------------------------------------------------------
# Query strings


@pytest.mark.parametrize(
    ("query", "readings"),
    [
        ("", ({},)),
        ("a=1&b=2&a=3", ({"a": ["1", "3"], "b": ["2"]},)),
        ("a&b=&=c", ({"a": [""], "b": [""], "": ["c"]},)),
        ("a=%41%2f&%62=x", ({"a": ["A/"], "b": ["x"]},)),
        ("a=x+y", ({"a": ["x+y"]}, {"a": ["x y"]})),
        ("a=1;b=2", ({"a": ["1;b=2"]}, {"a": ["1"], "b": ["2"]})),
        ("a=%zz%", ({"a": ["%zz%"]},)),
        ("a=%ff", ({"a": ["\udcff"]},)),
        ("&&a=1&", ({"a": ["1"]},)),
    ],
)
def test_query_readings(query: str, readings: tuple[dict[str, list[str]], ...]) -> None:
    """Every plausible reading: '+' as plus and as space, ';' as data and as separator."""
    assert query_readings(query) == readings
