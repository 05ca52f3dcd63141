"""PEM files: one loader and one wording, for the web config and for a wss:// router."""

from __future__ import annotations

import pytest

from exporter import pem
from exporter.config import ConfigError, WampTLS
from exporter.wamp.tls import client_tls
from tests.support import tls


def test_a_chain_and_a_combined_file_load_in_order(tmp_path, pki):
    combined = tmp_path / "combined.pem"
    combined.write_bytes(
        pki.server.key.read_bytes() + pki.server.cert.read_bytes() + pki.ca.cert.read_bytes()
    )
    chain = pem.certificates(combined, "setting")
    assert [c.subject for c in chain] == [
        pem.certificates(pki.server.cert, "s")[0].subject,
        pem.certificates(pki.ca.cert, "s")[0].subject,
    ]
    key = pem.private_key(combined, "setting")
    assert pem.matches(chain[0], key)
    assert not pem.matches(chain[1], key)


@pytest.mark.parametrize(
    ("loader", "name", "problem"),
    [
        (pem.certificates, "absent.crt", "no such file"),
        (pem.certificates, ".", "cannot read: Is a directory"),
        (pem.certificates, "not-pem", "no PEM certificate in it"),
        (pem.private_key, "not-pem", "not a PEM private key"),
        (pem.private_key, "server.crt", "not a PEM private key"),
        (pem.private_key, "encrypted.key", "encrypted"),
    ],
)
def test_every_problem_names_setting_and_file_in_one_line(tmp_path, pki, loader, name, problem):
    (tmp_path / "not-pem").write_text("hello\n")
    tls.encrypted_copy(pki.server.key, tmp_path / "encrypted.key")
    (tmp_path / "server.crt").write_bytes(pki.server.cert.read_bytes())
    path = tmp_path / name
    with pytest.raises(ConfigError) as err:
        loader(path, "--some.setting")
    assert str(err.value) == f"--some.setting {path}: {problem}"


def test_wss_client_tls_loads_trust_and_a_client_certificate(pki):
    options = client_tls("localhost", WampTLS(pki.ca.cert, pki.client.cert, pki.client.key))
    assert options is not None
    assert client_tls("localhost", WampTLS(ca_file=pki.ca.cert)) is not None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"ca_file": "absent.crt"}, "--wamp.tls-ca-file {dir}/absent.crt: no such file"),
        (
            {"ca_file": "client.key"},
            "--wamp.tls-ca-file {dir}/client.key: no PEM certificate in it",
        ),
        (
            {"cert_file": "client.key", "key_file": "client.key"},
            "--wamp.tls-cert-file {dir}/client.key: no PEM certificate in it",
        ),
        (
            {"cert_file": "client.crt", "key_file": "client.crt"},
            "--wamp.tls-key-file {dir}/client.crt: not a PEM private key",
        ),
        (
            {"cert_file": "client.crt", "key_file": "other.key"},
            "--wamp.tls-key-file {dir}/other.key does not match"
            " --wamp.tls-cert-file {dir}/client.crt",
        ),
    ],
)
def test_wss_client_tls_errors_use_the_same_wording(pki, tmp_path, files, message):
    tls.other_key(tmp_path / "other.key")
    for name in ("client.crt", "client.key"):
        (tmp_path / name).write_bytes((pki.dir / name).read_bytes())
    settings = WampTLS(**{key: tmp_path / name for key, name in files.items()})
    with pytest.raises(ConfigError) as err:
        client_tls("localhost", settings)
    assert str(err.value) == message.format(dir=tmp_path)
