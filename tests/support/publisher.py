"""A WAMP publisher for live tests, run as ``python -m tests.support.publisher``.

``--payloads FILE``: publish every JSON payload of FILE, ``--repeat`` times, as fast as the
router takes them. ``--agents N --seconds D``: heartbeats of N simulated OCS agents
(``<root>.load-<i>``), 1 Hz each, spread over the second, for D seconds: N x D heartbeats,
the late ones published as soon as the publisher catches up. Prints the number
of events published as its last line, then exits.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import reactor, task

from exporter.wamp.listener import heartbeat_topic
from testbed import ocs_heartbeat


def heartbeat(root: str, index: int) -> list:
    return ocs_heartbeat(
        f"{root}.load-{index}",
        {"acq": 3, "count": 1, "set_heartbeat": 1, "delay_task": 1},
        "1700000000.0",
        "LoadAgent",
    )


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
    topic = heartbeat_topic(args.root).replace("..", ".flood.")
    sent = [0]
    component = Component(
        transports=[{"type": "websocket", "url": args.url, "serializers": ["msgpack"]}],
        realm=args.realm,
    )

    @component.on_join
    def joined(session: Any, details: Any) -> Any:
        if args.payloads:
            payloads = json.loads(args.payloads.read_text())
            for _ in range(args.repeat):
                for payload in payloads:
                    session.publish(topic, payload)
                    sent[0] += 1
            return task.deferLater(reactor, 0.5, session.leave)
        beats = [heartbeat(args.root, i) for i in range(args.agents)]
        start = time.monotonic()
        due = [0]  # heartbeats published so far, in schedule order

        total = int(args.seconds * args.agents)

        def tick() -> None:
            # The whole schedule is published: a late tick catches up on what fell due.
            target = min(int((time.monotonic() - start) * args.agents), total)
            while due[0] < target:
                index = due[0] % args.agents
                session.publish(f"{args.root}.load-{index}.feeds.heartbeat", beats[index])
                due[0] += 1
                sent[0] += 1
            if due[0] >= total:
                loop.stop()
                session.leave()

        loop = task.LoopingCall(tick)
        return loop.start(0.01)

    done = component.start(reactor)
    done.addBoth(lambda _: reactor.stop())
    reactor.run()
    print(sent[0], flush=True)


if __name__ == "__main__":
    main()
