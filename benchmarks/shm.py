"""Counters shared between processes through a memory-mapped file.

A subject's heartbeat handler adds 1 to ``ints[RECEIVED]``; the harness reads the slot
whenever it likes, without a request to the subject's (possibly saturated) event loop.
Aligned 8-byte stores and loads are atomic on the machines we run on.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

# Slots of a subscriber (bare subscriber, RegistryAgent launcher).
RECEIVED = 0  # heartbeat events handled
JOINS = 1  # times joined and subscribed to the heartbeat topic
LOSSES = 2  # leave or disconnect events (router session lost)
SUBSCRIBER_INTS = 4

# Slots of a load generator.
SENT = 0  # heartbeats published
READY = 1  # 1 once joined
GEN_LOSSES = 2  # leave or disconnect events
SKIPPED = 3  # heartbeats dropped because the generator was more than MAX_LAG behind
MAX_LAG_US = 4  # largest lag behind schedule seen, microseconds (the harness resets it)
QUIT = 5  # set to 1 by the harness: stop publishing
PUBLISH_ERRORS = 6  # publish() raised (transport gone)
GENERATOR_INTS = 8
GO_TIME = 0  # floats[0]: Unix time of the first second of the schedule (0: wait)


class SharedBlock:
    """``n_ints`` int64 slots, ``n_floats`` float64 slots and ``n_flags`` bytes in a file."""

    def __init__(self, path: Path, n_ints: int, n_floats: int = 0, n_flags: int = 0) -> None:
        self.path = Path(path)
        size = 8 * (n_ints + n_floats) + n_flags
        if not self.path.exists() or self.path.stat().st_size < size:
            with open(self.path, "wb") as f:
                f.write(b"\0" * max(size, 1))
        fd = os.open(self.path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, max(size, 1))
        finally:
            os.close(fd)
        view = memoryview(self._map)
        end_ints = 8 * n_ints
        end_floats = end_ints + 8 * n_floats
        self.ints = view[:end_ints].cast("q")
        self.floats = view[end_ints:end_floats].cast("d")
        self.flags = view[end_floats : end_floats + n_flags]

    @classmethod
    def subscriber(cls, path: Path) -> SharedBlock:
        return cls(path, SUBSCRIBER_INTS)

    @classmethod
    def generator(cls, path: Path, n_agents: int) -> SharedBlock:
        """Per agent j: floats[1 + j] = Unix time of its last heartbeat sent; flags[j] stops it."""
        return cls(path, GENERATOR_INTS, 1 + n_agents, n_agents)
