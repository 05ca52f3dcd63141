"""OCS agents: the site config file that lists them, their heartbeat, and ``ocs-agent-cli``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from testbed.process import Process

REALM = "test_realm"
ADDRESS_ROOT = "observatory"
SITE_HOST = "ocs-testbed"


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


def write_site_file(path: Path, router_port: int, agents: Sequence[dict] = ()) -> Path:
    path.write_text(yaml.safe_dump(site_config(router_port, agents), sort_keys=False))
    return path


def fake_agent_entry(instance_id: str, *arguments: str) -> dict:
    """The site config entry of a FakeDataAgent."""
    return {
        "agent-class": "FakeDataAgent",
        "instance-id": instance_id,
        "arguments": list(arguments),
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


class Agent(Process):
    """One OCS agent listed in ``site_file``, run by ``ocs-agent-cli``; ``launcher`` runs
    the same arguments through another program (the benchmark's instrumented registry)."""

    def __init__(
        self,
        site_file: Path,
        instance_id: str,
        workdir: Path,
        host: str = SITE_HOST,
        launcher: Sequence[str] = (),
        log_path: Path | None = None,
        python_path: Sequence[Path] = (),
        niceness: int = 0,
    ) -> None:
        self.name = instance_id
        self.site_file = site_file
        self.instance_id = instance_id
        self.host = host
        self.launcher = list(launcher) or [str(Path(sys.executable).with_name("ocs-agent-cli"))]
        log_path = log_path or Path(workdir) / f"agent-{instance_id}.log"
        super().__init__(workdir, log_path, python_path=python_path, niceness=niceness)

    def command(self) -> list[str]:
        return [
            *self.launcher,
            *("--site-file", str(self.site_file), "--site-host", self.host),
            *("--instance-id", self.instance_id),
        ]


def start_agent(site_file: Path, instance_id: str, log_dir: Path, host: str = SITE_HOST) -> Agent:
    """Start one OCS agent listed in ``site_file`` with ``ocs-agent-cli``."""
    return Agent(site_file, instance_id, log_dir, host).start()
