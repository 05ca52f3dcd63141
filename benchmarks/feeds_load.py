"""The processes of the feeds benchmark: feed load generators (:mod:`benchmarks.feedgen`)
and the bare subscriber on every feed, as :mod:`benchmarks.processes` has them for
heartbeats; and the exporter's feed counts read from a scrape."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import testbed
from benchmarks import shm
from benchmarks.processes import Bare, Generator, Load

_COUNTERS = {
    "heartbeats": re.compile(r"^ocs_exporter_heartbeats_total (\S+)$", re.MULTILINE),
    "feeds": re.compile(r"^ocs_exporter_feed_messages_total (\S+)$", re.MULTILINE),
}
_BY_REASON = {
    kind: re.compile(
        rf'^ocs_exporter_feed_messages_{kind}_total\{{reason="([^"]*)"\}} (\S+)$', re.M
    )
    for kind in ("invalid", "ignored")
}
_FEED_INFO = "\nocs_feed_info{"


def exporter_counts(text: str) -> dict[str, Any]:
    """Messages an exporter received (heartbeats, feed messages), the feed messages it
    counted invalid or ignored by reason, and the feeds it tracks (``ocs_feed_info``
    series), from one scrape's text."""
    counts: dict[str, Any] = {}
    for name, pattern in _COUNTERS.items():
        match = pattern.search(text)
        counts[name] = float(match.group(1)) if match else 0.0
    for kind, pattern in _BY_REASON.items():
        counts[kind] = {reason: float(value) for reason, value in pattern.findall(text)}
    counts["feeds_tracked"] = text.count(_FEED_INFO)
    return counts


class FeedBare(Bare):
    """The bare subscriber on every feed of every agent (``<root>..feeds.``)."""

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--topic") + 1] = f"{testbed.ADDRESS_ROOT}..feeds."
        return command


class FeedGenerator(Generator):
    """One ``benchmarks.feedgen`` process: the heartbeats of its agents as a
    :class:`Generator`'s, and their feeds, counted in ``feed_block``."""

    def __init__(
        self,
        router_url: str,
        workdir: Path,
        n_agents: int,
        shard: int,
        shards: int,
        n_ops: int,
        serializer: str,
        period: float,
        feeds: int,
        feed_period: float,
    ) -> None:
        name = f"feedgen-{shard}"
        super().__init__(
            router_url, workdir, n_agents, shard, shards, n_ops, serializer, 300, period, name
        )
        self.feed_block = shm.SharedBlock.generator(
            self.workdir / f"{name}.feeds", len(self.indices) * feeds
        )
        self.arguments += ["--feeds", str(feeds), "--feed-period", str(feed_period)]
        self.arguments += ["--feed-block", str(self.feed_block.path)]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.feedgen", *self.arguments]

    def go(self, at: float) -> None:
        super().go(at)
        self.feed_block.floats[shm.GO_TIME] = at


class FeedLoad(Load):
    """N simulated agents with F feeds each over ``shards`` feed generator processes."""

    def __init__(
        self,
        router_url: str,
        workdir: Path,
        n_agents: int,
        n_ops: int,
        serializer: str,
        shards: int,
        period: float,
        feeds: int,
        feed_period: float,
    ) -> None:
        self.feeders = [
            FeedGenerator(
                router_url,
                workdir,
                n_agents,
                shard,
                shards,
                n_ops,
                serializer,
                period,
                feeds,
                feed_period,
            )
            for shard in range(shards)
        ]
        self.generators: list[Generator] = [*self.feeders]
        self.n_agents = n_agents

    @property
    def feeds_sent(self) -> int:
        return sum(g.feed_block.ints[shm.SENT] for g in self.feeders)

    def quit(self) -> None:
        super().quit()
        for g in self.feeders:
            g.feed_block.ints[shm.QUIT] = 1
