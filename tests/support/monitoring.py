"""The shipped monitoring bundle, adapted only where a test must: hold times and receivers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

import testbed

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "grafana" / "alerts" / "ocs-rules.yml"
ALERTMANAGER_EXAMPLE = ROOT / "grafana" / "examples" / "alertmanager.yml"


def rules_with_hold_times(holds: dict[str, str], dest: Path) -> Path:
    """The shipped rule file with the ``for:`` of the named alerts replaced; nothing else."""
    data = yaml.safe_load(RULES.read_text())
    found = set()
    for group in data["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in holds:
                rule["for"] = holds[rule["alert"]]
                found.add(rule["alert"])
    missing = set(holds) - found
    assert not missing, f"no such alerts in {RULES}: {missing}"
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _fast_routes(route: dict) -> None:
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for child in route.get("routes", []):
        _fast_routes(child)


def alertmanager_config(webhook_url: str) -> dict:
    """The shipped example with every receiver pointed at ``webhook_url``, timings shortened."""
    data = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    for receiver in data["receivers"]:
        name = receiver["name"]
        receiver.clear()
        receiver.update(name=name, webhook_configs=[{"url": webhook_url, "send_resolved": True}])
    _fast_routes(data["route"])
    return data


def prometheus_config(exporter_targets: list[str], alertmanager: str, rules: Path) -> dict:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {"job_name": "ocs-exporter", "static_configs": [{"targets": exporter_targets}]}
        ],
    }


@contextmanager
def alerting(
    workdir: Path, exporter_port: int, rules: Path, webhook_url: str
) -> Iterator[tuple[testbed.Prometheus, testbed.Alertmanager]]:
    """Alertmanager with the shipped routing, to ``webhook_url``, and Prometheus scraping the
    exporter on ``exporter_port`` with ``rules``; both stopped on the way out."""
    am = testbed.Alertmanager(workdir / "am", alertmanager_config(webhook_url))
    prom = testbed.Prometheus(
        workdir / "prom",
        prometheus_config([f"127.0.0.1:{exporter_port}"], f"127.0.0.1:{am.port}", rules),
    )
    try:
        am.start()
        prom.start()
        yield prom, am
    finally:
        testbed.stop_processes([prom, am])
