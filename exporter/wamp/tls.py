"""TLS for a wss:// router: whom to trust, and the client certificate to show."""

from __future__ import annotations

from typing import Any

from exporter.config import ConfigError, WampTLS
from exporter.wamp.errors import describe


def client_tls(hostname: str, tls: WampTLS) -> Any:
    """Twisted client TLS options: trust ``tls.ca_file`` (else the system's CAs), and show
    a client certificate if one is configured. Raises ConfigError on unusable files."""
    # Imported here: pyOpenSSL and cryptography only when a wss:// router is configured.
    from OpenSSL import crypto  # noqa: PLC0415
    from twisted.internet import ssl  # noqa: PLC0415

    from exporter import pem  # noqa: PLC0415

    def twisted_certificate(certificate: Any) -> ssl.Certificate:
        return ssl.Certificate(crypto.X509.from_cryptography(certificate))

    trust = None
    client = None
    if tls.ca_file:
        authorities = pem.certificates(tls.ca_file, "--wamp.tls-ca-file")
        trust = ssl.trustRootFromCertificates([twisted_certificate(c) for c in authorities])
    if tls.cert_file and tls.key_file:
        certificate = pem.certificates(tls.cert_file, "--wamp.tls-cert-file")[0]
        key = pem.private_key(tls.key_file, "--wamp.tls-key-file")
        if not pem.matches(certificate, key):
            raise ConfigError(
                f"--wamp.tls-key-file {tls.key_file} does not match"
                f" --wamp.tls-cert-file {tls.cert_file}"
            )
        client = ssl.PrivateCertificate.fromCertificateAndKeyPair(
            twisted_certificate(certificate), ssl.KeyPair(crypto.PKey.from_cryptography_key(key))
        )
    try:
        return ssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=client)
    except Exception as exc:  # pyOpenSSL raises several kinds
        raise ConfigError(f"--wamp.tls-* files: cannot use: {describe(exc)}") from None
