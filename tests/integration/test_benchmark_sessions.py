"""The sessions benchmark harness, once, at a tiny N: both steps' numbers are there and the
two exporters of the CPU step differ exactly in asking sessions. No timing is judged."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.bed import ROOT, crossbar_path


def test_sessions_benchmark_runs_both_steps_and_reports_the_ratio(tmp_path):
    out = tmp_path / "sessions.json"
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "benchmarks.sessions"),
            *("--agents", "20", "--duration", "3", "--warmup", "1"),
            *("--scale-agents", "30", "--scale-period", "1"),
            *("--scrapes", "3", "--scrape-interval", "1"),
            *("--crossbar", crossbar_path(), "--out", str(out)),
            *("--workdir", str(tmp_path / "work")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    cpu, scale = results["cpu"], results["scale"]
    # Every simulated agent's running acq was asked; the baseline asked nothing.
    assert cpu["sessions"]["session_queries"]["ok"] >= 20
    assert sum(cpu["baseline"]["session_queries"].values()) == 0
    assert cpu["sessions"]["heartbeats"] > 0 and cpu["baseline"]["heartbeats"] > 0
    assert cpu["cpu_ratio"] == round(cpu["sessions"]["cpu_s"] / cpu["baseline"]["cpu_s"], 3)
    assert scale["sessions"]["session_queries"]["ok"] >= 30
    assert sum(scale["baseline"]["session_queries"].values()) == 0
    for row in (scale["sessions"], scale["baseline"]):
        assert 0 < row["scrape_ms_p50"] <= row["scrape_ms_p99"]
        assert row["rss_bytes_per_operation"] == round(row["rss_bytes"] / (30 * 4))
    assert scale["p99_ratio"] == round(
        scale["sessions"]["scrape_ms_p99"] / scale["baseline"]["scrape_ms_p99"], 3
    )
    assert "ratio sessions/baseline" in result.stdout
    assert "ratios sessions/baseline: p99" in result.stdout
