"""``python -m exporter.http.healthcheck``: exit 0 if the exporter answers ``/-/healthy``.

Used by the Docker image's HEALTHCHECK (slim images have no curl). It reads the listen
address from ``OCS_EXPORTER_WEB_LISTEN_ADDRESS`` as the exporter does, or from argv[1], and
the web config file from ``OCS_EXPORTER_WEB_CONFIG_FILE``. ``/-/healthy`` needs no basic
auth. With TLS it speaks https to the local exporter without checking its certificate
(it only asks whether the process answers). When the web config requires client
certificates (RequireAnyClientCert, RequireAndVerifyClientCert) it has none to show: it
then counts the exporter healthy when the TLS handshake reaches the exporter's
certificate request, which the exporter sends only once it has accepted the connection and
loaded its TLS setup; ``/-/healthy`` itself is not fetched in that case.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.config import DEFAULT_PORT, ConfigError, env_name, parse_listen_address

if TYPE_CHECKING:
    from exporter.http.webconfig import TLSSettings

TIMEOUT = 4.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else os.environ.get(env_name("--web.listen-address"))
    web_config_file = os.environ.get(env_name("--web.config.file"))
    try:
        host, port = parse_listen_address(address or f":{DEFAULT_PORT}")
        tls = _tls_settings(Path(web_config_file)) if web_config_file else None
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if tls is not None and tls.requires_client_cert:
        return _certificate_request(host, port)
    if ":" in host:
        host = f"[{host}]"
    url = f"{'https' if tls is not None else 'http'}://{host}:{port}/-/healthy"
    context = None
    if tls is not None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as resp:
            return 0 if resp.status == 200 else 1
    except (OSError, http.client.HTTPException) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def _tls_settings(path: Path) -> TLSSettings | None:
    from exporter.http.webconfig import load_web_config  # noqa: PLC0415 - only with a web config

    return load_web_config(path).tls


def _certificate_request(host: str, port: int) -> int:
    """A TLS handshake without a client certificate: does the exporter ask for one?"""
    from OpenSSL import SSL  # noqa: PLC0415 - only with a web config

    states: list[bytes] = []
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    context.set_info_callback(lambda conn, _where, _ret: states.append(conn.get_state_string()))
    where = f"https://{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
    except OSError as exc:
        print(f"healthcheck: {where}: {exc}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + TIMEOUT
    failure = "no client certificate request"
    with sock:
        sock.setblocking(False)
        conn = SSL.Connection(context, sock)
        conn.set_connect_state()
        while not any(b"certificate request" in state for state in states):
            try:
                conn.do_handshake()
                break  # finished without being asked for a certificate
            except (SSL.WantReadError, SSL.WantWriteError) as want:
                left = deadline - time.monotonic()
                wait = ([sock], []) if isinstance(want, SSL.WantReadError) else ([], [sock])
                if left <= 0 or not any(select.select(*wait, [], left)[:2]):
                    failure = "TLS handshake timed out"
                    break
            except (SSL.Error, OSError) as exc:
                failure = f"TLS handshake failed: {exc}"
                break
    if not any(b"certificate request" in state for state in states):
        print(f"healthcheck: {where}: {failure}", file=sys.stderr)
        return 1
    print(f"healthcheck: {where} asks for a client certificate: TLS up, counted healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
