"""The exporter's calls to agents (get_api, status), through one bounded queue."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

CALLS_IN_FLIGHT = 16
CALL_TIMEOUT = 10.0


class Call(NamedTuple):
    """One call waiting its turn: ``send`` makes it on the joined WAMP session (or returns
    None when it is no longer wanted, e.g. the agent restarted meanwhile); then either
    ``answered`` with the result or ``failed`` with the failure (a timeout included)."""

    send: Callable[[Any], Deferred | None]
    answered: Callable[[Any], None]
    failed: Callable[[Failure], None]


class CallQueue:
    """Calls made one key at a time, at most ``in_flight`` at once, each ending after
    ``timeout`` seconds at the latest, so that thousands of agents heard at once (a start,
    a router backlog) do not flood the router and an agent that never answers costs one
    slot for ``timeout``.

    Keyed: a key holds one waiting call, the latest put (it keeps its place in the line),
    so the queue never holds more than one call per key beside the ones in flight.
    Calls go out on the session given to :meth:`joined`; while there is none, :meth:`put`
    drops the call, and what was already waiting goes out after the next join.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        in_flight: int = CALLS_IN_FLIGHT,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.reactor = reactor
        self.max_in_flight = in_flight
        self.timeout = timeout
        self.session: Any = None  # the joined WAMP session
        self.in_flight = 0
        self._waiting: dict[Hashable, Call] = {}

    def __len__(self) -> int:
        """Calls waiting (not those in flight)."""
        return len(self._waiting)

    def joined(self, session: Any) -> None:
        """Calls go out on ``session`` from now on, the waiting ones first."""
        self.session = session
        self._pump()

    def lost(self) -> None:
        self.session = None

    def put(self, key: Hashable, call: Call) -> None:
        """Make ``call`` when its turn comes, instead of any call still waiting for ``key``."""
        if self.session is None:
            return
        self._waiting[key] = call
        self._pump()

    def _pump(self) -> None:
        while self._waiting and self.in_flight < self.max_in_flight:
            if self.session is None:
                return  # kept for the next join
            key = next(iter(self._waiting))
            call = self._waiting.pop(key)
            try:
                d = call.send(self.session)
            except Exception:  # e.g. the transport went away under a session not yet lost
                call.failed(Failure())
                continue
            if d is None:
                continue
            self.in_flight += 1
            d.addTimeout(self.timeout, self.reactor)
            d.addCallback(call.answered)
            d.addErrback(call.failed)
            d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self.in_flight -= 1
        self._pump()
