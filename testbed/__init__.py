"""A local OCS testbed: a crossbar router and OCS agents, for tests and the demo.

Nothing here is used by the exporter at run time. It writes a crossbar config and an OCS
site config file, starts ``crossbar`` and ``ocs-agent-cli`` as child processes on free
loopback ports, and stops them again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REALM = "test_realm"
ADDRESS_ROOT = "observatory"
SITE_HOST = "ocs-testbed"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited after ``timeout``."""
    stop_processes([proc], timeout)


def stop_processes(procs: Sequence[subprocess.Popen], timeout: float = 10.0) -> None:
    """SIGTERM every process group at once; SIGKILL those still running after ``timeout``."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


EXPORTER_ROLE_FILE = Path(__file__).resolve().parent.parent / "deploy/crossbar/exporter-role.json"


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


def site_config(
    router_port: int,
    agents: Sequence[dict] = (),
    realm: str = REALM,
    address_root: str = ADDRESS_ROOT,
    host: str = SITE_HOST,
) -> dict:
    """An OCS site config file (SCF) for a router on ``router_port``."""
    return {
        "hub": {
            "wamp_server": f"ws://127.0.0.1:{router_port}/ws",
            "wamp_http": f"http://127.0.0.1:{router_port}/call",
            "wamp_realm": realm,
            "address_root": address_root,
        },
        "hosts": {host: {"agent-instances": list(agents)}},
    }


def ocs_heartbeat(
    address: str,
    op_codes: dict[str, int],
    session_id: str = "1795518440.6412797",
    agent_class: str = "FakeDataAgent",
) -> list:
    """An OCS heartbeat payload exactly as agents publish it: ``[op_codes, feed]``."""
    return [
        dict(op_codes),
        {
            "agent_address": address,
            "agg_params": {},
            "feed_name": "heartbeat",
            "address": f"{address}.feeds.heartbeat",
            "record": False,
            "session_id": session_id,
            "agent_class": agent_class,
        },
    ]


def exporter_command(site_file: Path, port: int, *flags: str) -> list[str]:
    """The command line of an exporter on 127.0.0.1:``port`` for ``site_file``."""
    return [
        sys.executable,
        "-m",
        "exporter",
        "--site-file",
        str(site_file),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        *flags,
    ]


def fake_agent_entry(instance_id: str, *arguments: str) -> dict:
    return {
        "agent-class": "FakeDataAgent",
        "instance-id": instance_id,
        "arguments": list(arguments),
    }


class Router:
    """A crossbar router in its own directory, on a free loopback port; with
    ``rawsocket``, an anonymous RawSocket listener too, on another free port."""

    def __init__(
        self,
        crossbar: str,
        workdir: Path,
        port: int | None = None,
        secured: Secured | None = None,
        rawsocket: bool = False,
    ) -> None:
        self.crossbar = crossbar
        self.secured = secured
        self.rawsocket_port = free_port() if rawsocket else None
        self.cbdir = Path(workdir) / ".crossbar"
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(workdir) / "crossbar.log"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def publish_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/publish"

    def start(self, timeout: float = 60.0) -> None:
        self.cbdir.mkdir(parents=True, exist_ok=True)
        config = crossbar_config(
            self.port, secured=self.secured, rawsocket_port=self.rawsocket_port
        )
        (self.cbdir / "config.json").write_text(json.dumps(config, indent=2))
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [self.crossbar, "start", "--cbdir", str(self.cbdir), "--loglevel", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"crossbar exited with {self.proc.returncode}; see {self.log_path}"
                )
            return port_open(self.port)

        wait_for(up, timeout, f"crossbar on port {self.port}")
        if self.secured is not None:
            wait_for(lambda: port_open(self.secured.port), timeout, "crossbar's secured port")
        if self.rawsocket_port is not None:
            wait_for(lambda: port_open(self.rawsocket_port), timeout, "crossbar's RawSocket port")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            wait_for(lambda: not port_open(self.port), 10, f"port {self.port} to close")

    def publish(self, topic: str, *args: Any) -> None:
        """Publish an event through crossbar's HTTP publisher bridge."""
        body = json.dumps({"topic": topic, "args": list(args)}).encode()
        req = urllib.request.Request(
            self.publish_url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()


def write_site_file(path: Path, router_port: int, agents: Sequence[dict] = ()) -> Path:
    path.write_text(yaml.safe_dump(site_config(router_port, agents), sort_keys=False))
    return path


def start_agent(
    site_file: Path, instance_id: str, log_dir: Path, host: str = SITE_HOST
) -> subprocess.Popen:
    """Start one OCS agent listed in ``site_file`` with ``ocs-agent-cli``."""
    cli = Path(sys.executable).with_name("ocs-agent-cli")
    log = open(Path(log_dir) / f"agent-{instance_id}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(cli),
            "--site-file",
            str(site_file),
            "--site-host",
            host,
            "--instance-id",
            instance_id,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(log_dir),
    )
    log.close()
    return proc


def _http_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


class Server:
    """A long-running child process on a free loopback port, with its log in ``workdir``."""

    name = "server"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        binary: str | None = None,
        config: dict | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.binary = binary or self.name
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{self.name}-{self.port}.log"
        self.config_path = self.workdir / f"{self.name}.yml"
        if config is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(self.workdir),
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: "
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return resp.status == 200

        wait_for(ready, timeout, f"{self.name} on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class Prometheus(Server):
    """Debian's ``prometheus`` with a config written by the caller."""

    name = "prometheus"

    def __init__(
        self, workdir: Path, config: dict, binary: str = "prometheus", port: int | None = None
    ) -> None:
        super().__init__(workdir, port, binary, config)

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (or matrix/scalar result list)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = _http_json(url)
        if body.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {body}")
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def alerts(self) -> list[dict]:
        return _http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"]

    def targets_up(self) -> bool:
        targets = _http_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)


class Alertmanager(Server):
    """Debian's ``prometheus-alertmanager``, clustering off."""

    name = "alertmanager"

    def __init__(
        self,
        workdir: Path,
        config: dict,
        binary: str = "prometheus-alertmanager",
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, port, binary, config)

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
