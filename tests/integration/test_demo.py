"""``make demo`` runs everything it needs, shows the exporter working, and cleans up on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import testbed
from testbed import Metrics, http_get
from tests.support.bed import crossbar_path


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def run_demo_once(workdir: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.demo",
            "--crossbar",
            crossbar_path(),
            "--workdir",
            str(workdir),
            "--flaky-period",
            "7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        testbed.wait_for(lambda: any("Press Ctrl-C" in x for x in lines), 90, "the demo")
        output = "".join(lines)
        url = re.search(r"metrics\s+(http://\S+)", output).group(1)

        def agents_seen() -> Metrics | None:
            metrics = Metrics(http_get(url)[2].decode())
            up = {s.labels["instance_id"] for s in metrics.samples if s.name == "ocs_agent_up"}
            failed = metrics.get("ocs_op_code", instance_id="fake-failed", operation="delay_task")
            acq = metrics.get("ocs_op_code", instance_id="fake-acq", operation="acq")
            expected = {"fake-acq", "fake-failed", "fake-flaky"}
            return metrics if up >= expected and failed == 6 and acq == 3 else None

        testbed.wait_for(agents_seen, 90, "the demo's agents, acq RUNNING and a FAILED task")
        # fake-flaky stops heartbeating for 7 s, past the 5 s agent timeout: it is seen down.
        testbed.wait_for(
            lambda: (
                Metrics(http_get(url)[2].decode()).get("ocs_agent_up", instance_id="fake-flaky")
                == 0
            ),
            60,
            "fake-flaky to be seen down",
        )
        # The test command installs Debian's prometheus, so the demo starts one.
        prom = re.search(r"prometheus\s+(http://\S+)/alerts", output).group(1)
        assert http_get(prom + "/-/ready")[0] == 200
        rules = json.loads(http_get(prom + "/api/v1/rules")[2])["data"]["groups"]
        alerts = {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
        assert {"OcsAgentDown", "OcsOperationFailed"} <= alerts  # the shipped rules
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            # Stopped all the same (SIGTERM: the demo stops what it started), then failed.
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            code = None
        reader.join(5)
    assert code == 0, f"Ctrl-C did not stop the demo within 60 s:\n{''.join(lines)[-3000:]}"
    assert "stopping every process" in "".join(lines)


def test_demo_runs_twice_and_leaves_no_process_behind(tmp_path):
    workdir = tmp_path / "demo"
    for _ in range(2):
        run_demo_once(workdir)
        assert processes_mentioning(str(workdir)) == []
