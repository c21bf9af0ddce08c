"""`--resolve` parsing: curl's form plus an optional target port; errors quote the input."""

import pytest

from boundary.errors import UsageError
from boundary.run.resolve import Override, override_table, parse_resolve


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com:443:127.0.0.1", Override("example.com", 443, "127.0.0.1", 443)),
        ("Example.COM.:443:127.0.0.2:8443", Override("example.com", 443, "127.0.0.2", 8443)),
        ("a.test:80:[::1]", Override("a.test", 80, "::1", 80)),
        ("a.test:80:[::1]:8080", Override("a.test", 80, "::1", 8080)),
    ],
)
def test_parse_resolve_accepts(text: str, expected: Override) -> None:
    """Host is normalized; the target port defaults to the port."""
    assert parse_resolve(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com", "expected HOST:PORT:ADDR"),
        ("example.com:443", "expected HOST:PORT:ADDR"),
        ("example.com:http:127.0.0.1", "bad port 'http'"),
        ("example.com:0:127.0.0.1", "bad port '0'"),
        ("example.com:443:localhost", "'localhost' is not an IP address"),
        ("example.com:443:127.0.0.1:99999", "bad port '99999'"),
        ("example.com:443:[::1", "expected HOST:PORT:ADDR"),
        ("bad host:443:127.0.0.1", "bad host name 'bad host'"),
    ],
)
def test_parse_resolve_rejects_with_the_input_quoted(text: str, message: str) -> None:
    """Every malformed value is an error naming the option and quoting the value."""
    with pytest.raises(UsageError) as info:
        parse_resolve(text)
    assert f"--resolve '{text}'" in str(info.value)
    assert message in str(info.value)


def test_override_table_later_wins() -> None:
    """Repeating a HOST:PORT keeps the last answer, like curl."""
    table = override_table([parse_resolve("a.test:443:127.0.0.1"), parse_resolve("a.test:443:127.0.0.2:1")])
    assert table == {("a.test", 443): ("127.0.0.2", 1)}
