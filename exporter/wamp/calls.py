"""The exporter's calls to agents (get_api, status), through one bounded queue."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from exporter.flags import CALLS_PER_SECOND

CALLS_IN_FLIGHT = 16
CALL_TIMEOUT = 10.0


class Call(NamedTuple):
    """One call waiting its turn: ``send`` makes it on the joined WAMP session (or returns
    None when it is no longer wanted, e.g. the agent restarted meanwhile); then either
    ``answered`` with the result or ``failed`` with the failure (a timeout included)."""

    send: Callable[[Any], Deferred | None]
    answered: Callable[[Any], None]
    failed: Callable[[Failure], None]


class StartLimit:
    """At most ``per_second`` starts in any second of the reactor's clock (0: no limit): a
    token bucket of ``per_second`` tokens, each given back one second after it was taken."""

    def __init__(self, reactor: IReactorTime, per_second: int) -> None:
        self.reactor = reactor
        self.per_second = per_second
        self._taken: deque[float] = deque()  # when each token out was taken, oldest first

    def wait(self) -> float:
        """Seconds until a token is free: 0 when one is free now."""
        if not self.per_second:
            return 0.0
        now, taken = self.reactor.seconds(), self._taken
        # A small tolerance: the reactor's clock may land a rounding error short of the
        # second it was asked to wait.
        while taken and now - taken[0] >= 1.0 - 1e-9:
            taken.popleft()
        if len(taken) < self.per_second:
            return 0.0
        return taken[0] + 1.0 - now

    def take(self) -> None:
        """One start, when :meth:`wait` said 0."""
        if self.per_second:
            self._taken.append(self.reactor.seconds())


class CallQueue:
    """Calls made one key at a time, at most ``in_flight`` at once and at most
    ``per_second`` started in any second, each ending after ``timeout`` seconds at the
    latest, so that thousands of agents heard at once (a start, a router backlog) do not
    flood the router, even when they answer at once with an error, and an agent that never
    answers costs one slot for ``timeout``.

    Keyed: a key has at most one call out and one waiting, the latest put (it keeps its
    place in the line, and goes out once the key's call out has ended): an operation asked
    again while its answer is awaited costs no second call until then.
    Calls go out on the session given to :meth:`joined`; while there is none, :meth:`put`
    drops the call, and what was already waiting goes out after the next join.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        in_flight: int = CALLS_IN_FLIGHT,
        timeout: float = CALL_TIMEOUT,
        per_second: int = CALLS_PER_SECOND,
    ) -> None:
        self.reactor = reactor
        self.max_in_flight = in_flight
        self.timeout = timeout
        self.starts = StartLimit(reactor, per_second)
        self.session: Any = None  # the joined WAMP session
        self.in_flight = 0
        self._waiting: dict[Hashable, Call] = {}
        self._out: set[Hashable] = set()  # keys with a call in flight
        self._resume: IDelayedCall | None = None  # the pump, once a start is allowed again
        self._pumping = False

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
        # A call that ends as it is made (an error the session raises at once) comes back
        # here through _done: the loop below goes on with it instead of recursing.
        if self._pumping:
            return
        self._pumping = True
        try:
            self._send_waiting()
        finally:
            self._pumping = False

    def _send_waiting(self) -> None:
        while self.in_flight < self.max_in_flight and self.session is not None:
            # The first key without a call out: past at most ``in_flight`` keys.
            key = next((k for k in self._waiting if k not in self._out), None)
            if key is None:
                return  # waiting calls are kept for the next join or the end of a call
            wait = self.starts.wait()
            if wait > 0:
                if self._resume is None:
                    self._resume = self.reactor.callLater(wait, self._resumed)
                return
            call = self._waiting.pop(key)
            try:
                d = call.send(self.session)
            except Exception:  # e.g. the transport went away under a session not yet lost
                call.failed(Failure())
                continue
            if d is None:
                continue
            self.starts.take()
            self.in_flight += 1
            self._out.add(key)
            self._time_limit(d)
            d.addCallback(call.answered)
            d.addErrback(call.failed)
            d.addBoth(self._done, key)

    def _time_limit(self, d: Deferred) -> None:
        """Fail ``d`` with TimeoutError after ``timeout``, as ``Deferred.addTimeout`` does,
        but also when cancelling it raises: autobahn's canceller writes a CANCEL to the
        session's transport, which is None once the session was lost, and addTimeout would
        leave the call hanging and the error to the reactor's log."""
        timer = self.reactor.callLater(self.timeout, _cancel, d)

        def ended(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            elif isinstance(result, Failure) and result.check(CancelledError):
                return Failure(TimeoutError(f"no answer within {self.timeout:g} s"))
            return result

        d.addBoth(ended)

    def _resumed(self) -> None:
        self._resume = None
        self._pump()

    def _done(self, _: Any, key: Hashable) -> None:
        self.in_flight -= 1
        self._out.discard(key)
        self._pump()


def _cancel(d: Deferred) -> None:
    try:
        d.cancel()
    except Exception:  # the canceller failed (see CallQueue._time_limit): end the call here
        if not d.called:
            d.errback(CancelledError())
