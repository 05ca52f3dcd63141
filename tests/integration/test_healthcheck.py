"""The image's HEALTHCHECK command against nothing, a bad address, and a running exporter."""

from __future__ import annotations

import testbed
from exporter.http import healthcheck


def test_healthcheck_fails_when_nothing_listens(capsys):
    assert healthcheck.main([f"127.0.0.1:{testbed.free_port()}"]) == 1
    assert "/-/healthy" in capsys.readouterr().err


def test_healthcheck_rejects_a_bad_address():
    assert healthcheck.main(["nonsense"]) == 2


def test_healthcheck_passes_against_a_running_exporter(bed):
    exporter = bed.start_exporter(wait_ready=False)
    testbed.wait_for(lambda: testbed.port_open(exporter.port), 30, "the exporter's port")
    assert healthcheck.main([f":{exporter.port}"]) == 0
