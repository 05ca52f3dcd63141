"""The exporter against a real crossbar router and real OCS FakeDataAgents."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import testbed
from exporter.http.status import StatusPage
from exporter.state import AgentState
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.pages import HOSTILE, session_rows

AGENT_TIMEOUT = 2.0  # what the Exporter fixture passes as --agent-timeout


@pytest.fixture(scope="module")
def exporter(bed):
    """One exporter for this module, watching agents 'fake1' (acq running) and 'fake2'."""
    bed.start_agent("fake1", "--mode", "acq", "--sample-rate", "1")
    bed.start_agent("fake2")
    return bed.start_exporter()


def test_agent_appears_up_with_running_acq(exporter):
    metrics = exporter.wait_metric("ocs_op_code", 3, instance_id="fake1", operation="acq")
    labels = {
        "agent_address": "observatory.fake1",
        "instance_id": "fake1",
        "agent_class": "FakeDataAgent",
    }
    assert metrics.get("ocs_agent_up", **labels) == 1
    last = metrics.get("ocs_agent_last_heartbeat_timestamp_seconds", **labels)
    assert time.time() - 10 < last <= time.time()
    assert metrics.get("ocs_exporter_crossbar_connected") == 1
    assert metrics.get("ocs_exporter_heartbeats_total") >= 1
    assert metrics.get("process_resident_memory_bytes") > 0


def test_heartbeat_off_marks_agent_down_and_expired_then_back(bed, exporter):
    exporter.wait_metric("ocs_agent_up", 1, instance_id="fake2")
    client = bed.client("fake2")
    client.set_heartbeat(heartbeat=False)
    # Down within the agent timeout + 1 s; 2 s more for a busy machine's scheduling.
    metrics = exporter.wait_metric(
        "ocs_agent_up", 0, timeout=AGENT_TIMEOUT + 1 + 2, instance_id="fake2"
    )
    codes = [
        s.value
        for s in metrics.samples
        if s.name == "ocs_op_code" and s.labels["instance_id"] == "fake2"
    ]
    assert codes and set(codes) == {7}
    client.set_heartbeat(heartbeat=True)
    metrics = exporter.wait_metric("ocs_agent_up", 1, timeout=10, instance_id="fake2")
    assert metrics.get("ocs_op_code", instance_id="fake2", operation="set_heartbeat") == 5


def test_failed_task_shows_op_code_6(bed, exporter):
    exporter.wait_metric("ocs_agent_up", 1, instance_id="fake1")
    bed.client("fake1").delay_task(delay=0, succeed=False)
    exporter.wait_metric("ocs_op_code", 6, timeout=10, instance_id="fake1", operation="delay_task")


# Heartbeats that say they are (feed_name heartbeat, as every OCS heartbeat does), spoilt.
HB = {"feed_name": "heartbeat"}
MALFORMED = {
    "legacy": [[0, {**HB, "agent_address": "observatory.old", "session_id": "1.0"}]],
    "bad_op_codes": [[[3], {**HB, "agent_address": "observatory.x"}]],
    "bad_op_code": [[{"acq": 99}, {**HB, "agent_address": "observatory.x"}]],
    "bad_op_name": [[{"": 3}, {**HB, "agent_address": "observatory.x"}]],
    "bad_agent_address": [[{"acq": 3}, {**HB, "session_id": "1.0"}]],
    "bad_field": [[{"acq": 3}, {**HB, "agent_address": "observatory.x", "agent_class": 5}]],
}
# Not [x, feed] with feed a mapping: nothing says these are heartbeats. With feeds on (the
# default) the exporter counts them as malformed feed messages, whatever their topic.
UNREADABLE = [{"acq": 3}, [1, 2, 3], "nonsense", None, [{"acq": 3}, "feed"]]


def test_malformed_heartbeats_are_counted_and_harmless(bed, exporter):
    exporter.wait_metric("ocs_agent_up", 1, instance_id="fake1")
    before = exporter.metrics()
    topic = "observatory.spoof.feeds.heartbeat"
    expected = {}
    for reason, payloads in MALFORMED.items():
        for payload in payloads:
            bed.router.publish(topic, payload)
        expected[reason] = before.get("ocs_exporter_heartbeats_invalid_total", reason=reason) + len(
            payloads
        )
    for payload in UNREADABLE:
        bed.router.publish(topic, payload)
    unreadable = "ocs_exporter_feed_messages_invalid_total", {"reason": "malformed"}
    malformed = before.get(unreadable[0], **unreadable[1]) + len(UNREADABLE)
    heartbeats_malformed = before.get("ocs_exporter_heartbeats_invalid_total", reason="malformed")

    def counted():
        metrics = exporter.metrics()
        return metrics.get(unreadable[0], **unreadable[1]) == malformed and all(
            metrics.get("ocs_exporter_heartbeats_invalid_total", reason=r) == n
            for r, n in expected.items()
        )

    testbed.wait_for(counted, 10, "every malformed heartbeat to be counted")
    assert exporter.get("/-/ready")[0] == 200
    metrics = exporter.metrics()
    reason = {"reason": "malformed"}
    assert metrics.get("ocs_exporter_heartbeats_invalid_total", **reason) == heartbeats_malformed
    assert metrics.get("ocs_agent_up", instance_id="fake1") == 1
    assert metrics.get("ocs_agent_up", instance_id="x") is None
    assert metrics.get("ocs_agent_up", instance_id="old") is None
    assert "rejected heartbeat from observatory.x" in exporter.log()


def test_text_output_passes_promtool_and_openmetrics_is_served(exporter):
    exporter.wait_metric("ocs_agent_up", 1, instance_id="fake1")
    status, headers, body = exporter.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    status, headers, body = exporter.get(
        "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n") and b"ocs_agent_up{" in body


def test_pages_and_probes(exporter):
    status, _, body = exporter.get("/")
    assert status == 200 and b'href="/metrics"' in body
    assert exporter.get("/-/healthy")[0] == 200
    assert exporter.get("/-/ready")[0] == 200
    assert exporter.get("/nope")[0] == 404


@pytest.mark.parametrize("serializer", ["json", "cbor", "msgpack"])
def test_every_serializer_hears_agents(bed, exporter, serializer):
    other = bed.start_exporter("--wamp.serializers", serializer, "--log.format", "json")
    try:
        other.wait_metric("ocs_op_code", 3, instance_id="fake1", operation="acq")
        first = json.loads(other.log().splitlines()[0])
        assert {"ts", "level", "logger", "msg"} <= first.keys()
    finally:
        other.stop()


def chromium(*args: str, profile) -> subprocess.CompletedProcess:
    """Debian's Chromium, headless, with nothing reaching outside this machine."""
    return subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )


def delay_task_session(exporter) -> dict | None:
    """fake1's latest delay_task session as /api/agents has it, once it has ended."""
    agents = json.loads(exporter.get("/api/agents")[2])
    operations = agents.get("observatory.fake1", {}).get("operations", {})
    session = operations.get("delay_task", {}).get("session")
    return session if session and session["status"] == "done" else None


def test_status_page_in_a_browser(bed, exporter, output_dir, tmp_path):
    exporter.wait_metric("ocs_agent_up", 1, instance_id="fake1")
    bed.client("fake1").delay_task(delay=0, succeed=False)
    exporter.wait_metric("ocs_op_code", 6, timeout=10, instance_id="fake1", operation="delay_task")
    ended = testbed.wait_for(lambda: delay_task_session(exporter), 10, "delay_task's session")
    dom = chromium("--dump-dom", exporter.url + "/", profile=tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout.decode()
    assert "<title>OCS Exporter</title>" in page
    row = page[page.index('data-instance-id="fake1"') :].split("</tr>")[0]
    assert "UP" in row and "FakeDataAgent" in row and "observatory.fake1" in row
    assert "acq RUNNING" in row and "delay_task FAILED" in row
    assert 'data-instance-id="fake2"' in page
    # The sessions under fake1's row: the failed run, as the agent told it, read as text.
    rows = session_rows(page)
    failed = rows["fake1", "delay_task"]
    assert failed.cells[1:4] == ["done", "no", "failed"]
    for started_or_ended in failed.cells[4:6]:
        assert "UTC" in started_or_ended and "ago" in started_or_ended
    texts = [text for _, text in failed.messages]
    assert texts == [text for _, text in ended["messages"]]
    assert texts[-2:] == ["Exited after 0.0 seconds", 'Status is now "done".']
    assert rows["fake1", "acq"].cells[1:4] == ["running", "\u2014", "\u2014"]
    shot = output_dir / "status-page.png"
    shot.unlink(missing_ok=True)
    result = chromium(
        f"--screenshot={shot}",
        "--window-size=1200,700",
        exporter.url + "/",
        profile=tmp_path / "p2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_session_messages_render_as_text_in_a_browser(tmp_path):
    """A message with a script, quotes, an element with a handler and an ampersand, as the
    exporter renders it, shown as text by Chromium: no script runs, no element appears."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    state.ingest(heartbeat("fake1", {"delay_task": 6}))
    ended = session_answer("delay_task", 1, "done", False, HOSTILE)
    state.set_session("observatory.fake1", "1795518440.6412797", "delay_task", ended)
    page = tmp_path / "status.html"
    page.write_text(StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_page())
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shown = dom.stdout.decode()
    assert "<title>OCS Exporter</title>" in shown  # the script would have renamed it
    row = session_rows(shown)["fake1", "delay_task"]
    assert [text for _, text in row.messages][-2:] == [HOSTILE, 'Status is now "done".']
    assert row.elements == {"td", "span", "br", "time", "ol", "li"}
