"""Operation sessions: asking agents for the ``status`` of their operations.

Every OCS agent answers ``status`` on its ``<agent_address>.ops`` procedure without
credentials. The same procedure starts, stops and aborts operations, and a router
authorizes a caller per procedure, never per action: :func:`status_call` is the one place
that builds a call to it, and it can only ask ``status``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from exporter.state import AgentState
from exporter.wamp.calls import Call, CallQueue
from exporter.wamp.errors import describe
from exporter.wamp.throttle import LogThrottle

log = logging.getLogger("exporter.wamp.sessions")

NONE = 1  # OpCode NONE: never run in this agent session, so there is no session to ask for
TICK = 1.0  # seconds between the slices of the running operations asked again


def status_call(session: Any, agent_address: str, op_name: str) -> defer.Deferred:
    """Ask the agent at ``agent_address`` for the session of its operation ``op_name``: the
    exporter's only call on an ``.ops`` procedure (no action is a parameter here)."""
    return session.call(agent_address + ".ops", "status", op_name)


class SessionQueries(service.Service):
    """Asks an operation's ``status`` when its op code changes (:meth:`changed`), and every
    ``interval`` seconds again for every running operation (:meth:`refresh`), through the
    listener's call queue: one call out per operation of an agent run at a time, the latest
    ask waiting behind it. Answers go to ``state.set_session``, failures to
    ``state.session_query_failed``.

    The running operations are listed once per interval and asked a slice every ``TICK``
    seconds, spread over the interval rather than all at once: 10,000 agents make a steady
    trickle of calls, not a burst every interval. An operation whose op code changed since
    the list was taken was asked then (or stopped running) and is skipped; one of an agent
    restarted meanwhile is skipped by the queue. One of an agent gone down meanwhile is still
    asked, once: the state has no read of one agent's liveness."""

    def __init__(
        self,
        state: AgentState,
        calls: CallQueue,
        reactor: IReactorTime,
        throttle: LogThrottle,
        interval: float = 30.0,
    ) -> None:
        self.state = state
        self.calls = calls
        self.throttle = throttle
        self.interval = interval
        self.ticks = max(1, math.ceil(interval / TICK))  # slices per interval
        self._loop = LoopingCall.withCount(self._tick)
        self._loop.clock = reactor
        self._ticked = 0  # ticks since the service started
        self._round: list[tuple[str, str | None, str]] = []  # the running operations listed
        self._next = 0  # the first of them not asked yet
        self._slice = 0  # how many are asked per tick
        self._changed: set[tuple[str, str]] = set()  # (address, op) changed since listed

    def startService(self) -> None:
        super().startService()
        self._ticked = 0
        self._loop.start(self.interval / self.ticks, now=False)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        self._start_round([])

    def changed(
        self,
        address: str,
        agent_session: str | None,
        ops: Iterable[str],
        op_codes: Mapping[str, int],
    ) -> None:
        """The operations ``ops`` of the agent's session ``agent_session`` changed op code
        (all of them, for a new session): ask each its status, but those never run."""
        listed, asking = self._next < len(self._round), self.calls.session is not None
        for op in ops:
            if listed:
                self._changed.add((address, op))
            if asking and op_codes.get(op) != NONE:
                self._ask(address, agent_session, op)

    def refresh(self) -> None:
        """List every running operation of every up agent, to be asked over the interval."""
        if self.calls.session is None:
            self._start_round([])
            return
        self._start_round(self.state.running_operations())

    def _start_round(self, running: list[tuple[str, str | None, str]]) -> None:
        self._round, self._next, self._changed = running, 0, set()
        self._slice = math.ceil(len(running) / self.ticks)

    def _tick(self, count: int) -> None:
        """A new list every ``ticks`` ticks, and a slice of the list every tick (as many
        slices as ticks were missed, on a reactor that was held up)."""
        before, self._ticked = self._ticked, self._ticked + count
        if self._ticked // self.ticks > before // self.ticks:
            self.refresh()
            count = self._ticked % self.ticks + 1  # the ticks since the list was due
        end = min(self._next + self._slice * count, len(self._round))
        for address, agent_session, op in self._round[self._next : end]:
            if (address, op) not in self._changed:
                self._ask(address, agent_session, op)
        self._next = end
        if end == len(self._round) and self._round:
            self._start_round([])  # nothing is kept until the next list

    def _ask(self, address: str, agent_session: str | None, op: str) -> None:
        call = Call(
            partial(self._send, address, agent_session, op),
            partial(self._answered, address, agent_session, op),
            partial(self._failed, address, op),
        )
        self.calls.put(("status", address, agent_session, op), call)

    def _send(
        self, address: str, agent_session: str | None, op: str, session: Any
    ) -> defer.Deferred | None:
        if self.state.session_of(address) != agent_session:
            return None  # restarted or forgotten meanwhile
        return status_call(session, address, op)

    def _answered(self, address: str, agent_session: str | None, op: str, answer: Any) -> None:
        for conflict in self.state.set_session(address, agent_session, op, answer):
            # The state tells each once, when it starts.
            log.warning(
                "%s is listed by %d HostManagers (%s): none decides whether it should run; "
                "the site config file does (ocs_agent_managers > 1)",
                conflict.address,
                len(conflict.managers),
                ", ".join(conflict.managers),
            )

    def _failed(self, address: str, op: str, failure: Failure) -> None:
        timeout = failure.check(defer.TimeoutError) is not None
        self.state.session_query_failed("timeout" if timeout else "error")
        if not self.throttle.allow("status"):
            return
        why = f"no answer within {self.calls.timeout:g} s" if timeout else describe(failure.value)
        hint = ""
        if isinstance(failure.value, ApplicationError) and "not_authorized" in failure.value.error:
            hint = (
                " (the exporter's router role may not call <agent>.ops: see "
                "exporter-role-sessions.json, or turn sessions off with --no-collector.sessions)"
            )
        log.info(
            "status of %s on %s failed: %s%s; further failures are counted and not logged for 60 s",
            op,
            address,
            why,
            hint,
        )
