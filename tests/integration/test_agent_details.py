"""Expected agents, restarts, transitions, operation types and the StateSet, live."""

from __future__ import annotations

import signal

import pytest
import yaml

import testbed
from testbed import Exporter


@pytest.fixture(scope="module")
def agent(bed):
    bed.start_agent("bx1", "--mode", "acq", "--sample-rate", "1")
    return "bx1"


def own_site_file(bed, path, *extra_ids: str):
    """A copy of the shared site file with extra, never started, agent instances."""
    data = yaml.safe_load(bed.site_file.read_text())
    host = next(iter(data["hosts"].values()))
    host["agent-instances"] = [
        *host["agent-instances"],
        *(testbed.fake_agent_entry(i) for i in extra_ids),
    ]
    path.write_text(yaml.safe_dump(data))
    return path


def start(bed, site_file, *flags: str) -> Exporter:
    return bed.start_exporter(*flags, site_file=site_file)


def test_configured_agent_never_heard_is_down_from_the_first_scrape(bed, agent, tmp_path):
    site = own_site_file(bed, tmp_path / "site.yaml", "never1")
    exporter = start(bed, site)
    metrics = exporter.metrics()  # the first scrape
    assert metrics.get("ocs_agent_up", instance_id="never1") == 0
    assert metrics.get("ocs_agent_info", instance_id="never1", expected="true") == 1
    assert metrics.get("ocs_agent_last_heartbeat_timestamp_seconds", instance_id="never1") is None
    exporter.wait_metric("ocs_agent_up", 1, instance_id=agent)
    assert exporter.metrics().get("ocs_agent_info", instance_id=agent, expected="true") == 1


def test_sighup_reloads_the_site_config_and_keeps_it_when_broken(bed, agent, tmp_path):
    site = own_site_file(bed, tmp_path / "site.yaml")
    exporter = start(bed, site)
    exporter.wait_metric("ocs_agent_up", 1, instance_id=agent)
    assert exporter.metrics().get("ocs_agent_up", instance_id="never2") is None
    own_site_file(bed, site, "never2")
    exporter.proc.send_signal(signal.SIGHUP)
    exporter.wait_metric("ocs_agent_up", 0, timeout=10, instance_id="never2")
    site.write_text("hub: [broken\n")
    exporter.proc.send_signal(signal.SIGHUP)
    testbed.wait_for(lambda: "kept the previous site config" in exporter.log(), 10, "the log")
    metrics = exporter.metrics()
    assert metrics.get("ocs_agent_up", instance_id="never2") == 0
    assert metrics.get("ocs_agent_up", instance_id=agent) == 1
    assert exporter.proc.poll() is None
    lines = [line for line in exporter.log().splitlines() if "kept the previous" in line]
    assert len(lines) == 1 and "YAML syntax error" in lines[0]


def test_operation_types_from_get_api(bed, agent):
    exporter = bed.start_exporter()
    exporter.wait_metric("ocs_op_info", 1, operation="acq", op_type="process", instance_id=agent)
    metrics = exporter.metrics()
    assert metrics.get("ocs_op_info", instance_id=agent, operation="count") == 1
    assert (
        metrics.get("ocs_op_info", instance_id=agent, operation="delay_task", op_type="task") == 1
    )
    assert (
        metrics.get("ocs_op_info", instance_id=agent, operation="set_heartbeat", op_type="task")
        == 1
    )
    assert metrics.get("ocs_exporter_op_type_queries_total", result="ok") >= 1


def test_restarts_start_time_and_transitions(bed):
    bed.start_agent("bx2")
    exporter = bed.start_exporter()
    first = exporter.wait_metric("ocs_agent_restarts_total", 0, instance_id="bx2")
    started = first.get("ocs_agent_start_timestamp_seconds", instance_id="bx2")
    assert started is not None and started > 1.7e9
    bed.client("bx2").delay_task(delay=0, succeed=False)
    metrics = exporter.wait_metric(
        "ocs_op_transitions_total",
        1,
        timeout=10,
        instance_id="bx2",
        operation="delay_task",
        to="FAILED",
    )
    assert (
        metrics.get(
            "ocs_op_last_change_timestamp_seconds", instance_id="bx2", operation="delay_task"
        )
        > started
    )
    testbed.stop_process(bed.agents.pop("bx2"))
    bed.agents["bx2"] = testbed.start_agent(bed.site_file, "bx2", bed.workdir)
    metrics = exporter.wait_metric("ocs_agent_restarts_total", 1, timeout=60, instance_id="bx2")
    assert metrics.get("ocs_agent_start_timestamp_seconds", instance_id="bx2") > started
    # The counters are per operation and survive the restart; the current code is NONE again.
    assert metrics.get("ocs_op_code", instance_id="bx2", operation="delay_task") == 1
    assert (
        metrics.get(
            "ocs_op_transitions_total", instance_id="bx2", operation="delay_task", to="FAILED"
        )
        == 1
    )


def test_op_state_stateset_in_openmetrics(bed, agent):
    exporter = bed.start_exporter("--collector.op-state")
    exporter.wait_metric("ocs_agent_up", 1, instance_id=agent)
    status, _, body = exporter.get(
        "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    text = body.decode()
    assert status == 200 and "# TYPE ocs_op_state stateset" in text and text.endswith("# EOF\n")
    running = [
        line
        for line in text.splitlines()
        if line.startswith("ocs_op_state{")
        and f'instance_id="{agent}"' in line
        and 'operation="acq"' in line
    ]
    assert len(running) == 8
    assert sum(line.endswith(" 1.0") for line in running) == 1
    assert any('ocs_op_state="RUNNING"' in line and line.endswith(" 1.0") for line in running)
