"""Malformed feed messages for live flood tests, published on a real router; not shipped.

:func:`feed_payload` is a feed message exactly as an OCS feed publishes it; :func:`malformed`
spoils it every way the exporter refuses, by reason (``exporter.feeds.FEED_REASONS``),
oversize and odd ones included; :func:`strangers` are well-formed messages of agents never
heard (ignored, not invalid). ``python -m testbed.feedflood --url URL --realm REALM`` publishes
them ``--repeat`` times on ``<root>.<victim>.feeds.<reason>`` and prints, as its last line,
how many it published of each kind as JSON. An event is what one publish carries: as with
heartbeats, an event that is not exactly one positional argument is malformed.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, NamedTuple

VICTIM = "flood"  # the instance id the spoilt messages claim, unless told a real agent's


class Event(NamedTuple):
    """One publish: ``session.publish(topic, *args, **kwargs)``."""

    topic: str
    args: tuple
    kwargs: dict

    def payload(self) -> Any:
        """What the exporter parses: the one positional argument, or None for any other shape."""
        return self.args[0] if len(self.args) == 1 and not self.kwargs else None


def feed_payload(
    agent_address: str,
    feed_name: str,
    message: Any = None,
    record: bool = False,
    agg_params: dict | None = None,
    session_id: str | None = "1795518440.6412797",
    agent_class: str = "FeederAgent",
) -> list:
    """A feed message exactly as an OCS feed publishes it: ``[message, feed]``."""
    return [
        message,
        {
            "agent_address": agent_address,
            "agg_params": {} if agg_params is None else agg_params,
            "feed_name": feed_name,
            "address": f"{agent_address}.feeds.{feed_name}",
            "record": record,
            "session_id": session_id,
            "agent_class": agent_class,
        },
    ]


def _spoilt(agent: str, /, **changes: Any) -> list:
    """A valid message of feed ``flood`` of ``agent`` with ``changes`` in its description
    (a change to ``...`` removes the field)."""
    message, feed = feed_payload(agent, "flood", {"block": {"data": {"x": [1.0]}}}, True)
    feed.update(changes)
    return [message, {k: v for k, v in feed.items() if v is not ...}]


def _malformed_payloads(root: str, address: str) -> dict[str, list]:
    feed = _spoilt(address)[1]
    big = [0.5] * 8_000  # a message tens of times a real one (about 1 kB); never read
    return {
        "malformed": [
            "nonsense",
            None,
            3,
            [],
            [{"x": 1}],
            [{"x": 1}, feed, "extra"],
            [{"x": 1}, "feed"],
            [{"x": 1}, [1, 2, 3]],
            [{"x": 1}, None],
            [big, b"\x00" * 1000],
            {"message": {}, "feed": feed},
        ],
        "bad_agent_address": [
            _spoilt(address, agent_address=...),
            _spoilt(address, agent_address=None),
            _spoilt(address, agent_address=42),
            _spoilt(address, agent_address=f"{root}." + "y" * 5000),
            _spoilt(address, agent_address=f"{root}.evil\nname"),
            _spoilt(address, agent_address=f"{root}.sp ace"),
            _spoilt(address, agent_address="elsewhere.z"),
            _spoilt(address, agent_address=f"{root}."),
        ],
        "bad_feed_name": [
            _spoilt(address, feed_name=...),
            _spoilt(address, feed_name=""),
            _spoilt(address, feed_name=7),
            _spoilt(address, feed_name="x" * 5000),
            _spoilt(address, feed_name="a\x07b"),
            _spoilt(address, feed_name="two words"),
            _spoilt(address, address=...),
            _spoilt(address, address=None),
            _spoilt(address, address=f"{address}.feeds.other"),
            _spoilt(address, address=f"{root}.someone.feeds.flood"),
        ],
        "bad_field": [
            _spoilt(address, record=...),
            _spoilt(address, record="true"),
            _spoilt(address, record=1),
            _spoilt(address, record=None),
            _spoilt(address, agg_params=...),
            _spoilt(address, agg_params=None),
            _spoilt(address, agg_params=[["fresh_time", 10]]),
            _spoilt(address, agg_params={"fresh_time": "10"}),
            _spoilt(address, agg_params={"fresh_time": 0}),
            _spoilt(address, agg_params={"fresh_time": -5.0}),
            _spoilt(address, agg_params={"fresh_time": math.nan}),
            _spoilt(address, agg_params={"fresh_time": math.inf}),
            _spoilt(address, agg_params={"fresh_time": True}),
            _spoilt(address, session_id=42),
            _spoilt(address, session_id="s" * 5000),
            _spoilt(address, agent_class=["x"]),
            _spoilt(address, agent_class=None),
            _spoilt(address, agent_class="line\nbreak"),
            [big, _spoilt(address, record="yes", **{f"k{i}": i for i in range(5000)})[1]],
        ],
    }


def malformed(root: str = "observatory", victim: str = VICTIM) -> dict[str, list[Event]]:
    """Events every one of which the exporter refuses, by reason; the ones whose agent address
    passes claim ``<root>.<victim>`` (a real agent's, to show its state is left alone)."""
    address = f"{root}.{victim}"
    kinds = {
        reason: [Event(f"{address}.feeds.{reason}", (p,), {}) for p in payloads]
        for reason, payloads in _malformed_payloads(root, address).items()
    }
    topic = f"{address}.feeds.malformed"
    kinds["malformed"] += [
        Event(topic, (), {}),
        Event(topic, (1, 2), {}),
        Event(topic, (), {"a": 1}),
    ]
    return kinds


def strangers(root: str = "observatory", count: int = 10, victim: str = VICTIM) -> list[Event]:
    """Well-formed feed messages the exporter ignores (``unknown_agent``): of ``count`` agents
    it never heard, and one claiming ``<root>.<victim>`` in a session it never heard."""
    addresses = [f"{root}.{victim}-stranger{i}" for i in range(count)]
    events = [Event(f"{a}.feeds.data", (feed_payload(a, "data", {}, True),), {}) for a in addresses]
    spoof = feed_payload(f"{root}.{victim}", "data", {}, True, session_id="1.0")
    return [*events, Event(f"{root}.{victim}.feeds.data", (spoof,), {})]


def publish(session: Any, kinds: dict[str, list[Event]], repeat: int = 1) -> dict[str, int]:
    """Publish every event of ``kinds`` ``repeat`` times (kinds interleaved); how many of
    each kind were published."""
    sent = dict.fromkeys(kinds, 0)
    for _ in range(repeat):
        for kind, events in kinds.items():
            for event in events:
                session.publish(event.topic, *event.args, **event.kwargs)
            sent[kind] += len(events)
    return sent


def main() -> None:
    from autobahn.twisted.component import Component  # noqa: PLC0415 - the child only
    from twisted.internet import reactor, task  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--root", default="observatory")
    parser.add_argument("--victim", default=VICTIM, help="instance id the messages claim")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--strangers", type=int, default=0, help="also this many unknown agents")
    args = parser.parse_args()
    kinds = malformed(args.root, args.victim)
    if args.strangers:
        kinds["unknown_agent"] = strangers(args.root, args.strangers, args.victim)
    sent: dict[str, int] = {}
    component = Component(
        transports=[{"type": "websocket", "url": args.url, "serializers": ["msgpack"]}],
        realm=args.realm,
    )

    @component.on_join
    def joined(session: Any, details: Any) -> Any:
        sent.update(publish(session, kinds, args.repeat))
        return task.deferLater(reactor, 0.5, session.leave)  # let the last ones go out

    done = component.start(reactor)
    done.addBoth(lambda _: reactor.stop())
    reactor.run()
    print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    main()
