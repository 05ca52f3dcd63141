"""What the exporter knows about OCS agents: pure Python, no WAMP, no Prometheus.

Heartbeats go in through :meth:`AgentState.ingest`; scrapes read a consistent
:class:`Snapshot`. Liveness is decided when read, on a monotonic clock; the wall clock is
only used for the timestamps that are exposed.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from sys import intern
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


@dataclass(frozen=True, slots=True)
class ExpectedAgent:
    """An agent instance listed in the site config file."""

    instance_id: str
    agent_class: str
    host: str
    expected: bool  # False for ``manage: ignore`` and ``.../down`` entries


# (operation, OpCode) keys of Agent.transitions, one of each for all agents: 56 bytes a
# key otherwise, ~400 bytes an agent.
_TRANSITIONS: dict[tuple[str, int], tuple[str, int]] = {}


def _transition(op: str, code: int) -> tuple[str, int]:
    key = _TRANSITIONS.get((op, code))
    if key is None:
        if len(_TRANSITIONS) >= 100_000:  # names are few in practice; never grow unbounded
            _TRANSITIONS.clear()
        key = _TRANSITIONS[op, code] = (op, code)
    return key


# Operation types, one dict for all agents that have the same (never mutated): they come
# from the agent's class, so a site's many agents of one class share one.
_OP_TYPES: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def _shared_op_types(types: dict[str, str]) -> dict[str, str]:
    key = tuple(sorted(types.items()))
    shared = _OP_TYPES.get(key)
    if shared is None:
        if len(_OP_TYPES) >= 10_000:  # classes are few in practice; never grow unbounded
            _OP_TYPES.clear()
        shared = _OP_TYPES[key] = {intern(op): intern(kind) for op, kind in types.items()}
    return shared


GAP_WINDOW = 30.0  # ocs_agent_heartbeat_gap_seconds covers the last 15 to 30 s


@dataclass(slots=True)
class Agent:
    """One agent, as configured and as last heard."""

    address: str
    instance_id: str
    agent_class: str
    session_id: str | None = None
    op_codes: dict[str, int] = field(default_factory=dict)  # replaced, never mutated
    last_wall: float | None = None  # None: configured, never heard
    last_mono: float = -math.inf
    version: int = 0  # a new, state-wide unique number whenever anything but the time changes
    host: str = ""  # from the site config file
    expected: bool | None = None  # None: not in the site config file
    start_time: float | None = None  # from the session id
    restarts: int = 0
    changed: dict[str, float] = field(default_factory=dict)  # op -> wall time of last change
    transitions: dict[tuple[str, int], int] = field(default_factory=dict)  # (op, code) -> n
    op_types: dict[str, str] | None = None  # op -> "task" | "process", once asked
    gap_current: float = 0.0  # longest gap in the current half-window
    gap_previous: float = 0.0  # ... in the previous one
    gap_since: float = -math.inf  # monotonic start of the current half-window

    def max_gap(self, now: float) -> float:
        """The longest gap between heartbeats over the last GAP_WINDOW / 2 to GAP_WINDOW
        seconds, including the one still open."""
        gap = now - self.last_mono
        if self.gap_current > gap:  # noqa: PLR1730 - max() is a call per agent per scrape
            gap = self.gap_current
        if self.gap_previous > gap and now - self.gap_since < GAP_WINDOW / 2:
            gap = self.gap_previous
        return gap


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent as a scrape sees it."""

    address: str
    instance_id: str
    agent_class: str
    session_id: str | None
    up: bool
    last_heartbeat: float | None  # Unix time of the last heartbeat; None: never heard
    expired_at: float | None  # Unix time the timeout elapsed, while down
    op_codes: dict[str, int]  # every code EXPIRED while down
    host: str = ""
    expected: bool | None = None
    start_time: float | None = None
    restarts: int = 0
    changed: dict[str, float] = field(default_factory=dict)
    transitions: dict[tuple[str, int], int] = field(default_factory=dict)
    op_types: dict[str, str] | None = None
    heartbeat_gap: float | None = None

    @property
    def heard(self) -> bool:
        return self.last_heartbeat is not None


@dataclass(frozen=True, slots=True)
class Counters:
    heartbeats: int  # heartbeat events received, valid or not
    invalid: dict[str, int]  # rejected ones, by reason
    refused: int  # valid ones from new agents refused for --max-agents
    forgotten: int  # agents forgotten after --forget-after of silence
    agents: int  # agents tracked now
    op_type_queries: dict[str, int] = field(default_factory=dict)  # result -> count


# (agent, version, up, last_heartbeat, heartbeat_gap): what a scrape needs of an agent. The
# agent's fields other than the times are only read while ``version`` matches.
Row = tuple["Agent", int, bool, float | None, float | None]


@dataclass(frozen=True, slots=True)
class Snapshot:
    agents: tuple[AgentView, ...]


def start_time(session_id: str | None) -> float | None:
    """OCS session ids are ``str(time.time())`` at the agent's start."""
    try:
        value = float(session_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


class AgentState:
    """Every agent heard on the router or listed in the site config, keyed by agent address.
    Thread-safe: heartbeats arrive on the reactor thread, scrapes read from others.

    Liveness: an agent is up while less than ``timeout`` seconds have passed since its last
    heartbeat. After the router connection comes back, agents that were up when it was lost
    get one ``timeout`` of grace from the rejoin, so they are not all declared down while
    they reconnect. Agents not in the site config that are silent for ``forget_after``
    seconds (0: never) are forgotten; at most ``max_agents`` are tracked.
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
        self._op_type_queries = {"ok": 0, "failed": 0}
        self._version = 0
        self._lost_at: float | None = None  # monotonic time the router connection was lost
        self._rejoined_at: float | None = None  # ... and came back after that

    def _new_version(self) -> int:
        self._version += 1
        return self._version

    # -- heartbeats ------------------------------------------------------------------------

    def ingest(self, payload: Any) -> bool:
        """Record one heartbeat event's payload. Returns True when the agent is new or has
        restarted (its operation types are unknown). Raises InvalidHeartbeat (counted) for a
        payload that is not a heartbeat, AgentRefused (counted) beyond ``max_agents``."""
        # The common case first: a known agent whose heartbeat changed nothing but the time.
        if type(payload) is list and len(payload) == 2:
            op_codes, feed = payload
            if type(feed) is dict and type(op_codes) is dict:
                address = feed.get("agent_address")
                if type(address) is str:
                    with self._lock:
                        agent = self._agents.get(address)
                        if (
                            agent is not None
                            and agent.last_wall is not None
                            and op_codes == agent.op_codes
                            and feed.get("session_id") == agent.session_id
                            and feed.get("agent_class", "") == agent.agent_class
                        ):
                            self._heartbeats += 1
                            self._touch(agent, self._monotonic(), self._wall())
                            return False
        try:
            return self._ingest(payload)
        except InvalidHeartbeat as exc:
            with self._lock:
                self._heartbeats += 1
                self._invalid[exc.reason] += 1
            raise

    def _touch(self, agent: Agent, now_mono: float, now_wall: float) -> None:
        gap = now_mono - agent.last_mono
        if now_mono - agent.gap_since >= GAP_WINDOW / 2:
            fresh = now_mono - agent.gap_since < GAP_WINDOW
            agent.gap_previous = agent.gap_current if fresh else 0.0
            agent.gap_current = 0.0
            agent.gap_since = now_mono
        if gap > agent.gap_current and agent.last_wall is not None:
            agent.gap_current = gap
        agent.last_mono = now_mono
        agent.last_wall = now_wall

    def _ingest(self, payload: Any) -> bool:
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
        _check_op_codes(op_codes, address)
        now_mono, now_wall = self._monotonic(), self._wall()
        with self._lock:
            self._heartbeats += 1
            agent = self._agents.get(address)
            if agent is None:
                if self.max_agents and len(self._agents) >= self.max_agents:
                    self._forget(now_mono)
                    if len(self._agents) >= self.max_agents:
                        self._refused += 1
                        raise AgentRefused(address)
                agent = self._agents[address] = Agent(
                    address, address[len(self.prefix) :], agent_class
                )
            new_session = agent.last_wall is None or session_id != agent.session_id
            if new_session:
                if agent.last_wall is not None:
                    agent.restarts += 1
                agent.session_id = session_id
                agent.start_time = start_time(session_id)
                agent.op_types = None
            self._record_op_codes(agent, op_codes, now_wall)
            agent.agent_class = intern(agent_class)
            agent.version = self._new_version()
            self._touch(agent, now_mono, now_wall)
            return new_session

    def _record_op_codes(self, agent: Agent, op_codes: dict[str, int], now_wall: float) -> None:
        # Copy on write: scrapes may be reading the old dicts on another thread. Operation
        # names are interned: thousands of agents share a few ("acq", ...), and the wire
        # gives every heartbeat its own copies.
        op_codes = {intern(op): code for op, code in op_codes.items()}
        previous = agent.op_codes
        changed = {op: t for op, t in agent.changed.items() if op in op_codes}
        transitions = {k: n for k, n in agent.transitions.items() if k[0] in op_codes}
        for op, code in op_codes.items():
            if previous.get(op) != code:
                changed[op] = now_wall
                key = _transition(op, code)
                transitions[key] = transitions.get(key, 0) + 1
        agent.changed = changed
        agent.transitions = transitions
        agent.op_codes = op_codes

    # -- what else is known about agents ------------------------------------------------------

    def set_expected(self, entries: list[ExpectedAgent]) -> None:
        """The agents of the site config file (replacing the previous list): each is
        exported from now on, heard or not. Agents no longer listed stay while heard."""
        with self._lock:
            listed = {self.prefix + e.instance_id: e for e in entries}
            for address, agent in list(self._agents.items()):
                if address not in listed and agent.expected is not None:
                    if agent.last_wall is None:
                        del self._agents[address]
                    else:
                        agent.host, agent.expected = "", None
                        agent.version = self._new_version()
            for address, entry in listed.items():
                agent = self._agents.get(address)
                if agent is None:
                    agent = self._agents[address] = Agent(
                        address, entry.instance_id, entry.agent_class
                    )
                elif agent.last_wall is None:
                    agent.agent_class = entry.agent_class
                agent.host = entry.host
                agent.expected = entry.expected
                agent.version = self._new_version()

    def set_op_types(self, address: str, session_id: str | None, types: dict[str, str]) -> None:
        """Operation types (task or process) as the agent's session ``session_id`` told."""
        with self._lock:
            self._op_type_queries["ok"] += 1
            agent = self._agents.get(address)
            if agent is not None and agent.session_id == session_id:
                agent.op_types = _shared_op_types(types)
                agent.version = self._new_version()

    def op_types_failed(self) -> None:
        with self._lock:
            self._op_type_queries["failed"] += 1

    def session_of(self, address: str) -> str | None:
        with self._lock:
            agent = self._agents.get(address)
            return agent.session_id if agent is not None else None

    # -- the router connection ------------------------------------------------------------

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

    # -- reading ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """A consistent view of every agent, with liveness decided now."""
        with self._lock:
            now = self._monotonic()
            self._forget(now)
            return Snapshot(tuple(self._view(agent, now) for agent in self._agents.values()))

    def rows(self) -> list[Row]:
        """What a scrape needs of every agent, cheaply: one tuple per agent with liveness
        decided now. ``version`` changes whenever anything but the time does, so a renderer
        can cache what it made of the rest; it must not read the agent's other fields when
        the version it got here differs from the one it cached."""
        with self._lock:
            now = self._monotonic()
            self._forget(now)
            timeout = self.timeout
            # The grace after a rejoin can only change an answer for one timeout after it.
            grace = self._rejoined_at is not None and now - self._rejoined_at < timeout
            return [
                (
                    agent,
                    agent.version,
                    now - (self._liveness_from(agent) if grace else agent.last_mono) < timeout,
                    agent.last_wall,
                    agent.max_gap(now) if agent.last_wall is not None else None,
                )
                for agent in self._agents.values()
            ]

    def snapshot_counters(self) -> Counters:
        with self._lock:
            return Counters(
                self._heartbeats,
                dict(self._invalid),
                self._refused,
                self._forgotten,
                len(self._agents),
                dict(self._op_type_queries),
            )

    def _forget(self, now: float) -> None:
        if not self.forget_after:
            return
        silent = [
            address
            for address, agent in self._agents.items()
            if agent.expected is None and now - agent.last_mono >= self.forget_after
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
        heard = agent.last_wall is not None
        return AgentView(
            address=agent.address,
            instance_id=agent.instance_id,
            agent_class=agent.agent_class,
            session_id=agent.session_id,
            up=up,
            last_heartbeat=agent.last_wall,
            expired_at=(
                agent.last_wall + (since - agent.last_mono) + self.timeout
                if heard and not up
                else None
            ),
            op_codes=agent.op_codes if up else dict.fromkeys(agent.op_codes, EXPIRED),
            host=agent.host,
            expected=agent.expected,
            start_time=agent.start_time,
            restarts=agent.restarts,
            changed=dict(agent.changed),
            transitions=dict(agent.transitions),
            op_types=dict(agent.op_types) if agent.op_types is not None else None,
            heartbeat_gap=agent.max_gap(now) if heard else None,
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
