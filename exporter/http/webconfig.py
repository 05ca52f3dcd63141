"""``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit format.

::

    tls_server_config:
      cert_file: server.crt          # relative paths: relative to this file
      key_file: server.key
      client_ca_file: ca.crt         # needed by the Verify* client_auth_types
      client_auth_type: NoClientCert # or RequestClientCert, RequireAnyClientCert,
                                     # VerifyClientCertIfGiven, RequireAndVerifyClientCert
      min_version: TLS12             # TLS10, TLS11, TLS12 (default), TLS13
      max_version: TLS13             # default: the highest OpenSSL offers
    basic_auth_users:
      prometheus: $2b$10$...         # bcrypt hashes

Every problem is a :class:`ConfigError` naming the file, found when the file is loaded.
Passwords and hashes never appear in a message, a repr or the log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer

from exporter import pem
from exporter.config import ConfigError, load_yaml

TLS_VERSIONS = {
    "TLS10": SSL.TLS1_VERSION,
    "TLS11": SSL.TLS1_1_VERSION,
    "TLS12": SSL.TLS1_2_VERSION,
    "TLS13": SSL.TLS1_3_VERSION,
}
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
REQUIRE_CLIENT_CERT = ("RequireAnyClientCert", "RequireAndVerifyClientCert")
VERIFY_CLIENT_CERT = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
)
# exporter-toolkit settings that this exporter does not implement: refused, never ignored.
UNSUPPORTED = {
    "http_server_config",
    "tls_server_config.cipher_suites",
    "tls_server_config.curve_preferences",
    "tls_server_config.prefer_server_cipher_suites",
}
BCRYPT_HASH = re.compile(r"\$2[abxy]\$(\d\d)\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str | None = None

    @property
    def requires_client_cert(self) -> bool:
        return self.client_auth_type in REQUIRE_CLIENT_CERT


@dataclass(frozen=True)
class WebConfig:
    """A loaded web config file; ``context`` is the TLS server context, built and checked."""

    path: Path
    tls: TLSSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    context: SSL.Context | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """One line for the log, free of secrets."""
        if self.tls is None:
            tls = "plain HTTP"
        else:
            high = f"up to {self.tls.max_version}" if self.tls.max_version else "or later"
            tls = (
                f"TLS: {self.tls.min_version} {high}, client_auth_type {self.tls.client_auth_type}"
            )
        users = f"basic auth for {len(self.users)} user(s)" if self.users else "no basic auth"
        return f"web config {self.path}: {tls}, {users}"


def _fail(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"web config {path}: " + " ".join(problem.split()))


def _openssl_reason(exc: SSL.Error) -> str:
    reasons = [str(e[2]) for e in exc.args[0] if len(e) > 2] if exc.args else []
    return ", ".join(r for r in reasons if r) or "OpenSSL error"


def load_web_config(path: Path | str) -> WebConfig:
    """Read, check and build everything ``path`` asks for; ConfigError on any problem."""
    path = Path(path)
    data = load_yaml(path, "web config")
    _check_keys(path, data, "", ("tls_server_config", "basic_auth_users"))
    tls = _tls_settings(path, data.get("tls_server_config"))
    users = _users(path, data.get("basic_auth_users"))
    context = server_context(path, tls) if tls is not None else None
    return WebConfig(path=path, tls=tls, users=users, context=context)


def _check_keys(path: Path, data: dict, prefix: str, known: tuple[str, ...]) -> None:
    for key in data:
        name = f"{prefix}{key}"
        if name in UNSUPPORTED:
            raise _fail(path, f"{name}: exporter-toolkit setting not supported by ocs-exporter")
        if key not in known:
            raise _fail(path, f"unknown key {name!r}")


def _tls_settings(path: Path, block: Any) -> TLSSettings | None:
    if not block:  # absent, null or {}: plain HTTP, as in exporter-toolkit
        if block not in (None, {}):
            raise _fail(path, "tls_server_config: not a mapping")
        return None
    if not isinstance(block, dict):
        raise _fail(path, "tls_server_config: not a mapping")
    _check_keys(path, block, "tls_server_config.", TLS_KEYS)
    for key, value in block.items():
        if value is not None and not (isinstance(value, str) and value):
            raise _fail(path, f"tls_server_config.{key}: not a non-empty string")

    def file(key: str) -> Path | None:
        value = block.get(key)
        return path.parent / value if value else None  # an absolute value wins over parent

    cert_file, key_file = file("cert_file"), file("key_file")
    if cert_file is None:
        raise _fail(path, "tls_server_config: missing cert_file")
    if key_file is None:
        raise _fail(path, "tls_server_config: missing key_file")
    auth = block.get("client_auth_type") or "NoClientCert"
    if auth not in CLIENT_AUTH_TYPES:
        raise _fail(
            path,
            f"tls_server_config.client_auth_type: {auth!r} is not one of "
            + ", ".join(CLIENT_AUTH_TYPES),
        )
    ca_file = file("client_ca_file")
    if ca_file is not None and auth == "NoClientCert":
        raise _fail(path, "tls_server_config: client_ca_file needs a client_auth_type")
    if ca_file is None and auth in VERIFY_CLIENT_CERT:
        raise _fail(path, f"tls_server_config: client_auth_type {auth} needs client_ca_file")
    low, high = _versions(path, block)
    return TLSSettings(cert_file, key_file, ca_file, auth, low, high)


def _versions(path: Path, block: dict) -> tuple[str, str | None]:
    versions = []
    for key, default in (("min_version", "TLS12"), ("max_version", None)):
        value = block.get(key) or default
        if value is not None and value not in TLS_VERSIONS:
            raise _fail(
                path, f"tls_server_config.{key}: {value!r} is not one of " + ", ".join(TLS_VERSIONS)
            )
        versions.append(value)
    low, high = versions
    if high is not None and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        raise _fail(path, f"tls_server_config: min_version {low} is above max_version {high}")
    return low, high


def _users(path: Path, block: Any) -> dict[str, bytes]:
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise _fail(path, "basic_auth_users: not a mapping of user names to bcrypt hashes")
    users = {}
    for user, hashed in block.items():
        if not isinstance(user, str) or ":" in user:
            raise _fail(path, f"basic_auth_users: user name {user!r} is not a string without ':'")
        match = BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if match is None or not 4 <= int(match.group(1)) <= 31:
            # Never the value itself: it may be a password pasted by mistake.
            raise _fail(path, f"basic_auth_users.{user}: not a bcrypt hash ($2y$10$... or $2b$...)")
        users[user] = hashed.encode()
    return users


def server_context(path: Path, tls: TLSSettings) -> SSL.Context:
    """The OpenSSL server context ``tls`` describes; ``path`` names the file in errors."""
    try:
        chain = pem.certificates(tls.cert_file, "tls_server_config.cert_file")
        key = pem.private_key(tls.key_file, "tls_server_config.key_file")
        if tls.client_ca_file is not None:
            pem.certificates(tls.client_ca_file, "tls_server_config.client_ca_file")
    except pem.PEMError as exc:
        raise _fail(path, str(exc)) from None
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    # Session resumption with client certificates needs a session id context.
    ctx.set_session_id(b"ocs-exporter")
    ctx.set_min_proto_version(TLS_VERSIONS[tls.min_version])
    if tls.max_version is not None:
        ctx.set_max_proto_version(TLS_VERSIONS[tls.max_version])
    try:
        ctx.use_certificate(chain[0])
        for cert in chain[1:]:
            ctx.add_extra_chain_cert(cert)
    except SSL.Error as exc:
        problem = f"cert_file {tls.cert_file}: {_openssl_reason(exc)}"
        raise _fail(path, f"tls_server_config.{problem}") from None
    try:
        ctx.use_privatekey(key)  # OpenSSL checks it against the certificate here
        ctx.check_privatekey()
    except (SSL.Error, TypeError):
        problem = f"key_file {tls.key_file} does not match cert_file {tls.cert_file}"
        raise _fail(path, f"tls_server_config: {problem}") from None
    _client_auth(path, tls, ctx)
    return ctx


def _accept_any(*_: object) -> bool:
    return True


def _client_auth(path: Path, tls: TLSSettings, ctx: SSL.Context) -> None:
    """Request*/Require*: any certificate; Verify*: one that chains to client_ca_file."""
    if tls.client_auth_type == "NoClientCert":
        ctx.set_verify(SSL.VERIFY_NONE)
        return
    mode = SSL.VERIFY_PEER
    if tls.requires_client_cert:
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    if tls.client_ca_file is not None:
        ca_file = os.fsencode(tls.client_ca_file)
        try:
            ctx.load_client_ca(ca_file)  # the names sent in the certificate request
            if tls.client_auth_type in VERIFY_CLIENT_CERT:
                ctx.load_verify_locations(ca_file)
        except SSL.Error as exc:
            problem = f"{tls.client_ca_file}: {_openssl_reason(exc)}"
            raise _fail(path, f"tls_server_config.client_ca_file {problem}") from None
    if tls.client_auth_type in VERIFY_CLIENT_CERT:
        ctx.set_verify(mode)  # OpenSSL's own chain verification against the CA file
    else:
        ctx.set_verify(mode, _accept_any)


@implementer(IOpenSSLContextFactory)
class ServerContextFactory:
    """What ``reactor.listenSSL`` wants: ``getContext()``, the same context every time."""

    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def getContext(self) -> SSL.Context:
        return self.context
