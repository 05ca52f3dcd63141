"""What the exporter knows about OCS agents: pure Python, no WAMP, no Prometheus.

Heartbeats go in through :meth:`AgentState.ingest`, operation sessions (answers to
``status``) through :meth:`AgentState.set_session`, other feeds' messages through
:meth:`AgentState.ingest_feed`; every reader (the metrics, the status
page, ``/api/agents``, the registry drop-in) reads a :class:`Snapshot` of
:class:`AgentView`. Liveness is decided when read, on a monotonic clock, by one rule
(:meth:`AgentState.snapshot`); the wall clock is only used for the times that are shown.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from sys import intern
from typing import Any, NamedTuple

from exporter.feeds import DEFAULT_MAX_FEEDS, FEED_REASONS, NUMBERS, InvalidFeed, parse_feed
from exporter.heartbeat import (
    REASONS,
    Heartbeat,
    InvalidHeartbeat,
    parse,
)
from exporter.history import (
    FEED_INFOS,
    OP_TYPES,
    Listings,
    feed_slots,
    hosted,
    of_ops,
    only_data_moved,
    op_history,
    with_feed,
    with_session,
)
from exporter.hostmanager import (
    MANAGER_REASONS,
    InvalidManagerData,
    ManagerData,
    parse_manager_data,
)
from exporter.sessions import (
    DATA_KEYS,
    INVALID_REASONS,
    InvalidSession,
    read_status,
)
from exporter.view import NO_FEEDS, NO_SESSIONS, AgentRecord, AgentView, Snapshot, data_ops

GAP_WINDOW = 30.0  # ocs_agent_heartbeat_gap_seconds covers the last 15 to 30 s
RUNNING_CODES = (3, 8)  # RUNNING and DEGRADED: their sessions are asked again periodically
SESSION_RESULTS = ("ok", "invalid", "timeout", "error")
IGNORED_FEEDS = ("unknown_agent", "too_many_feeds")  # why a valid feed message is ignored
HOST_MANAGER, MANAGER_OP = "HostManager", "manager"  # the class and process read for it


class AgentRefused(Exception):
    """A valid heartbeat from a new agent while ``max_agents`` agents are already tracked."""


@dataclass(frozen=True, slots=True)
class ExpectedAgent:
    """An agent instance listed in the site config file."""

    instance_id: str
    agent_class: str
    host: str
    expected: bool  # False for ``manage: ignore`` and ``.../down`` entries


@dataclass(frozen=True, slots=True)
class Counters:
    heartbeats: int  # heartbeat events received, valid or not
    invalid: dict[str, int]  # rejected ones, by reason
    refused: int  # valid ones from new agents refused for --max-agents
    forgotten: int  # agents forgotten after --forget-after of silence
    agents: int  # agents tracked now
    op_type_queries: dict[str, int] = field(default_factory=dict)  # result -> count
    session_queries: dict[str, int] = field(default_factory=dict)  # result -> count
    invalid_sessions: dict[str, int] = field(default_factory=dict)  # reason -> count
    feed_messages: int = 0  # feed messages received (heartbeats not), valid or not
    invalid_feeds: dict[str, int] = field(default_factory=dict)  # reason -> count
    ignored_feeds: dict[str, int] = field(default_factory=dict)  # IGNORED_FEEDS -> count
    invalid_manager_data: dict[str, int] = field(default_factory=dict)  # reason -> count


class Conflict(NamedTuple):
    """Two or more HostManagers list the agent at ``address`` (their instance_ids): none
    decides whether it should run. Told once, when it starts."""

    address: str
    managers: tuple[str, ...]


class Heard(NamedTuple):
    """What a heartbeat that changed something calls for: the agent is new or restarted
    (``new_session``: ask its operation types), and the operations whose op code changed
    (all of them for a new session: ask their sessions)."""

    new_session: bool
    changed: tuple[str, ...]


class _Feeds:
    """An agent's feeds' message counts and last message times, in its record's feeds' order
    (``slots`` says where each feed's are)."""

    __slots__ = ("counts", "slots", "times")

    def __init__(self, slots: dict[str, Any], counts: list[int], times: list[float]) -> None:
        self.slots = slots  # see exporter.history.feed_slots; shared
        self.counts = counts
        self.times = times


class _Agent:
    """An agent's record and what moves without changing it: its heartbeat times and gaps,
    at every heartbeat, its running operations' data times, at every status asked again, and
    its feeds' counts and times, at every feed message."""

    __slots__ = ("gap_current", "gap_previous", "gap_since", "last_mono", "last_wall", "record")
    __slots__ += ("data_times", "feeds")

    def __init__(self, record: AgentRecord) -> None:
        self.record = record
        # As AgentView.data_times (a new record has no sessions). Replaced, never changed:
        # a view may hold it.
        self.data_times: tuple[float, ...] = ()
        self.feeds: _Feeds | None = None  # None: no feed (most agents: one slot, no object)
        self.last_wall: float | None = None  # None: configured, never heard
        self.last_mono = -math.inf
        self.gap_current = 0.0  # longest gap in the current half-window
        self.gap_previous = 0.0  # ... in the previous one
        self.gap_since = -math.inf  # monotonic start of the current half-window

    def update(self, **changes: Any) -> None:
        self.set_record(self.record._replace(**changes))

    def set_record(self, record: AgentRecord) -> None:
        """Makes ``record`` the agent's. An operation's data time is kept while its session
        is the same object (it may have moved since the session was read), else the new
        session's is taken; a feed's count and time are kept while it is in the record."""
        if record.feeds is not self.record.feeds:
            self._set_feeds(record.feeds)
        old, new = self.record.sessions, record.sessions
        if new is not old:
            times = dict(zip(data_ops(old), self.data_times, strict=True))
            self.data_times = tuple(
                times[op] if old.get(op) is session else session.data_time  # type: ignore[misc]
                for op, session in new.items()
                if session.data_time is not None
            )
        self.record = record

    def _set_feeds(self, feeds: dict[str, Any]) -> None:
        if not feeds:
            self.feeds = None
            return
        kept, slots = self.feeds, feed_slots(feeds)
        counts, times = [0] * len(feeds), [0.0] * len(feeds)
        if kept is not None:
            for name, (i, _) in kept.slots.items():
                slot = slots.get(name)
                if slot is not None:
                    counts[slot[0]], times[slot[0]] = kept.counts[i], kept.times[i]
        self.feeds = _Feeds(slots, counts, times)

    def move_data_time(self, op: str, seconds: float) -> None:
        """The operation's session, the same but for its data time, was read again."""
        times = list(self.data_times)
        times[data_ops(self.record.sessions).index(op)] = seconds
        self.data_times = tuple(times)

    def touch(self, now_mono: float, now_wall: float) -> None:
        gap = now_mono - self.last_mono
        if now_mono - self.gap_since >= GAP_WINDOW / 2:
            fresh = now_mono - self.gap_since < GAP_WINDOW
            self.gap_previous = self.gap_current if fresh else 0.0
            self.gap_current = 0.0
            self.gap_since = now_mono
        if gap > self.gap_current and self.last_wall is not None:
            self.gap_current = gap
        self.last_mono = now_mono
        self.last_wall = now_wall


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
        data_keys: tuple[str, ...] = DATA_KEYS,
        durations: tuple[float, ...] | None = None,
        max_feeds: int = DEFAULT_MAX_FEEDS,
    ) -> None:
        self.prefix = address_root + "."
        self.max_feeds = max_feeds
        self.timeout = timeout
        self.forget_after = forget_after
        self.max_agents = max_agents
        self.data_keys = tuple(data_keys)
        # Finished runs' durations are kept in histograms with these bucket bounds (None: not).
        self.durations = None
        if durations is not None:
            self.durations = tuple(sorted({float(b) for b in durations if math.isfinite(b)}))
        self._monotonic = monotonic
        self._wall = wall
        self._agents: dict[str, _Agent] = {}
        self._lock = threading.Lock()
        self._heartbeats = 0
        self._invalid = dict.fromkeys(REASONS, 0)
        self._refused = 0
        self._forgotten = 0
        self._op_type_queries = {"ok": 0, "failed": 0}
        self._session_queries = dict.fromkeys(SESSION_RESULTS, 0)
        self._invalid_sessions = dict.fromkeys(INVALID_REASONS, 0)
        self._feed_messages = 0
        self._invalid_feeds = dict.fromkeys(FEED_REASONS, 0)
        self._ignored_feeds = dict.fromkeys(IGNORED_FEEDS, 0)
        self._invalid_manager_data = dict.fromkeys(MANAGER_REASONS, 0)
        self._listings = Listings(self.prefix)  # what the HostManagers say
        self._conflicts: set[str] = set()  # agents listed by two or more, told
        self._lost_at: float | None = None  # monotonic time the router connection was lost
        self._rejoined_at: float | None = None  # ... and came back after that

    # -- heartbeats ------------------------------------------------------------------------

    def ingest(self, payload: Any) -> Heard | None:
        """Record one heartbeat event's payload. Returns what it calls for to ask the agent
        (see :class:`Heard`), None when nothing but its time moved. Raises InvalidHeartbeat
        (counted) for a payload that is not a heartbeat, AgentRefused (counted) beyond
        ``max_agents``."""
        # The common case first: a known agent whose heartbeat changed nothing but the time.
        if type(payload) is list and len(payload) == 2:
            op_codes, feed = payload
            if type(feed) is dict and type(op_codes) is dict:
                address = feed.get("agent_address")
                if type(address) is str:
                    with self._lock:
                        agent = self._agents.get(address)
                        if agent is not None and agent.last_wall is not None:
                            record = agent.record
                            if (
                                op_codes == record.op_codes
                                and feed.get("session_id") == record.session_id
                                and feed.get("agent_class", "") == record.agent_class
                            ):
                                self._heartbeats += 1
                                agent.touch(self._monotonic(), self._wall())
                                return None
        try:
            return self._ingest(parse(payload, self.prefix))
        except InvalidHeartbeat as exc:
            with self._lock:
                self._heartbeats += 1
                self._invalid[exc.reason] += 1
            raise

    def _ingest(self, beat: Heartbeat) -> Heard | None:
        address, op_codes, session_id, agent_class = beat
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
                record = AgentRecord.new(address, address[len(self.prefix) :], agent_class)
                agent = self._agents[address] = _Agent(record)
            record = agent.record
            heard = agent.last_wall is not None
            new_session = not heard or session_id != record.session_id
            codes, changed, transitions, moved = op_history(record, op_codes, now_wall)
            agent.set_record(
                AgentRecord(
                    address=address,
                    instance_id=record.instance_id,
                    agent_class=intern(agent_class),
                    session_id=session_id,
                    op_codes=codes,
                    host=record.host,
                    expected=record.expected,
                    restarts=record.restarts + 1 if new_session and heard else record.restarts,
                    changed=changed,
                    transitions=transitions,
                    op_types=None if new_session else record.op_types,
                    # The sessions of the agent's previous run are gone with it.
                    sessions=NO_SESSIONS if new_session else of_ops(record.sessions, codes),
                    runs=of_ops(record.runs, codes),
                    durations=of_ops(record.durations, codes),
                    # As the sessions: a restarted agent's feeds are heard again, or gone.
                    feeds=NO_FEEDS if new_session else record.feeds,
                    # A HostManager's data goes with its run (below).
                    hosting=record.hosting,
                )
            )
            agent.touch(now_mono, now_wall)
            if new_session and address in self._listings.data:
                self._manage(address, None)
            if new_session:
                return Heard(True, tuple(codes))
            return Heard(False, tuple(moved)) if moved else None

    # -- feeds ---------------------------------------------------------------------------------

    def ingest_feed(self, payload: Any) -> None:
        """Count one message of a feed other than the heartbeat (the listener sends those to
        :meth:`ingest`). A feed already known, declaring what it did, moves its count and
        time only; a new feed, or one declaring something else, makes a new record. Ignored
        (counted): an agent not heard in the feed's session, a feed beyond ``max_feeds``.
        Raises InvalidFeed (counted) for a payload that is not a feed message."""
        # The common case first, as in ingest: a known feed of a known agent, declaring what
        # its record holds (which parse_feed accepted when it was added).
        if type(payload) is list and len(payload) == 2:
            feed = payload[1]
            if type(feed) is dict:
                address, name = feed.get("agent_address"), feed.get("feed_name")
                params = feed.get("agg_params")
                if type(address) is str and type(name) is str and type(params) is dict:
                    fresh = params.get("fresh_time")
                    with self._lock:
                        agent = self._agents.get(address)
                        feeds = agent.feeds if agent is not None else None
                        slot = feeds.slots.get(name) if feeds is not None else None
                        if slot is not None:
                            i, (recorded, fresh_time) = slot
                            record = agent.record  # type: ignore[union-attr]
                            if (
                                feed.get("record") is recorded
                                and (
                                    fresh is None
                                    if fresh_time is None
                                    else type(fresh) in NUMBERS and fresh == fresh_time
                                )
                                and feed.get("session_id") == record.session_id
                                and feed.get("agent_class", "") == record.agent_class
                                and feed.get("address") == f"{address}.feeds.{name}"
                            ):
                                self._feed_messages += 1
                                feeds.counts[i] += 1  # type: ignore[union-attr]
                                feeds.times[i] = self._wall()  # type: ignore[union-attr]
                                return
        try:
            message = parse_feed(payload, self.prefix)
        except InvalidFeed as exc:
            with self._lock:
                self._feed_messages += 1
                self._invalid_feeds[exc.reason] += 1
            raise
        info = FEED_INFOS[message.record, message.fresh_time]
        name = message.feed_name
        with self._lock:
            self._feed_messages += 1
            agent = self._agents.get(message.agent_address)
            if (
                agent is None
                or agent.last_wall is None
                or message.session_id != agent.record.session_id
            ):
                self._ignored_feeds["unknown_agent"] += 1
                return
            record = agent.record
            declared = record.feeds.get(name)
            if declared is None and len(record.feeds) >= self.max_feeds:
                self._ignored_feeds["too_many_feeds"] += 1
                return
            if declared != info:
                agent.set_record(record._replace(feeds=with_feed(record.feeds, name, info)))
            feeds = agent.feeds
            i = feeds.slots[name][0]  # type: ignore[union-attr]
            feeds.counts[i] += 1  # type: ignore[union-attr]
            feeds.times[i] = self._wall()  # type: ignore[union-attr]

    # -- what else is known about agents ------------------------------------------------------

    def set_expected(self, entries: list[ExpectedAgent]) -> None:
        """The agents of the site config file (replacing the previous list): each is
        exported from now on, heard or not. Agents no longer listed stay while heard."""
        with self._lock:
            listed = {self.prefix + e.instance_id: e for e in entries}
            for address, agent in list(self._agents.items()):
                if address not in listed and agent.record.expected is not None:
                    if agent.last_wall is None and not self._wanted(agent.record.managers):
                        del self._agents[address]
                    else:
                        agent.update(host="", expected=None)
            for address, entry in listed.items():
                agent = self._agents.get(address)
                unheard = agent is None or agent.last_wall is None
                if agent is None:
                    record = AgentRecord.new(address, entry.instance_id, entry.agent_class)
                    agent = self._agents[address] = _Agent(record)
                named = {"agent_class": entry.agent_class} if unheard else {}
                agent.update(host=entry.host, expected=entry.expected, **named)

    def set_op_types(
        self, address: str, session_id: str | None, types: dict[str, str], hostname: str = ""
    ) -> None:
        """Operation types (task or process) and the host name (``instance_hostname``; ""
        when it did not tell: the one known is kept) as the agent's session ``session_id``
        told in its get_api answer."""
        with self._lock:
            self._op_type_queries["ok"] += 1
            agent = self._agents.get(address)
            if agent is not None and agent.record.session_id == session_id:
                shared = {intern(op): intern(kind) for op, kind in types.items()}
                types = OP_TYPES.share(tuple(sorted(types.items())), shared)
                hosting = agent.record.hosting
                if hostname and hostname != hosting.hostname:
                    hosting = hosted(hosting, hostname=intern(hostname))
                agent.update(op_types=types, hosting=hosting)

    def op_types_failed(self) -> None:
        with self._lock:
            self._op_type_queries["failed"] += 1

    def set_session(
        self, address: str, agent_session_id: str | None, op: str, answer: Any
    ) -> tuple[Conflict, ...]:
        """The answer of the agent's run ``agent_session_id`` to ``status`` for ``op``:
        kept as the operation's latest session while that run and the operation last, and a
        finished session counted in its runs once. Bad answers are counted and dropped.
        A HostManager's ``manager`` session's data (read at every answer, changed or not)
        is kept as what it says until its session ends, it restarts or is forgotten; bad
        data is counted and the previous kept. Returns the conflicts it starts."""
        try:
            session, trimmed = read_status(answer, self.data_keys)
        except InvalidSession as exc:
            with self._lock:
                self._session_queries["invalid"] += 1
                self._invalid_sessions[exc.reason] += 1
            return ()
        managed: ManagerData | str | None = None  # the data read, or why it is refused
        if op == MANAGER_OP and session is not None and not session.done:
            try:
                managed = parse_manager_data(answer[2].get("data"))
            except InvalidManagerData as exc:
                managed = exc.reason
        with self._lock:
            self._session_queries["ok"] += 1
            self._invalid_sessions["trimmed"] += trimmed
            agent = self._agents.get(address)
            if session is None or agent is None:
                return ()
            record = agent.record
            op = intern(op)
            if record.session_id != agent_session_id or op not in record.op_codes:
                return ()  # restarted or changed since the question: the answer is stale
            told: tuple[Conflict, ...] = ()
            if op == MANAGER_OP and record.agent_class == HOST_MANAGER:
                if isinstance(managed, str):
                    self._invalid_manager_data[managed] += 1
                elif managed is not None or address in self._listings.data:
                    told = self._manage(address, managed)  # None: its session ended
                record = agent.record
            latest = record.sessions.get(op)
            if latest is not None and only_data_moved(session, latest):
                # A running process asked again: its record (and what the renderer made of
                # it) stays.
                agent.move_data_time(op, session.data_time)  # type: ignore[arg-type]
                return told
            changes = with_session(record, op, session, self.durations)
            if changes:
                agent.update(**changes)
            return told

    def _manage(self, address: str, data: ManagerData | None) -> tuple[Conflict, ...]:
        """Makes ``data`` what the HostManager at ``address`` says (None: nothing any more):
        its own record and those of the agents it lists, or listed, change where what they
        hold does. An agent listed with a target, never heard and not configured, is
        tracked (it should run, or not) while listed; the conflicts started are returned."""
        hostmanager = self._agents.get(address)
        if hostmanager is not None and hostmanager.record.hostmanager != data:
            hostmanager.update(hosting=hosted(hostmanager.record.hosting, hostmanager=data))
        told = []
        for listed, (managers, child) in self._listings.replace(address, data).items():
            agent = self._agents.get(listed)
            if agent is None:
                if not self._wanted(managers) or (
                    self.max_agents and len(self._agents) >= self.max_agents
                ):
                    self._conflicts.discard(listed)  # not tracked: no conflict to report
                    continue
                record = AgentRecord.new(listed, child.instance_id, intern(child.agent_class))
                agent = self._agents[listed] = _Agent(record)
            record = agent.record
            if record.managers != managers:
                if (
                    agent.last_wall is None
                    and record.expected is None
                    and not self._wanted(managers)
                ):
                    del self._agents[listed]  # only ever tracked for a HostManager
                    self._conflicts.discard(listed)
                    continue
                agent.update(hosting=hosted(record.hosting, managers=managers))
            if len(managers) < 2:
                self._conflicts.discard(listed)
            elif listed not in self._conflicts:
                self._conflicts.add(listed)
                told.append(Conflict(listed, tuple(m.manager for m in managers)))
        return tuple(told)

    @staticmethod
    def _wanted(managers: tuple[Any, ...]) -> bool:
        """Whether a HostManager lists the agent with a target (up or down)."""
        return any(m.target_up is not None for m in managers)

    def session_query_failed(self, result: str) -> None:
        """A ``status`` call that got no answer: ``result`` is "timeout" or "error"."""
        with self._lock:
            self._session_queries[result] += 1

    def running_operations(self) -> list[tuple[str, str | None, str]]:
        """(address, agent session id, operation) of every RUNNING or DEGRADED operation
        of an agent up now: their sessions are asked again periodically."""
        with self._lock:
            return [
                (view.address, view.record.session_id, op)
                for view in self._views(self._monotonic())
                if view.up
                for op, code in view.record.op_codes.items()
                if code in RUNNING_CODES
            ]

    def session_of(self, address: str) -> str | None:
        with self._lock:
            agent = self._agents.get(address)
            return agent.record.session_id if agent is not None else None

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
        """Every agent as it is now, with liveness decided now: cheap enough for every
        scrape (one small tuple per agent; the records are shared, not copied). Agents
        silent for ``forget_after`` are forgotten on the way."""
        with self._lock:
            return Snapshot(self._views(self._monotonic()))

    def _views(self, now: float) -> tuple[AgentView, ...]:
        """The one liveness rule: an agent is up while less than ``timeout`` has passed
        since its last heartbeat, or since the rejoin for an agent that was up when the
        router was lost and has not been heard since. Written as one loop, forgetting
        included: it runs for every agent at every scrape."""
        timeout, new = self.timeout, tuple.__new__
        forget_after = self.forget_after or math.inf
        # Agents last heard between these two times were up when the router was lost.
        grace_from, rejoined = math.inf, -math.inf  # none, unless the router came back
        if self._rejoined_at is not None and self._lost_at is not None:
            grace_from, rejoined = self._lost_at - timeout, self._rejoined_at
        half_window = GAP_WINDOW / 2
        views, silent = [], []
        for address, agent in self._agents.items():
            last, wall, record = agent.last_mono, agent.last_wall, agent.record
            times, feeds = agent.data_times, agent.feeds
            counts = moments = ()
            if feeds is not None:
                counts, moments = tuple(feeds.counts), tuple(feeds.times)
            if now - last >= forget_after and record.expected is None and not record.managers:
                silent.append(address)
                continue
            since = rejoined if grace_from < last < rejoined else last
            up = now - since < timeout
            if wall is None:
                view = (address, record, up, None, None, None, times, counts, moments)
                views.append(new(AgentView, view))
                continue
            # The longest gap over the last GAP_WINDOW / 2 to GAP_WINDOW seconds, including
            # the one still open.
            gap = now - last
            if agent.gap_current > gap:  # noqa: PLR1730 - max() is a call per agent
                gap = agent.gap_current
            if agent.gap_previous > gap and now - agent.gap_since < half_window:
                gap = agent.gap_previous
            expired_at = None if up else wall + (since - last) + timeout
            view = (address, record, up, wall, gap, expired_at, times, counts, moments)
            views.append(new(AgentView, view))
        self._drop(silent)
        return tuple(views)

    def snapshot_counters(self) -> Counters:
        with self._lock:
            return Counters(
                self._heartbeats,
                dict(self._invalid),
                self._refused,
                self._forgotten,
                len(self._agents),
                dict(self._op_type_queries),
                dict(self._session_queries),
                dict(self._invalid_sessions),
                self._feed_messages,
                dict(self._invalid_feeds),
                dict(self._ignored_feeds),
                dict(self._invalid_manager_data),
            )

    def _forget(self, now: float) -> None:
        """Forget the agents not in the site config silent for ``forget_after`` (as
        :meth:`_views` does on its way)."""
        if self.forget_after:
            self._drop(
                [
                    agent.record.address
                    for agent in self._agents.values()
                    if now - agent.last_mono >= self.forget_after
                    and agent.record.expected is None
                    and not agent.record.managers
                ]
            )

    def _drop(self, addresses: list[str]) -> None:
        for address in addresses:
            del self._agents[address]
        self._forgotten += len(addresses)
        for address in addresses:
            if address in self._listings.data:  # what a forgotten HostManager said goes
                self._manage(address, None)
