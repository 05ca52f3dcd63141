"""Web config files for tests: a PKI, valid and invalid files, basic auth credentials."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import yaml
from twisted.internet import defer

import testbed
from tests.support import tls
from tests.support.bed import Testbed

ROOT = Path(__file__).resolve().parents[2]


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


def write(directory: Path, data: dict | str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def tls_block(pki: Pki, **extra: str) -> dict:
    return {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key), **extra}


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


def creds(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


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


def start_exporter(bed: Testbed, directory: Path, data: dict) -> testbed.Exporter:
    """An exporter of ``bed`` with this web config, its port open; ``.web_config`` is the
    file."""
    path = write(directory, data, f"web-{len(bed.exporters)}.yml")
    exporter = bed.start_exporter("--web.config.file", str(path), wait_ready=False)
    testbed.wait_for(lambda: testbed.port_open(exporter.port), 30, "the exporter's port")
    exporter.web_config = path
    return exporter
