"""The flags (see :mod:`exporter.flags`) and the OCS site config file, turned into
:class:`Settings`; every problem a :class:`ConfigError` of one line."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from exporter.feeds import DEFAULT_MAX_FEEDS
from exporter.flags import (
    CALLS_PER_SECOND,
    DURATION_BUCKETS,
    SECRET_ENV,
    listen_address,
    parse_flags,
    wamp_url,
)
from exporter.sessions import DATA_KEYS

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, reported as one line and a non-zero exit."""


@dataclass(frozen=True)
class WampTLS:
    """For wss:// routers: whom to trust, and the client certificate to show, if any."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class WampAuth:
    authid: str
    method: str  # "ticket" or "wampcra"
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    wamp_url: str
    realm: str
    address_root: str
    site_file: Path | None
    agent_timeout: float
    listen_host: str
    listen_port: int
    telemetry_path: str
    web_config_file: Path | None
    log_level: str
    log_format: str
    serializers: tuple[str, ...]
    max_retry_delay: float
    max_calls_per_second: int = CALLS_PER_SECOND
    forget_after: float = 86400.0
    max_agents: int = 20000
    wamp_tls: WampTLS | None = None
    wamp_auth: WampAuth | None = None
    expected_agents: tuple = ()
    site_host: str | None = None
    op_types: bool = True
    op_state: bool = False
    sessions: bool = True
    sessions_interval: float = 30.0
    sessions_data_keys: tuple[str, ...] = DATA_KEYS
    sessions_durations: bool = False
    sessions_duration_buckets: tuple[float, ...] = tuple(map(float, DURATION_BUCKETS))
    feeds: bool = True
    max_feeds_per_agent: int = DEFAULT_MAX_FEEDS
    registry_compat: bool = False
    registry_compat_instance_id: str = "registry"


def _checked(check: Callable[[str], T], value: str, source: str) -> T:
    """A flag's type applied to a value from elsewhere; its problem a ConfigError naming
    ``source``."""
    try:
        return check(value)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT``, as --web.listen-address
    reads it."""
    return _checked(listen_address, value, "--web.listen-address")


def wamp_security(args: argparse.Namespace, url: str) -> tuple[WampTLS | None, WampAuth | None]:
    """TLS and authentication settings for the router connection, checked together."""
    files = (args.wamp_tls_ca_file, args.wamp_tls_cert_file, args.wamp_tls_key_file)
    tls = None
    if any(files):
        if not url.startswith("wss://"):
            raise ConfigError(f"--wamp.tls-* options need a wss:// router URL, not {url!r}")
        if bool(args.wamp_tls_cert_file) != bool(args.wamp_tls_key_file):
            raise ConfigError("--wamp.tls-cert-file and --wamp.tls-key-file go together")
        tls = WampTLS(*files)
    elif url.startswith("wss://"):
        tls = WampTLS()
    authid, secret_file = args.wamp_authid, args.wamp_secret_file
    if secret_file:
        secret = secret_file.read_text().strip()
        source = f"--wamp.secret-file {secret_file}"
    else:
        secret = os.environ.get(SECRET_ENV, "")
        source = SECRET_ENV
    if not authid:
        if secret_file:
            raise ConfigError("--wamp.secret-file needs --wamp.authid")
        return tls, None
    if not secret:
        raise ConfigError(
            f"--wamp.authid {authid}: no secret: set --wamp.secret-file or {SECRET_ENV}"
            if source == SECRET_ENV
            else f"{source}: the file is empty"
        )
    return tls, WampAuth(authid, args.wamp_authmethod, secret)


def find_site_file(args: argparse.Namespace) -> Path | None:
    if args.site_file:
        return args.site_file
    config_dir = os.environ.get("OCS_CONFIG_DIR")
    if config_dir:
        return Path(config_dir) / f"{args.site}.yaml"
    return None


def load_yaml(path: Path, what: str) -> dict:
    """The mapping in the YAML file ``path`` (an empty file is an empty mapping); every
    problem a ConfigError of one line: ``<what> <path>: <problem>``."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{what} {path}: " + " ".join(problem.split()))

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise fail("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise fail(f"YAML syntax error{where}: {exc.problem}") from None
    except yaml.YAMLError:
        raise fail("YAML error") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail("not a mapping of keys")
    return data


def load_site_file(path: Path) -> Mapping:
    """An OCS site config file, checked to be a mapping with a ``hub`` mapping."""
    data = load_yaml(path, "site config")
    hub = data.get("hub")
    if hub is None:
        raise ConfigError(f"site config {path}: missing key 'hub'")
    if not isinstance(hub, dict):
        raise ConfigError(f"site config {path}: 'hub' is not a mapping")
    return data


def expected_agents(data: Mapping, path: Path | None, site_host: str | None) -> tuple:
    """The ``agent-instances`` of every host (or of ``site_host`` only) as ExpectedAgents;
    ``manage: ignore`` and ``manage: .../down`` entries are not expected to run."""
    from exporter.state import ExpectedAgent  # noqa: PLC0415 - config stays light to import

    hosts = data.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise ConfigError(f"site config {path}: 'hosts' is not a mapping")
    if site_host is not None and site_host not in hosts:
        raise ConfigError(f"site config {path}: --site-host {site_host}: no such host")
    agents = {}
    for host, listed in hosts.items():
        if site_host is not None and host != site_host:
            continue
        entry = listed or {}  # a host with nothing under it is fine
        instances = entry.get("agent-instances", []) if isinstance(entry, dict) else None
        if not isinstance(instances, list):
            raise ConfigError(f"site config {path}: hosts.{host}.agent-instances is not a list")
        for i, instance in enumerate(instances):
            where = f"site config {path}: hosts.{host}.agent-instances[{i}]"
            if not isinstance(instance, dict):
                raise ConfigError(f"{where} is not a mapping")
            instance_id = instance.get("instance-id")
            agent_class = instance.get("agent-class", "")
            if not isinstance(instance_id, str) or not instance_id:
                raise ConfigError(f"{where}: missing 'instance-id'")
            if not isinstance(agent_class, str):
                raise ConfigError(f"{where}: 'agent-class' is not a string")
            manage = str(instance.get("manage", "")).strip().lower()
            expected = not (manage == "ignore" or manage.endswith("/down"))
            agents[instance_id] = ExpectedAgent(instance_id, agent_class, str(host), expected)
    return tuple(agents.values())


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line (and environment); raise ConfigError on any problem."""
    try:
        args = parse_flags(argv)
    except argparse.ArgumentError as exc:
        raise ConfigError(str(exc)) from None
    path = find_site_file(args)
    hub: Mapping = {}
    expected: tuple = ()
    if path is not None:
        data = load_site_file(path)
        hub = data["hub"]
        expected = expected_agents(data, path, args.site_host)
    elif not (args.site_hub and args.site_realm and args.address_root):
        raise ConfigError(
            "no site config: pass --site-file, set OCS_CONFIG_DIR, or give --site-hub, "
            "--site-realm and --address-root"
        )

    def setting(override: str | None, key: str) -> str:
        if override:
            return override
        value = hub.get(key)
        if value is None:
            raise ConfigError(f"site config {path}: missing key 'hub.{key}'")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"site config {path}: 'hub.{key}' is not a non-empty string")
        return value

    url = setting(args.site_hub, "wamp_server")
    realm = setting(args.site_realm, "wamp_realm")
    address_root = setting(args.address_root, "address_root")
    if not args.site_hub:  # a --site-hub URL was checked as the flag was read
        _checked(wamp_url, url, f"site config {path}: hub.wamp_server")
    wamp_tls, wamp_auth = wamp_security(args, url)
    host, port = args.web_listen_address
    return Settings(
        wamp_url=url,
        realm=realm,
        address_root=address_root.rstrip("."),
        site_file=path,
        agent_timeout=args.agent_timeout,
        listen_host=host,
        listen_port=port,
        telemetry_path=args.web_telemetry_path,
        web_config_file=args.web_config_file,
        log_level=args.log_level,
        log_format=args.log_format,
        serializers=args.wamp_serializers,
        max_retry_delay=args.wamp_max_retry_delay,
        max_calls_per_second=args.wamp_max_calls_per_second,
        forget_after=args.forget_after,
        max_agents=args.max_agents,
        wamp_tls=wamp_tls,
        wamp_auth=wamp_auth,
        expected_agents=expected,
        site_host=args.site_host,
        op_types=args.collector_op_types,
        op_state=args.collector_op_state,
        sessions=args.collector_sessions,
        sessions_interval=args.collector_sessions_interval,
        sessions_data_keys=args.collector_sessions_data_keys,
        sessions_durations=args.collector_sessions_durations,
        sessions_duration_buckets=args.collector_sessions_duration_buckets,
        feeds=args.collector_feeds,
        max_feeds_per_agent=args.max_feeds_per_agent,
        registry_compat=args.registry_compat,
        registry_compat_instance_id=args.registry_compat_instance_id,
    )
