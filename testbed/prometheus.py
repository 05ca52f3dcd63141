"""Debian's Prometheus and Alertmanager, each with a config file written by the caller."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from testbed.process import Process, free_port


def _http_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


class HttpServer(Process):
    """A server of the Prometheus family on a free loopback port, its config (``config``,
    written as YAML to ``workdir/<name>.yml``) and data in ``workdir``; ready once
    ``/-/ready`` answers 200."""

    binary = ""  # the Debian package's command

    def __init__(
        self, workdir: Path, config: dict, binary: str | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        super().__init__(workdir, Path(workdir) / f"{self.name}-{self.port}.log")
        self.binary = binary or self.binary
        self.config = config
        self.config_path = self.workdir / f"{self.name}.yml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self) -> list[str]:
        """The server's own flags, besides its config, address and log level."""
        return []

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.options(),
            "--log.level=warn",
        ]

    def _prepare(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def _ready(self) -> bool:
        with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
            return resp.status == 200


class Prometheus(HttpServer):
    """Debian's ``prometheus``, alerts resent every second."""

    name = "prometheus"
    binary = "prometheus"

    def options(self) -> list[str]:
        return [f"--storage.tsdb.path={self.workdir / 'data'}", "--rules.alert.resend-delay=1s"]

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


class Alertmanager(HttpServer):
    """Debian's ``prometheus-alertmanager``, clustering off."""

    name = "alertmanager"
    binary = "prometheus-alertmanager"

    def options(self) -> list[str]:
        return [f"--storage.path={self.workdir / 'am-data'}", "--cluster.listen-address="]
