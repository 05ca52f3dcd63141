"""The exporter as a child process (``python -m exporter``), and reading it as Prometheus does."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from testbed.process import Process, free_port, wait_for


def http_get(url: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET; an HTTP error status is returned, not raised."""
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


class Exporter(Process):
    """``python -m exporter`` for ``site_file`` on 127.0.0.1:``port`` (free by default),
    with ``flags`` after the site file and the listen address. ``python`` runs it (the
    benchmarks use the runtime-only environment); ``source``, if given, is put first on its
    PYTHONPATH (the benchmarks' frozen copy of ``exporter/``). Ready once ``/-/ready``
    answers 200, that is once it has joined the router."""

    name = "exporter"

    def __init__(
        self,
        site_file: Path,
        workdir: Path,
        *flags: str,
        port: int | None = None,
        python: str = sys.executable,
        source: Path | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        log_path = log_path or Path(workdir) / f"exporter-{self.port}.log"
        super().__init__(workdir, log_path, env, python_path=[source] if source else ())
        self.site_file = site_file
        self.flags = list(flags)
        self.python = python

    def command(self) -> list[str]:
        return [
            self.python,
            *("-m", "exporter", "--site-file", str(self.site_file)),
            *("--web.listen-address", f"127.0.0.1:{self.port}"),
            *self.flags,
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    def _ready(self) -> bool:
        try:
            return self.get("/-/ready")[0] == 200
        except OSError:
            return False

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return http_get(self.url + path, headers)

    def metrics(self) -> Metrics:
        status, _, body = self.get("/metrics")
        assert status == 200, body
        return Metrics(body.decode())

    def wait_metric(self, name: str, value: float, timeout: float = 30, **labels: str) -> Metrics:
        """Scrape until ``name{labels}`` equals ``value``; return that scrape."""

        def check() -> Metrics | None:
            metrics = self.metrics()
            return metrics if metrics.get(name, **labels) == value else None

        return wait_for(check, timeout, f"{name}{labels} == {value}")

    def lost_router(self) -> int:
        """Times the exporter logged losing its router (its own log line)."""
        return self.log().count("lost router")
