"""What an OCS heartbeat is, and the one check every payload goes through.

An OCS agent publishes ``[op_codes, feed]`` on ``<agent address>.feeds.heartbeat`` every
second: ``op_codes`` maps operation names to OpCodes, ``feed`` describes the feed and
carries ``agent_address``, ``session_id`` and ``agent_class``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

# OpCode values, as ocs.base.OpCode.
OPCODES = {
    1: "NONE",
    2: "STARTING",
    3: "RUNNING",
    4: "STOPPING",
    5: "SUCCEEDED",
    6: "FAILED",
    7: "EXPIRED",
    8: "DEGRADED",
}
EXPIRED = 7

# Why a heartbeat was rejected: a small fixed set, exposed as the `reason` label.
REASONS = (
    "malformed",  # not the [op_codes, feed] shape, or feed is not a mapping
    "legacy",  # very old agents: a bare 0 instead of the op_codes mapping
    "bad_op_codes",  # op_codes is not a mapping, or has too many operations
    "bad_op_name",  # an operation name that is not a sane string
    "bad_op_code",  # an op code that is not an integer in 1..8
    "bad_agent_address",  # agent_address missing, not a string, or not under address_root
    "bad_field",  # agent_class or session_id present but not a sane string
)

MAX_NAME_LENGTH = 200  # operation names, agent addresses, agent classes, session ids
MAX_OPERATIONS = 256  # per agent


class InvalidHeartbeat(Exception):
    """A heartbeat payload that is not one; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str, agent_address: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.agent_address = agent_address


class Heartbeat(NamedTuple):
    """A heartbeat that passed :func:`parse`."""

    agent_address: str
    op_codes: dict[str, int]
    session_id: str | None
    agent_class: str


def sane_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME_LENGTH
        and value.isprintable()
        # The one printable whitespace character is the space: the name has no whitespace.
        and " " not in value
    )


def sane_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME_LENGTH and value.isprintable()


def _check_op_codes(op_codes: object, address: str) -> None:
    if not isinstance(op_codes, dict):
        raise InvalidHeartbeat("bad_op_codes", "op_codes is not a mapping", address)
    if len(op_codes) > MAX_OPERATIONS:
        raise InvalidHeartbeat(
            "bad_op_codes", f"{len(op_codes)} operations (limit {MAX_OPERATIONS})", address
        )
    for name, code in op_codes.items():
        if not sane_name(name):
            raise InvalidHeartbeat("bad_op_name", f"operation name {name!r:.80}", address)
        if type(code) is not int or not 1 <= code <= 8:
            raise InvalidHeartbeat("bad_op_code", f"op code {code!r:.40} for {name}", address)


def envelope(payload: Any, prefix: str, first: str) -> tuple[str, str] | None:
    """Why ``payload`` is not ``[<first>, feed]`` with ``feed`` a mapping whose
    ``agent_address`` is under ``prefix`` and whose ``session_id`` and ``agent_class``
    are sane, as ``(reason, detail)``; None when it is. Every OCS feed message, the heartbeat
    included, has this envelope: the heartbeat and feed parsers both start here."""
    if type(payload) not in (list, tuple) or len(payload) != 2:
        return "malformed", f"payload is not [{first}, feed]"
    feed = payload[1]
    if type(feed) is not dict:
        return "malformed", "feed is not a mapping"
    address = feed.get("agent_address")
    if not sane_name(address) or not address.startswith(prefix) or len(address) == len(prefix):
        return "bad_agent_address", f"agent_address {address!r:.80} is not under {prefix}"
    session_id = feed.get("session_id")
    if not (session_id is None or sane_text(session_id)) or not sane_text(
        feed.get("agent_class", "")
    ):
        return "bad_field", f"session_id or agent_class of {address} is not a string"
    return None


def parse(payload: Any, prefix: str) -> Heartbeat:
    """The heartbeat in ``payload`` from an agent whose address starts with ``prefix``
    (``<address_root>.``); raises InvalidHeartbeat when it is not one."""
    wrong = envelope(payload, prefix, "op_codes")
    if wrong is not None and wrong[0] != "bad_field":
        raise InvalidHeartbeat(*wrong)
    op_codes, feed = payload
    address = feed["agent_address"]
    # A legacy agent's bare 0 is told apart before its other fields are judged.
    if op_codes == 0 and type(op_codes) is int:
        raise InvalidHeartbeat("legacy", "legacy heartbeat (bare 0)", address)
    if wrong is not None:
        raise InvalidHeartbeat(*wrong, address)
    _check_op_codes(op_codes, address)
    return Heartbeat(address, op_codes, feed.get("session_id"), feed.get("agent_class", ""))


def start_time(session_id: str | None) -> float | None:
    """OCS session ids are ``str(time.time())`` at the agent's start."""
    try:
        value = float(session_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
