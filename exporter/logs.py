"""Logging in logfmt (``--log.format text``) or JSON lines, with Twisted's log folded in."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from twisted.logger import LogLevel, formatEvent, globalLogBeginner

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES = {number: name for name, number in LEVELS.items()}


def _timestamp(record: logging.LogRecord) -> str:
    ms = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, str]:
    message = record.getMessage()
    if record.exc_info:
        message += " " + logging.Formatter().formatException(record.exc_info).replace("\n", " | ")
    return {
        "ts": _timestamp(record),
        "level": _NAMES.get(record.levelno, "error"),
        "logger": record.name,
        "msg": message,
    }


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=warn logger=exporter.wamp.listener msg="lost ..."``: one line a record."""

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for key, value in _fields(record).items():
            quote = key == "msg" or not value or any(c in value for c in ' "=\\')
            parts.append(f"{key}={json.dumps(value, ensure_ascii=False) if quote else value}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


def _twisted_observer(event: dict[str, Any]) -> None:
    """Forward a Twisted/autobahn log event to stdlib logging, quietening library chatter."""
    namespace = event.get("log_namespace") or "twisted"
    level = event.get("log_level", LogLevel.info)
    failure = event.get("log_failure")
    if level in (LogLevel.critical, LogLevel.error) or failure is not None:
        py_level = logging.ERROR
    elif level == LogLevel.warn:
        py_level = logging.WARNING
    else:
        py_level = logging.DEBUG
    if namespace.startswith(("autobahn", "txaio")) and level != LogLevel.critical:
        # The listener logs disconnects and reconnects itself, once each.
        py_level = logging.DEBUG
    logger = logging.getLogger(namespace)
    if not logger.isEnabledFor(py_level):
        return
    text = formatEvent(event)
    if failure is not None:
        text = f"{text} {failure.getErrorMessage()}".strip()
        if py_level == logging.ERROR:
            text += " | " + failure.getTraceback().replace("\n", " | ")
    logger.log(py_level, "%s", text)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    globalLogBeginner.beginLoggingTo([_twisted_observer], redirectStandardIO=False)
