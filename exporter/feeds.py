"""What an OCS feed message says about its feed, and the one check every payload goes through.

Every OCS feed publishes ``[message, feed]`` on ``<agent address>.feeds.<feed name>``:
``feed`` describes the feed (``agent_address``, ``feed_name``, ``address``, ``record``,
``agg_params``, ``session_id``, ``agent_class``). Only ``feed`` is read: the message itself
(the data) is never looked at. This runs for every feed message, thousands a second, so the
common case is one pass of ``type()`` checks and no regex.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from exporter.heartbeat import envelope, sane_name

# Why a feed message was rejected: a small fixed set, exposed as the `reason` label.
FEED_REASONS = (
    "malformed",  # not the [message, feed] shape, or feed is not a mapping
    "bad_agent_address",  # agent_address missing, not a sane name, or not under address_root
    "bad_feed_name",  # feed_name not a sane name, or address not <agent_address>.feeds.<name>
    "bad_field",  # record, agg_params, fresh_time, session_id or agent_class of a wrong kind
)

DEFAULT_MAX_FEEDS = 64  # per agent

NUMBERS = (int, float)  # type() of a fresh_time; bool is neither
_MAX_FLOAT = sys.float_info.max  # above it (inf, or an int too big for a float) is refused


class InvalidFeed(Exception):
    """A feed message that is not one; ``reason`` is one of :data:`FEED_REASONS`."""

    def __init__(self, reason: str, detail: str, agent_address: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.agent_address = agent_address  # when it names a sane one under the root


class FeedMessage(NamedTuple):
    """The feed description of a message that passed :func:`parse_feed`."""

    agent_address: str
    feed_name: str
    record: bool
    fresh_time: float | None
    session_id: str | None
    agent_class: str


class FeedInfo(NamedTuple):
    """What is kept per feed of an agent: a change makes a new record."""

    record: bool
    fresh_time: float | None


def parse_feed(payload: Any, prefix: str) -> FeedMessage:
    """The feed of ``payload`` from an agent whose address starts with ``prefix``
    (``<address_root>.``); raises InvalidFeed when it is not one."""
    wrong = envelope(payload, prefix, "message")
    if wrong is not None:
        reason, detail = wrong
        agent = payload[1]["agent_address"] if reason == "bad_field" else None
        raise InvalidFeed(reason, detail, agent)
    feed = payload[1]
    agent = feed["agent_address"]
    name = feed.get("feed_name")
    if not sane_name(name):
        raise InvalidFeed("bad_feed_name", f"feed_name {name!r:.80}", agent)
    address = feed.get("address")
    if type(address) is not str or address != f"{agent}.feeds.{name}":
        raise InvalidFeed("bad_feed_name", f"address {address!r:.80} of feed {name}", agent)
    record = feed.get("record")
    agg_params = feed.get("agg_params")
    if type(record) is not bool or type(agg_params) is not dict:
        raise InvalidFeed("bad_field", f"record or agg_params of feed {name}", agent)
    fresh_time = agg_params.get("fresh_time")  # null declares none, as absent does
    if fresh_time is not None:
        if type(fresh_time) not in NUMBERS or not 0 < fresh_time <= _MAX_FLOAT:
            raise InvalidFeed("bad_field", f"fresh_time {fresh_time!r:.40} of feed {name}", agent)
        fresh_time = float(fresh_time)
    return FeedMessage(
        agent, name, record, fresh_time, feed.get("session_id"), feed.get("agent_class", "")
    )
