"""A load generator: publishes OCS heartbeats for a shard of simulated agents, 1 Hz each as
OCS agents do, or every ``--period`` seconds.

Agent ``i`` of ``N`` (``agent_address`` ``<root>.bench-<i>``) heartbeats at
``go + (i / N + k) * period`` for k = 0, 1, 2, ...: the N agents are spread evenly over
each period.
With several generators, shard ``s`` of ``S`` simulates the agents ``i % S == s``, so each
generator's load is spread over the whole second too.

Every heartbeat is exactly what an OCS agent publishes: ONE positional argument
``[op_codes, feed]``. Operation ``acq`` is a process that stays RUNNING; ``task1`` runs
once every ``--change-every`` heartbeats (one heartbeat RUNNING, then SUCCEEDED; 0: never),
staggered over the agents; the other tasks stay NONE. So op codes mostly do not change between
heartbeats, as with real agents.

Like an OCS agent, a simulated agent answers ``get_api`` on its management procedure
(``<root>.bench-<i>``) with its tasks and processes, and ``status`` on ``<root>.bench-<i>.ops``
with a session like FakeDataAgent's: generator 0 registers the prefix ``<root>.bench-`` for
all agents (one registration instead of 2N).

Controlled by the harness through a shared block (:mod:`benchmarks.shm`): it sets the start
time, stops single agents (their last send time is kept per agent) and stops the whole
generator. Published without acknowledgement; ``SENT`` counts ``publish()`` calls.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component, run
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import task

from benchmarks import shm
from testbed import ocs_heartbeat

TICK = 0.01  # seconds between schedule checks
MAX_LAG = 2.0  # a heartbeat due longer ago than this is dropped (counted as SKIPPED)
OPCODE_NONE, OPCODE_RUNNING, OPCODE_SUCCEEDED = 1, 3, 5


def op_code_variants(n_ops: int) -> tuple[dict[str, int], ...]:
    """The three op-code maps an agent cycles through: task1 never run, running, done."""
    names = ["acq"] + [f"task{k}" for k in range(1, n_ops)]
    base = {name: OPCODE_NONE for name in names}
    base["acq"] = OPCODE_RUNNING
    variants = [base]
    if n_ops > 1:
        variants.append({**base, "task1": OPCODE_RUNNING})
        variants.append({**base, "task1": OPCODE_SUCCEEDED})
    return tuple(variants)


def get_api(n_ops: int, agent_class: str) -> dict[str, Any]:
    """An OCS agent's answer to ``get_api`` (see ``OCSAgent._management_handler``)."""

    def entry(name: str, op_type: str, status: str) -> list[Any]:
        info = {"op_type": op_type, "docstring": None, "blocking": True}
        return [name, {"op_name": name, "status": status}, info]

    return {
        "agent_class": agent_class,
        "instance_hostname": socket.gethostname(),
        "instance_pid": os.getpid(),
        "feeds": [],
        "processes": [entry("acq", "process", "running")],
        "tasks": [entry(f"task{k}", "task", "no_history") for k in range(1, n_ops)],
    }


def op_session(op_name: str, now: float, start: float) -> dict[str, Any] | None:
    """What an OCS agent's ``status`` of ``op_name`` holds (``OpSession.encoded()``): ``acq``
    running since ``start``, its data stamped ``now`` as FakeDataAgent's is (between two asks
    only that moves, as with a real running process); ``task1`` done, succeeded; the other
    tasks never run (None)."""
    if op_name == "acq":
        status, code, success, end = "running", OPCODE_RUNNING, None, None
    elif op_name == "task1":
        status, code, success, end = "done", OPCODE_SUCCEEDED, True, start + 1.0
    else:
        return None
    return {
        "session_id": 0,
        "op_name": op_name,
        "op_code": code,
        "cred_level": 1,
        "status": status,
        "degraded": False,
        "success": success,
        "start_time": start,
        "end_time": end,
        "data": {"timestamp": now, "fields": {"channel_00": 0.5, "channel_01": 0.25}},
        "messages": [
            [start, 'Status is now "starting".'],
            [start, 'Status is now "running".'],
            *([[end, "Done."], [end, 'Status is now "done".']] if end else []),
        ],
    }


def answer_get_api(session: Any, address_root: str, n_ops: int, agent_class: str) -> Any:
    """Register ``<root>.bench-`` (prefix match): every simulated agent's management
    procedure (``get_api``) and its operations' procedure ``<address>.ops`` (``status``
    only, as the exporter calls it). Returns the registration's Deferred."""
    prefix = f"{address_root}.bench-"
    api = get_api(n_ops, agent_class)
    op_names = {"acq", *(f"task{k}" for k in range(1, n_ops))}
    started = time.time()

    def management(q: str, *args: Any, details: Any = None, **kwargs: Any) -> Any:
        agent = details.procedure[len(prefix) :]
        if agent.endswith(".ops") and agent[:-4].isdigit():
            if q != "status" or not args or args[0] not in op_names:
                return [-1, f"not answered by the simulated agent: {q} {args[:1]}", {}]
            found = op_session(args[0], time.time(), started)
            return [0, "Session active.", found] if found else [0, "No session active.", {}]
        if not agent.isdigit():
            raise ApplicationError(ApplicationError.NO_SUCH_PROCEDURE, details.procedure)
        if q == "get_api":
            return api
        return api.get(q.removeprefix("get_"))

    options = RegisterOptions(match="prefix", details_arg="details")
    return session.register(management, prefix, options=options)


def feed(address_root: str, index: int, session_id: str, agent_class: str) -> dict[str, Any]:
    """The second element of a heartbeat, as ``ocs.ocs_feed.Feed.encoded()`` builds it."""
    return ocs_heartbeat(f"{address_root}.bench-{index}", {}, session_id, agent_class)[1]


class Schedule:
    """Publishes the heartbeats that are due; one instance per generator process."""

    @classmethod
    def of_args(cls, args: Any, block: shm.SharedBlock, indices: range) -> Schedule:
        """The schedule loadgen's command line ``args`` asks for, for agents ``indices``."""
        return cls(
            block,
            indices,
            args.agents,
            args.ops,
            args.address_root,
            args.agent_class,
            args.change_every,
            args.period,
        )

    def __init__(
        self,
        block: shm.SharedBlock,
        indices: Sequence[int],
        n_total: int,
        n_ops: int,
        address_root: str,
        agent_class: str,
        change_every: int,
        period: float = 1.0,
        max_lag: float = MAX_LAG,
        periods: float = math.inf,
    ) -> None:
        self.block = block
        self.period = period
        self.max_lag = max_lag  # inf: never drop, publish late heartbeats as soon as possible
        self.periods = periods  # the schedule ends after this many periods
        self.indices = list(indices)
        self.offsets = [i / n_total for i in self.indices]
        self.topics = [f"{address_root}.bench-{i}.feeds.heartbeat" for i in self.indices]
        started = time.time()
        self.feeds = [
            feed(address_root, i, f"{started + i * 1e-4:.6f}", agent_class) for i in self.indices
        ]
        self.variants = op_code_variants(n_ops)
        self.change_every = max(change_every, 3) if change_every > 0 else 0
        self.session: Any = None
        self.cycle = 0  # heartbeat periods since go
        self.pos = 0  # next agent (position in self.indices) due in this cycle

    def op_codes(self, j: int) -> dict[str, int]:
        if len(self.variants) == 1 or not self.change_every:
            return self.variants[0]
        phase = (self.cycle + self.indices[j]) % self.change_every
        if self.cycle < self.change_every and phase > self.cycle:
            return self.variants[0]  # task1 not run yet
        return self.variants[1] if phase == 0 else self.variants[2]

    def tick(self) -> None:
        ints, floats, flags = self.block.ints, self.block.floats, self.block.flags
        go = floats[shm.GO_TIME]
        if go == 0 or ints[shm.QUIT] or self.session is None or not self.indices:
            return
        now = time.time()
        n = len(self.indices)
        publish = self.session.publish
        sent = skipped = errors = 0
        max_lag = 0.0
        while self.cycle < self.periods:
            due = go + (self.cycle + self.offsets[self.pos]) * self.period
            if due > now:
                break
            lag = now - due
            max_lag = max(lag, max_lag)
            j = self.pos
            if not flags[j]:
                if lag > self.max_lag:
                    skipped += 1
                else:
                    try:
                        publish(self.topics[j], [self.op_codes(j), self.feeds[j]])
                    except Exception:
                        errors += 1
                    else:
                        sent += 1
                        floats[1 + j] = time.time()
            self.pos += 1
            if self.pos == n:
                self.pos = 0
                self.cycle += 1
        ints[shm.SENT] += sent
        ints[shm.SKIPPED] += skipped
        ints[shm.PUBLISH_ERRORS] += errors
        lag_us = int(max_lag * 1e6)
        ints[shm.MAX_LAG_US] = max(ints[shm.MAX_LAG_US], lag_us)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="ws://... (WebSocket) or rs://... (RawSocket)")
    parser.add_argument("--realm", required=True)
    parser.add_argument("--address-root", default="observatory")
    parser.add_argument("--serializer", default="msgpack")
    parser.add_argument("--agents", type=int, required=True, help="N, all generators together")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--ops", type=int, default=4)
    parser.add_argument("--agent-class", default="BenchAgent")
    parser.add_argument("--change-every", type=int, default=300)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between heartbeats")
    parser.add_argument("--block", type=Path, required=True, help="shared counters file")
    parser.add_argument(
        "--hostmanagers",
        type=int,
        default=0,
        help="simulate this many HostManager agents instead (see HostManagerSchedule), "
        "managing the --agents bench agents",
    )
    return parser.parse_args(argv)


def transport(url: str, serializer: str) -> dict[str, Any]:
    """An autobahn transport for ``url``: RawSocket for ``rs://``, else WebSocket."""
    if url.startswith(("rs://", "rss://")):
        kind = {"type": "rawsocket", "serializer": serializer}
    else:
        kind = {"type": "websocket", "serializers": [serializer]}
    return {**kind, "url": url, "max_retries": -1, "max_retry_delay": 2.0}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    indices = range(args.shard, args.agents, args.shards)
    if args.hostmanagers > 0:
        block = shm.SharedBlock.generator(args.block, args.hostmanagers)
        schedule: Schedule = HostManagerSchedule(block, args.hostmanagers, args.address_root)
    else:
        block = shm.SharedBlock.generator(args.block, len(indices))
        schedule = Schedule.of_args(args, block, indices)
    component = Component(transports=[transport(args.url, args.serializer)], realm=args.realm)

    def joined(session: Any, details: Any) -> Any:
        def ready(_: Any = None) -> None:
            schedule.session = session
            block.ints[shm.READY] = 1

        if args.hostmanagers > 0:
            d = answer_hostmanagers(session, args.address_root, args.hostmanagers, args.agents)
            return d.addCallback(ready)
        if args.shard != 0:
            return ready()
        d = answer_get_api(session, args.address_root, args.ops, args.agent_class)
        return d.addCallback(ready)

    def lost(*_: Any) -> None:
        if schedule.session is not None:
            block.ints[shm.GEN_LOSSES] += 1
        schedule.session = None

    component.on("join", joined)
    component.on("leave", lost)
    component.on("disconnect", lost)
    ticker = task.LoopingCall(schedule.tick)
    ticker.start(TICK)
    run([component], log_level="warn")


# -- HostManager mode: H simulated HostManager agents (``<root>.hostmanager-<h>``) ---------

HOSTMANAGER_PREFIX = "hostmanager-"
HOST_MANAGER_CLASS = "HostManager"
MANAGED_SHARE = 2  # HostManager h manages bench agents i with i % (H * 2) == h: half of them


def managed_by(h: int, n_hostmanagers: int, n_agents: int) -> range:
    """The bench agents HostManager ``h`` lists (each agent by one HostManager at most)."""
    return range(h, n_agents, n_hostmanagers * MANAGED_SHARE)


def hostmanager_api() -> dict[str, Any]:
    """A HostManager's ``get_api`` answer: process ``manager`` running, task ``update``."""

    def entry(name: str, op_type: str, status: str) -> list[Any]:
        info = {"op_type": op_type, "docstring": None, "blocking": True}
        return [name, {"op_name": name, "status": status}, info]

    return {
        **get_api(1, HOST_MANAGER_CLASS),
        "processes": [entry("manager", "process", "running")],
        "tasks": [entry("update", "task", "no_history")],
    }


def manager_session(h: int, n_hostmanagers: int, n_agents: int, start: float) -> dict[str, Any]:
    """The ``status`` of HostManager ``h``'s ``manager`` process, its data as
    ``ocs.agents.host_manager`` keeps it: every managed bench agent target up and running."""
    children = [
        {
            "instance_id": f"bench-{i}",
            "agent_class": "BenchAgent",
            "target_state": "up",
            "next_action": "up",
            "stability": 1.0,
            "operable": True,
            "restart_required": False,
        }
        for i in managed_by(h, n_hostmanagers, n_agents)
    ]
    now = time.time()
    return {
        "session_id": 0,
        "op_name": "manager",
        "op_code": OPCODE_RUNNING,
        "cred_level": 1,
        "status": "running",
        "degraded": False,
        "success": None,
        "start_time": start,
        "end_time": None,
        "data": {
            "child_states": children,
            "config_parse_status": {"[SCF]": [True, start, ""]},
            "orphans": {},
            "timestamp": now,
        },
        "messages": [[start, 'Status is now "running".']],
    }


def answer_hostmanagers(session: Any, address_root: str, n_hm: int, n_agents: int) -> Any:
    """Register ``<root>.hostmanager-`` (prefix): each HostManager's ``get_api`` and the
    ``status`` of its ``manager``. Returns the registration's Deferred."""
    prefix = f"{address_root}.{HOSTMANAGER_PREFIX}"
    api = hostmanager_api()
    started = time.time()

    def management(q: str, *args: Any, details: Any = None, **kwargs: Any) -> Any:
        agent = details.procedure[len(prefix) :]
        if agent.endswith(".ops") and agent[:-4].isdigit():
            if q != "status" or args[:1] != ("manager",):
                return [0, "No session active.", {}]
            return [0, "Session active.", manager_session(int(agent[:-4]), n_hm, n_agents, started)]
        if not agent.isdigit():
            raise ApplicationError(ApplicationError.NO_SUCH_PROCEDURE, details.procedure)
        return api if q == "get_api" else api.get(q.removeprefix("get_"))

    options = RegisterOptions(match="prefix", details_arg="details")
    return session.register(management, prefix, options=options)


class HostManagerSchedule(Schedule):
    """The heartbeats of H HostManagers, 1 Hz: ``manager`` RUNNING, ``update`` NONE."""

    def __init__(self, block: shm.SharedBlock, n_hm: int, address_root: str) -> None:
        super().__init__(block, range(n_hm), n_hm, 1, address_root, HOST_MANAGER_CLASS, 0)
        addresses = [f"{address_root}.{HOSTMANAGER_PREFIX}{h}" for h in range(n_hm)]
        self.topics = [f"{a}.feeds.heartbeat" for a in addresses]
        started = time.time()
        self.feeds = [
            ocs_heartbeat(a, {}, f"{started + h * 1e-4:.6f}", HOST_MANAGER_CLASS)[1]
            for h, a in enumerate(addresses)
        ]
        self.variants = ({"manager": OPCODE_RUNNING, "update": OPCODE_NONE},)


if __name__ == "__main__":
    main()
