"""The feeds benchmark harness, once, at a tiny size: both steps' numbers are there, every
message sent reached the subjects that listen to it, and nothing it started is left
running. No timing is judged."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.procstat import group_pids
from tests.support.bed import ROOT, crossbar_path

AGENTS, SCALE_AGENTS, FEEDS = 20, 30, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(results, stdout) of ``python -m benchmarks.feeds`` at 20 and 30 agents."""
    tmp = tmp_path_factory.mktemp("bench-feeds")
    out = tmp / "feeds.json"
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "benchmarks.feeds"),
            *("--agents", str(AGENTS), "--feeds", str(FEEDS), "--rate", "100"),
            *("--duration", "2", "--warmup", "0"),
            *("--scale-agents", str(SCALE_AGENTS), "--scale-period", "1"),
            *("--scale-feed-period", "1", "--scrapes", "2", "--scrape-interval", "1"),
            *("--crossbar", crossbar_path(), "--out", str(out)),
            *("--workdir", str(tmp / "work")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_every_message_sent_reached_who_listens_to_it(run):
    """After the drain: the exporter with feeds counted every heartbeat and every feed
    message, the one without feeds every heartbeat and no feed message, the bare subscriber
    on ``<root>..feeds.`` all of them; none was refused."""
    totals = run[0]["cpu"]["totals"]
    sent = totals["sent"]
    assert sent["heartbeats"] >= AGENTS and sent["feeds"] >= AGENTS * FEEDS
    assert (totals["feeds"]["heartbeats"], totals["feeds"]["feeds"]) == (
        sent["heartbeats"],
        sent["feeds"],
    )
    assert (totals["heartbeats_only"]["heartbeats"], totals["heartbeats_only"]["feeds"]) == (
        sent["heartbeats"],
        0,
    )
    assert totals["bare"] == sent["heartbeats"] + sent["feeds"]
    assert sum(totals["feeds"]["invalid"].values()) == 0
    assert totals["feeds"]["ignored"].get("too_many_feeds", 0) == 0


def test_cpu_per_message_of_each_subject_from_its_own_counts(run):
    cpu = run[0]["cpu"]
    rows = cpu["subjects"]
    assert cpu["sent"]["feeds"] > cpu["sent"]["heartbeats"] > 0
    assert rows["feeds"]["counts"]["feeds_tracked"] == AGENTS * FEEDS
    assert rows["heartbeats_only"]["counts"]["feeds_tracked"] == 0
    for name in ("feeds", "heartbeats_only", "bare"):
        row = rows[name]
        assert row["received"] > 0, name
        assert row["us_per_message"] == round(row["cpu_s"] / row["received"] * 1e6, 1)
    # The feeds-on exporter and the bare subscriber were sent the same messages.
    assert rows["feeds"]["sent"] == rows["bare"]["sent"] > rows["heartbeats_only"]["sent"]
    assert cpu["exporter_over_bare"] == round(
        rows["feeds"]["us_per_message"] / rows["bare"]["us_per_message"], 3
    )
    assert "exporter/bare per message" in run[1]
    assert cpu["settle"]["settled"]
    assert [rows[name]["lost_router"] for name in ("feeds", "heartbeats_only")] == [0, 0]
    assert rows["bare"]["session_losses"] == 0


def test_scale_step_reports_scrapes_and_memory_per_feed(run):
    scale = run[0]["scale"]
    on, off = scale["feeds"], scale["heartbeats_only"]
    assert on["counts"]["feeds_tracked"] == SCALE_AGENTS * FEEDS
    assert off["counts"]["feeds_tracked"] == 0 and off["counts"]["feeds"] == 0
    assert scale["settle"]["settled"]
    # Counted after the load stopped: everything sent arrived.
    assert on["received_fraction_of_sent"] == off["received_fraction_of_sent"] == 1.0
    assert on["lost_router"] == off["lost_router"] == 0
    for row in (on, off):
        assert 0 < row["scrape_ms_p50"] <= row["scrape_ms_p99"]
        assert row["rss_bytes"] > 0 and row["rss_idle_bytes"] > 0
    assert scale["rss_difference_bytes"] == on["rss_bytes"] - off["rss_bytes"]
    assert scale["rss_bytes_per_feed"] == round(scale["rss_difference_bytes"] / (SCALE_AGENTS * 2))
    assert "B per tracked feed" in run[1]


def test_report_prints_the_tables_again(run, tmp_path):
    path = tmp_path / "feeds.json"
    path.write_text(json.dumps(run[0]))
    again = subprocess.run(
        [sys.executable, "-m", "benchmarks.feeds", "--report", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "exporter/bare per message" in again.stdout
    assert "B per tracked feed" in again.stdout


def test_nothing_left_running(run):
    """Every child was started in its own process group; every group is empty now."""
    results = run[0]
    groups = [results["router"]["pid"]]
    for step in (results["cpu"], results["scale"]):
        pids = step["pids"]
        groups += [pid for name, pid in pids.items() if name != "generators"]
        groups += pids["generators"]
    assert {pgid: group_pids(pgid) for pgid in groups if group_pids(pgid)} == {}
