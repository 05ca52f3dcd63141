"""Certificates for tests: a CA, a server certificate for 127.0.0.1/localhost, a client one.

Made with ``cryptography`` on the fly into a test's directory; nothing here is shipped.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Authority:
    """A self-signed CA that issues server and client certificates."""

    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert: Path

    def issue_server(self, directory: Path, name: str = "server") -> Issued:
        """A server certificate for ``localhost`` and ``127.0.0.1``."""
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        return self._issue(directory, name, ExtendedKeyUsageOID.SERVER_AUTH, names)

    def issue_client(self, directory: Path, name: str = "client") -> Issued:
        return self._issue(directory, name, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def _issue(
        self,
        directory: Path,
        name: str,
        usage: x509.ObjectIdentifier,
        alt_names: list[x509.GeneralName],
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(f"{self.name} {name}", key)
            .issuer_name(self.certificate.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(
            cert=_write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
            key=write_key(directory / f"{name}.key", key),
        )


def _builder(common_name: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem)
    path.chmod(0o600)
    return path


def make_authority(directory: Path, name: str = "ca") -> Authority:
    """A new CA; its certificate is written to ``directory/NAME.crt``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test {name}")])
    certificate = (
        _builder(f"test {name}", key)
        .issuer_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .sign(key, hashes.SHA256())
    )
    cert = _write(directory / f"{name}.crt", certificate.public_bytes(serialization.Encoding.PEM))
    return Authority(name=name, key=key, certificate=certificate, cert=cert)


def other_key(path: Path) -> Path:
    """A private key that matches no certificate."""
    return write_key(path, ec.generate_private_key(ec.SECP256R1()))


def encrypted_copy(key: Path, path: Path, passphrase: bytes = b"passphrase") -> Path:
    """``key`` again, encrypted with ``passphrase``."""
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    pem = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    return _write(path, pem)
