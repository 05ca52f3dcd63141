"""How an agent's record changes: after a heartbeat (op codes, their last changes and
transitions) and after a session answer (the latest session, runs by outcome, durations).
Pure functions over :class:`exporter.view.AgentRecord`, returning new dicts (readers on other
threads may hold the old ones); :mod:`exporter.state` calls them under its lock.
"""

from __future__ import annotations

import bisect
from itertools import chain
from sys import intern
from typing import Any

from exporter.feeds import FeedInfo
from exporter.hostmanager import Child, ManagerData
from exporter.interning import InternTable
from exporter.sessions import OUTCOMES, STATUSES, OpSession
from exporter.view import AgentRecord, Durations, Hosting, Managed

# (operation, OpCode) keys of AgentRecord.transitions, one of each for all agents.
_TRANSITIONS: InternTable[tuple[str, int], tuple[str, int]] = InternTable(lambda k: k, 100_000)
# Counts of runs per outcome (AgentRecord.runs' values) and of histogram buckets: most
# operations share a few.
_COUNTS: InternTable[tuple[int, ...], tuple[int, ...]] = InternTable(lambda k: k, 100_000)
_NO_RUN = (0,) * len(OUTCOMES)
# Op codes, one dict for all records that have the same, keyed by their items flat: the
# agents of a class go through the same few combinations. Transitions and runs only while
# every count is at most 1 (see _early): after that they part agent by agent, and the table
# would keep every superseded dict until it is cleared. Bounded.
_DICTS: InternTable[tuple[Any, ...], dict[Any, Any]] = InternTable(None, 30_000)
# Operation types, one dict for all agents that have the same (never mutated): they come
# from the agent's class, so a site's many agents of one class share one, in the order of
# the first answer.
OP_TYPES: InternTable[tuple[tuple[str, str], ...], dict[str, str]] = InternTable(None, 10_000)
# What feeds declare, (record, fresh time): a site's thousands of feeds share a few.
FEED_INFOS: InternTable[tuple[bool, float | None], FeedInfo] = InternTable(
    lambda k: FeedInfo(*k), 10_000
)
# Feeds (AgentRecord.feeds), and each feed's position in them and what it declares by name
# (where an agent keeps its feed's count and time), one of each for all agents whose feeds
# are the same: the agents of a class publish the same feeds.
_FEEDS: InternTable[tuple[Any, ...], dict[str, FeedInfo]] = InternTable(None, 30_000)
_FEED_SLOTS: InternTable[tuple[Any, ...], dict[str, tuple[int, FeedInfo]]] = InternTable(
    None, 30_000
)

# What a HostManager says of an agent: the same few values for most.
_MANAGED: InternTable[tuple[str, bool | None, float], Managed] = InternTable(
    lambda k: Managed(*k), 10_000
)

# Hosting, one for all agents that have the same: those of a host, managed alike, share one.
_HOSTINGS: InternTable[Hosting, Hosting] = InternTable(lambda k: k, 30_000)


def hosted(hosting: Hosting, **changes: Any) -> Hosting:
    """``hosting`` with ``changes``, the one held for the same values."""
    return _HOSTINGS[hosting._replace(**changes)]


def op_history(
    record: AgentRecord, op_codes: dict[str, int], now_wall: float
) -> tuple[dict[str, int], dict[str, float], dict[tuple[str, int], int], list[str]]:
    """The record's op codes, last changes and transitions after a heartbeat with
    ``op_codes``, as new dicts (readers may hold the old ones), and the operations whose
    op code changed."""
    # Operation names are interned: thousands of agents share a few ("acq", ...), and the
    # wire gives every heartbeat its own copies.
    op_codes = shared({intern(op): code for op, code in op_codes.items()})
    previous = record.op_codes
    moved = [op for op, code in op_codes.items() if previous.get(op) != code]
    if not moved and len(op_codes) == len(previous):
        return previous, record.changed, record.transitions, moved  # the same operations
    changed = {op: t for op, t in record.changed.items() if op in op_codes}
    transitions = {k: n for k, n in record.transitions.items() if k[0] in op_codes}
    for op in moved:
        changed[op] = now_wall
        key = _TRANSITIONS[op, op_codes[op]]
        transitions[key] = transitions.get(key, 0) + 1
    return op_codes, changed, _early(transitions), moved


def _early(counts: dict[Any, Any]) -> dict[Any, Any]:
    """``counts`` (transitions, or runs by outcome) shared while no count passed 1: early in
    their lives the agents of a class have the same."""
    for value in counts.values():
        if (value if type(value) is int else max(value)) > 1:
            return counts
    return shared(counts)


def shared(items: dict[Any, Any]) -> dict[Any, Any]:
    """The dict held for ``items``' contents (``items`` itself if none is): never change
    either after."""
    return _DICTS.share(tuple(chain.from_iterable(items.items())), items)


def with_feed(feeds: dict[str, FeedInfo], name: str, info: FeedInfo) -> dict[str, FeedInfo]:
    """``feeds`` with feed ``name`` declaring ``info`` (added last when new), as a new dict
    (the one held for the same feeds when there is one)."""
    feeds = {**feeds, intern(name): info}
    return _FEEDS.share(tuple(chain.from_iterable(feeds.items())), feeds)


def feed_slots(feeds: dict[str, FeedInfo]) -> dict[str, tuple[int, FeedInfo]]:
    """Each feed of ``feeds`` by name: its position in ``feeds`` and what it declares."""
    key = tuple(chain.from_iterable(feeds.items()))
    slots = _FEED_SLOTS.get(key)
    if slots is None:
        slots = {name: (i, info) for i, (name, info) in enumerate(feeds.items())}
        slots = _FEED_SLOTS.share(key, slots)
    return slots


def of_ops(items: dict[str, Any], op_codes: dict[str, int]) -> dict[str, Any]:
    """``items``, keyed by operation, without the operations no longer in ``op_codes``:
    the same dict when none is gone (an empty one often shared)."""
    if not items:
        return items
    kept = {op: v for op, v in items.items() if op in op_codes}
    return items if len(kept) == len(items) else kept


def _newer(session: OpSession, latest: OpSession | None) -> bool:
    """Whether ``session`` is a later look at the operation than ``latest``: a later run
    (OCS numbers them in order), or the same one no earlier in its life."""
    if latest is None or session.session_id > latest.session_id:
        return True
    stage = STATUSES.index
    return session.session_id == latest.session_id and stage(session.status) >= stage(latest.status)


def only_data_moved(session: OpSession, latest: OpSession) -> bool:
    """Whether ``session`` is ``latest`` read again but for its data time, both having one
    (one gained or lost changes the agent's series: a new record)."""
    if session.data_time is None or latest.data_time is None:
        return False
    return session._replace(data_time=latest.data_time) == latest


def with_session(
    record: AgentRecord, op: str, session: OpSession, bounds: tuple[float, ...] | None
) -> dict[str, Any]:
    """The changes to ``record`` that ``session`` of ``op`` makes, as new dicts: it becomes
    the latest, and a finished run not counted yet is counted in runs (and its duration in
    the histogram when ``bounds``). Empty when it tells nothing new."""
    latest = record.sessions.get(op)
    if session == latest or not _newer(session, latest):
        return {}
    runs, durations = record.runs, record.durations
    counts = runs.get(op)
    if counts is None:
        # The op's first session: every outcome from 0, so that its first run is an increase.
        counts = _NO_RUN
        if bounds is not None:
            durations = {**durations, op: Durations(bounds, _COUNTS[(0,) * (len(bounds) + 1)], 0.0)}
    seen = latest is not None and latest.done and latest.session_id == session.session_id
    if session.done and not seen:
        i = OUTCOMES.index(session.outcome)  # type: ignore[arg-type]
        counts = _COUNTS[(*counts[:i], counts[i] + 1, *counts[i + 1 :])]
        if bounds is not None and session.end_time is not None and op in durations:
            seconds = max(0.0, session.end_time - (session.start_time or session.end_time))
            durations = {**durations, op: _observe(durations[op], seconds)}
    if counts is not runs.get(op):
        runs = _early({**runs, op: counts})
    return {"sessions": {**record.sessions, op: session}, "runs": runs, "durations": durations}


def _observe(histogram: Durations, seconds: float) -> Durations:
    bounds, counts, total = histogram
    first = bisect.bisect_left(bounds, seconds)  # the first bucket it falls in (le)
    counts = _COUNTS[tuple(n + 1 if i >= first else n for i, n in enumerate(counts))]
    return Durations(bounds, counts, total + seconds)


class Listings:
    """Which HostManager lists which agent: per agent address, what each HostManager (by
    address) listing it says (:class:`exporter.view.Managed`). Agents are listed under the
    HostManager's address root, by instance_id."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.data: dict[str, ManagerData] = {}  # HostManager address -> its current data
        self._of: dict[str, dict[str, Managed]] = {}  # agent address -> manager -> entry

    def replace(
        self, manager: str, data: ManagerData | None
    ) -> dict[str, tuple[tuple[Managed, ...], Child]]:
        """Makes ``data`` the HostManager's (None: it has none any more). Returns, for each
        agent its old or new data lists, every HostManager listing it now (by instance_id,
        the shared empty tuple for none) and its entry in either."""
        old = self.data.pop(manager, None)
        if data is not None:
            self.data[manager] = data
        manager_id = manager[len(self.prefix) :]
        entries = {self.prefix + c.instance_id: c for c in old.children} if old else {}
        new = {self.prefix + c.instance_id: c for c in data.children} if data else {}
        entries.update(new)
        changed = {}
        for address, child in entries.items():
            listing = self._of.setdefault(address, {})
            if address in new:
                listing[manager] = _MANAGED[manager_id, child.target_up, child.stability]
            else:
                listing.pop(manager, None)
            if not listing:
                del self._of[address]
            changed[address] = (tuple(sorted(listing.values())), child)
        return changed
