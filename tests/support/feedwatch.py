"""A plain autobahn subscriber for live tests: what the router delivers on a topic pattern.

:class:`FeedWatch` runs ``python -m tests.support.feedwatch`` in its own process (a test
process must not run the Twisted reactor), subscribed to ``<root>..feeds.`` (wildcard) by
default; every event it hears is one ``heard <json>`` line of its log, read back with
:meth:`FeedWatch.events`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import testbed
from testbed.process import ROOT, Process

SUBSCRIBED = "subscribed"


class Heard(NamedTuple):
    topic: str
    args: list
    kwargs: dict


class FeedWatch(Process):
    """A subscriber to ``topic`` (``match`` "wildcard", "prefix" or "exact") at ``url``."""

    name = "feedwatch"

    def __init__(
        self,
        url: str,
        workdir: Path,
        topic: str = f"{testbed.ADDRESS_ROOT}..feeds.",
        match: str = "wildcard",
        realm: str = testbed.REALM,
    ) -> None:
        super().__init__(workdir, python_path=[ROOT])
        self.url, self.topic, self.match, self.realm = url, topic, match, realm

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "tests.support.feedwatch", "--url", self.url),
            *("--realm", self.realm, "--topic", self.topic, "--match", self.match),
        ]

    def _ready(self) -> bool:
        return SUBSCRIBED in self.log().splitlines()

    def events(self, topic_prefix: str = "") -> list[Heard]:
        """Every event heard so far whose topic starts with ``topic_prefix``, in order."""
        heard = (
            Heard(*json.loads(line.partition(" ")[2]))
            for line in self.log().splitlines()
            if line.startswith("heard ")
        )
        return [event for event in heard if event.topic.startswith(topic_prefix)]


def main() -> None:
    # Imported by the child only: a test process must not install the reactor.
    from autobahn.twisted.component import Component
    from autobahn.wamp.types import SubscribeOptions
    from twisted.internet import defer, reactor

    parser = argparse.ArgumentParser()
    for flag in ("--url", "--realm", "--topic", "--match"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    component = Component(
        transports=[{"type": "websocket", "url": args.url, "serializers": ["msgpack"]}],
        realm=args.realm,
    )

    def heard(*event_args: Any, details: Any, **kwargs: Any) -> None:
        line = json.dumps([details.topic, event_args, kwargs], default=repr)
        print("heard", line, flush=True)

    @component.on_join
    @defer.inlineCallbacks
    def joined(session: Any, details: Any) -> Any:
        options = SubscribeOptions(match=args.match, details_arg="details")
        yield session.subscribe(heard, args.topic, options=options)
        print(SUBSCRIBED, flush=True)

    component.start(reactor)
    reactor.run()


if __name__ == "__main__":
    main()
