"""``--web.config.file``: the file's parsing, and the bcrypt checker behind basic auth.

The exporter serving HTTPS and basic auth is tested live in tests/integration/test_webconfig.py,
the guard in front of the site in tests/unit/test_web.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import bcrypt
import pytest
import yaml
from OpenSSL import SSL
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from zope.interface.verify import verifyObject

from exporter.config import ConfigError
from exporter.http.basicauth import BcryptChecker
from exporter.http.webconfig import load_web_config
from tests.support import tls
from tests.support.webconfig import (
    BAD_CASES,
    EXAMPLE_PASSWORD,
    HASH,
    PASSWORD,
    ROOT,
    SHIPPED,
    WRONG,
    InlineThread,
    bad,
    tls_block,
    write,
)

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


# --- The bcrypt checker and its cache --------------------------------------------------


def outcome(d: defer.Deferred) -> bool:
    results: list[bool] = []
    d.addCallback(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_the_checker_gives_twisted_cred_the_user_or_unauthorized_login():
    checker = BcryptChecker({"prometheus": HASH.encode()}, InlineThread())
    assert verifyObject(ICredentialsChecker, checker)
    good = UsernamePassword(b"prometheus", PASSWORD.encode())
    assert outcome(checker.requestAvatarId(good)) == b"prometheus"
    failures = []
    checker.requestAvatarId(UsernamePassword(b"prometheus", WRONG.encode())).addErrback(
        failures.append
    )
    assert len(failures) == 1 and failures[0].check(UnauthorizedLogin)
    assert PASSWORD not in str(failures[0].value) and HASH not in str(failures[0].value)


def test_each_pair_is_checked_by_bcrypt_once_pass_or_fail():
    thread = InlineThread()
    auth = BcryptChecker({"prometheus": HASH.encode()}, thread)
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
    auth = BcryptChecker({"prometheus": HASH.encode()}, thread)
    d = auth.check(b"prometheus", PASSWORD.encode())
    assert not d.called and auth.bcrypt_checks == 0  # nothing ran on the calling thread
    thread.run()
    assert outcome(d) is True


def test_unknown_user_long_password_and_wrong_user_all_fail():
    auth = BcryptChecker({"prometheus": HASH.encode()}, InlineThread())
    assert outcome(auth.check(b"nobody", PASSWORD.encode())) is False
    assert outcome(auth.check(b"prometheus", b"x" * 100)) is False
    assert outcome(auth.check(b"Prometheus", PASSWORD.encode())) is False
    assert auth.bcrypt_checks == 3  # an unknown user costs a bcrypt check too


def test_caches_are_bounded_and_failures_do_not_evict_successes():
    auth = BcryptChecker({"prometheus": HASH.encode()}, InlineThread(), cache_size=2)
    good = (b"prometheus", PASSWORD.encode())
    outcome(auth.check(*good))
    for n in range(5):
        outcome(auth.check(b"prometheus", f"wrong{n}".encode()))
    assert auth.cached(*good) is True
    assert auth.cached(b"prometheus", b"wrong0") is None  # evicted, oldest first
    assert auth.cached(b"prometheus", b"wrong4") is False


def test_the_cache_holds_no_password_and_no_plain_hash():
    auth = BcryptChecker({"prometheus": HASH.encode()}, InlineThread())
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
