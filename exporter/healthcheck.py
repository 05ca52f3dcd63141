"""``python -m exporter.healthcheck``: exit 0 if the exporter answers ``/-/healthy``.

Used by the Docker image's HEALTHCHECK (slim images have no curl). It reads the listen
address from ``OCS_EXPORTER_WEB_LISTEN_ADDRESS`` as the exporter does, or from argv[1].
"""

from __future__ import annotations

import os
import sys
import urllib.request

from exporter.config import DEFAULT_PORT, ConfigError, env_name, parse_listen_address


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    address = args[0] if args else os.environ.get(env_name("--web.listen-address"))
    try:
        host, port = parse_listen_address(address or f":{DEFAULT_PORT}")
    except ConfigError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/-/healthy", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: http://{host}:{port}/-/healthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
