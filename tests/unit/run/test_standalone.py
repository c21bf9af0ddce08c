"""Specification of `boundary proxy`'s inputs (boundary/run/standalone.py): loopback only, the CA certificate
written as a regular public file (never its key, never through a link). Serving itself: tests/e2e/test_proxy_mode.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from boundary.errors import UsageError
from boundary.run.standalone import _write_certificate, parse_listen, read_token


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("127.9.9.9:1", ("127.9.9.9", 1)), ("[::1]:3128", ("::1", 3128))],
)
def test_a_loopback_address_is_listened_on(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0.0.0.0:8080", "only a loopback address: a proxy others can reach is an open proxy"),
        ("192.0.2.1:8080", "only a loopback address"),
        ("localhost:8080", "'localhost' is not an IP address"),
        ("127.0.0.1", "expected ADDRESS:PORT"),
        ("127.0.0.1:0", "expected ADDRESS:PORT"),
        ("127.0.0.1:65536", "expected ADDRESS:PORT"),
        ("127.0.0.1:http", "expected ADDRESS:PORT"),
    ],
)
def test_anything_else_is_refused_quoting_it(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_listen(text)
    assert str(info.value).startswith(f"--listen '{text}': ") and why in str(info.value)


def test_allow_remote_opens_any_address() -> None:
    assert parse_listen("0.0.0.0:3128", allow_remote=True) == ("0.0.0.0", 3128)


@pytest.mark.parametrize(
    ("content", "mode", "why"),
    [
        ("0123456789abcdef0123\n", 0o644, "readable by others (mode 644); chmod 600 it"),
        ("short\n", 0o600, "expected one token of at least 16 printable characters"),
        ("two words here, long enough\n", 0o600, "no spaces"),
    ],
)
def test_a_token_file_must_be_private_and_hold_one_token(tmp_path: Path, content: str, mode: int, why: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(UsageError) as info:
        read_token(str(path))
    assert str(info.value).startswith(f"--token-file '{path}': ") and why in str(info.value)


def test_a_private_token_file_gives_its_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("0123456789abcdef0123456789abcdef\n")
    path.chmod(0o600)
    assert read_token(str(path)) == "0123456789abcdef0123456789abcdef"


def test_the_certificate_is_written_public_and_replaces_only_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    _write_certificate(path, b"PEM\n")
    _write_certificate(path, b"PEM again\n")
    assert path.read_bytes() == b"PEM again\n" and stat.S_IMODE(path.stat().st_mode) == 0o644
    link = tmp_path / "link.pem"
    os.symlink(tmp_path / "elsewhere.pem", link)
    with pytest.raises(UsageError, match="not a regular file"):
        _write_certificate(link, b"PEM\n")
    assert not (tmp_path / "elsewhere.pem").exists()
