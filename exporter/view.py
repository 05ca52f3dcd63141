"""An agent as every reader sees it: the metrics, the status page, ``/api/agents`` and the
registry drop-in all read :class:`AgentView` from :meth:`exporter.state.AgentState.snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

from exporter.feeds import FeedInfo
from exporter.heartbeat import EXPIRED, start_time
from exporter.hostmanager import ManagerData
from exporter.sessions import OpSession


class Durations(NamedTuple):
    """A histogram of an operation's finished runs' durations, in seconds."""

    bounds: tuple[float, ...]  # upper bounds but +Inf, shared by every histogram
    counts: tuple[int, ...]  # cumulative, one per bound, then +Inf (the number of runs)
    sum: float


# What an agent with no sessions has, shared by all such agents (records are never changed).
NO_SESSIONS: dict[str, OpSession] = {}
NO_RUNS: dict[str, tuple[int, ...]] = {}
NO_DURATIONS: dict[str, Durations] = {}
NO_FEEDS: dict[str, FeedInfo] = {}
HOSTMANAGER, SITE_CONFIG = "hostmanager", "site config"  # who decides whether it should run


class Managed(NamedTuple):
    """What one HostManager listing an agent says of it."""

    manager: str  # the HostManager's instance_id
    target_up: bool | None  # its target up or down; None (passive): it does not decide
    stability: float  # 0..1


class Hosting(NamedTuple):
    """Where an agent runs and who manages it (see AgentRecord.hosting)."""

    hostname: str  # instance_hostname of its get_api answer; "" until known
    managers: tuple[Managed, ...]  # every HostManager listing it, by instance_id
    hostmanager: ManagerData | None  # a HostManager's: its manager session's data


NO_HOSTING = Hosting("", (), None)


def decided(record: AgentRecord) -> tuple[bool | None, str]:
    """Whether the agent should run, and who says so: the one HostManager listing it, when
    it lists it with target up or down; else the site config file (None: not in it), also
    when two or more HostManagers list it (a conflict, not merged)."""
    managers = record.managers
    if len(managers) == 1 and managers[0].target_up is not None:
        return managers[0].target_up, HOSTMANAGER
    return record.expected, SITE_CONFIG


def data_ops(sessions: dict[str, OpSession]) -> list[str]:
    """The operations whose latest session has a data time, in the sessions' order: those
    whose current data times :attr:`AgentView.data_times` holds."""
    return [op for op, session in sessions.items() if session.data_time is not None]


class AgentRecord(NamedTuple):
    """All that is known of an agent but its heartbeat times, liveness and the newest data
    times of its running operations (those move: see AgentView.data_times). Never changed
    (its dicts neither): a change makes a new record, so a reader on another thread may
    keep one, and a renderer may keep what it made of one while it is the same object."""

    address: str
    instance_id: str
    agent_class: str
    session_id: str | None
    op_codes: dict[str, int]
    host: str  # from the site config file
    expected: bool | None  # None: not in the site config file
    restarts: int
    changed: dict[str, float]  # op -> wall time of last change
    transitions: dict[tuple[str, int], int]  # (op, code) -> entries
    op_types: dict[str, str] | None  # op -> "task" | "process", once asked
    # op -> its latest session, as its status told, in the agent's current run: OCS's
    # session ids restart with the agent. A session is counted in runs when first seen done.
    sessions: dict[str, OpSession] = NO_SESSIONS
    # op -> finished runs seen per outcome (in OUTCOMES' order), for every op whose session
    # was seen; kept across restarts, like a counter.
    runs: dict[str, tuple[int, ...]] = NO_RUNS
    durations: dict[str, Durations] = NO_DURATIONS  # op -> histogram, when kept
    # feed name -> what its messages declare, in first-heard order, in the agent's current
    # run (a restart drops them); their message counts and times move: see AgentView.
    feeds: dict[str, FeedInfo] = NO_FEEDS
    # Its host name, the HostManagers listing it, a HostManager's own data: one field, most
    # agents sharing NO_HOSTING (a field per agent, not three).
    hosting: Hosting = NO_HOSTING

    @classmethod
    def new(cls, address: str, instance_id: str, agent_class: str) -> AgentRecord:
        """An agent known by its address, id and class only."""
        return cls(address, instance_id, agent_class, None, {}, "", None, 0, {}, {}, None)

    hostname = property(attrgetter("hosting.hostname"))
    managers = property(attrgetter("hosting.managers"))
    hostmanager = property(attrgetter("hosting.hostmanager"))

    @property
    def start_time(self) -> float | None:
        """Unix time the agent's process started, from its session id (read from it when
        asked rather than kept: a float per agent saved)."""
        return start_time(self.session_id)


class AgentView(NamedTuple):
    """One agent as a reader sees it: its record, and its liveness, heartbeat times and
    data times as they were when the snapshot was taken. The record's fields read as the
    view's own."""

    address: str  # the agent's, as in its record
    record: AgentRecord
    up: bool
    last_heartbeat: float | None  # Unix time of the last heartbeat; None: never heard
    heartbeat_gap: float | None  # see exporter.state.GAP_WINDOW; None: never heard
    expired_at: float | None  # Unix time the timeout elapsed, while down
    # The newest data time of each operation of data_ops(record.sessions), in that order: a
    # running process asked again moves it without a new record (its session's own
    # data_time is the one it had when the record was made).
    data_times: tuple[float, ...]
    # Each feed of record.feeds' messages heard and the Unix time of the last, in that order.
    feed_counts: tuple[int, ...] = ()
    feed_times: tuple[float, ...] = ()

    instance_id = property(attrgetter("record.instance_id"))
    agent_class = property(attrgetter("record.agent_class"))
    session_id = property(attrgetter("record.session_id"))
    host = property(attrgetter("record.host"))
    configured = property(attrgetter("record.expected"))  # as the site config file says
    hostname = property(attrgetter("record.hostname"))
    managers = property(attrgetter("record.managers"))
    hostmanager = property(attrgetter("record.hostmanager"))
    start_time = property(attrgetter("record.start_time"))
    restarts = property(attrgetter("record.restarts"))
    changed = property(attrgetter("record.changed"))
    transitions = property(attrgetter("record.transitions"))
    op_types = property(attrgetter("record.op_types"))
    runs = property(attrgetter("record.runs"))
    feeds = property(attrgetter("record.feeds"))

    @property
    def op_codes(self) -> dict[str, int]:
        """The operations' codes; every one EXPIRED while the agent is down."""
        codes = self.record.op_codes
        return codes if self.up else dict.fromkeys(codes, EXPIRED)

    @property
    def sessions(self) -> dict[str, OpSession]:
        """Each operation's latest session, with its newest data time."""
        sessions = self.record.sessions
        if not self.data_times:
            return sessions
        moved = {
            op: sessions[op]._replace(data_time=t)
            for op, t in zip(data_ops(sessions), self.data_times, strict=True)
            if t != sessions[op].data_time
        }
        return {**sessions, **moved} if moved else sessions

    @property
    def expected(self) -> bool | None:
        """Whether it should run, by the one rule (:func:`decided`)."""
        return decided(self.record)[0]

    @property
    def expected_by(self) -> str:
        """Who decided :attr:`expected`: HOSTMANAGER or SITE_CONFIG."""
        return decided(self.record)[1]

    @property
    def heard(self) -> bool:
        return self.last_heartbeat is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    agents: tuple[AgentView, ...]
