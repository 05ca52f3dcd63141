"""The image's HEALTHCHECK command against nothing, bad usage, a running exporter, and an
exporter that requires client certificates."""

from __future__ import annotations

import pytest

import testbed
from exporter.http import healthcheck
from tests.support.webconfig import start_exporter, tls_block, write

WEB_CONFIG = "OCS_EXPORTER_WEB_CONFIG_FILE"


def test_healthcheck_fails_when_nothing_listens(capsys):
    assert healthcheck.main([f"127.0.0.1:{testbed.free_port()}"]) == 1
    assert "/-/healthy" in capsys.readouterr().err


def test_healthcheck_rejects_a_bad_address():
    assert healthcheck.main(["nonsense"]) == 2


def test_healthcheck_rejects_a_bad_web_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(WEB_CONFIG, str(write(tmp_path, {"unknown": 1})))
    assert healthcheck.main([f"127.0.0.1:{testbed.free_port()}"]) == 2
    assert "unknown key 'unknown'" in capsys.readouterr().err


def test_healthcheck_passes_against_a_running_exporter(bed, monkeypatch):
    exporter = bed.start_exporter(wait_ready=False)
    testbed.wait_for(lambda: testbed.port_open(exporter.port), 30, "the exporter's port")
    assert healthcheck.main([f":{exporter.port}"]) == 0
    monkeypatch.setenv("OCS_EXPORTER_WEB_LISTEN_ADDRESS", f"127.0.0.1:{exporter.port}")
    assert healthcheck.main([]) == 0  # the address from the environment, as the image has it


def client_certificates_required(pki, max_version: str = "TLS13") -> dict:
    block = tls_block(pki, client_auth_type="RequireAndVerifyClientCert", max_version=max_version)
    return {"tls_server_config": {**block, "client_ca_file": str(pki.ca.cert)}}


@pytest.mark.parametrize("max_version", ["TLS12", "TLS13"])
def test_healthcheck_counts_the_tls_answer_where_client_certificates_are_required(
    bed, pki, tmp_path, monkeypatch, capsys, max_version
):
    """TLS 1.3 completes the handshake before the server looks for a certificate; TLS 1.2
    refuses a client without one inside it: both are the exporter answering."""
    exporter = start_exporter(bed, tmp_path, client_certificates_required(pki, max_version))
    try:
        monkeypatch.setenv(WEB_CONFIG, str(exporter.web_config))
        assert healthcheck.main([f"127.0.0.1:{exporter.port}"]) == 0
        assert "asks for a client certificate" in capsys.readouterr().out
    finally:
        exporter.stop()


def test_healthcheck_fails_where_no_tls_answers(bed, pki, tmp_path, monkeypatch, capsys):
    """A web config that requires client certificates, but a port where plain HTTP or
    nothing listens."""
    plain = bed.start_exporter(wait_ready=False)
    testbed.wait_for(lambda: testbed.port_open(plain.port), 30, "the exporter's port")
    monkeypatch.setenv(WEB_CONFIG, str(write(tmp_path, client_certificates_required(pki))))
    assert healthcheck.main([f"127.0.0.1:{testbed.free_port()}"]) == 1
    assert healthcheck.main([f"127.0.0.1:{plain.port}"]) == 1
    assert "asks for a client certificate" not in capsys.readouterr().out
