"""A router with a site file, and the agents and exporters started on it, for live tests.

Every process is started on free loopback ports and stopped when the bed is, pass or fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import testbed
from testbed import ROOT

OUTPUT = ROOT / "test-output"
# What every test's exporter runs with, before the test's own flags (the last one wins):
# agents are down 2 s after their last heartbeat, and the log says everything.
EXPORTER_FLAGS = ("--agent-timeout", "2", "--log.level", "debug")


def crossbar_path() -> str:
    path = os.environ.get("OCS_TEST_CROSSBAR", str(ROOT / ".venv-crossbar" / "bin" / "crossbar"))
    if not Path(path).exists():
        raise RuntimeError(f"crossbar not found at {path}: run `make test`, which installs it")
    return path


class Testbed:
    """A router with a site file, and the agents and exporters started on it; as a context
    manager, the router runs inside the block and everything is stopped after it."""

    __test__ = False  # a helper, not a test class

    def __init__(self, workdir: Path, secured: testbed.Secured | None = None) -> None:
        self.workdir = workdir
        self.router = testbed.Router(crossbar_path(), workdir, secured=secured)
        self.site_file = workdir / "site.yaml"
        self.entries: list[dict] = []
        self.agents: dict[str, testbed.Agent] = {}
        self.exporters: list[testbed.Exporter] = []

    def __enter__(self) -> Testbed:
        try:
            self.router.start()
            self.write_site_file()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_site_file(self) -> None:
        testbed.write_site_file(self.site_file, self.router.port, self.entries)

    def start_agent(self, instance_id: str, *arguments: str) -> testbed.Agent:
        self.entries.append(testbed.fake_agent_entry(instance_id, *arguments))
        self.write_site_file()
        agent = self.agents[instance_id] = testbed.Agent(self.site_file, instance_id, self.workdir)
        return agent.start()

    def client(self, instance_id: str):
        from ocs.ocs_client import OCSClient

        return OCSClient(instance_id, args=["--site-file", str(self.site_file)])

    def start_exporter(
        self,
        *flags: str,
        wait_ready: bool = True,
        env: dict | None = None,
        site_file: Path | None = None,
    ) -> testbed.Exporter:
        """An exporter for the bed's site file (or ``site_file``), with EXPORTER_FLAGS."""
        exporter = testbed.Exporter(
            site_file or self.site_file, self.workdir, *EXPORTER_FLAGS, *flags, env=env
        )
        self.exporters.append(exporter)  # before it starts: stop() covers a failed start too
        return exporter.start(wait=wait_ready, timeout=30)

    def stop(self) -> None:
        testbed.stop_processes([*self.exporters, *self.agents.values()])
        self.router.stop()
