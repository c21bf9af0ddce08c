"""The run's certificate authority and the trust bundle the jail sees.

One CA per run, generated at start and kept in memory only: its private key is never written to disk, so no
path in the jail (or anywhere) holds it and nothing outlives the run. P-256 keeps generation at ~1 ms; mitmproxy
signs its leaf certificates with this same key.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Well-known system trust stores, most common first. The first that exists is overmounted in
# the jail (session), holding the system's CAs and the run's.
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS-like layouts
)


# Clients on the host may disagree with us about the time by a little: start the validity in the past.
_CLOCK_SKEW = datetime.timedelta(hours=1)
_LIFETIME = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RunCA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def generate_ca(run_id: str, now: datetime.datetime) -> RunCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "boundary"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"boundary run {run_id}"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return RunCA(key, cert)


def find_system_bundle(candidates: tuple[str, ...] = SYSTEM_BUNDLES) -> Path | None:
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def join_pem(*blobs: bytes) -> bytes:
    """Concatenate PEM files, each ending on its own line (a file may lack its final newline)."""
    return b"".join(blob if not blob or blob.endswith(b"\n") else blob + b"\n" for blob in blobs)


def combined_bundle(system_bundle: bytes, ca_pem: bytes) -> bytes:
    """System CAs plus the run's CA: tools inside the jail keep trusting what they trusted, plus the proxy."""
    return join_pem(system_bundle, b"# boundary run CA\n" + ca_pem)
