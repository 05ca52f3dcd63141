"""Fakes for unit tests only."""

from __future__ import annotations

from testbed import ocs_heartbeat


class FakeClock:
    """A monotonic and a wall clock that move only when told to."""

    def __init__(self, mono: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self.mono = mono
        self.wall = wall

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def heartbeat(
    instance_id: str = "fake1",
    op_codes: dict | None = None,
    session_id: str = "1795518440.6412797",
    agent_class: str = "FakeDataAgent",
    root: str = "observatory",
) -> list:
    """An OCS heartbeat payload as seen on the wire: [op_codes, feed]."""
    if op_codes is None:
        op_codes = {"acq": 3, "count": 3, "set_heartbeat": 1, "delay_task": 1}
    return ocs_heartbeat(f"{root}.{instance_id}", op_codes, session_id, agent_class)
