"""The soak benchmark, tiny: router restarts, churn, the sessions, feeds and HostManager
collectors exercised, its report all there and sane.

No timing is judged (shared, noisy machines): only structure, counts, that the exporter
came through the restarts and that nothing it started is left running.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.procstat import group_pids
from tests.support.bed import ROOT, crossbar_path


def test_soak_restarts_the_router_and_churns_agents_and_reports(tmp_path):
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.soak",
            *("--agents", "20", "--duration", "40"),
            *("--router-restart-every", "15", "--churn-every", "10"),
            *("--crossbar", crossbar_path(), "--out", str(out)),
            *("--workdir", str(tmp_path / "work")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    soak = json.loads(out.read_text())
    assert soak["schema"] == "ocs-exporter-soak/1"
    assert soak["errors"] == []

    samples = soak["samples"]
    assert len(samples) >= 3
    assert all(s["rss_bytes"] > 0 and "scrape_error" not in s for s in samples)
    # All 20 agents known to the exporter (up or down) by some sample.
    assert max(s["agents_up"] + s["agents_down"] for s in samples) == 20

    summary, final = soak["summary"], soak["final"]
    restarts = soak["router"]["restarts"]
    assert summary["router_restarts"] == len(restarts) >= 1
    assert all(r["exporter_rejoined_after_s"] is not None for r in restarts)
    assert summary["reconnects_seen"] >= 1
    assert final["lost_router_lines"] >= 1
    assert summary["exporter_alive"] is True
    assert summary["error_lines"] == 0, final["error_examples"]
    heartbeats = summary["heartbeats"]
    assert 0 < heartbeats["received"] <= heartbeats["sent"]
    assert heartbeats["lost"] == heartbeats["sent"] - heartbeats["received"]
    rss = summary["rss"]
    assert 0 < rss["min_bytes"] <= rss["median_bytes"] <= rss["max_bytes"]

    churn = soak["churn"]
    assert churn["periods"] >= 1
    assert churn["restart_group_generations"] == churn["periods"] + 1
    assert final["agent_restarts_seen"] >= 1  # new session ids heard
    assert "soak: 20 agents x 4 ops" in result.stdout

    # The three collectors on by default, each seen working in the exporter's counters.
    config, collectors = soak["config"], summary["collectors"]
    assert (config["sessions"], config["feeds"], config["hostmanagers"]) == (True, True, 5)
    assert collectors["session_queries"].get("ok", 0) > 0
    assert collectors["feed_messages_received"] > 0
    assert collectors["feed_messages_received"] <= collectors["feed_messages_sent"]
    lost = collectors["feed_messages_sent"] - collectors["feed_messages_received"]
    assert collectors["feed_messages_lost"] == lost
    assert set(collectors["feed_messages_invalid"].values()) <= {0.0}
    # 5 HostManagers list half of the 20 agents (one each), all read, none refused.
    assert collectors["managed_agents"] == 10
    assert collectors["hostmanagers_with_parse_status"] == 5
    assert set(collectors["manager_data_invalid"].values()) <= {0.0}
    # Recorded over time: the counters grow from sample to sample.
    timeline = [s["collectors"] for s in samples if "collectors" in s]
    assert timeline[-1]["feed_messages"] > timeline[0]["feed_messages"]
    assert sum(timeline[-1]["session_queries"].values()) > sum(
        timeline[0]["session_queries"].values()
    )
    assert "HostManagers (5): 10 agents listed" in result.stdout

    groups = [*soak["router"]["pids"], soak["exporter"]["pid"]]
    groups += soak["load"]["generator_pids"] + soak["load"]["restart_group"]["pids"]
    groups += soak["load"]["hostmanager_pids"]
    assert {pgid: group_pids(pgid) for pgid in groups if group_pids(pgid)} == {}
