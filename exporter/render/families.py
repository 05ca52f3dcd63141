"""The agent metric families: the one table every renderer reads.

Each :class:`Family` says its name, type, labels and help, and how its samples come from
an :class:`exporter.view.AgentView`. The fast renderer (:mod:`exporter.render.exposition`)
and the reference collector (``testbed/reference.py``) both render this table, so a new
family is one more entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from operator import attrgetter

from exporter.heartbeat import OPCODES
from exporter.sessions import OUTCOMES
from exporter.view import AgentView, Durations, data_ops, decided

AGENT_LABELS = ("agent_address", "instance_id", "agent_class")

# A sample: the values of the family's labels after the agent's (for a family with one,
# the value itself: then a dict's items are samples), and its value (a histogram's: its
# Durations).
Sample = tuple[tuple[str, ...] | str, float | Durations]

MOVING_DIGITS = 6  # the heartbeat times and gaps are shown to the microsecond
# The record fields only the session families read, and those only the feed families read
# (each such family names those it does in ``reads``), and those every family's lines show
# (the agent labels).
SESSION_FIELDS = frozenset({"sessions", "runs", "durations"})
FEED_FIELDS = frozenset({"feeds"})
READ_FIELDS = SESSION_FIELDS | FEED_FIELDS
LABEL_FIELDS = frozenset({"address", "instance_id", "agent_class"})


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family of agent series. Its samples come from an agent as ``value``, the
    value of its one sample (None: no sample), for a family with no labels but the
    agent's, else as ``samples``. ``moving``: the values move without a new record, so the
    renderer formats them at every scrape: a ``value`` (heartbeat times) shown to
    MOVING_DIGITS, None for an agent never heard; or, for a family with ``samples`` (data
    times), ``values``, the samples' values alone, in their order, shown in full (the
    samples' labels change only with the record). A ``stateset`` sample's
    value is the number of the state of ``states`` that is true; a ``histogram`` sample's
    is a :class:`exporter.view.Durations` (its _bucket, _count and _sum series).
    ``reads``: the fields of READ_FIELDS the samples come from, for a session or feed family
    (``sessions.<field>`` for a field of the sessions); empty for the others, which may read
    any field but those, and the liveness."""

    name: str  # counters without _total, as in OpenMetrics
    kind: str  # gauge, counter, stateset or histogram
    labels: tuple[str, ...]  # after AGENT_LABELS
    help: str
    samples: Callable[[AgentView], Collection[Sample]] | None = None
    value: Callable[[AgentView], float | None] | None = None
    moving: bool = False
    values: Callable[[AgentView], tuple[float, ...]] | None = None
    states: dict[int, str] | None = None
    reads: frozenset[str] = frozenset()

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name


def expected_label(expected: bool | None) -> str:
    return "unknown" if expected is None else ("true" if expected else "false")


# How the samples come from an agent. Hot: they run for every agent that changed.


def _info(agent: AgentView) -> Collection[Sample]:
    record = agent.record
    return (((record.host, expected_label(decided(record)[0]), record.hostname), 1.0),)


def _up(agent: AgentView) -> float:
    return 1.0 if agent.up else 0.0


def _restarts(agent: AgentView) -> float | None:
    return agent.record.restarts if agent.last_heartbeat is not None else None


def _op_codes(agent: AgentView) -> Collection[Sample]:
    return agent.op_codes.items()


def _changes(agent: AgentView) -> Collection[Sample]:
    return agent.record.changed.items()


def _transitions(agent: AgentView) -> Collection[Sample]:
    return [((op, OPCODES[code]), n) for (op, code), n in agent.record.transitions.items()]


def _op_info(agent: AgentView) -> Collection[Sample]:
    record = agent.record
    types = record.op_types
    if not types:
        return ()
    codes = record.op_codes
    return [((op, kind), 1.0) for op, kind in types.items() if op in codes]


def _of_sessions(field: str) -> Callable[[AgentView], Collection[Sample]]:
    """Samples of a field of each operation's latest session, where it has a value."""
    get = attrgetter(field)

    def samples(agent: AgentView) -> Collection[Sample]:
        sessions = agent.record.sessions
        if not sessions:
            return ()
        return [
            (op, value) for op, session in sessions.items() if (value := get(session)) is not None
        ]

    return samples


def _data_times(agent: AgentView) -> Collection[Sample]:
    times = agent.data_times
    return list(zip(data_ops(agent.record.sessions), times, strict=True)) if times else ()


def _runs(agent: AgentView) -> Collection[Sample]:
    runs = agent.record.runs
    if not runs:
        return ()
    return [
        ((op, o), n) for op, counts in runs.items() for o, n in zip(OUTCOMES, counts, strict=True)
    ]


def _durations(agent: AgentView) -> Collection[Sample]:
    return agent.record.durations.items()


def _feed_info(agent: AgentView) -> Collection[Sample]:
    feeds = agent.record.feeds
    return [((feed, "true" if info.record else "false"), 1.0) for feed, info in feeds.items()]


def _fresh_times(agent: AgentView) -> Collection[Sample]:
    feeds = agent.record.feeds
    if not feeds:
        return ()
    return [(feed, info.fresh_time) for feed, info in feeds.items() if info.fresh_time is not None]


def _of_feeds(field: str) -> Callable[[AgentView], Collection[Sample]]:
    """Samples of a moving value of each feed: its ``field`` of the view (the values move;
    the labels, one per feed, change with the record)."""
    get = attrgetter(field)

    def samples(agent: AgentView) -> Collection[Sample]:
        feeds = agent.record.feeds
        return list(zip(feeds, get(agent), strict=True)) if feeds else ()

    return samples


def _target_up(agent: AgentView) -> Collection[Sample]:
    managers = agent.record.managers
    if not managers:
        return ()
    return [(m.manager, 1.0 if m.target_up else 0.0) for m in managers if m.target_up is not None]


def _stability(agent: AgentView) -> Collection[Sample]:
    managers = agent.record.managers
    return [(m.manager, m.stability) for m in managers] if managers else ()


def _managers(agent: AgentView) -> float | None:
    managers = agent.record.managers
    return float(len(managers)) if managers else None


def _parse_status(success: bool) -> Callable[[AgentView], Collection[Sample]]:
    """A HostManager's files' parse success (``success``) or time."""

    def samples(agent: AgentView) -> Collection[Sample]:
        data = agent.record.hostmanager
        if data is None:
            return ()
        if success:
            return [(name, 1.0 if ok else 0.0) for name, ok, _ in data.parse_status]
        return [(name, when) for name, _, when in data.parse_status]

    return samples


def _orphans(agent: AgentView) -> float | None:
    data = agent.record.hostmanager
    return None if data is None else data.orphans


# In exposition order.
AGENT_FAMILIES = (
    Family(
        "ocs_agent_info",
        "gauge",
        ("host", "expected", "hostname"),
        "Always 1 for every known agent, configured, heard or listed by a HostManager; host "
        "from the site config; expected as the one HostManager listing it with target up "
        "(true) or down (false) says, else as the site config: true (listed, should run), "
        "false (manage ignore or .../down) or unknown (not listed); hostname as its get_api "
        "tells, empty until known.",
        samples=_info,
    ),
    Family(
        "ocs_agent_up",
        "gauge",
        (),
        "1 if the agent heartbeated within the agent timeout, else 0.",
        value=_up,
    ),
    Family(
        "ocs_agent_last_heartbeat_timestamp_seconds",
        "gauge",
        (),
        "Unix time the agent's last heartbeat was received.",
        value=attrgetter("last_heartbeat"),
        moving=True,
    ),
    Family(
        "ocs_agent_heartbeat_gap_seconds",
        "gauge",
        (),
        "Longest gap between consecutive heartbeats over the last 15 to 30 s, including the "
        "one still open.",
        value=attrgetter("heartbeat_gap"),
        moving=True,
    ),
    Family(
        "ocs_agent_start_timestamp_seconds",
        "gauge",
        (),
        "Unix time the agent's process started, from its heartbeat's session id.",
        value=attrgetter("record.start_time"),
    ),
    Family(
        "ocs_agent_restarts",
        "counter",
        (),
        "Agent restarts seen (a new session id in its heartbeat).",
        value=_restarts,
    ),
    Family(
        "ocs_op_code",
        "gauge",
        ("operation",),
        "OpCode of the operation: 1 NONE, 2 STARTING, 3 RUNNING, 4 STOPPING, 5 SUCCEEDED, "
        "6 FAILED, 7 EXPIRED (agent down), 8 DEGRADED.",
        samples=_op_codes,
    ),
    Family(
        "ocs_op_last_change_timestamp_seconds",
        "gauge",
        ("operation",),
        "Unix time the operation's op code last changed (or was first seen).",
        samples=_changes,
    ),
    Family(
        "ocs_op_transitions",
        "counter",
        ("operation", "to"),
        "Entries of the operation into each OpCode, named in 'to'.",
        samples=_transitions,
    ),
    Family(
        "ocs_op_info",
        "gauge",
        ("operation", "op_type"),
        "Always 1; op_type is task or process, as the agent's get_api tells.",
        samples=_op_info,
    ),
    Family(
        "ocs_op_session_start_timestamp_seconds",
        "gauge",
        ("operation",),
        "Unix time the operation's latest session (run) started, as its status tells.",
        samples=_of_sessions("start_time"),
        reads=frozenset({"sessions.start_time"}),
    ),
    Family(
        "ocs_op_session_end_timestamp_seconds",
        "gauge",
        ("operation",),
        "Unix time the operation's latest session ended; absent while it runs.",
        samples=_of_sessions("end_time"),
        reads=frozenset({"sessions.end_time"}),
    ),
    Family(
        "ocs_op_runs",
        "counter",
        ("operation", "outcome"),
        "Finished sessions of the operation seen by this exporter, by outcome: succeeded, "
        "failed, crashed (its message starts CRASH:) or error (ERROR:).",
        samples=_runs,
        reads=frozenset({"runs"}),
    ),
    Family(
        "ocs_op_session_last_message_timestamp_seconds",
        "gauge",
        ("operation",),
        "Unix time of the latest message of the operation's latest session.",
        samples=_of_sessions("last_message_time"),
        reads=frozenset({"sessions.log"}),
    ),
    Family(
        "ocs_op_data_timestamp_seconds",
        "gauge",
        ("operation",),
        "Newest timestamp in the latest session's data (--collector.sessions.data-keys, top "
        "level or one level down); absent when there is none.",
        samples=_data_times,
        moving=True,
        values=attrgetter("data_times"),
    ),
    Family(
        "ocs_feed_info",
        "gauge",
        ("feed", "record"),
        "Always 1 for every feed heard from the agent's current run (the heartbeat feed "
        "aside); record true if the aggregator records it.",
        samples=_feed_info,
        reads=FEED_FIELDS,
    ),
    Family(
        "ocs_feed_fresh_time_seconds",
        "gauge",
        ("feed",),
        "The fresh time the feed declares (its aggregator params): seconds without a message "
        "after which its data is stale; absent when it declares none.",
        samples=_fresh_times,
        reads=FEED_FIELDS,
    ),
    Family(
        "ocs_feed_messages",
        "counter",
        ("feed",),
        "Messages of the feed heard by this exporter in the agent's current run.",
        samples=_of_feeds("feed_counts"),
        moving=True,
        values=attrgetter("feed_counts"),
        reads=FEED_FIELDS,
    ),
    Family(
        "ocs_feed_last_message_timestamp_seconds",
        "gauge",
        ("feed",),
        "Unix time the feed's last message was received.",
        samples=_of_feeds("feed_times"),
        moving=True,
        values=attrgetter("feed_times"),
        reads=FEED_FIELDS,
    ),
    Family(
        "ocs_agent_target_up",
        "gauge",
        ("manager",),
        "1 if the HostManager (manager: its instance_id) listing the agent has target up, "
        "0 if down; absent for other targets (passive).",
        samples=_target_up,
    ),
    Family(
        "ocs_agent_stability",
        "gauge",
        ("manager",),
        "The agent's stability as the HostManager listing it says: 1 stable, towards 0 while "
        "it keeps restarting.",
        samples=_stability,
    ),
    Family(
        "ocs_agent_managers",
        "gauge",
        (),
        "HostManagers listing the agent (more than 1: a conflict, the site config decides).",
        value=_managers,
    ),
    Family(
        "ocs_hostmanager_config_parse_success",
        "gauge",
        ("file",),
        "1 if the HostManager last parsed the file ([SCF]: the site config file, else a "
        "docker compose file) successfully, else 0.",
        samples=_parse_status(True),
    ),
    Family(
        "ocs_hostmanager_config_parse_timestamp_seconds",
        "gauge",
        ("file",),
        "Unix time the HostManager last parsed the file (or last reported failing to).",
        samples=_parse_status(False),
    ),
    Family(
        "ocs_hostmanager_orphans",
        "gauge",
        (),
        "Docker containers of the HostManager's compose files that no one manages.",
        value=_orphans,
    ),
)
# Only with --collector.sessions.durations.
DURATION_FAMILY = Family(
    "ocs_op_session_duration_seconds",
    "histogram",
    ("operation",),
    "Durations of the operation's finished sessions seen by this exporter.",
    samples=_durations,
    reads=frozenset({"durations"}),
)
# Only with --collector.op-state; always last.
OP_STATE_FAMILY = Family(
    "ocs_op_state",
    "stateset",
    ("operation",),
    "The operation's state as an OpenMetrics StateSet: one series per OpCode, one true.",
    samples=_op_codes,
    states=OPCODES,
)


# Every family, in exposition order.
FAMILIES = (*AGENT_FAMILIES, DURATION_FAMILY, OP_STATE_FAMILY)


def families(op_state: bool, durations: bool = False) -> tuple[Family, ...]:
    """The agent families to render, in exposition order."""
    optional = {DURATION_FAMILY.name: durations, OP_STATE_FAMILY.name: op_state}
    return tuple(family for family in FAMILIES if optional.get(family.name, True))
