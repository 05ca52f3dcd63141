"""``ocs-exporter --collector.op-state --registry-compat``, as the issue's user typed it: the
two switches side by side start the exporter with the StateSet and the registry drop-in."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import testbed
from tests.support.registry import address, data_of, leave

AGENT = "sw-a"
REGISTRY = "registry-sw"  # the shared router's other tests answer as other names
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


@pytest.fixture(scope="module")
def exporter(bed):
    exporter = bed.start_exporter(
        *("--registry-compat.instance-id", REGISTRY), "--collector.op-state", "--registry-compat"
    )
    try:
        bed.start_agent(AGENT, "--mode", "acq", "--sample-rate", "1")
        yield exporter
    finally:
        # The shared router outlives this module: leave neither the registry nor the agent.
        leave(bed, [exporter.proc], AGENT)


def test_the_stateset_is_exported_in_openmetrics(exporter):
    def scrape() -> tuple | None:
        status, headers, body = exporter.get("/metrics", {"Accept": OPENMETRICS})
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        family = families["ocs_op_state"]
        acq = [
            s
            for s in family.samples
            if s.labels["instance_id"] == AGENT and s.labels["operation"] == "acq"
        ]
        # The agent's first heartbeats report acq NONE until its startup process runs.
        running = any(s.labels["ocs_op_state"] == "RUNNING" and s.value == 1 for s in acq)
        return (headers, family, acq) if running else None

    headers, family, acq = testbed.wait_for(scrape, 60, f"{AGENT}'s acq RUNNING in ocs_op_state")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert family.type == "stateset"
    assert len(acq) == 8 and sum(s.value for s in acq) == 1


def test_the_registry_drop_in_answers(bed, exporter):
    def listed_up() -> dict | None:
        entry = data_of(bed, REGISTRY).get(address(AGENT))
        return entry if entry and not entry["expired"] else None

    entry = testbed.wait_for(listed_up, 60, f"{AGENT} up in the drop-in's data")
    assert entry["agent_class"] == "FakeDataAgent"
    assert entry["agent_address"] == address(AGENT)
    assert "answering as the RegistryAgent" in exporter.log()


def test_no_deprecation_for_the_switches(exporter):
    assert exporter.ready() and "deprecated" not in exporter.log()
