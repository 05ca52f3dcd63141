"""--web.config.file live: promtool's view of the files, and the exporter serving HTTPS
and basic auth."""

from __future__ import annotations

import http.client
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

import testbed
from exporter.config import ConfigError
from exporter.http.webconfig import load_web_config
from testbed import Metrics
from tests.support import tls
from tests.support.webconfig import (
    BAD_CASES,
    HASH,
    PASSWORD,
    SHIPPED,
    WRONG,
    bad,
    creds,
    start_exporter,
    tls_block,
    write,
)


def example_copy(directory: Path) -> Path:
    """The shipped file with freshly made certificate and key next to it, as it documents."""
    data = yaml.safe_load(SHIPPED.read_text())["tls_server_config"]
    issued = tls.make_authority(directory / "ca").issue_server(directory / "ca")
    shutil.copy(issued.cert, directory / data["cert_file"])
    shutil.copy(issued.key, directory / data["key_file"])
    return Path(shutil.copy(SHIPPED, directory / "web-config.yml"))


def promtool_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["promtool", "check", "web-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",  # relative paths resolve against the file, not the working directory
    )


def test_promtool_accepts_the_shipped_example_with_its_files(tmp_path):
    copy = example_copy(tmp_path)
    result = promtool_check(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    assert load_web_config(copy).users.keys() == {"prometheus"}


def test_promtool_needs_the_files_the_shipped_example_names():
    result = promtool_check(SHIPPED)
    assert result.returncode != 0 and "server.crt" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "case",
    ["top key", "client auth", "min_version", "key mismatch", "plain password", "cert missing"],
)
def test_promtool_refuses_what_the_exporter_refuses(tmp_path, pki, case):
    path = write(tmp_path, bad(pki, tmp_path, case))
    assert promtool_check(path).returncode != 0
    with pytest.raises(ConfigError):
        load_web_config(path)


def https_get(
    port: int,
    path: str,
    ca: Path,
    auth: tuple[str, str] | None = None,
    client: tls.Issued | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> tuple[int, dict, bytes]:
    """GET over HTTPS, checking the server against ``ca``; raises on a TLS or socket error."""
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    if max_version is not None:
        context.maximum_version = max_version
    headers = {"Authorization": creds(*auth).decode()} if auth else {}
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


REFUSED = (OSError, http.client.HTTPException)  # ssl.SSLError and URLError are OSErrors


@pytest.fixture(scope="module")
def secured(bed, pki, tmp_path_factory):
    """TLS and basic auth; a second user whose hash costs ~1 s, to see the reactor free."""
    slow = bcrypt.hashpw(b"slow-password", bcrypt.gensalt(14)).decode()
    data = {
        "tls_server_config": {
            "cert_file": str(pki.server.cert),
            "key_file": str(pki.server.key),
        },
        "basic_auth_users": {"prometheus": HASH, "slow": slow},
    }
    exporter = start_exporter(bed, tmp_path_factory.mktemp("secured"), data)
    exporter.slow_hash = slow

    def ready() -> bool:
        return https_get(exporter.port, "/-/ready", pki.ca.cert, ("prometheus", PASSWORD))[0] == 200

    testbed.wait_for(ready, 30, "the exporter to be ready over https")
    return exporter


def test_prometheus_scrapes_over_https_with_basic_auth(secured, pki, tmp_path):
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "ocs",
                "scheme": "https",
                "tls_config": {"ca_file": str(pki.ca.cert)},
                "basic_auth": {"username": "prometheus", "password": PASSWORD},
                "static_configs": [{"targets": [f"127.0.0.1:{secured.port}"]}],
            }
        ],
    }
    prom = testbed.Prometheus(tmp_path / "prom", config)
    try:
        prom.start()
        testbed.wait_for(prom.targets_up, 30, "the https target up")
        testbed.wait_for(lambda: prom.query('up{job="ocs"} == 1'), 30, "up == 1")
        found = testbed.wait_for(
            lambda: prom.query('ocs_exporter_build_info{job="ocs"}'), 30, "build_info"
        )
        assert found[0]["metric"]["version"]
    finally:
        prom.stop()


def test_metrics_need_the_password_and_the_probes_do_not(secured, pki):
    ca, port = pki.ca.cert, secured.port
    status, _, body = https_get(port, "/metrics", ca, ("prometheus", PASSWORD))
    assert status == 200 and Metrics(body.decode()).get("ocs_exporter_build_info") == 1
    for auth in (None, ("prometheus", WRONG), ("nobody", PASSWORD), ("prometheus", "")):
        status, headers, _ = https_get(port, "/metrics", ca, auth)
        assert status == 401, auth
        assert headers["WWW-Authenticate"] == 'Basic realm="ocs-exporter"'
    assert https_get(port, "/-/healthy", ca)[0] == 200
    assert https_get(port, "/-/ready", ca)[0] == 200  # liveness and readiness: no secrets
    assert https_get(port, "/-/ready", ca, ("prometheus", WRONG))[0] == 200
    for path in ("/", "/api/agents", "/no/such/page", "/-/healthyx", "/-/readyx"):
        assert https_get(port, path, ca)[0] == 401, path
    assert https_get(port, "/no/such/page", ca, ("prometheus", PASSWORD))[0] == 404


def test_plain_http_on_the_tls_port_fails(secured):
    with pytest.raises(REFUSED):
        urllib.request.urlopen(f"http://127.0.0.1:{secured.port}/-/healthy", timeout=10)


def test_bcrypt_runs_off_the_reactor_thread_and_once(secured, pki):
    """A ~1 s bcrypt check does not hold up other requests; the second one is cached."""
    ca, port = pki.ca.cert, secured.port
    took: dict[str, float] = {}

    def slow_scrape() -> None:
        start = time.monotonic()
        took["status"] = https_get(port, "/metrics", ca, ("slow", "slow-password"))[0]
        took["first"] = time.monotonic() - start

    thread = threading.Thread(target=slow_scrape)
    thread.start()
    time.sleep(0.1)
    start = time.monotonic()
    assert https_get(port, "/-/healthy", ca)[0] == 200
    health = time.monotonic() - start
    thread.join(30)
    assert took["status"] == 200
    assert health < took["first"] / 2, (health, took)
    start = time.monotonic()
    assert https_get(port, "/metrics", ca, ("slow", "slow-password"))[0] == 200
    assert time.monotonic() - start < took["first"] / 2, took


def test_healthcheck_exits_0_against_the_tls_exporter(secured):
    result = subprocess.run(
        [sys.executable, "-m", "exporter.http.healthcheck", f"127.0.0.1:{secured.port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "OCS_EXPORTER_WEB_CONFIG_FILE": str(secured.web_config)},
    )
    assert result.returncode == 0, result.stderr


def test_the_log_never_holds_a_password_or_hash(secured, pki):
    https_get(secured.port, "/metrics", pki.ca.cert, ("prometheus", WRONG))
    https_get(secured.port, "/metrics", pki.ca.cert, ("prometheus", PASSWORD))
    log = secured.log()
    assert "level=debug" in log and "/metrics" in log  # the access log is there
    for secret in (PASSWORD, WRONG, HASH, secured.slow_hash, "slow-password"):
        assert secret not in log
    assert creds("prometheus", PASSWORD).decode().split()[1] not in log


# What each client_auth_type lets through: no certificate, one from the CA, one from another.
CLIENT_AUTH = {
    "NoClientCert": (True, True, True),
    "RequestClientCert": (True, True, True),
    "RequireAnyClientCert": (False, True, True),
    "VerifyClientCertIfGiven": (True, True, False),
    "RequireAndVerifyClientCert": (False, True, False),
}


@pytest.mark.parametrize("auth_type", CLIENT_AUTH)
def test_client_auth_types(bed, pki, tmp_path, auth_type):
    block = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
    block["client_auth_type"] = auth_type
    if auth_type != "NoClientCert":
        block["client_ca_file"] = str(pki.ca.cert)
    exporter = start_exporter(bed, tmp_path, {"tls_server_config": block})
    try:
        for client, allowed in zip(
            (None, pki.client, pki.other_client), CLIENT_AUTH[auth_type], strict=True
        ):
            name = client.cert.name if client else "no certificate"
            if allowed:
                assert https_get(exporter.port, "/-/healthy", pki.ca.cert, None, client)[0] == 200
            else:
                with pytest.raises(REFUSED):
                    https_get(exporter.port, "/-/healthy", pki.ca.cert, None, client)
                    pytest.fail(f"{auth_type} let {name} through")
        result = subprocess.run(
            [sys.executable, "-m", "exporter.http.healthcheck", f"127.0.0.1:{exporter.port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "OCS_EXPORTER_WEB_CONFIG_FILE": str(exporter.web_config)},
        )
        assert result.returncode == 0, result.stderr
        if auth_type.startswith("Require"):
            assert "asks for a client certificate" in result.stdout
    finally:
        exporter.stop()


def test_min_version_tls13_refuses_a_tls12_client(bed, pki, tmp_path):
    exporter = start_exporter(
        bed, tmp_path, {"tls_server_config": tls_block(pki, min_version="TLS13")}
    )
    try:
        with pytest.raises(REFUSED):
            https_get(exporter.port, "/-/healthy", pki.ca.cert, max_version=ssl.TLSVersion.TLSv1_2)
        assert https_get(exporter.port, "/-/healthy", pki.ca.cert)[0] == 200
    finally:
        exporter.stop()


def test_max_version_tls12_refuses_a_tls13_only_client(bed, pki, tmp_path):
    exporter = start_exporter(
        bed, tmp_path, {"tls_server_config": tls_block(pki, max_version="TLS12")}
    )
    try:
        context = ssl.create_default_context(cafile=str(pki.ca.cert))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        with pytest.raises(REFUSED):
            urllib.request.urlopen(
                f"https://127.0.0.1:{exporter.port}/-/healthy", timeout=10, context=context
            )
        assert https_get(exporter.port, "/-/healthy", pki.ca.cert)[0] == 200
    finally:
        exporter.stop()


NO_ROUTER = ["--site-hub", "ws://127.0.0.1:1/ws", "--site-realm", "r", "--address-root", "o"]


@pytest.mark.parametrize(
    "case", ["top key", "plain password", "key mismatch", "client auth", "min_version", "yaml"]
)
def test_invalid_web_config_exits_2_with_one_line(tmp_path, pki, run_exporter, case):
    path = write(tmp_path, bad(pki, tmp_path, case))
    code, out, err = run_exporter(*NO_ROUTER, "--web.config.file", str(path))
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"ocs-exporter: error: web config {path}: ")
    assert BAD_CASES[case] in err
    assert "Traceback" not in err and out == ""
    assert PASSWORD not in err and HASH not in err


def test_the_environment_variable_names_the_file(tmp_path, run_exporter):
    path = write(tmp_path, {"unknown": 1})
    code, _, err = run_exporter(*NO_ROUTER, env={"OCS_EXPORTER_WEB_CONFIG_FILE": str(path)})
    assert code == 2 and f"web config {path}: unknown key 'unknown'" in err
