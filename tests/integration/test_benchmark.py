"""The benchmark harness, once, at a tiny N: its numbers are all there and make sense.

No timing is judged (shared, noisy machines): only structure, counts and that nothing it
started is left running.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.processes import RUNTIME_PYTHON
from benchmarks.procstat import group_pids
from tests.support.bed import ROOT, crossbar_path

SUBJECTS = ("exporter", "registry", "bare")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(results, stdout) of ``python -m benchmarks.run`` at N=20."""
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--agents",
            "20",
            "--duration",
            "5",
            "--warmup",
            "2",
            "--scrapes",
            "3",
            "--burst",
            "3",
            "--detect",
            "4",
            "--crossbar",
            crossbar_path(),
            "--out",
            str(out),
            "--workdir",
            str(tmp / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_one_step_without_errors(run):
    results, stdout = run
    assert results["schema"] == "ocs-exporter-benchmark/1"
    assert results["config"]["agents"] == [20]
    assert len(results["exporter_source"]["sha256"]) == 64  # the copy of exporter/ measured
    [step] = results["steps"]
    assert step["errors"] == []
    assert step["agents"] == 20
    assert step["operations_tracked"] == 80
    assert results["config"]["period_s"] == 1.0 and step["load"]["expected_per_s"] == 20
    # Every agent's get_api was answered before the CPU window, which is then free of it.
    assert step["op_types_settled_after_s"] >= 0
    assert not [w for w in step["warnings"] if "operation types" in w]
    assert "N = 20 agents" in stdout
    assert "exporter / bare" in stdout


def test_heartbeats_sent_and_received_by_every_subject(run):
    [step] = run[0]["steps"]
    load = step["load"]
    assert load["sent_in_window"] > 0
    assert load["sent_total"] >= load["sent_in_window"]
    for name in SUBJECTS:
        subject = step["subjects"][name]
        assert subject["sent_total"] == load["sent_total"]
        assert 0 < subject["received_total"] <= subject["sent_total"], name
        assert subject["received_in_window"] > 0, name
        assert subject["cpu_s"] >= 0, name
        assert subject["cpu_s_per_1k_heartbeats"] is not None, name
        assert subject["us_per_heartbeat"] is not None, name
        assert subject["stayed_connected"] is True, name
        assert subject["alive"] is True, name
    assert step["subjects"]["registry"]["joins"] == 1
    assert set(step["ratios"]) == {"exporter_over_bare", "exporter_over_registry"}
    assert all(value is not None and value > 0 for value in step["ratios"].values())


def test_exporter_scrapes_memory_and_detection(run):
    [step] = run[0]["steps"]
    exporter = step["exporter"]
    scrape = exporter["scrape"]
    assert len(scrape["latencies_s"]) == 3
    assert len(scrape["burst_latencies_s"]) == 3
    assert all(v > 0 for v in scrape["latencies_s"] + scrape["burst_latencies_s"])
    assert scrape["median_s"] > 0
    assert scrape["p99_s"] >= scrape["median_s"]
    assert scrape["bytes_text"] > scrape["bytes_gzip"] > 0
    # 20 agents: up and last-heartbeat series each, and 4 op codes each, at least.
    assert scrape["series"] >= 20 * (2 + 4)
    assert exporter["rss_idle_bytes"] > 0
    assert exporter["rss_bytes"] > 0
    assert exporter["rss_per_operation_bytes"] == pytest.approx(exporter["rss_bytes"] / 80)
    detection = exporter["detection"]
    assert detection["stopped"] == 4
    assert detection["detected"] == 4
    for agent in detection["agents"]:
        assert agent["last_sent"] > 0
        assert agent["detected_after_s"] > 0
    assert detection["median_s"] > 0
    assert exporter["false_down_agents"] == []


def test_nothing_left_running(run):
    """Every child was started in its own process group; every group is empty now."""
    results = run[0]
    [step] = results["steps"]
    groups = [results["router"]["pid"], *step["load"]["pids"]]
    groups += [step["subjects"][name]["pid"] for name in SUBJECTS]
    assert {pgid: group_pids(pgid) for pgid in groups if group_pids(pgid)} == {}


def test_the_exporter_runs_as_deployed_from_the_runtime_environment(run):
    results, _ = run
    # `make test` builds .venv-runtime: the exporter's runtime dependencies only, no numpy.
    assert results["config"]["exporter_python"] == str(RUNTIME_PYTHON)
    probe = subprocess.run(
        [str(RUNTIME_PYTHON), "-c", "import importlib.util as u; print(u.find_spec('numpy'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "None"
