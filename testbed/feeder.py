"""A real OCS agent with a feed that declares its fresh time, for live tests; not shipped.

FakeDataAgent's ``false_temperatures`` declares no ``fresh_time``; this agent's recorded
feed ``readings`` declares the one its ``--fresh-time`` argument gives, and a second feed
``chatter`` is not recorded. Its process ``publish`` publishes one message to each feed
``--rate`` times a second until it is stopped; the task ``stall`` makes it go on running
but publish nothing (a data source that hangs while the agent looks busy), ``resume`` undoes
that. ``--startup`` starts ``publish`` as the agent starts.

``ocs-agent-cli`` runs it as a file outside any OCS plugin: :func:`launcher` is its
command, and the site config file lists the instance with :func:`site_entry`. The module
imports nothing of this repository, since ocs-agent-cli imports it by its file name.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import txaio
from autobahn.twisted.util import sleep
from ocs import ocs_agent, site_config
from twisted.internet.defer import Deferred, inlineCallbacks, succeed

AGENT_CLASS = "FeederAgent"
RECORDED = "readings"  # record=True, agg_params {"fresh_time": --fresh-time}
UNRECORDED = "chatter"  # record=False, no agg_params


def site_entry(instance_id: str, *arguments: str) -> dict:
    """The site config entry of a FeederAgent (``arguments``: ``--fresh-time 5`` ...)."""
    return {"agent-class": AGENT_CLASS, "instance-id": instance_id, "arguments": list(arguments)}


def launcher() -> list[str]:
    """``ocs-agent-cli`` running this file's :func:`main` (the site arguments follow)."""
    cli = str(Path(sys.executable).with_name("ocs-agent-cli"))
    return [cli, "--agent", str(Path(__file__).resolve()), "--entrypoint", "main"]


class FeederAgent:
    """Publishes to a recorded feed with a fresh time and to an unrecorded one."""

    def __init__(self, agent: ocs_agent.OCSAgent, fresh_time: float, rate: float) -> None:
        self.agent = agent
        self.interval = 1.0 / rate
        self.running = False
        self.stalled = False
        # buffer_time 0: each message is published at once, not gathered for a second.
        agent.register_feed(RECORDED, record=True, agg_params={"fresh_time": fresh_time})
        agent.register_feed(UNRECORDED, record=False)

    @inlineCallbacks
    def publish(self, session: ocs_agent.OpSession, params: dict | None) -> object:
        """**Process**: one message to each feed every ``1 / --rate`` seconds until stopped;
        ``session.data`` counts them."""
        self.running = True
        session.data = {"messages": 0, "timestamp": None}
        while self.running:
            if not self.stalled:
                now = time.time()
                level = float(session.data["messages"])
                block = {"block_name": "level", "timestamp": now, "data": {"level": level}}
                self.agent.publish_to_feed(RECORDED, block)
                self.agent.publish_to_feed(UNRECORDED, {"count": session.data["messages"]})
                session.data = {"messages": session.data["messages"] + 1, "timestamp": now}
            yield sleep(self.interval)
        return True, f"published {session.data['messages']} messages to each feed"

    def stop_publish(self, session: ocs_agent.OpSession, params: dict | None) -> Deferred:
        self.running = False
        return succeed((True, "stopping"))  # a stopper run in the reactor returns a Deferred

    def stall(self, session: ocs_agent.OpSession, params: dict | None) -> tuple:
        """**Task**: ``publish`` keeps running but publishes nothing."""
        self.stalled = True
        return True, "stalled"

    def resume(self, session: ocs_agent.OpSession, params: dict | None) -> tuple:
        """**Task**: ``publish`` publishes again."""
        self.stalled = False
        return True, "resumed"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    group = parser.add_argument_group("Agent Options")
    group.add_argument("--fresh-time", type=float, default=10.0, help="readings' fresh_time, s")
    group.add_argument("--rate", type=float, default=1.0, help="messages a second per feed")
    group.add_argument("--startup", action="store_true", help="start publish at once")
    return parser


def main(args: list[str] | None = None) -> None:
    txaio.use_twisted()
    txaio.start_logging(level="info")
    parsed = site_config.parse_args(agent_class=AGENT_CLASS, parser=make_parser(), args=args)
    agent, runner = ocs_agent.init_site_agent(parsed)
    feeder = FeederAgent(agent, parsed.fresh_time, parsed.rate)
    agent.register_process(
        "publish", feeder.publish, feeder.stop_publish, blocking=False, startup=parsed.startup
    )
    agent.register_task("stall", feeder.stall, blocking=False)
    agent.register_task("resume", feeder.resume, blocking=False)
    runner.run(agent, auto_reconnect=True)


if __name__ == "__main__":
    main()
