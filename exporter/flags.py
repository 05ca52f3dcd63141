"""The command line: every flag with its type, its default and its environment variable.

Every flag can also be set by an environment variable: ``OCS_EXPORTER_`` followed by the
flag's name in capitals with dots and dashes as underscores (``--web.listen-address`` ->
``OCS_EXPORTER_WEB_LISTEN_ADDRESS``). A variable replaces the flag's default, so it goes
through the same conversion and checks as the flag, and a flag on the command line wins.
An empty variable counts as unset. Each flag is read back as the attribute of the same
name in lower case (``args.web_listen_address``).

A boolean flag is a switch, as in kingpin programs (node_exporter, statsd_exporter):
``--collector.op-state`` turns it on, ``--no-collector.op-state`` off, and the later one wins;
its variable takes a boolean word (``true``, ``false``, ...).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import math
import os
import warnings
from argparse import ArgumentTypeError
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from exporter import __version__
from exporter.feeds import DEFAULT_MAX_FEEDS
from exporter.sessions import DATA_KEYS

DEFAULT_PORT = 10020
SERIALIZERS = ("msgpack", "cbor", "json")
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")
AUTH_METHODS = ("ticket", "wampcra")
SECRET_ENV = "OCS_EXPORTER_WAMP_SECRET"
# Run durations span seconds (tasks) to days (processes that run for a week).
DURATION_BUCKETS = (1, 10, 60, 300, 1800, 3600, 14400, 43200, 86400, 259200, 604800)
# Calls to agents started per second: above the steady state of 10,000 agents with one
# running operation each asked every 30 s (about 333 a second), so that only bursts wait.
CALLS_PER_SECOND = 500


def dest_name(flag: str) -> str:
    """``--web.listen-address`` -> ``web_listen_address``."""
    return flag.lstrip("-").replace(".", "_").replace("-", "_")


def env_name(flag: str) -> str:
    """``--web.listen-address`` -> ``OCS_EXPORTER_WEB_LISTEN_ADDRESS``."""
    return "OCS_EXPORTER_" + dest_name(flag).upper()


# --- Types: a flag's text to its value, or an ArgumentTypeError saying what is wrong ------------


def positive_seconds(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return number


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> float:
    """Seconds from ``90``, ``30s``, ``15m``, ``24h``, ``7d`` or ``1w``; 0 allowed."""
    stripped = text.strip()
    unit = _UNITS.get(stripped[-1:])
    number = stripped[:-1] if unit else stripped
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a duration like 90, 30s, 15m, 24h, 7d") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ArgumentTypeError(f"{text!r} must not be negative")
    return seconds


def positive_duration(text: str) -> float:
    """:func:`duration`, but more than 0."""
    seconds = duration(text)
    if seconds == 0:
        raise ArgumentTypeError(f"{text!r} must be more than 0")
    return seconds


def count(text: str) -> int:
    if not text.strip().isdigit():
        raise ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def positive_count(text: str) -> int:
    """:func:`count`, but at least 1."""
    number = count(text)
    if number == 0:
        raise ArgumentTypeError(f"{text!r} must be at least 1")
    return number


def boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    raise ArgumentTypeError(f"{text!r} is not true or false")


def instance_id(text: str) -> str:
    """An OCS instance id: one component of a WAMP URI."""
    if not text or any(c.isspace() or c in ".#" for c in text) or not text.isprintable():
        raise ArgumentTypeError(f"{text!r} is not an instance id (no dots, #, or spaces)")
    return text


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def telemetry_path(text: str) -> str:
    if not text.startswith("/") or text.startswith("/-/") or text == "/":
        raise ArgumentTypeError(f"{text!r} must start with / and not be / or /-/...")
    return text


def wamp_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ArgumentTypeError(f"bad URL {text!r}: {exc}") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ArgumentTypeError(f"bad URL {text!r}: expected ws://HOST:PORT/PATH or wss://...")
    return text


def serializer_list(text: str) -> tuple[str, ...]:
    """``msgpack,json`` -> ("msgpack", "json"), each one of SERIALIZERS."""
    names = tuple(s.strip() for s in text.split(",") if s)
    if not names:
        raise ArgumentTypeError("empty")
    for name in names:
        if name not in SERIALIZERS:
            raise ArgumentTypeError(f"{name!r} is not one of {', '.join(SERIALIZERS)}")
    return names


def _items(text: str) -> list[str]:
    """The comma-separated items of ``text``, stripped; an empty one is an error."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ArgumentTypeError(f"{text!r} has an empty item")
    if len(set(items)) != len(items):
        raise ArgumentTypeError(f"{text!r} lists an item twice")
    return items


def key_list(text: str) -> tuple[str, ...]:
    """``timestamp,last_updated`` -> ("timestamp", "last_updated")."""
    return tuple(_items(text))


def bucket_list(text: str) -> tuple[float, ...]:
    """``1,60,3600`` -> (1.0, 60.0, 3600.0): positive, finite and increasing."""
    try:
        bounds = tuple(float(item) for item in _items(text))
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a list of numbers of seconds") from None
    if not all(math.isfinite(b) and b > 0 for b in bounds):
        raise ArgumentTypeError(f"{text!r}: every bucket must be a positive number of seconds")
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ArgumentTypeError(f"{text!r}: buckets must be in increasing order")
    return bounds


def readable_file(text: str) -> Path:
    path = Path(text)
    try:
        path.open("rb").close()
    except OSError as exc:
        raise ArgumentTypeError(f"{text}: {exc.strerror or exc}") from None
    return path


# --- Switches: --name on, --no-name off ----------------------------------------------------


class DeprecatedFlag(FutureWarning):
    """A flag written in a form that goes in the next release; the message, one line, says
    what to write instead."""


def negation(flag: str) -> str:
    """``--collector.op-state`` -> ``--no-collector.op-state``."""
    return "--no-" + flag[2:]


class Switch(argparse.Action):
    """``--name``: a boolean flag on (``--no-name``, declared beside it, turns it off).

    It takes an optional value only for the ``--name BOOL`` form of earlier releases, which
    still works and warns (:class:`DeprecatedFlag`). The command line has no positional
    argument, so a word after a switch can only be meant as that value: one that is no
    boolean is an error naming the switch, as a bad value of any flag is.

    Not argparse's BooleanOptionalAction: that takes no value (the deprecated form needs
    one), lists ``--name, --no-name`` as two entries, names the flag ``--name/--no-name`` in
    errors, and deprecates its ``type`` from Python 3.12; overriding all of that would keep
    nothing of it but the ``--no-`` prefix.
    """

    def __init__(self, option_strings: list[str], dest: str, **kw: object) -> None:
        kw.setdefault("type", boolean)  # the variable's value and the deprecated BOOL
        super().__init__(option_strings, dest, nargs="?", **kw)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        value: object,
        option_string: str | None = None,
    ) -> None:
        if value is not None:
            written = f"{option_string} {'true' if value else 'false'}"
            instead = self.option_strings[0] if value else negation(self.option_strings[0])
            warnings.warn(
                f"{written} is deprecated and stops working in the next release: write {instead}",
                DeprecatedFlag,
                stacklevel=2,
            )
        setattr(namespace, self.dest, True if value is None else value)

    def shown(self) -> argparse.Action:
        """The switch as help shows it: one entry, ``--[no-]name``, taking no value."""
        shown = copy.copy(self)
        shown.option_strings = ["--[no-]" + self.option_strings[0][2:]]
        shown.nargs = 0
        return shown


class FlagHelpFormatter(argparse.HelpFormatter):
    """Shows each switch once, as ``--[no-]name``, in the usage and in the list."""

    def add_usage(
        self,
        usage: str | None,
        actions: Sequence[argparse.Action],
        groups: Sequence[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, [_shown(a) for a in actions], groups, prefix)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(_shown(action))


def _shown(action: argparse.Action) -> argparse.Action:
    return action.shown() if isinstance(action, Switch) else action


# --- The parser --------------------------------------------------------------------------


class FlagParser(argparse.ArgumentParser):
    """Reports a problem as an ArgumentError of one line instead of printing the usage and
    exiting, so the caller reports it as every other configuration problem; also checks
    the choices of a value from the environment, which argparse checks only on the command
    line."""

    def error(self, message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if action.choices is not None and value not in action.choices:
                shown = ", ".join(map(repr, action.choices))
                problem = f"invalid choice: {value!r} (choose from {shown})"
                self.error(str(argparse.ArgumentError(action, problem)))
        return parsed, extras


def _flag(
    group: argparse._ActionsContainer,
    flag: str,
    help: str,
    default: str | None = None,
    **kw: object,
) -> None:
    """A flag whose default, if its variable is set and not empty, is the variable's value.
    Defaults are given as text: argparse converts them with the flag's type. A flag of type
    :func:`boolean` is a switch: ``--name`` on, ``--no-name`` off."""
    env = env_name(flag)
    shown = f" (default {default})" if default is not None else ""
    if kw.get("type") is boolean:
        kw["action"] = Switch
        # --no-name on its own, hidden: argparse then names the switch in its errors by its
        # one name (``argument --collector.op-state: ...``), and the switch keeps the default.
        group.add_argument(
            negation(flag),
            action="store_const",
            const=False,
            dest=dest_name(flag),
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    group.add_argument(
        flag,
        dest=dest_name(flag),
        default=os.environ.get(env) or default,
        help=f"{help}{shown} [env {env}]",
        **kw,
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line, with the defaults that the environment sets."""
    parser = FlagParser(
        prog="ocs-exporter",
        formatter_class=FlagHelpFormatter,
        description="Export the liveness and operation states of OCS agents, heard as "
        "heartbeats on the crossbar router, as Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    site = parser.add_argument_group("OCS site, found as OCS tools find it")
    _flag(
        site,
        "--site-file",
        "OCS site config file; else $OCS_CONFIG_DIR/<site>.yaml",
        type=Path,
        metavar="PATH",
    )
    _flag(site, "--site", "site name, picks $OCS_CONFIG_DIR/NAME.yaml", default="default")
    _flag(
        site,
        "--site-hub",
        "WAMP router URL, overrides hub.wamp_server",
        type=wamp_url,
        metavar="URL",
    )
    _flag(site, "--site-realm", "WAMP realm, overrides hub.wamp_realm", metavar="REALM")
    _flag(site, "--address-root", "OCS address root, overrides hub.address_root", metavar="ROOT")
    _flag(
        site,
        "--site-host",
        "expect only the agent instances of this host of the site config (default: all)",
        metavar="HOST",
    )
    router = parser.add_argument_group(
        "router connection",
        f"for a secured router, the secret comes from --wamp.secret-file or the environment "
        f"variable {SECRET_ENV}",
    )
    _flag(
        router,
        "--wamp.serializers",
        "WAMP serializers to offer, in order of preference, from " + ", ".join(SERIALIZERS),
        default="msgpack,cbor,json",
        type=serializer_list,
        metavar="LIST",
    )
    _flag(
        router,
        "--wamp.max-retry-delay",
        "longest wait between reconnection attempts to the router",
        default="10",
        type=positive_seconds,
        metavar="SECONDS",
    )
    _flag(
        router,
        "--wamp.max-calls-per-second",
        "at most this many calls to agents (get_api, status) started in any second; the "
        "rest wait their turn (0: no limit)",
        default=str(CALLS_PER_SECOND),
        type=count,
        metavar="N",
    )
    _flag(
        router,
        "--wamp.tls-ca-file",
        "CA certificates to trust for a wss:// router",
        type=readable_file,
        metavar="PATH",
    )
    _flag(
        router,
        "--wamp.tls-cert-file",
        "client certificate for a wss:// router",
        type=readable_file,
        metavar="PATH",
    )
    _flag(router, "--wamp.tls-key-file", "its private key", type=readable_file, metavar="PATH")
    _flag(
        router, "--wamp.authid", "WAMP authentication id (default: join anonymously)", metavar="ID"
    )
    _flag(
        router,
        "--wamp.authmethod",
        "WAMP authentication method, one of " + ", ".join(AUTH_METHODS),
        default="ticket",
        choices=AUTH_METHODS,
        metavar="METHOD",
    )
    _flag(
        router,
        "--wamp.secret-file",
        "file holding the ticket or wampcra secret",
        type=readable_file,
        metavar="PATH",
    )
    exp = parser.add_argument_group("exporter")
    _flag(
        exp,
        "--agent-timeout",
        "seconds without a heartbeat after which an agent is down",
        default="5",
        type=positive_seconds,
        metavar="SECONDS",
    )
    _flag(
        exp,
        "--web.listen-address",
        "address to serve HTTP on",
        default=f":{DEFAULT_PORT}",
        type=listen_address,
        metavar="HOST:PORT",
    )
    _flag(
        exp,
        "--forget-after",
        "stop exporting an agent silent for this long (0: never); e.g. 90m, 24h, 7d",
        default="24h",
        type=duration,
        metavar="DURATION",
    )
    _flag(
        exp,
        "--max-agents",
        "track at most this many agents; heartbeats of more are refused and counted",
        default="20000",
        type=count,
        metavar="N",
    )
    _flag(
        exp,
        "--web.telemetry-path",
        "path of the metrics",
        default="/metrics",
        type=telemetry_path,
        metavar="PATH",
    )
    _flag(
        exp,
        "--web.config.file",
        "TLS and basic auth, in the Prometheus exporter-toolkit web config format "
        "(default: plain HTTP, no auth)",
        type=Path,
        metavar="PATH",
    )
    _flag(
        exp,
        "--log.level",
        "one of " + ", ".join(LOG_LEVELS),
        default="info",
        choices=LOG_LEVELS,
        metavar="LEVEL",
    )
    _flag(
        exp,
        "--log.format",
        "one of " + ", ".join(LOG_FORMATS),
        default="text",
        choices=LOG_FORMATS,
        metavar="FORMAT",
    )
    _flag(
        exp,
        "--collector.op-types",
        "ask each agent once per session (get_api) which operations are tasks or processes",
        default="true",
        type=boolean,
    )
    _flag(
        exp,
        "--collector.op-state",
        "also export ocs_op_state, an OpenMetrics StateSet (8 series per operation)",
        default="false",
        type=boolean,
    )
    _flag(
        exp,
        "--collector.sessions",
        "ask an operation's session (status on <agent>.ops) when its op code changes, and "
        "again every --collector.sessions.interval while it runs",
        default="true",
        type=boolean,
    )
    _flag(
        exp,
        "--collector.sessions.interval",
        "how often the sessions of running operations are asked again; e.g. 30s, 5m",
        default="30s",
        type=positive_duration,
        metavar="DURATION",
    )
    _flag(
        exp,
        "--collector.sessions.data-keys",
        "session.data keys holding the time the operation last produced data (top level "
        "or one level down), comma-separated",
        default=",".join(DATA_KEYS),
        type=key_list,
        metavar="LIST",
    )
    _flag(
        exp,
        "--collector.sessions.durations",
        "also export ocs_op_session_duration_seconds, a histogram of finished runs",
        default="false",
        type=boolean,
    )
    _flag(
        exp,
        "--collector.sessions.duration-buckets",
        "its bucket bounds in seconds, comma-separated",
        default=",".join(map(str, DURATION_BUCKETS)),
        type=bucket_list,
        metavar="LIST",
    )
    _flag(
        exp,
        "--collector.feeds",
        "listen to every data feed (<root>..feeds.), not only heartbeats, and export each "
        "feed's message count and last message time",
        default="true",
        type=boolean,
    )
    _flag(
        exp,
        "--max-feeds-per-agent",
        "track at most this many feeds per agent; messages of further feeds are refused and "
        "counted",
        default=str(DEFAULT_MAX_FEEDS),
        type=positive_count,
        metavar="N",
    )
    compat = parser.add_argument_group("a drop-in for the OCS RegistryAgent")
    _flag(
        compat,
        "--registry-compat",
        "also answer on the router as an OCS RegistryAgent whose process 'main' reports "
        "every agent as the registry does",
        default="false",
        type=boolean,
    )
    _flag(
        compat,
        "--registry-compat.instance-id",
        "its instance id: it answers at <address_root>.ID",
        default="registry",
        type=instance_id,
        metavar="ID",
    )
    return parser


def parse_flags(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags of ``argv`` (default: the command line) over those of the environment;
    raises ArgumentError, of one line, on any problem."""
    return build_parser().parse_args(argv)
