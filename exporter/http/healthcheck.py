"""``python -m exporter.http.healthcheck``: exit 0 when the exporter answers, 1 when it does
not, 2 on bad usage. The Docker image's HEALTHCHECK (slim images have no curl).

The address is argv[1], else ``OCS_EXPORTER_WEB_LISTEN_ADDRESS`` as the exporter reads it;
the web config is ``OCS_EXPORTER_WEB_CONFIG_FILE``. It fetches ``/-/healthy``, which needs
no basic auth, over https when the web config sets TLS, without checking the certificate:
it asks whether the process answers, not whom to trust. Where the exporter requires client
certificates the healthcheck has none to show, so the exporter's answer to a TLS handshake
counts as healthy: a completed handshake, or (TLS 1.2) its refusal of a certificate-less client.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import sys
import urllib.request
from pathlib import Path

from exporter.config import ConfigError, parse_listen_address
from exporter.flags import DEFAULT_PORT, env_name
from exporter.http.webconfig import load_web_config

TIMEOUT = 4.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else os.environ.get(env_name("--web.listen-address"))
    web_config = os.environ.get(env_name("--web.config.file"))
    try:
        host, port = parse_listen_address(address or f":{DEFAULT_PORT}")
        tls = load_web_config(Path(web_config)).tls if web_config else None
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    url = f"{'https' if tls else 'http'}://{f'[{host}]' if ':' in host else host}:{port}/-/healthy"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        if tls is not None and tls.requires_client_cert:
            with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
                _handshake(context, sock)
            print(f"healthcheck: {url}: TLS answered; it asks for a client certificate: healthy")
            return 0
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:
            return 0 if response.status == 200 else 1
    except (OSError, http.client.HTTPException) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def _handshake(context: ssl.SSLContext, sock: socket.socket) -> None:
    """A TLS handshake without a client certificate, answered by the server."""
    try:
        context.wrap_socket(sock).close()
    except ssl.SSLError as exc:
        if "ALERT" not in (exc.reason or ""):  # TLS 1.2 refuses us inside the handshake
            raise


if __name__ == "__main__":
    sys.exit(main())
