"""A crossbar router on free loopback ports, configured as OCS's shipped one."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.agents import ADDRESS_ROOT, REALM
from testbed.process import ROOT, Process, free_port, port_open, wait_for

EXPORTER_ROLE_FILE = ROOT / "deploy" / "crossbar" / "exporter-role.json"


@dataclass
class Secured:
    """A second, secured transport for the exporter: TLS, and WAMP authentication into the
    least-privilege role shipped in deploy/crossbar/exporter-role.json."""

    port: int
    key: Path
    certificate: Path
    client_ca: Path | None = None  # require client certificates signed by it
    tickets: dict[str, str] = field(default_factory=dict)  # authid -> ticket
    wampcra: dict[str, str] = field(default_factory=dict)  # authid -> secret
    role_file: Path = EXPORTER_ROLE_FILE  # the crossbar role the principals get

    def role(self) -> dict:
        return json.loads(self.role_file.read_text())

    @property
    def url(self) -> str:
        return f"wss://localhost:{self.port}/ws"

    def transport(self, role: str) -> dict:
        auth: dict = {}
        if self.tickets:
            auth["ticket"] = {
                "type": "static",
                "principals": {a: {"ticket": t, "role": role} for a, t in self.tickets.items()},
            }
        if self.wampcra:
            auth["wampcra"] = {
                "type": "static",
                "users": {a: {"secret": t, "role": role} for a, t in self.wampcra.items()},
            }
        tls = {"key": str(self.key), "certificate": str(self.certificate)}
        if self.client_ca:
            tls["ca_certificates"] = [str(self.client_ca)]
        return {
            "type": "web",
            "endpoint": {"type": "tcp", "port": self.port, "interface": "127.0.0.1", "tls": tls},
            "paths": {"ws": {"type": "websocket", "auth": auth}},
        }


def crossbar_config(
    port: int,
    realm: str = REALM,
    address_root: str = ADDRESS_ROOT,
    secured: Secured | None = None,
    rawsocket_port: int | None = None,
) -> dict:
    """A crossbar 26 router config equivalent to OCS's shipped one, plus an HTTP publisher
    and, optionally, a secured transport for the exporter and an anonymous RawSocket
    listener on ``rawsocket_port`` (same realm and role as the WebSocket path; the
    benchmark's load generators use it)."""

    def role(name: str, register: bool) -> dict:
        return {
            "name": name,
            "permissions": [
                {
                    "uri": f"{address_root}.",
                    "match": "prefix",
                    "allow": {
                        "call": True,
                        "register": register,
                        "publish": True,
                        "subscribe": True,
                    },
                    "disclose": {"caller": False, "publisher": False},
                    "cache": True,
                }
            ],
        }

    roles = [role("iocs_agent", True), role("iocs_controller", False)]
    extra_transports = []
    if secured is not None:
        exporter_role = secured.role()
        roles.append(exporter_role)
        extra_transports.append(secured.transport(exporter_role["name"]))
    if rawsocket_port is not None:
        extra_transports.append(
            {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "port": rawsocket_port, "interface": "127.0.0.1"},
                "serializers": ["msgpack", "cbor", "json"],
                "auth": {"anonymous": {"type": "static", "role": "iocs_agent"}},
            }
        )
    return {
        "version": 2,
        "controller": {},
        "workers": [
            {
                "type": "router",
                "realms": [{"name": realm, "roles": roles}],
                "transports": [
                    *extra_transports,
                    {
                        "type": "web",
                        "endpoint": {"type": "tcp", "port": port, "interface": "127.0.0.1"},
                        "paths": {
                            "ws": {
                                "type": "websocket",
                                "serializers": ["msgpack", "cbor", "json"],
                                "auth": {"anonymous": {"type": "static", "role": "iocs_agent"}},
                                "options": {
                                    "auto_ping_interval": 10000,
                                    "auto_ping_timeout": 5000,
                                    "auto_ping_size": 12,
                                },
                            },
                            "call": {"type": "caller", "realm": realm, "role": "iocs_controller"},
                            "publish": {
                                "type": "publisher",
                                "realm": realm,
                                "role": "iocs_controller",
                            },
                        },
                    },
                ],
            }
        ],
    }


class Router(Process):
    """A crossbar router in ``workdir/.crossbar``, on a free loopback port; with
    ``rawsocket``, an anonymous RawSocket listener too, on another free port (the
    benchmark's load generators use it)."""

    name = "crossbar"

    def __init__(
        self,
        crossbar: str,
        workdir: Path,
        port: int | None = None,
        secured: Secured | None = None,
        rawsocket: bool = False,
    ) -> None:
        super().__init__(workdir)
        self.crossbar = crossbar
        self.secured = secured
        self.rawsocket_port = free_port() if rawsocket else None
        self.cbdir = self.workdir / ".crossbar"
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def load_url(self) -> str:
        """Where load generators connect: the RawSocket listener if there is one."""
        if self.rawsocket_port is None:
            return self.url
        return f"rs://127.0.0.1:{self.rawsocket_port}"

    @property
    def publish_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/publish"

    def ports(self) -> list[int]:
        extra = [self.secured.port] if self.secured else []
        return [self.port, *extra, *filter(None, [self.rawsocket_port])]

    def _prepare(self) -> None:
        self.cbdir.mkdir(parents=True, exist_ok=True)
        config = crossbar_config(
            self.port, secured=self.secured, rawsocket_port=self.rawsocket_port
        )
        (self.cbdir / "config.json").write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        return [self.crossbar, "start", "--cbdir", str(self.cbdir), "--loglevel", "warn"]

    def _ready(self) -> bool:
        return all(map(port_open, self.ports()))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop crossbar and wait until its port is free again (for a restart on it)."""
        started = self.proc is not None
        super().stop(timeout)
        if started:
            wait_for(lambda: not port_open(self.port), 10, f"port {self.port} to close")

    def publish(self, topic: str, *args: Any) -> None:
        """Publish an event through crossbar's HTTP publisher bridge."""
        body = json.dumps({"topic": topic, "args": list(args)}).encode()
        req = urllib.request.Request(
            self.publish_url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
