"""The floor: an autobahn subscriber to every heartbeat whose handler only counts.

Same topic, same wildcard match and same serializer as the exporter; no decoding beyond
what autobahn does for every client. The count lives in a shared block
(:mod:`benchmarks.shm`) so the harness reads it without asking this process.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component, run
from autobahn.wamp.types import SubscribeOptions

from benchmarks import shm


def serializer_name(session: Any) -> str:
    """The serializer the router accepted, e.g. ``msgpack``; ``?`` if not found."""
    serializer = getattr(getattr(session, "_transport", None), "_serializer", None)
    return str(getattr(serializer, "SERIALIZER_ID", "?"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--topic", required=True, help="e.g. observatory..feeds.heartbeat")
    parser.add_argument("--serializer", default="msgpack")
    parser.add_argument("--block", type=Path, required=True, help="shared counters file")
    args = parser.parse_args(argv)

    counts = shm.SharedBlock.subscriber(args.block).ints
    component = Component(
        transports=[
            {
                "type": "websocket",
                "url": args.url,
                "serializers": [args.serializer],
                "max_retries": -1,
                "max_retry_delay": 2.0,
            }
        ],
        realm=args.realm,
    )

    def on_heartbeat(*args: Any, **kwargs: Any) -> None:
        counts[shm.RECEIVED] += 1

    def joined(session: Any, details: Any) -> Any:
        d = session.subscribe(on_heartbeat, args.topic, options=SubscribeOptions(match="wildcard"))

        def subscribed(_: Any) -> None:
            args.block.with_suffix(".serializer").write_text(serializer_name(session))
            counts[shm.JOINS] += 1
            joined_now[0] = True

        return d.addCallback(subscribed)

    joined_now = [False]

    def lost(*_: Any) -> None:
        # autobahn reports one loss as a leave and then a disconnect: count it once.
        if joined_now[0]:
            joined_now[0] = False
            counts[shm.LOSSES] += 1

    component.on("join", joined)
    component.on("leave", lost)
    component.on("disconnect", lost)
    run([component], log_level="warn")


if __name__ == "__main__":
    main()
