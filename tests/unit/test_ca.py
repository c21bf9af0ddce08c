"""The run's CA: a real CA certificate, and the combined bundle."""

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from boundary.ca import combined_bundle, find_system_bundle, generate_ca


def test_generated_ca_is_a_ca_valid_now() -> None:
    """The certificate is a CA that can sign leaf certificates, and is valid at generation time."""
    now = datetime.now(UTC)
    ca = generate_ca("abc123", now)
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert constraints.ca and usage.key_cert_sign
    assert ca.cert.not_valid_before_utc <= now <= ca.cert.not_valid_after_utc
    assert "abc123" in ca.cert.subject.rfc4514_string()


def test_each_run_gets_its_own_key() -> None:
    """Two runs never share a CA key."""
    now = datetime.now(UTC)
    assert generate_ca("a", now).cert_pem != generate_ca("b", now).cert_pem


def test_combined_bundle_keeps_system_cas_and_appends_ours() -> None:
    """System CAs stay trusted; ours is appended on its own line even if the system file lacks a newline."""
    bundle = combined_bundle(b"SYSTEM", b"OURS\n")
    assert bundle.startswith(b"SYSTEM\n") and bundle.endswith(b"OURS\n")


def test_find_system_bundle_takes_the_first_that_exists(tmp_path: Path) -> None:
    """Candidates are tried in order; missing ones are skipped; none -> None."""
    present = tmp_path / "b.pem"
    present.write_text("x")
    assert find_system_bundle((str(tmp_path / "missing"), str(present))) == present
    assert find_system_bundle((str(tmp_path / "missing"),)) is None
