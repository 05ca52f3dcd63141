"""An agent that never answers, for live tests; not shipped.

It heartbeats like an OCS agent and registers ``<address>.ops``, but never returns from a
call to it (a wedged agent whose heartbeat loop still runs): each call is printed as a
line ``called [args, kwargs]`` and left pending. Run as ``python -m testbed.mute``, through
:class:`MuteAgent`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from testbed.agents import ocs_heartbeat
from testbed.process import ROOT, Process

REGISTERED = "registered"


class MuteAgent(Process):
    """``python -m testbed.mute`` joining ``realm`` at ``url`` as the agent at ``address``,
    heartbeating ``op_codes``; ready once its ``.ops`` is registered."""

    def __init__(
        self, url: str, realm: str, address: str, op_codes: dict[str, int], workdir: Path
    ) -> None:
        self.name = address.rpartition(".")[2]
        super().__init__(workdir, python_path=[ROOT])
        self.url, self.realm, self.address, self.op_codes = url, realm, address, op_codes

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "testbed.mute", "--url", self.url, "--realm", self.realm),
            *("--address", self.address, "--op-codes", json.dumps(self.op_codes)),
        ]

    def _ready(self) -> bool:
        return REGISTERED in self.log().splitlines()

    def calls(self) -> list[list]:
        """Every call made to its ``.ops`` so far, as ``[args, kwargs]``."""
        return [
            json.loads(line.partition(" ")[2])
            for line in self.log().splitlines()
            if line.startswith("called ")
        ]


def main() -> None:
    from autobahn.twisted.component import Component  # noqa: PLC0415 - the child only
    from twisted.internet import defer, reactor, task  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    for flag in ("--url", "--realm", "--address", "--op-codes"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    payload = ocs_heartbeat(args.address, json.loads(args.op_codes), str(time.time()), "Mute")
    component = Component(transports=[{"type": "websocket", "url": args.url}], realm=args.realm)

    def never_answer(*call_args: Any, **kwargs: Any) -> defer.Deferred:
        print("called", json.dumps([call_args, kwargs]), flush=True)
        return defer.Deferred()

    @component.on_join
    @defer.inlineCallbacks
    def joined(session: Any, details: Any) -> Any:
        yield session.register(never_answer, args.address + ".ops")
        print(REGISTERED, flush=True)
        topic = args.address + ".feeds.heartbeat"
        yield task.LoopingCall(session.publish, topic, payload).start(1.0)

    component.start(reactor)
    reactor.run()


if __name__ == "__main__":
    main()
