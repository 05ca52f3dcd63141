"""A feed load generator: a shard of simulated OCS agents that heartbeat as
:mod:`benchmarks.loadgen`'s do and publish data feeds besides.

Agent ``i`` has ``--feeds`` feeds; feed ``k`` of agent ``i`` publishes once every
``--feed-period`` seconds, at ``go + ((i * F + k) / (N * F) + n) * feed_period``: the feed
messages of all agents are spread evenly over each period, as the heartbeats are over theirs.
Each message is what ``ocs.ocs_feed.Feed`` publishes: ONE positional argument
``[message, feed]`` on ``<agent_address>.feeds.<feed_name>``, ``feed`` as ``Feed.encoded()``
builds it, with the session id of the agent's heartbeats. Even feeds are recorded
(``record=True``: the message is a block of 10 to 50 fields, ``{block_name: {block_name,
data: {field: [values]}, influxdb_tags, timestamps}}`` as ``Feed.flush_buffer`` sends it),
odd ones are not (one sample, sent as given, as ``Feed.publish_message`` does); ``agg_params``
holds a ``fresh_time`` for every other agent.

The heartbeats count in ``--block`` (as loadgen's), the feed messages in ``--feed-block``:
the same layout, one slot per feed instead of per agent; the harness sets the start time
and quits through both.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component, run
from autobahn.wamp.exception import ApplicationError
from twisted.internet import reactor, task

from benchmarks import loadgen, shm


def feed_name(k: int) -> str:
    return "temperatures" if k == 0 else f"feed_{k}"


def feed_description(
    agent_address: str, k: int, index: int, session_id: str, agent_class: str
) -> dict[str, Any]:
    """Feed ``k`` of agent ``index`` as ``Feed.encoded()`` builds it."""
    record = k % 2 == 0
    agg_params: dict[str, Any] = {"frame_length": 60} if record else {}
    if index % 2 == 0:
        agg_params["fresh_time"] = 30 if record else 120
    name = feed_name(k)
    return {
        "agent_address": agent_address,
        "agg_params": agg_params,
        "feed_name": name,
        "address": f"{agent_address}.feeds.{name}",
        "record": record,
        "session_id": session_id,
        "agent_class": agent_class,
    }


def fields_of(index: int, k: int) -> int:
    """How many fields feed ``k`` of agent ``index`` carries: 10 to 50, varied."""
    return 10 + (index * 31 + k * 17) % 41


def message(index: int, k: int, now: float) -> Any:
    """A message of feed ``k`` of agent ``index``: a recorded feed's buffered block (1 to 3
    samples of every field), or a plain feed's single sample."""
    fields = [f"channel_{f:02d}" for f in range(fields_of(index, k))]
    block = f"block_{k}"
    if k % 2:
        data = {name: 0.5 + f * 0.001 for f, name in enumerate(fields)}
        return {"block_name": block, "timestamp": now, "data": data}
    samples = 1 + (index + k) % 3
    times = [now - 0.25 * (samples - s) for s in range(samples)]
    data = {name: [0.5 + f * 0.001 + s for s in range(samples)] for f, name in enumerate(fields)}
    encoded = {"block_name": block, "data": data, "influxdb_tags": None, "timestamps": times}
    return {block: encoded}


class FeedSchedule(loadgen.Schedule):
    """loadgen's schedule over feeds instead of agents: slot ``j`` is one feed of one agent
    and publishes ``[message, feed]`` where a heartbeat publishes ``[op_codes, feed]``."""

    def __init__(
        self,
        block: shm.SharedBlock,
        heartbeats: loadgen.Schedule,
        n_agents: int,
        n_feeds: int,
        period: float,
    ) -> None:
        slots = [i * n_feeds + k for i in heartbeats.indices for k in range(n_feeds)]
        super().__init__(block, slots, n_agents * n_feeds, 1, "", "", change_every=0, period=period)
        self.heartbeats = heartbeats
        self.feeds = []
        for j, hb in enumerate(heartbeats.feeds):
            index = heartbeats.indices[j]
            for k in range(n_feeds):
                self.feeds.append(
                    feed_description(
                        hb["agent_address"], k, index, hb["session_id"], hb["agent_class"]
                    )
                )
        self.topics = [f["address"] for f in self.feeds]
        now = time.time()  # the messages are made once: nobody reads their times
        self.messages = [message(s // n_feeds, s % n_feeds, now) for s in slots]

    def op_codes(self, j: int) -> Any:
        """The first element of slot ``j``'s payload: its feed's message."""
        return self.messages[j]

    def tick(self) -> None:
        self.session = self.heartbeats.session  # one WAMP session publishes both
        super().tick()


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """(this module's own flags, loadgen's flags for the heartbeats)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=2, help="data feeds per agent")
    parser.add_argument("--feed-period", type=float, default=1.0, help="seconds between messages")
    parser.add_argument("--feed-block", type=Path, required=True, help="feed counters file")
    own, rest = parser.parse_known_args(argv)
    return own, loadgen.parse_args(rest)


def main(argv: Sequence[str] | None = None) -> None:
    own, args = parse_args(argv)
    indices = range(args.shard, args.agents, args.shards)
    block = shm.SharedBlock.generator(args.block, len(indices))
    heartbeats = loadgen.Schedule.of_args(args, block, indices)
    feed_block = shm.SharedBlock.generator(own.feed_block, len(indices) * own.feeds)
    feeds = FeedSchedule(feed_block, heartbeats, args.agents, own.feeds, own.feed_period)
    component = Component(
        transports=[loadgen.transport(args.url, args.serializer)], realm=args.realm
    )

    def joined(session: Any, details: Any) -> Any:
        def ready(_: Any = None) -> None:
            heartbeats.session = session
            block.ints[shm.READY] = 1

        if args.shard != 0:
            return ready()
        return register(session).addCallback(ready)

    def register(session: Any) -> Any:
        """Answer ``get_api`` for every agent; retried while the router still holds the
        prefix for the generator of a previous step (a backlogged router drops a closed
        session's registrations late)."""
        d = loadgen.answer_get_api(session, args.address_root, args.ops, args.agent_class)

        def retry(failure: Any) -> Any:
            if not failure.check(ApplicationError) or not session.is_attached():
                return failure
            return task.deferLater(reactor, 1.0, register, session)

        return d.addErrback(retry)

    def lost(*_: Any) -> None:
        if heartbeats.session is not None:
            block.ints[shm.GEN_LOSSES] += 1
        heartbeats.session = None

    def tick() -> None:
        heartbeats.tick()
        feeds.tick()

    component.on("join", joined)
    component.on("leave", lost)
    component.on("disconnect", lost)
    task.LoopingCall(tick).start(loadgen.TICK)
    run([component], log_level="warn")


if __name__ == "__main__":
    main()
