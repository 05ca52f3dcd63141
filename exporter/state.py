"""What the exporter knows about OCS agents: pure Python, no WAMP, no Prometheus.

Heartbeats go in through :meth:`AgentState.ingest`; scrapes read a consistent
:class:`Snapshot`. Liveness is decided when read, on a monotonic clock; the wall clock is
only used for the timestamps that are exposed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

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


class AgentRefused(Exception):
    """A valid heartbeat from a new agent while ``max_agents`` agents are already tracked."""


class InvalidHeartbeat(Exception):
    """A heartbeat payload that is not one; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str, agent_address: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.agent_address = agent_address


def _sane_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME_LENGTH
        and value.isprintable()
        and not any(c.isspace() for c in value)
    )


def _sane_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_NAME_LENGTH and value.isprintable()


def _check_op_codes(op_codes: object, address: str) -> None:
    if not isinstance(op_codes, dict):
        raise InvalidHeartbeat("bad_op_codes", "op_codes is not a mapping", address)
    if len(op_codes) > MAX_OPERATIONS:
        raise InvalidHeartbeat(
            "bad_op_codes", f"{len(op_codes)} operations (limit {MAX_OPERATIONS})", address
        )
    for name, code in op_codes.items():
        if not _sane_name(name):
            raise InvalidHeartbeat("bad_op_name", f"operation name {name!r:.80}", address)
        if type(code) is not int or not 1 <= code <= 8:
            raise InvalidHeartbeat("bad_op_code", f"op code {code!r:.40} for {name}", address)


@dataclass(slots=True)
class Agent:
    """One agent as last heard."""

    address: str
    instance_id: str
    agent_class: str
    session_id: str | None
    op_codes: dict[str, int]  # never mutated: replaced by each heartbeat's mapping
    last_wall: float
    last_mono: float
    version: int = 0  # a new, state-wide unique number whenever anything but the time changes


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as a scrape sees it."""

    address: str
    instance_id: str
    agent_class: str
    session_id: str | None
    up: bool
    last_heartbeat: float  # Unix time of the last heartbeat received
    expired_at: float | None  # Unix time the timeout elapsed, while down
    op_codes: dict[str, int]  # every code EXPIRED while down


@dataclass(frozen=True, slots=True)
class Counters:
    heartbeats: int  # heartbeat events received, valid or not
    invalid: dict[str, int]  # rejected ones, by reason
    refused: int  # valid ones from new agents refused for --max-agents
    forgotten: int  # agents forgotten after --forget-after of silence
    agents: int  # agents tracked now


# (agent_address, version, instance_id, agent_class, op_codes, up, last_heartbeat)
Row = tuple[str, int, str, str, dict[str, int], bool, float]


@dataclass(frozen=True, slots=True)
class Snapshot:
    agents: tuple[AgentView, ...]


class AgentState:
    """Every agent heard on the router, keyed by agent address. Thread-safe.

    Liveness: an agent is up while less than ``timeout`` seconds have passed since its last
    heartbeat. After the router connection comes back, agents that were up when it was lost
    get one ``timeout`` of grace from the rejoin, so they are not all declared down while
    they reconnect. Agents silent for ``forget_after`` seconds (0: never) are forgotten; at
    most ``max_agents`` are tracked.
    """

    def __init__(
        self,
        address_root: str,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        forget_after: float = 0.0,
        max_agents: int = 0,
    ) -> None:
        self.prefix = address_root + "."
        self.timeout = timeout
        self.forget_after = forget_after
        self.max_agents = max_agents
        self._monotonic = monotonic
        self._wall = wall
        self._agents: dict[str, Agent] = {}
        self._lock = threading.Lock()
        self._heartbeats = 0
        self._invalid = dict.fromkeys(REASONS, 0)
        self._refused = 0
        self._forgotten = 0
        self._version = 0
        self._lost_at: float | None = None  # monotonic time the router connection was lost
        self._rejoined_at: float | None = None  # ... and came back after that

    def ingest(self, payload: Any) -> None:
        """Record one heartbeat event's payload; raise InvalidHeartbeat (counted) if bad."""
        try:
            self._ingest(payload)
        except InvalidHeartbeat as exc:
            with self._lock:
                self._heartbeats += 1
                self._invalid[exc.reason] += 1
            raise

    def _ingest(self, payload: Any) -> None:
        if type(payload) not in (list, tuple) or len(payload) != 2:
            raise InvalidHeartbeat("malformed", "payload is not [op_codes, feed]")
        op_codes, feed = payload
        if not isinstance(feed, dict):
            raise InvalidHeartbeat("malformed", "feed is not a mapping")
        address = feed.get("agent_address")
        if (
            not _sane_name(address)
            or not address.startswith(self.prefix)
            or len(address) == len(self.prefix)
        ):
            raise InvalidHeartbeat(
                "bad_agent_address", f"agent_address {address!r:.80} is not under {self.prefix}"
            )
        if op_codes == 0 and type(op_codes) is int:
            raise InvalidHeartbeat("legacy", "legacy heartbeat (bare 0)", address)
        session_id = feed.get("session_id")
        agent_class = feed.get("agent_class", "")
        if not (session_id is None or _sane_text(session_id)) or not _sane_text(agent_class):
            raise InvalidHeartbeat(
                "bad_field", "session_id or agent_class is not a string", address
            )

        now_mono, now_wall = self._monotonic(), self._wall()
        with self._lock:
            agent = self._agents.get(address)
            if (
                agent is not None
                and type(op_codes) is dict
                and op_codes == agent.op_codes
                and session_id == agent.session_id
            ):
                # The common case: nothing changed but the time.
                agent.last_mono = now_mono
                agent.last_wall = now_wall
                self._heartbeats += 1
                return
        _check_op_codes(op_codes, address)
        with self._lock:
            self._heartbeats += 1
            agent = self._agents.get(address)
            if agent is None:
                if self.max_agents and len(self._agents) >= self.max_agents:
                    self._forget(now_mono)
                    if len(self._agents) >= self.max_agents:
                        self._refused += 1
                        raise AgentRefused(address)
                self._version += 1
                self._agents[address] = Agent(
                    address=address,
                    instance_id=address[len(self.prefix) :],
                    agent_class=agent_class,
                    session_id=session_id,
                    op_codes=op_codes,
                    last_wall=now_wall,
                    last_mono=now_mono,
                    version=self._version,
                )
                return
            agent.agent_class = agent_class
            agent.session_id = session_id
            agent.op_codes = op_codes
            agent.last_mono = now_mono
            agent.last_wall = now_wall
            self._version += 1
            agent.version = self._version

    def connection_lost(self) -> None:
        """The router connection is gone: no heartbeat can arrive until it is back."""
        with self._lock:
            self._lost_at = self._monotonic()
            self._rejoined_at = None

    def connection_restored(self) -> None:
        """Joined and subscribed again: start the agents' grace period."""
        with self._lock:
            if self._lost_at is not None:
                self._rejoined_at = self._monotonic()

    def snapshot(self) -> Snapshot:
        """A consistent view of every agent, with liveness decided now."""
        with self._lock:
            now = self._monotonic()
            self._forget(now)
            return Snapshot(tuple(self._view(agent, now) for agent in self._agents.values()))

    def rows(self) -> list[Row]:
        """What a scrape needs of every agent, cheaply: one tuple per agent, liveness decided
        now. ``version`` changes whenever anything but the time does, so a renderer can
        cache what it made of the rest."""
        with self._lock:
            now = self._monotonic()
            self._forget(now)
            if self._rejoined_at is None:  # no grace to apply: the common, fast case
                cutoff = now - self.timeout
                return [
                    (
                        address,
                        agent.version,
                        agent.instance_id,
                        agent.agent_class,
                        agent.op_codes,
                        agent.last_mono > cutoff,
                        agent.last_wall,
                    )
                    for address, agent in self._agents.items()
                ]
            timeout = self.timeout
            return [
                (
                    address,
                    agent.version,
                    agent.instance_id,
                    agent.agent_class,
                    agent.op_codes,
                    now - self._liveness_from(agent) < timeout,
                    agent.last_wall,
                )
                for address, agent in self._agents.items()
            ]

    def snapshot_counters(self) -> Counters:
        with self._lock:
            return Counters(
                self._heartbeats,
                dict(self._invalid),
                self._refused,
                self._forgotten,
                len(self._agents),
            )

    def _forget(self, now: float) -> None:
        if not self.forget_after:
            return
        silent = [
            a for a, agent in self._agents.items() if now - agent.last_mono >= self.forget_after
        ]
        for address in silent:
            del self._agents[address]
        self._forgotten += len(silent)

    def _liveness_from(self, agent: Agent) -> float:
        """The monotonic time the agent's timeout runs from: its last heartbeat, or the
        rejoin if it was up when the router was lost and has not been heard since."""
        last = agent.last_mono
        if (
            self._rejoined_at is not None
            and last < self._rejoined_at
            and last > self._lost_at - self.timeout
        ):
            return self._rejoined_at
        return last

    def _view(self, agent: Agent, now: float) -> AgentView:
        since = self._liveness_from(agent)
        up = now - since < self.timeout
        return AgentView(
            address=agent.address,
            instance_id=agent.instance_id,
            agent_class=agent.agent_class,
            session_id=agent.session_id,
            up=up,
            last_heartbeat=agent.last_wall,
            expired_at=None if up else agent.last_wall + (since - agent.last_mono) + self.timeout,
            op_codes=agent.op_codes if up else dict.fromkeys(agent.op_codes, EXPIRED),
        )


class LogThrottle:
    """Says whether a message about ``key`` may be logged: at most once per ``interval``."""

    def __init__(
        self,
        interval: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.interval = interval
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._last: dict[Hashable, float] = {}
        self.suppressed = 0

    def allow(self, key: Hashable) -> bool:
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        if len(self._last) >= self._max_keys:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            if len(self._last) >= self._max_keys:
                self.suppressed += 1
                return False
        self._last[key] = now
        return True
