"""promtool check metrics on the text the collectors make."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry, generate_latest

from exporter.render.collector import ExporterCollector
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.metrics import make, reference


def test_promtool_check_metrics_passes_on_text_output():
    _, state, registry = make()
    state.ingest(heartbeat("fake1"))
    state.ingest(heartbeat("fake2", {"x": 8}))
    text = generate_latest(registry)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_metrics_passes_with_sessions_and_durations():
    """Every session family, the duration histogram and the session self-metrics, as the
    fast renderer writes them and as prometheus_client does."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, durations=(1.0, 1e6))
    state.ingest(heartbeat("fake1", {"acq": 3, "delay_task": 6}))
    sid = state.session_of("observatory.fake1")
    answers = {
        "acq": session_answer("acq", 0, data={"timestamp": 1_800_000_002.0}),
        "delay_task": session_answer("delay_task", 1, "done", False, "CRASH: boom"),
    }
    for op, answer in answers.items():
        state.set_session("observatory.fake1", sid, op, answer)
    state.set_session("observatory.fake1", sid, "acq", None)  # counted invalid
    registry = CollectorRegistry()
    registry.register(ExporterCollector(state, lambda: True))
    fast = AgentExposition(state).render() + generate_latest(registry)
    assert b'ocs_exporter_session_answers_invalid_total{reason="not_a_status"} 1.0' in fast
    for text in (fast, reference(state).encode()):
        assert b"ocs_op_session_duration_seconds_bucket" in text and b"ocs_op_runs_total" in text
        result = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
