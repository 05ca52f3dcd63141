"""Learning which operations of an agent are tasks and which processes, from its get_api."""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.interfaces import IReactorTime

from exporter.state import AgentState
from exporter.wamp.errors import describe
from exporter.wamp.throttle import LogThrottle

log = logging.getLogger("exporter.wamp.optypes")

GET_API_TIMEOUT = 10.0
GET_API_IN_FLIGHT = 16


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
    session (OCS agents answer it without credentials), into the state.

    Queued, with at most ``in_flight`` calls at a time, so that thousands of agents heard
    at once (a start, a router backlog) do not flood the router. Calls go out on the
    session given to :meth:`joined`; while there is none, asking is a no-op and the queue
    waits for the next join.
    """

    def __init__(
        self,
        state: AgentState,
        reactor: IReactorTime,
        throttle: LogThrottle,
        in_flight: int = GET_API_IN_FLIGHT,
        timeout: float = GET_API_TIMEOUT,
    ) -> None:
        self.state = state
        self.reactor = reactor
        self.throttle = throttle
        self.max_in_flight = in_flight
        self.timeout = timeout
        self.session: Any = None  # the joined WAMP session
        self._queue: dict[str, str | None] = {}  # agent address -> session id, in order
        self._in_flight = 0

    def joined(self, session: Any) -> None:
        """Calls go out on ``session`` from now on, the queued ones first."""
        self.session = session
        self._pump()

    def lost(self) -> None:
        self.session = None

    def ask(self, address: str, session_id: str | None) -> None:
        """Ask the agent's session ``session_id`` (the latest of an agent wins)."""
        if self.session is None:
            return
        self._queue.pop(address, None)
        self._queue[address] = session_id
        self._pump()

    def _pump(self) -> None:
        while self._queue and self._in_flight < self.max_in_flight:
            if self.session is None:
                return  # kept for the next join
            address = next(iter(self._queue))
            session_id = self._queue.pop(address)
            if self.state.session_of(address) != session_id:
                continue  # restarted or forgotten meanwhile
            self._in_flight += 1
            d = self.session.call(address, "get_api")
            d.addTimeout(self.timeout, self.reactor)
            d.addCallback(self._answered, address, session_id)
            d.addErrback(self._failed, address)
            d.addBoth(self._done)

    def _answered(self, api: Any, address: str, session_id: str | None) -> None:
        types = op_types_of(api)
        if types is None:
            raise ValueError("the get_api answer has no tasks and processes lists")
        self.state.set_op_types(address, session_id, types)

    def _failed(self, failure: Any, address: str) -> None:
        self.state.op_types_failed()
        if self.throttle.allow("get_api"):
            log.info(
                "get_api of %s failed: %s; operation types unknown for it; further failures "
                "are counted and not logged for 60 s",
                address,
                describe(failure.value),
            )

    def _done(self, _: Any) -> None:
        self._in_flight -= 1
        self._pump()
