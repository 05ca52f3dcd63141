"""Certificates and private keys from PEM files, with one wording for what is wrong.

Both TLS users load their files here: the web config (the exporter's own HTTPS) and the
``wss://`` client. A problem is a :class:`PEMError` that names the setting and the file,
``"<setting> <path>: <what is wrong>"``, and never quotes the file.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from exporter.config import ConfigError

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class PEMError(ConfigError):
    """An unusable PEM file named by a setting."""


def read(path: Path, setting: str) -> bytes:
    """The bytes of ``path``, which ``setting`` names."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PEMError(f"{setting} {path}: no such file") from None
    except OSError as exc:
        raise PEMError(f"{setting} {path}: cannot read: {exc.strerror}") from None


def certificates(path: Path, setting: str) -> list[x509.Certificate]:
    """Every certificate in ``path``, in order: a chain, or a bundle of CAs. Other PEM
    blocks (a key kept in the same file) are skipped."""
    data = read(path, setting)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise PEMError(f"{setting} {path}: no PEM certificate in it") from None


def private_key(path: Path, setting: str) -> PrivateKeyTypes:
    """The private key in ``path``. There is no password: an encrypted key is an error,
    never a prompt on a terminal."""
    data = read(path, setting)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's answer to an encrypted key without a password
        raise PEMError(f"{setting} {path}: encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise PEMError(f"{setting} {path}: not a PEM private key") from None


def matches(certificate: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """Whether ``key`` is the private half of ``certificate``'s public key."""
    return certificate.public_key().public_bytes(*_SPKI) == key.public_key().public_bytes(*_SPKI)
