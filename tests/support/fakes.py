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


def session_answer(
    op_name: str = "acq",
    session_id: int = 0,
    status: str = "running",
    success: bool | None = None,
    message: str = "",
    data: dict | None = None,
    start_time: float = 1_800_000_000.0,
    end_time: float | None = None,
    degraded: bool = False,
) -> list:
    """What an agent's ``<agent_address>.ops`` answers to ``("status", op_name)`` while a
    session exists, as OCS 0.12 makes it: ``[ocs.OK, 'Session active.', session]``. Its
    messages are the status changes up to ``status`` (a done one as a task's), with
    ``message`` (the run's own, e.g. ``'CRASH: ...'``) just before 'Status is now "done".'.
    A done session ends a second after ``start_time`` unless ``end_time`` says otherwise."""
    statuses = ["starting", "running", "stopping", "done"]
    reached = statuses[: statuses.index(status) + 1]
    if status == "done":  # as a task: it never stops, it returns
        reached.remove("stopping")
    if status == "done" and end_time is None:
        end_time = start_time + 1.0
    messages = [[start_time + i * 0.25, f'Status is now "{s}".'] for i, s in enumerate(reached)]
    if message:
        messages.insert(len(messages) - (status == "done"), [messages[-1][0], message])
    if status == "done":
        messages[-1][0] = end_time
    op_code = {"starting": 2, "running": 8 if degraded else 3, "stopping": 4}.get(
        status, 5 if success else 6
    )
    session = {
        "session_id": session_id,
        "op_name": op_name,
        "op_code": op_code,
        "cred_level": 1,
        "status": status,
        "degraded": degraded,
        "success": success,
        "start_time": start_time,
        "end_time": end_time,
        "data": {} if data is None else data,
        "messages": messages,
    }
    return [0, "Session active.", session]


NO_SESSION = [0, "No session active.", {}]
