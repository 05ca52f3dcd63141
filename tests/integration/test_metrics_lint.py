"""promtool check metrics on the text the collectors make."""

from __future__ import annotations

import subprocess

from prometheus_client import generate_latest

from tests.support.fakes import heartbeat
from tests.support.metrics import make


def test_promtool_check_metrics_passes_on_text_output():
    _, state, registry = make()
    state.ingest(heartbeat("fake1"))
    state.ingest(heartbeat("fake2", {"x": 8}))
    text = generate_latest(registry)
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
