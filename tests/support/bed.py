"""A router with a site file, and the agents and exporters started on it, for live tests.

Every process is started on free loopback ports and stopped by ``stop``, pass or fail.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import testbed
from tests.support.scrape import Exporter

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"


def crossbar_path() -> str:
    path = os.environ.get("OCS_TEST_CROSSBAR", str(ROOT / ".venv-crossbar" / "bin" / "crossbar"))
    if not Path(path).exists():
        raise RuntimeError(f"crossbar not found at {path}: run `make test`, which installs it")
    return path


class Testbed:
    __test__ = False  # a helper, not a test class

    """A router with a site file, and the agents and exporters started on it."""

    def __init__(self, workdir: Path, secured: testbed.Secured | None = None) -> None:
        self.workdir = workdir
        self.router = testbed.Router(crossbar_path(), workdir, secured=secured)
        self.site_file = workdir / "site.yaml"
        self.entries: list[dict] = []
        self.agents: dict[str, subprocess.Popen] = {}
        self.exporters: list[Exporter] = []

    def write_site_file(self) -> None:
        testbed.write_site_file(self.site_file, self.router.port, self.entries)

    def start_agent(self, instance_id: str, *arguments: str) -> subprocess.Popen:
        self.entries.append(testbed.fake_agent_entry(instance_id, *arguments))
        self.write_site_file()
        proc = testbed.start_agent(self.site_file, instance_id, self.workdir)
        self.agents[instance_id] = proc
        return proc

    def client(self, instance_id: str):
        from ocs.ocs_client import OCSClient

        return OCSClient(instance_id, args=["--site-file", str(self.site_file)])

    def start_exporter(
        self, *flags: str, wait_ready: bool = True, env: dict | None = None
    ) -> Exporter:
        exporter = Exporter.start(self.site_file, self.workdir, *flags, env=env)
        self.exporters.append(exporter)
        if wait_ready:
            exporter.wait_ready()
        return exporter

    def stop(self) -> None:
        testbed.stop_processes(
            [exporter.proc for exporter in self.exporters] + list(self.agents.values())
        )
        self.router.stop()


def _testbed(tmp_path_factory, name: str):
    bed = Testbed(tmp_path_factory.mktemp(name))
    try:
        bed.router.start()
        bed.write_site_file()
        yield bed
    finally:
        bed.stop()
