"""WAMP and connection errors, told in one line."""

from __future__ import annotations

from autobahn.wamp.exception import ApplicationError


def describe(exc: BaseException) -> str:
    """A short, one-line reason for a WAMP or connection error."""
    if isinstance(exc, ApplicationError):
        message = exc.error_message()
    elif type(exc).__module__.startswith("OpenSSL") and exc.args and isinstance(exc.args[0], list):
        reasons = [str(entry[-1]) for entry in exc.args[0] if isinstance(entry, tuple)]
        message = "TLS: " + ("; ".join(reasons) or type(exc).__name__)
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())
