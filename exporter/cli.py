"""``ocs-exporter``: parse the configuration, start the services, run the reactor."""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from twisted.internet import reactor
from twisted.internet.error import CannotListenError

from exporter import __version__
from exporter.config import ConfigError, Settings, settings_from_args
from exporter.flags import DeprecatedFlag
from exporter.logs import setup_logging
from exporter.render.memory import freeze_startup_objects
from exporter.service import ExporterService

log = logging.getLogger("exporter")


def fail(message: str) -> NoReturn:
    print(f"ocs-exporter: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_settings(argv: Sequence[str] | None) -> tuple[Settings, list[str]]:
    """The settings, and the deprecation warnings of their flags (each once) to log once
    logging is set up; other warnings go on as usual."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecatedFlag)
        settings = settings_from_args(argv)
    for warning in caught:
        if not issubclass(warning.category, DeprecatedFlag):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    deprecated = [str(w.message) for w in caught if issubclass(w.category, DeprecatedFlag)]
    return settings, list(dict.fromkeys(deprecated))


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings, deprecated = read_settings(argv)
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(settings.log_level, settings.log_format)
    for message in deprecated:
        logging.getLogger("exporter.flags").warning("%s", message)
    try:
        exporter = ExporterService(settings, reactor)
    except ConfigError as exc:
        fail(str(exc))
    address = f"{settings.listen_host}:{settings.listen_port}"
    try:
        exporter.startService()
    except CannotListenError as exc:
        reason = getattr(exc.socketError, "strerror", None) or str(exc.socketError)
        fail(f"--web.listen-address {address}: cannot listen: {reason}")
    except OSError as exc:
        fail(f"--web.listen-address {address}: cannot listen: {exc.strerror or exc}")
    freeze_startup_objects()
    reactor.addSystemEventTrigger("before", "shutdown", exporter.stopService)
    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(exporter.reload_site_config))
    log.info(
        "ocs-exporter %s serving %s on %s; heartbeats from %s realm %s",
        __version__,
        settings.telemetry_path,
        address,
        settings.wamp_url,
        settings.realm,
    )
    reactor.run()
