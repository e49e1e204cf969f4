"""The per-install certificate authority the sandbox trusts, so the egress proxy can read (and
put real secrets into) HTTPS requests to the hosts a task is allowed to reach."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class CertificateAuthority:
    def __init__(
        self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
    ) -> None:
        self.directory = directory
        self.key = key
        self.cert = cert
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._contexts: dict[str, ssl.SSLContext] = {}

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path, cert_path = directory / "ca.key", directory / "ca.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not the CA key Shipmate writes")
            return cls(directory, key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shipmate sandbox egress CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert)

    def leaf(self, host: str) -> tuple[bytes, bytes]:
        """(cert PEM, key PEM) for `host`, signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def leaf_context(self, host: str) -> ssl.SSLContext:
        """A server-side TLS context presenting a leaf certificate for `host` (cached)."""
        if host not in self._contexts:
            cert_pem, key_pem = self.leaf(host)
            leaves = self.directory / "leaves"
            leaves.mkdir(exist_ok=True, mode=0o700)
            safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in host)
            cert_path, key_path = leaves / f"{safe}.pem", leaves / f"{safe}.key"
            cert_path.write_bytes(cert_pem + self.cert_pem)
            _write_private(key_path, key_pem)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert_path, key_path)
            self._contexts[host] = context
        return self._contexts[host]

    def bundle(self, path: Path) -> Path:
        """The system's trusted CAs plus this one, for the sandbox's CA variables."""
        system = SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b""
        path.write_bytes(system + b"\n" + self.cert_pem)
        return path
