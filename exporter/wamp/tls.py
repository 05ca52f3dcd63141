"""TLS for a wss:// router: whom to trust, and the client certificate to show."""

from __future__ import annotations

import re
from typing import Any

from exporter.config import ConfigError, WampTLS
from exporter.wamp.errors import describe


def client_tls(hostname: str, tls: WampTLS) -> Any:
    """Twisted client TLS options: trust ``tls.ca_file`` (else the system's CAs), and show
    a client certificate if one is configured. Raises ConfigError on unusable files."""
    from twisted.internet import ssl  # noqa: PLC0415 - pyOpenSSL only when TLS is used

    trust = None
    client = None
    try:
        if tls.ca_file:
            pems = re.findall(
                rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                tls.ca_file.read_bytes(),
                re.DOTALL,
            )
            if not pems:
                raise ConfigError(f"--wamp.tls-ca-file {tls.ca_file}: no PEM certificate in it")
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(p) for p in pems])
        if tls.cert_file and tls.key_file:
            client = ssl.PrivateCertificate.loadPEM(
                tls.cert_file.read_bytes() + b"\n" + tls.key_file.read_bytes()
            )
    except ConfigError:
        raise
    except Exception as exc:  # pyOpenSSL raises several kinds
        raise ConfigError(f"--wamp.tls-* files: cannot load: {describe(exc)}") from None
    return ssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=client)
