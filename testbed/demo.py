"""``make demo``: the exporter watching a local crossbar router with simulated OCS agents.

Starts, under ``.demo/``: a crossbar router, three OCS FakeDataAgents (``fake-acq`` acquiring,
``fake-failed`` with an operation that FAILED, ``fake-flaky`` whose heartbeat stops and starts
on a schedule), the exporter, and, when Debian's ``prometheus`` is installed, a Prometheus
scraping it with the shipped alert rules. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import threading
from pathlib import Path

import testbed
from testbed import ROOT
from testbed.process import P

RULES = ROOT / "grafana" / "alerts" / "ocs-rules.yml"

AGENTS = {
    "fake-acq": ("--mode", "acq", "--sample-rate", "1"),
    "fake-failed": (),
    "fake-flaky": (),
}


def _port(preferred: int) -> int:
    return preferred if not testbed.port_open(preferred) else testbed.free_port()


class Demo:
    def __init__(self, workdir: Path, crossbar: str, flaky_period: float) -> None:
        self.workdir = workdir
        self.crossbar = crossbar
        self.flaky_period = flaky_period
        self.stopping = threading.Event()
        self.started: list[testbed.Process] = []

    def _start(self, process: P) -> P:
        self.started.append(process)  # before it starts: stop() covers a failed start too
        return process.start()

    def run(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        print("starting crossbar ...", flush=True)
        router = self._start(testbed.Router(self.crossbar, self.workdir, port=_port(8001)))
        entries = [testbed.fake_agent_entry(name, *args) for name, args in AGENTS.items()]
        site_file = testbed.write_site_file(self.workdir / "site.yaml", router.port, entries)
        for name in AGENTS:
            self._start(testbed.Agent(site_file, name, self.workdir))
        exporter = testbed.Exporter(
            site_file, self.workdir, port=_port(10020), log_path=self.workdir / "exporter.log"
        )
        self._start(exporter)
        exporter_url = exporter.url

        prometheus_url = self._start_prometheus(exporter.port)
        threading.Thread(target=self._drive_agents, args=(site_file,), daemon=True).start()

        print(
            f"\nThe OCS exporter is running.\n"
            f"  status page   {exporter_url}/\n"
            f"  metrics       {exporter_url}/metrics\n"
            f"  router        {router.url} (realm {testbed.REALM})\n"
            f"  site config   {site_file}\n"
            + (
                f"  prometheus    {prometheus_url}/alerts\n"
                if prometheus_url
                else "  prometheus    not installed (apt-get install prometheus to add it)\n"
            )
            + f"  logs          {self.workdir}/\n"
            f"fake-failed has a FAILED delay_task; fake-flaky stops heartbeating for "
            f"{self.flaky_period:.0f} s every {2 * self.flaky_period:.0f} s.\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while not self.stopping.wait(1.0):
            if not exporter.alive():
                print(f"the exporter exited ({exporter.exit_code()}); see {exporter.log_path}")
                return

    def _start_prometheus(self, exporter_port: int) -> str | None:
        binary = shutil.which("prometheus")
        if binary is None:
            return None
        config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(RULES)] if RULES.exists() else [],
            "scrape_configs": [
                {
                    "job_name": "ocs-exporter",
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                }
            ],
        }
        prometheus = testbed.Prometheus(
            self.workdir / "prometheus", config, binary=binary, port=_port(9090)
        )
        return self._start(prometheus).url

    def _drive_agents(self, site_file: Path) -> None:
        """Fail fake-failed's delay_task once; toggle fake-flaky's heartbeat forever."""
        from ocs.ocs_client import OCSClient  # noqa: PLC0415 - test/demo dependency

        def client(name: str) -> OCSClient:
            return testbed.wait_for(
                lambda: OCSClient(name, args=["--site-file", str(site_file)]),
                60,
                f"agent {name}",
                interval=1.0,
            )

        try:
            client("fake-failed").delay_task(delay=0, succeed=False)
            flaky = client("fake-flaky")
            beating = True
            while not self.stopping.wait(self.flaky_period):
                beating = not beating
                flaky.set_heartbeat(heartbeat=beating)
        except Exception as exc:
            if not self.stopping.is_set():
                print(f"demo: driving the agents failed: {exc}", flush=True)

    def stop(self) -> None:
        self.stopping.set()
        router = [p for p in self.started if isinstance(p, testbed.Router)]
        testbed.stop_processes(p for p in self.started if p not in router)
        for process in router:  # last: the agents and the exporter leave it cleanly
            process.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.demo", description=__doc__)
    parser.add_argument("--crossbar", default=str(ROOT / ".venv-crossbar" / "bin" / "crossbar"))
    parser.add_argument("--workdir", default=str(ROOT / ".demo"))
    parser.add_argument(
        "--flaky-period",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="fake-flaky's heartbeat is off, then on, for this long each (default 30)",
    )
    args = parser.parse_args(argv)
    if args.flaky_period <= 6:
        parser.error("--flaky-period must exceed the 5 s agent timeout (by a second at least)")
    demo = Demo(Path(args.workdir), args.crossbar, args.flaky_period)
    signal.signal(signal.SIGTERM, lambda *_: demo.stopping.set())
    # Ctrl-C stops it even when started from a shell that ignores SIGINT (a background job,
    # nohup): Python then leaves SIGINT ignored instead of raising KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo.run()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping every process the demo started ...", flush=True)
        demo.stop()


if __name__ == "__main__":
    main()
