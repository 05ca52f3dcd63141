"""Learning which operations of an agent are tasks and which processes, from its get_api."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from exporter.heartbeat import sane_text
from exporter.state import AgentState
from exporter.wamp.calls import Call, CallQueue
from exporter.wamp.errors import describe
from exporter.wamp.throttle import LogThrottle

log = logging.getLogger("exporter.wamp.optypes")


def op_types_of(api: Any) -> dict[str, str] | None:
    """``{operation: "task" | "process"}`` from an agent's get_api answer, whose ``tasks``
    and ``processes`` list ``(name, session, op_info)`` entries."""
    if not isinstance(api, dict):
        return None
    types: dict[str, str] = {}
    for key, kind in (("tasks", "task"), ("processes", "process")):
        entries = api.get(key)
        if not isinstance(entries, list):
            return None
        for entry in entries:
            name = entry[0] if isinstance(entry, list | tuple) and entry else entry
            if isinstance(name, str):
                types[name] = kind
    return types


class OpTypeQueries:
    """Asks new or restarted agents for their operation types: one get_api call per agent
    session (OCS agents answer it without credentials), into the state, through the
    listener's call queue (a session that is no longer the agent's when its turn comes is
    skipped)."""

    def __init__(self, state: AgentState, calls: CallQueue, throttle: LogThrottle) -> None:
        self.state = state
        self.calls = calls
        self.throttle = throttle

    def ask(self, address: str, session_id: str | None) -> None:
        """Ask the agent's session ``session_id`` for its operation types."""
        if self.calls.session is None:
            return
        call = Call(
            partial(self._send, address, session_id),
            partial(self._answered, address, session_id),
            partial(self._failed, address),
        )
        self.calls.put(("get_api", address, session_id), call)

    def _send(self, address: str, session_id: str | None, session: Any) -> Deferred | None:
        if self.state.session_of(address) != session_id:
            return None  # restarted or forgotten meanwhile
        return session.call(address, "get_api")

    def _answered(self, address: str, session_id: str | None, api: Any) -> None:
        types = op_types_of(api)
        if types is None:
            raise ValueError("the get_api answer has no tasks and processes lists")
        hostname = api.get("instance_hostname")
        self.state.set_op_types(address, session_id, types, hostname if sane_text(hostname) else "")

    def _failed(self, address: str, failure: Failure) -> None:
        self.state.op_types_failed()
        if self.throttle.allow("get_api"):
            log.info(
                "get_api of %s failed: %s; operation types unknown for it; further failures "
                "are counted and not logged for 60 s",
                address,
                describe(failure.value),
            )
