"""Runs OCS's RegistryAgent through ``ocs-agent-cli``, with three small hooks for measuring.

``python -m benchmarks.registry_launcher --block FILE -- <ocs-agent-cli arguments>``

1. ``Registry._register_heartbeat`` is wrapped: each call adds 1 to a shared counter
   (:mod:`benchmarks.shm`) and then runs the original handler unchanged.
2. The registry's OWN heartbeat is switched off with OCS's switch for that
   (``OCSAgent._heartbeat_on``, what FakeDataAgent's ``set_heartbeat`` task sets), so every
   heartbeat on the router comes from the load generator and received <= sent holds.
3. ``OCSAgent`` joins (the heartbeat subscription stored) and losses (leave or disconnect)
   are counted, so the harness sees the registry lose its router session.

Everything else, including its 1 s expiry loop and feed publishing, is OCS's own code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import shm
from benchmarks.bare_subscriber import serializer_name


def install_hooks(block_path: Path) -> None:
    from ocs import ocs_agent  # noqa: PLC0415 - heavy; only in the launched process
    from ocs.agents.registry import agent as registry_agent  # noqa: PLC0415

    counts = shm.SharedBlock.subscriber(block_path).ints
    registry_cls = registry_agent.Registry
    agent_cls = ocs_agent.OCSAgent
    handle_heartbeat = registry_cls._register_heartbeat
    registry_init = registry_cls.__init__
    store_subscription = agent_cls._store_subscription
    on_leave = agent_cls.onLeave
    on_disconnect = agent_cls.onDisconnect
    joined = [False]

    def counted_heartbeat(self: Any, _data: Any) -> Any:
        counts[shm.RECEIVED] += 1
        return handle_heartbeat(self, _data)

    def init_without_own_heartbeat(self: Any, agent: Any, args: Any) -> None:
        registry_init(self, agent, args)
        agent._heartbeat_on = False

    def counted_subscription(self: Any, subscription: Any, *args: Any, **kwargs: Any) -> Any:
        result = store_subscription(self, subscription, *args, **kwargs)
        block_path.with_suffix(".serializer").write_text(serializer_name(self))
        counts[shm.JOINS] += 1
        joined[0] = True
        return result

    def count_loss() -> None:
        if joined[0]:  # one loss shows as a leave and then a disconnect
            joined[0] = False
            counts[shm.LOSSES] += 1

    def counted_leave(self: Any, details: Any) -> Any:
        count_loss()
        return on_leave(self, details)

    def counted_disconnect(self: Any) -> Any:
        count_loss()
        return on_disconnect(self)

    registry_cls._register_heartbeat = counted_heartbeat
    registry_cls.__init__ = init_without_own_heartbeat
    agent_cls._store_subscription = counted_subscription
    agent_cls.onLeave = counted_leave
    agent_cls.onDisconnect = counted_disconnect


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[0] != "--block" or argv[2] != "--":
        sys.exit("usage: python -m benchmarks.registry_launcher --block FILE -- ARGS...")
    install_hooks(Path(argv[1]))
    from ocs import agent_cli  # noqa: PLC0415

    agent_cli.main(argv[3:])


if __name__ == "__main__":
    main()
