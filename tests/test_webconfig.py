"""``--web.config.file``: TLS, client certificates and basic auth on the metrics endpoint.

Unit tests of the file's parsing and of the bcrypt cache; then the exporter as a child
process, reached over HTTPS by urllib, by the healthcheck and by a real Prometheus.
"""

from __future__ import annotations

import base64
import hashlib
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
from OpenSSL import SSL
from twisted.internet import defer

from exporter import testbed
from exporter.basicauth import BasicAuth, basic_credentials
from exporter.config import ConfigError
from exporter.webconfig import load_web_config
from tests import tls
from tests.scrape import Metrics

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "deploy" / "web-config.yml"
EXAMPLE_PASSWORD = "example-password-change-me"  # documented in deploy/web-config.yml
PASSWORD = "s3cret-scrape-password"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
WRONG = "not-the-password-at-all"


class Pki:
    """A CA with a server and a client certificate, and a second CA with a client one."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = tls.make_authority(directory, "ca")
        self.server = self.ca.issue_server(directory)
        self.client = self.ca.issue_client(directory)
        self.other_ca = tls.make_authority(directory / "other", "other-ca")
        self.other_client = self.other_ca.issue_client(directory / "other", "other-client")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def write(directory: Path, data: dict | str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def tls_block(pki: Pki, **extra: str) -> dict:
    return {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key), **extra}


# --- The file --------------------------------------------------------------------------


def test_full_file_with_relative_paths_resolved_against_its_directory(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    ca = tls.make_authority(conf / "certs")
    ca.issue_server(conf / "certs")
    path = write(
        conf,
        {
            "tls_server_config": {
                "cert_file": "certs/server.crt",
                "key_file": "certs/server.key",
                "client_ca_file": "certs/ca.crt",
                "client_auth_type": "RequireAndVerifyClientCert",
                "min_version": "TLS13",
                "max_version": "TLS13",
            },
            "basic_auth_users": {"prometheus": HASH, "other": HASH.replace("$2b$", "$2y$")},
        },
    )
    monkeypatch.chdir(tmp_path)  # not the file's directory
    config = load_web_config(Path("conf/web.yml"))
    assert config.tls.cert_file == Path("conf/certs/server.crt")
    assert config.tls.key_file == Path("conf/certs/server.key")
    assert config.tls.client_ca_file == Path("conf/certs/ca.crt")
    assert config.tls.requires_client_cert
    assert (config.tls.min_version, config.tls.max_version) == ("TLS13", "TLS13")
    assert isinstance(config.context, SSL.Context)
    assert set(config.users) == {"prometheus", "other"}
    assert HASH not in repr(config) and HASH not in config.describe()
    assert str(path.name) in config.describe()


def test_absolute_paths_and_defaults(tmp_path, pki):
    config = load_web_config(write(tmp_path, {"tls_server_config": tls_block(pki)}))
    assert config.tls.cert_file == pki.server.cert
    assert config.tls.client_auth_type == "NoClientCert"
    assert (config.tls.min_version, config.tls.max_version) == ("TLS12", None)
    assert not config.tls.requires_client_cert
    assert config.users == {}


@pytest.mark.parametrize(
    "text", ["", "# nothing\n", "tls_server_config:\nbasic_auth_users:\n", "tls_server_config: {}"]
)
def test_empty_file_or_blocks_mean_plain_http_without_auth(tmp_path, text):
    config = load_web_config(write(tmp_path, text))
    assert config.tls is None and config.context is None and config.users == {}


def bad(pki: Pki, tmp_path: Path, case: str) -> dict | str:
    """The web config of one invalid case."""
    other_key = tls.other_key(tmp_path / "other.key")
    not_pem = write(tmp_path, "hello\n", "not-pem.crt")
    encrypted = tls.encrypted_copy(pki.server.key, tmp_path / "encrypted.key")
    cases: dict[str, dict | str] = {
        "yaml": "tls_server_config: [\n",
        "list": "- a\n",
        "top key": {"tls_server_config": tls_block(pki), "basic_auth": {}},
        "tls key": {"tls_server_config": tls_block(pki, certfile="x")},
        "http_server_config": {"http_server_config": {"http2": False}},
        "cipher_suites": {"tls_server_config": tls_block(pki, cipher_suites=["TLS_AES_128"])},
        "tls not mapping": {"tls_server_config": ["server.crt"]},
        "tls wrong type": {"tls_server_config": tls_block(pki, min_version=12)},
        "no cert_file": {"tls_server_config": {"key_file": str(pki.server.key)}},
        "no key_file": {"tls_server_config": {"cert_file": str(pki.server.cert)}},
        "cert missing": {"tls_server_config": tls_block(pki, cert_file="absent.crt")},
        "cert unreadable": {"tls_server_config": tls_block(pki, cert_file=str(tmp_path))},
        "cert not PEM": {"tls_server_config": tls_block(pki, cert_file=str(not_pem))},
        "key not PEM": {"tls_server_config": tls_block(pki, key_file=str(not_pem))},
        "key mismatch": {"tls_server_config": tls_block(pki, key_file=str(other_key))},
        "key encrypted": {"tls_server_config": tls_block(pki, key_file=str(encrypted))},
        "client auth": {"tls_server_config": tls_block(pki, client_auth_type="Always")},
        "verify without CA": {
            "tls_server_config": tls_block(pki, client_auth_type="RequireAndVerifyClientCert")
        },
        "CA without client auth": {
            "tls_server_config": tls_block(pki, client_ca_file=str(pki.ca.cert))
        },
        "CA not PEM": {
            "tls_server_config": tls_block(
                pki, client_ca_file=str(not_pem), client_auth_type="VerifyClientCertIfGiven"
            )
        },
        "min_version": {"tls_server_config": tls_block(pki, min_version="TLS14")},
        "max_version": {"tls_server_config": tls_block(pki, max_version="SSL3")},
        "min above max": {
            "tls_server_config": tls_block(pki, min_version="TLS13", max_version="TLS12")
        },
        "users not mapping": {"basic_auth_users": ["prometheus"]},
        "plain password": {"basic_auth_users": {"prometheus": PASSWORD}},
        "short hash": {"basic_auth_users": {"prometheus": HASH[:-1]}},
        "cost too low": {"basic_auth_users": {"prometheus": HASH.replace("$04$", "$03$")}},
        "hash not string": {"basic_auth_users": {"prometheus": 12}},
        "user with colon": {"basic_auth_users": {"pro:metheus": HASH}},
        "user not string": {"basic_auth_users": {12: HASH}},
    }
    return cases[case]


BAD_CASES = {
    "yaml": "YAML syntax error at line",
    "list": "not a mapping",
    "top key": "unknown key 'basic_auth'",
    "tls key": "unknown key 'tls_server_config.certfile'",
    "http_server_config": "http_server_config: exporter-toolkit setting not supported",
    "cipher_suites": "tls_server_config.cipher_suites: exporter-toolkit setting not supported",
    "tls not mapping": "tls_server_config: not a mapping",
    "tls wrong type": "tls_server_config.min_version: not a non-empty string",
    "no cert_file": "missing cert_file",
    "no key_file": "missing key_file",
    "cert missing": "absent.crt: no such file",
    "cert unreadable": "cannot read",
    "cert not PEM": "not-pem.crt: no PEM certificate",
    "key not PEM": "not-pem.crt: not a PEM private key",
    "key mismatch": "other.key does not match cert_file",
    "key encrypted": "encrypted.key: encrypted",
    "client auth": "'Always' is not one of NoClientCert, RequestClientCert",
    "verify without CA": "RequireAndVerifyClientCert needs client_ca_file",
    "CA without client auth": "client_ca_file needs a client_auth_type",
    "CA not PEM": "client_ca_file",
    "min_version": "'TLS14' is not one of TLS10, TLS11, TLS12, TLS13",
    "max_version": "tls_server_config.max_version: 'SSL3'",
    "min above max": "min_version TLS13 is above max_version TLS12",
    "users not mapping": "basic_auth_users: not a mapping",
    "plain password": "basic_auth_users.prometheus: not a bcrypt hash",
    "short hash": "basic_auth_users.prometheus: not a bcrypt hash",
    "cost too low": "basic_auth_users.prometheus: not a bcrypt hash",
    "hash not string": "basic_auth_users.prometheus: not a bcrypt hash",
    "user with colon": "user name 'pro:metheus'",
    "user not string": "user name 12",
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_every_invalid_file_is_one_line_naming_file_and_problem(tmp_path, pki, case):
    path = write(tmp_path, bad(pki, tmp_path, case))
    with pytest.raises(ConfigError) as err:
        load_web_config(path)
    message = str(err.value)
    assert message.startswith(f"web config {path}: "), message
    assert BAD_CASES[case] in message, message
    assert "\n" not in message
    assert PASSWORD not in message and HASH not in message and HASH[:-1] not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"web config .*absent\.yml: no such file$"):
        load_web_config(tmp_path / "absent.yml")


# --- Basic auth and its cache ----------------------------------------------------------


def creds(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (creds("prometheus", "a:b"), (b"prometheus", b"a:b")),
        (b"basic " + base64.b64encode(b"u:"), (b"u", b"")),
        (None, None),
        (b"Bearer abc", None),
        (b"Basic not-base64!", None),
        (b"Basic " + base64.b64encode(b"no-colon"), None),
    ],
)
def test_basic_credentials(header, expected):
    assert basic_credentials(header) == expected


class InlineThread:
    """Stands for deferToThread: records each call, fires when told (or at once)."""

    def __init__(self, fire: bool = True) -> None:
        self.calls = 0
        self.fire = fire
        self.pending: list[tuple[defer.Deferred, object]] = []

    def __call__(self, function, *args) -> defer.Deferred:
        self.calls += 1
        d = defer.Deferred()
        self.pending.append((d, lambda: function(*args)))
        if self.fire:
            self.run()
        return d

    def run(self) -> None:
        while self.pending:
            d, call = self.pending.pop(0)
            d.callback(call())


def outcome(d: defer.Deferred) -> bool:
    results: list[bool] = []
    d.addCallback(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_each_pair_is_checked_by_bcrypt_once_pass_or_fail():
    thread = InlineThread()
    auth = BasicAuth({"prometheus": HASH.encode()}, thread)
    good, wrong = (b"prometheus", PASSWORD.encode()), (b"prometheus", WRONG.encode())
    assert auth.cached(*good) is None and auth.cached(*wrong) is None
    assert outcome(auth.check(*good)) is True
    assert outcome(auth.check(*wrong)) is False
    assert (thread.calls, auth.bcrypt_checks) == (2, 2)
    for _ in range(3):
        assert outcome(auth.check(*good)) is True
        assert outcome(auth.check(*wrong)) is False
    assert (auth.cached(*good), auth.cached(*wrong)) == (True, False)
    assert (thread.calls, auth.bcrypt_checks) == (2, 2)


def test_the_first_check_waits_for_its_thread():
    thread = InlineThread(fire=False)
    auth = BasicAuth({"prometheus": HASH.encode()}, thread)
    d = auth.check(b"prometheus", PASSWORD.encode())
    assert not d.called and auth.bcrypt_checks == 0  # nothing ran on the calling thread
    thread.run()
    assert outcome(d) is True


def test_unknown_user_long_password_and_wrong_user_all_fail():
    auth = BasicAuth({"prometheus": HASH.encode()}, InlineThread())
    assert outcome(auth.check(b"nobody", PASSWORD.encode())) is False
    assert outcome(auth.check(b"prometheus", b"x" * 100)) is False
    assert outcome(auth.check(b"Prometheus", PASSWORD.encode())) is False
    assert auth.bcrypt_checks == 3  # an unknown user costs a bcrypt check too


def test_caches_are_bounded_and_failures_do_not_evict_successes():
    auth = BasicAuth({"prometheus": HASH.encode()}, InlineThread(), cache_size=2)
    good = (b"prometheus", PASSWORD.encode())
    outcome(auth.check(*good))
    for n in range(5):
        outcome(auth.check(b"prometheus", f"wrong{n}".encode()))
    assert auth.cached(*good) is True
    assert auth.cached(b"prometheus", b"wrong0") is None  # evicted, oldest first
    assert auth.cached(b"prometheus", b"wrong4") is False


def test_the_cache_holds_no_password_and_no_plain_hash():
    auth = BasicAuth({"prometheus": HASH.encode()}, InlineThread())
    outcome(auth.check(b"prometheus", PASSWORD.encode()))
    (key,) = auth._passed
    assert PASSWORD.encode() not in key
    assert key != hashlib.sha256(b"prometheus:" + PASSWORD.encode()).digest()
    assert HASH not in repr(auth) and PASSWORD not in repr(vars(auth))


# --- The shipped example ---------------------------------------------------------------


def test_shipped_example_documents_its_password_and_uses_relative_paths():
    data = yaml.safe_load(SHIPPED.read_text())
    assert bcrypt.checkpw(
        EXAMPLE_PASSWORD.encode(), data["basic_auth_users"]["prometheus"].encode()
    )
    assert EXAMPLE_PASSWORD in SHIPPED.read_text()
    for key in ("cert_file", "key_file"):
        assert not Path(data["tls_server_config"][key]).is_absolute()
    assert not any(
        b"PRIVATE KEY" in p.read_bytes() for p in (ROOT / "deploy").rglob("*") if p.is_file()
    ), "never ship a private key"


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


# --- The exporter process --------------------------------------------------------------


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
integration = pytest.mark.integration


def start(bed, directory: Path, data: dict):
    """An exporter with this web config, its TLS port open."""
    path = write(directory, data, f"web-{len(bed.exporters)}.yml")
    exporter = bed.start_exporter("--web.config.file", str(path), wait_ready=False)
    testbed.wait_for(lambda: testbed.port_open(exporter.port), 30, "the exporter's port")
    exporter.web_config = path
    return exporter


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
    exporter = start(bed, tmp_path_factory.mktemp("secured"), data)
    exporter.slow_hash = slow

    def ready() -> bool:
        return https_get(exporter.port, "/-/ready", pki.ca.cert, ("prometheus", PASSWORD))[0] == 200

    testbed.wait_for(ready, 30, "the exporter to be ready over https")
    return exporter


@integration
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


@integration
def test_metrics_need_the_password_and_health_does_not(secured, pki):
    ca, port = pki.ca.cert, secured.port
    status, _, body = https_get(port, "/metrics", ca, ("prometheus", PASSWORD))
    assert status == 200 and Metrics(body.decode()).get("ocs_exporter_build_info") == 1
    for auth in (None, ("prometheus", WRONG), ("nobody", PASSWORD), ("prometheus", "")):
        status, headers, _ = https_get(port, "/metrics", ca, auth)
        assert status == 401, auth
        assert headers["WWW-Authenticate"] == 'Basic realm="ocs-exporter"'
    assert https_get(port, "/-/healthy", ca)[0] == 200
    for path in ("/", "/-/ready", "/no/such/page", "/-/healthyx"):
        assert https_get(port, path, ca)[0] == 401, path
    assert https_get(port, "/no/such/page", ca, ("prometheus", PASSWORD))[0] == 404


@integration
def test_plain_http_on_the_tls_port_fails(secured):
    with pytest.raises(REFUSED):
        urllib.request.urlopen(f"http://127.0.0.1:{secured.port}/-/healthy", timeout=10)


@integration
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


@integration
def test_healthcheck_exits_0_against_the_tls_exporter(secured):
    result = subprocess.run(
        [sys.executable, "-m", "exporter.healthcheck", f"127.0.0.1:{secured.port}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "OCS_EXPORTER_WEB_CONFIG_FILE": str(secured.web_config)},
    )
    assert result.returncode == 0, result.stderr


@integration
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


@integration
@pytest.mark.parametrize("auth_type", CLIENT_AUTH)
def test_client_auth_types(bed, pki, tmp_path, auth_type):
    block = {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key)}
    block["client_auth_type"] = auth_type
    if auth_type != "NoClientCert":
        block["client_ca_file"] = str(pki.ca.cert)
    exporter = start(bed, tmp_path, {"tls_server_config": block})
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
            [sys.executable, "-m", "exporter.healthcheck", f"127.0.0.1:{exporter.port}"],
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


@integration
def test_min_version_tls13_refuses_a_tls12_client(bed, pki, tmp_path):
    exporter = start(bed, tmp_path, {"tls_server_config": tls_block(pki, min_version="TLS13")})
    try:
        with pytest.raises(REFUSED):
            https_get(exporter.port, "/-/healthy", pki.ca.cert, max_version=ssl.TLSVersion.TLSv1_2)
        assert https_get(exporter.port, "/-/healthy", pki.ca.cert)[0] == 200
    finally:
        exporter.stop()


@integration
def test_max_version_tls12_refuses_a_tls13_only_client(bed, pki, tmp_path):
    exporter = start(bed, tmp_path, {"tls_server_config": tls_block(pki, max_version="TLS12")})
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
