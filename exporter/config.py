"""Command line, environment and OCS site config file, turned into :class:`Settings`.

Every flag can also be set by an environment variable: ``OCS_EXPORTER_`` followed by the
flag's name in capitals with dots and dashes as underscores (``--web.listen-address`` ->
``OCS_EXPORTER_WEB_LISTEN_ADDRESS``). A flag on the command line wins over the variable.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from exporter import __version__

DEFAULT_PORT = 10020
SERIALIZERS = ("msgpack", "cbor", "json")
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")


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


AUTH_METHODS = ("ticket", "wampcra")
SECRET_ENV = "OCS_EXPORTER_WAMP_SECRET"


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
    forget_after: float = 86400.0
    max_agents: int = 20000
    wamp_tls: WampTLS | None = None
    wamp_auth: WampAuth | None = None
    expected_agents: tuple = ()
    site_host: str | None = None
    op_types: bool = True
    op_state: bool = False
    registry_compat: bool = False
    registry_compat_instance_id: str = "registry"


def env_name(flag: str) -> str:
    return "OCS_EXPORTER_" + flag.lstrip("-").upper().replace(".", "_").replace("-", "_")


def _flag(
    group: argparse._ActionsContainer, flag: str, help: str, default: str | None = None, **kw: str
) -> None:
    env = env_name(flag)
    shown = f" (default {default})" if default is not None else ""
    group.add_argument(
        flag, default=os.environ.get(env, default), help=f"{help}{shown} [env {env}]", **kw
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocs-exporter",
        description="Export the liveness and operation states of OCS agents, heard as "
        "heartbeats on the crossbar router, as Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    site = parser.add_argument_group("OCS site, found as OCS tools find it")
    _flag(
        site,
        "--site-file",
        "OCS site config file; else $OCS_CONFIG_DIR/<site>.yaml",
        metavar="PATH",
    )
    _flag(site, "--site", "site name, picks $OCS_CONFIG_DIR/NAME.yaml", default="default")
    _flag(site, "--site-hub", "WAMP router URL, overrides hub.wamp_server", metavar="URL")
    _flag(site, "--site-realm", "WAMP realm, overrides hub.wamp_realm", metavar="REALM")
    _flag(site, "--address-root", "OCS address root, overrides hub.address_root", metavar="ROOT")
    _flag(
        site,
        "--site-host",
        "expect only the agent instances of this host of the site config (default: all)",
        metavar="HOST",
    )
    exp = parser.add_argument_group("exporter")
    _flag(
        exp,
        "--agent-timeout",
        "seconds without a heartbeat after which an agent is down",
        default="5",
        metavar="SECONDS",
    )
    _flag(
        exp,
        "--web.listen-address",
        "address to serve HTTP on",
        default=f":{DEFAULT_PORT}",
        metavar="HOST:PORT",
    )
    _flag(
        exp,
        "--forget-after",
        "stop exporting an agent silent for this long (0: never); e.g. 90m, 24h, 7d",
        default="24h",
        metavar="DURATION",
    )
    _flag(
        exp,
        "--max-agents",
        "track at most this many agents; heartbeats of more are refused and counted",
        default="20000",
        metavar="N",
    )
    _flag(exp, "--web.telemetry-path", "path of the metrics", default="/metrics", metavar="PATH")
    _flag(
        exp,
        "--web.config.file",
        "TLS and basic auth, in the Prometheus exporter-toolkit web config format "
        "(default: plain HTTP, no auth)",
        metavar="PATH",
    )
    _flag(exp, "--log.level", "one of " + ", ".join(LOG_LEVELS), default="info", metavar="LEVEL")
    _flag(exp, "--log.format", "one of " + ", ".join(LOG_FORMATS), default="text", metavar="FORMAT")
    _flag(
        exp,
        "--wamp.serializers",
        "WAMP serializers to offer, in order of preference, from " + ", ".join(SERIALIZERS),
        default="msgpack,cbor,json",
        metavar="LIST",
    )
    _flag(
        exp,
        "--collector.op-types",
        "ask each agent once per session (get_api) which operations are tasks or processes",
        default="true",
        metavar="BOOL",
    )
    _flag(
        exp,
        "--collector.op-state",
        "also export ocs_op_state, an OpenMetrics StateSet (8 series per operation)",
        default="false",
        metavar="BOOL",
    )
    compat = parser.add_argument_group("a drop-in for the OCS RegistryAgent")
    _flag(
        compat,
        "--registry-compat",
        "also answer on the router as an OCS RegistryAgent whose process 'main' reports "
        "every agent as the registry does; alone means true",
        default="false",
        nargs="?",
        const="true",
        metavar="BOOL",
    )
    _flag(
        compat,
        "--registry-compat.instance-id",
        "its instance id: it answers at <address_root>.ID",
        default="registry",
        metavar="ID",
    )
    wamp = parser.add_argument_group(
        "secured routers",
        f"the secret comes from --wamp.secret-file or the environment variable {SECRET_ENV}",
    )
    _flag(
        wamp, "--wamp.tls-ca-file", "CA certificates to trust for a wss:// router", metavar="PATH"
    )
    _flag(wamp, "--wamp.tls-cert-file", "client certificate for a wss:// router", metavar="PATH")
    _flag(wamp, "--wamp.tls-key-file", "its private key", metavar="PATH")
    _flag(wamp, "--wamp.authid", "WAMP authentication id (default: join anonymously)", metavar="ID")
    _flag(
        wamp,
        "--wamp.authmethod",
        "WAMP authentication method, one of " + ", ".join(AUTH_METHODS),
        default="ticket",
        metavar="METHOD",
    )
    _flag(wamp, "--wamp.secret-file", "file holding the ticket or wampcra secret", metavar="PATH")
    _flag(
        exp,
        "--wamp.max-retry-delay",
        "longest wait between reconnection attempts to the router",
        default="10",
        metavar="SECONDS",
    )
    return parser


def _positive(flag: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{flag}: {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{flag}: must be a positive number of seconds, not {value!r}")
    return number


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(flag: str, value: str) -> float:
    """Seconds from ``90``, ``30s``, ``15m``, ``24h``, ``7d`` or ``1w``; 0 allowed."""
    text = value.strip()
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ConfigError(
            f"{flag}: {value!r} is not a duration like 90, 30s, 15m, 24h, 7d"
        ) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{flag}: {value!r} must not be negative")
    return seconds


def parse_bool(flag: str, value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{flag}: {value!r} is not true or false")


def _instance_id(flag: str, value: str) -> str:
    """An OCS instance id: one component of a WAMP URI."""
    if not value or any(c.isspace() or c in ".#" for c in value) or not value.isprintable():
        raise ConfigError(f"{flag}: {value!r} is not an instance id (no dots, #, or spaces)")
    return value


def _count(flag: str, value: str) -> int:
    if not value.strip().isdigit():
        raise ConfigError(f"{flag}: {value!r} is not a whole number")
    return int(value)


def _choice(flag: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"{flag}: {value!r} is not one of {', '.join(choices)}")
    return value


def _readable(flag: str, value: str) -> Path:
    path = Path(value)
    try:
        path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{flag}: {value}: {exc.strerror or exc}") from None
    return path


def wamp_security(args: argparse.Namespace, url: str) -> tuple[WampTLS | None, WampAuth | None]:
    """TLS and authentication settings for the router connection, checked."""
    ns = args.__dict__
    files = {
        flag: ns[dest] and _readable(flag, ns[dest])
        for flag, dest in (
            ("--wamp.tls-ca-file", "wamp.tls_ca_file"),
            ("--wamp.tls-cert-file", "wamp.tls_cert_file"),
            ("--wamp.tls-key-file", "wamp.tls_key_file"),
        )
    }
    tls = None
    if any(files.values()):
        if not url.startswith("wss://"):
            raise ConfigError(f"--wamp.tls-* options need a wss:// router URL, not {url!r}")
        if bool(files["--wamp.tls-cert-file"]) != bool(files["--wamp.tls-key-file"]):
            raise ConfigError("--wamp.tls-cert-file and --wamp.tls-key-file go together")
        tls = WampTLS(*(files[f] or None for f in files))
    elif url.startswith("wss://"):
        tls = WampTLS()
    authid = ns["wamp.authid"]
    method = _choice("--wamp.authmethod", ns["wamp.authmethod"], AUTH_METHODS)
    secret_file = ns["wamp.secret_file"]
    if secret_file:
        secret = _readable("--wamp.secret-file", secret_file).read_text().strip()
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
    return tls, WampAuth(authid, method, secret)


def parse_listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--web.listen-address: {value!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def find_site_file(args: argparse.Namespace) -> Path | None:
    if args.site_file:
        return Path(args.site_file)
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


def check_wamp_url(url: str, source: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{source}: bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConfigError(f"{source}: bad URL {url!r}: expected ws://HOST:PORT/PATH or wss://...")
    return url


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line (and environment); raise ConfigError on any problem."""
    args = build_parser().parse_args(argv)
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

    def setting(override: str | None, flag: str, key: str) -> tuple[str, str]:
        if override:
            return override, flag
        value = hub.get(key)
        if value is None:
            raise ConfigError(f"site config {path}: missing key 'hub.{key}'")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"site config {path}: 'hub.{key}' is not a non-empty string")
        return value, f"site config {path}: hub.{key}"

    url, url_source = setting(args.site_hub, "--site-hub", "wamp_server")
    realm, _ = setting(args.site_realm, "--site-realm", "wamp_realm")
    address_root, _ = setting(args.address_root, "--address-root", "address_root")
    serializers = tuple(s.strip() for s in args.__dict__["wamp.serializers"].split(",") if s)
    for name in serializers:
        _choice("--wamp.serializers", name, SERIALIZERS)
    if not serializers:
        raise ConfigError("--wamp.serializers: empty")
    telemetry_path = args.__dict__["web.telemetry_path"]
    if (
        not telemetry_path.startswith("/")
        or telemetry_path.startswith("/-/")
        or (telemetry_path == "/")
    ):
        raise ConfigError(
            f"--web.telemetry-path: {telemetry_path!r} must start with / and not be / or /-/..."
        )
    check_wamp_url(url, url_source)
    wamp_tls, wamp_auth = wamp_security(args, url)
    web_config_file = args.__dict__["web.config.file"]
    host, port = parse_listen_address(args.__dict__["web.listen_address"])
    return Settings(
        wamp_url=url,
        realm=realm,
        address_root=address_root.rstrip("."),
        site_file=path,
        agent_timeout=_positive("--agent-timeout", args.agent_timeout),
        listen_host=host,
        listen_port=port,
        telemetry_path=telemetry_path,
        web_config_file=Path(web_config_file) if web_config_file else None,
        log_level=_choice("--log.level", args.__dict__["log.level"], LOG_LEVELS),
        log_format=_choice("--log.format", args.__dict__["log.format"], LOG_FORMATS),
        serializers=serializers,
        max_retry_delay=_positive("--wamp.max-retry-delay", args.__dict__["wamp.max_retry_delay"]),
        forget_after=parse_duration("--forget-after", args.forget_after),
        max_agents=_count("--max-agents", args.max_agents),
        wamp_tls=wamp_tls,
        wamp_auth=wamp_auth,
        expected_agents=expected,
        site_host=args.site_host,
        op_types=parse_bool("--collector.op-types", args.__dict__["collector.op_types"]),
        op_state=parse_bool("--collector.op-state", args.__dict__["collector.op_state"]),
        registry_compat=parse_bool("--registry-compat", args.registry_compat),
        registry_compat_instance_id=_instance_id(
            "--registry-compat.instance-id", args.__dict__["registry_compat.instance_id"]
        ),
    )
