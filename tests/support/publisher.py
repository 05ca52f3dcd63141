"""A WAMP publisher for live tests, run as ``python -m tests.support.publisher``.

``--payloads FILE``: publish every JSON payload of FILE, ``--repeat`` times, as fast as the
router takes them. ``--agents N --seconds D``: heartbeats of N simulated OCS agents, 1 Hz
each, spread over the second, for D whole seconds: N x D heartbeats, on the schedule of the
benchmark's load generator (:class:`benchmarks.loadgen.Schedule`), except that none is
dropped: the late ones are published as soon as the publisher catches up. Prints the number
of events published as its last line, then exits.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import reactor, task

from benchmarks import loadgen, shm
from exporter.wamp.listener import heartbeat_topic


def publish_payloads(session: Any, topic: str, payloads: list, repeat: int, sent: list) -> Any:
    for _ in range(repeat):
        for payload in payloads:
            session.publish(topic, payload)
            sent[0] += 1
    return task.deferLater(reactor, 0.5, session.leave)


def publish_heartbeats(
    session: Any, root: str, agents: int, seconds: float, block: shm.SharedBlock
) -> Any:
    """Every heartbeat of ``agents`` agents due in ``seconds``, counted in ``block``; then
    leave."""
    periods = math.ceil(seconds)
    schedule = loadgen.Schedule(
        block, range(agents), agents, 4, root, "LoadAgent", 0, max_lag=math.inf, periods=periods
    )
    schedule.session = session
    block.floats[shm.GO_TIME] = time.time()

    def tick() -> None:
        schedule.tick()
        if schedule.cycle >= periods:
            loop.stop()
            session.leave()

    loop = task.LoopingCall(tick)
    return loop.start(loadgen.TICK)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--root", default="observatory")
    parser.add_argument("--payloads", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--agents", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0)
    args = parser.parse_args()
    payloads = json.loads(args.payloads.read_text()) if args.payloads else []
    sent = [0]
    counts = tempfile.TemporaryDirectory(prefix="publisher-")
    block = shm.SharedBlock.generator(Path(counts.name) / "heartbeats.counts", args.agents)
    component = Component(
        transports=[{"type": "websocket", "url": args.url, "serializers": ["msgpack"]}],
        realm=args.realm,
    )

    @component.on_join
    def joined(session: Any, details: Any) -> Any:
        if args.payloads:
            topic = heartbeat_topic(args.root).replace("..", ".flood.")
            return publish_payloads(session, topic, payloads, args.repeat, sent)
        return publish_heartbeats(session, args.root, args.agents, args.seconds, block)

    done = component.start(reactor)
    done.addBoth(lambda _: reactor.stop())
    reactor.run()
    print(sent[0] + block.ints[shm.SENT], flush=True)
    counts.cleanup()


if __name__ == "__main__":
    main()
