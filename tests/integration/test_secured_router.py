"""Joining a secured router: wss:// with a private CA and client certificates, WAMP ticket
and WAMP-CRA authentication, into the least-privilege role of deploy/crossbar."""

from __future__ import annotations

import pytest

import testbed
from tests.support.secured import secured_bed
from tests.support.tls import make_authority

TICKET = "ticket-s3cret-Qx7"
CRA_SECRET = "cra-s3cret-Zp9"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A router with a plain transport for agents and a TLS transport for the exporter that
    requires a client certificate and WAMP authentication."""
    workdir = tmp_path_factory.mktemp("secured")
    bed, ca = secured_bed(
        workdir,
        client_certificates=True,
        tickets={"exporter": TICKET},
        wampcra={"exporter-cra": CRA_SECRET},
    )
    client = ca.issue_client(workdir, "exporter")
    try:
        bed.router.start()
        bed.write_site_file()
        bed.start_agent("sec1")
        (workdir / "ticket").write_text(TICKET + "\n")
        (workdir / "wrong").write_text("not-the-ticket\n")
        yield bed, ca, client
    finally:
        bed.stop()


def secured_flags(bed, ca, client, *extra: str) -> list[str]:
    return [
        "--site-hub",
        bed.router.secured.url,
        "--wamp.tls-ca-file",
        str(ca.cert),
        "--wamp.tls-cert-file",
        str(client.cert),
        "--wamp.tls-key-file",
        str(client.key),
        "--wamp.max-retry-delay",
        "1",
        *extra,
    ]


def test_ticket_from_a_file_joins_and_hears_agents(secured):
    bed, ca, client = secured
    flags = secured_flags(bed, ca, client, "--wamp.authid", "exporter")
    exporter = bed.start_exporter(*flags, "--wamp.secret-file", str(bed.workdir / "ticket"))
    exporter.wait_metric("ocs_agent_up", 1, instance_id="sec1")
    assert TICKET not in exporter.log()
    # The subscribe-only role forbids get_api calls: tolerated, counted, no op types.
    metrics = exporter.wait_metric("ocs_exporter_op_type_queries_total", 1, result="failed")
    assert metrics.get("ocs_op_info", instance_id="sec1", operation="acq") is None
    assert exporter.get("/-/ready")[0] == 200


def test_wampcra_secret_from_the_environment_joins(secured):
    bed, ca, client = secured
    flags = secured_flags(bed, ca, client, "--wamp.authid", "exporter-cra")
    exporter = bed.start_exporter(
        *flags, "--wamp.authmethod", "wampcra", env={"OCS_EXPORTER_WAMP_SECRET": CRA_SECRET}
    )
    exporter.wait_metric("ocs_agent_up", 1, instance_id="sec1")
    assert CRA_SECRET not in exporter.log()


def retried(exporter, attempts: int = 3) -> bool:
    return exporter.log().count("connecting once using transport") >= attempts


def test_wrong_secret_is_refused_logged_once_and_retried(secured):
    bed, ca, client = secured
    flags = secured_flags(bed, ca, client, "--wamp.authid", "exporter")
    exporter = bed.start_exporter(
        *flags, "--wamp.secret-file", str(bed.workdir / "wrong"), wait_ready=False
    )
    testbed.wait_for(lambda: retried(exporter), 30, "several join attempts")
    assert exporter.proc.poll() is None  # no crash loop: the same process keeps trying
    assert exporter.get("/-/ready")[0] == 503
    log = exporter.log()
    warnings = [line for line in log.splitlines() if "level=warn" in line and "cannot join" in line]
    assert len(warnings) == 1, log
    assert "exporter" in warnings[0] and ("not_authorized" in warnings[0] or "auth" in warnings[0])
    assert "not-the-ticket" not in log
    assert exporter.metrics().get("ocs_exporter_crossbar_connected") == 0


def test_anonymous_join_is_refused_on_the_secured_transport(secured):
    bed, ca, client = secured
    exporter = bed.start_exporter(*secured_flags(bed, ca, client), wait_ready=False)
    testbed.wait_for(lambda: retried(exporter), 30, "several join attempts")
    assert exporter.get("/-/ready")[0] == 503 and exporter.proc.poll() is None


def test_no_client_certificate_is_refused(secured):
    bed, ca, _ = secured
    exporter = bed.start_exporter(
        "--site-hub",
        bed.router.secured.url,
        "--wamp.tls-ca-file",
        str(ca.cert),
        "--wamp.authid",
        "exporter",
        "--wamp.secret-file",
        str(bed.workdir / "ticket"),
        "--wamp.max-retry-delay",
        "1",
        wait_ready=False,
    )
    testbed.wait_for(lambda: retried(exporter), 30, "several join attempts")
    assert exporter.get("/-/ready")[0] == 503


def test_untrusted_router_certificate_is_refused(secured, tmp_path):
    bed, _, client = secured
    other = make_authority(tmp_path, "other-ca")
    flags = secured_flags(bed, other, client, "--wamp.authid", "exporter")
    exporter = bed.start_exporter(
        *flags, "--wamp.secret-file", str(bed.workdir / "ticket"), wait_ready=False
    )
    testbed.wait_for(lambda: retried(exporter), 30, "several join attempts")
    assert exporter.get("/-/ready")[0] == 503
    assert sum("cannot join" in line for line in exporter.log().splitlines()) == 1


def test_bad_tls_files_are_config_errors(secured, run_exporter, tmp_path):
    bed, ca, _ = secured
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    code, _, err = run_exporter(
        "--site-file",
        str(bed.site_file),
        "--site-hub",
        bed.router.secured.url,
        "--wamp.tls-ca-file",
        str(garbage),
    )
    assert code == 2 and err.count("\n") == 1 and "--wamp.tls-ca-file" in err, err
    code, _, err = run_exporter(
        "--site-file", str(bed.site_file), "--wamp.tls-ca-file", str(ca.cert)
    )
    assert code == 2 and "wss://" in err
    code, _, err = run_exporter("--site-file", str(bed.site_file), "--wamp.authid", "exporter")
    assert code == 2 and "OCS_EXPORTER_WAMP_SECRET" in err and "Traceback" not in err


@pytest.mark.parametrize("variant", ["op-types", "sessions"])
def test_role_variants(tmp_path_factory, variant):
    """The shipped roles, verbatim, on a real crossbar: both let the exporter call get_api;
    only the sessions role lets it call <root>.<id>.ops, which the op-types role refuses
    (each status counted as an error, logged once with the role that allows it)."""
    workdir = tmp_path_factory.mktemp(f"role-{variant}")
    role_file = testbed.EXPORTER_ROLE_FILE.with_name(f"exporter-role-{variant}.json")
    bed, ca = secured_bed(workdir, role_file, tickets={"exporter": TICKET})
    try:
        bed.router.start()
        bed.start_agent("role1", "--mode", "acq")  # acq and count run from the start
        (workdir / "ticket").write_text(TICKET + "\n")
        exporter = bed.start_exporter(
            *("--site-hub", bed.router.secured.url, "--wamp.tls-ca-file", str(ca.cert)),
            *("--wamp.authid", "exporter", "--wamp.secret-file", str(workdir / "ticket")),
            *("--collector.sessions.interval", "1s"),
        )
        exporter.wait_metric("ocs_op_info", 1, instance_id="role1", operation="acq")
        result = "ok" if variant == "sessions" else "error"

        def answered(count: int):
            metrics = exporter.metrics()
            done = metrics.get("ocs_exporter_session_queries_total", result=result) >= count
            return metrics if done else None

        metrics = testbed.wait_for(lambda: answered(3), 30, f"3 status calls {result}")
        other = "error" if variant == "sessions" else "ok"
        assert metrics.get("ocs_exporter_session_queries_total", result=other) == 0
        assert metrics.get("ocs_exporter_op_type_queries_total", result="failed") == 0
        refused = [line for line in exporter.log().splitlines() if "not_authorized" in line]
        if variant == "sessions":
            acq = {"instance_id": "role1", "operation": "acq"}
            start = metrics.get("ocs_op_session_start_timestamp_seconds", **acq)
            assert start is not None and not refused
        else:
            [line] = refused
            assert "status of" in line and "exporter-role-sessions.json" in line
        assert bed.client("role1").acq.status().session["status"] == "running"
        # The role's subscribe rule grants the feeds wildcard: no fallback to heartbeats.
        log = exporter.log()
        assert 'subscribed to observatory..feeds."' in log and "heartbeats only" not in log
    finally:
        bed.stop()
