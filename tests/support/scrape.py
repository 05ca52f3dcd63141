"""Talking to a running exporter process over HTTP, as Prometheus would."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import testbed


def http_get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


class Metrics:
    """Parsed samples of one scrape."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def get(self, name: str, **labels: str) -> float | None:
        """The value of the one sample of ``name`` whose labels include ``labels``."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, f"{len(found)} samples of {name} {labels}"
        return found[0] if found else None


class Exporter:
    """An ``ocs-exporter`` child process on a free port."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path

    @classmethod
    def start(
        cls, site_file: Path, workdir: Path, *flags: str, env: dict | None = None
    ) -> Exporter:
        port = testbed.free_port()
        log_path = Path(workdir) / f"exporter-{port}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                testbed.exporter_command(
                    site_file,
                    port,
                    "--agent-timeout",
                    "2",
                    "--log.level",
                    "debug",
                    *flags,
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        return cls(proc, port, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return http_get(self.url + path, headers)

    def metrics(self) -> Metrics:
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return Metrics(body.decode())

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"exporter exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return self.get("/-/ready")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        testbed.wait_for(self.ready, timeout, "the exporter to be ready")

    def wait_metric(self, name: str, value: float, timeout: float = 30, **labels: str) -> Metrics:
        """Scrape until ``name{labels}`` equals ``value``; return that scrape."""

        def check() -> Metrics | None:
            metrics = self.metrics()
            return metrics if metrics.get(name, **labels) == value else None

        return testbed.wait_for(check, timeout, f"{name}{labels} == {value}")

    def stop(self) -> None:
        testbed.stop_process(self.proc)
