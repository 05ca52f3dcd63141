"""What an operation's latest session is, from the answer to ``status``: pure Python.

Every OCS agent answers ``<agent_address>.ops("status", op_name)`` with
``[ocs.OK, 'Session active.', session]`` (``session`` as ``ocs.ocs_agent.OpSession.encoded``
makes it), ``[ocs.OK, 'No session active.', {}]`` before the operation's first run, or
``[ocs.ERROR, 'No task or process called "x"', {}]``. :func:`parse_status` keeps a small
:class:`OpSession` summary of it and nothing of the session's ``data`` but its newest
timestamp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from exporter.interning import InternTable

# The session.data keys OCS's docs suggest for freshness, in the order FakeDataAgent and
# socs agents use them (the default of --collector.sessions.data-keys).
DATA_KEYS = ("timestamp", "last_updated", "last_update")
# How a finished run ended: success, a task that raised (OCS prefixes its message with
# "CRASH:"), one called badly ("ERROR:"), or any other failure (a task returning False).
OUTCOMES = ("succeeded", "failed", "crashed", "error")
STATUSES = ("starting", "running", "stopping", "done")  # in the only order OCS moves them
MAX_MESSAGES = 5  # the last messages kept per session
MESSAGE_CHARS = 500  # each kept message cut to this (a CRASH names the exception first)
# An answer beyond what OCS sends (its sessions keep at most 10,000 messages by default) is
# kept, trimmed, and counted.
MESSAGES_LIMIT = 10_000
TEXT_LIMIT = 65_536

# Why an answer was rejected (or, "trimmed", kept cut): the `reason` label.
INVALID_REASONS = (
    "not_a_status",  # not [code, message, session], or the session is not a mapping
    "unknown_operation",  # ocs.ERROR: the agent has no such operation (any more)
    "bad_field",  # a field missing or of the wrong type
    "bad_timestamp",  # start, end or a message time not a finite number
    "trimmed",  # kept, but more messages or longer texts than OCS sends were cut
)

OK, ERROR = 0, -1  # ocs.OK and ocs.ERROR (ocs.base.ResponseCode)
_STATUS_CHANGE = 'Status is now "'  # how OCS words the message of every status change

# The texts of messages, shared: every agent's sessions say 'Status is now "running".'.
_TEXTS: InternTable[str, str] = InternTable(lambda text: text, 10_000)


# What few values share among thousands of sessions: (session_id, status, op_code,
# success, outcome), one tuple for all sessions that have the same.
_HEADS: InternTable[tuple[Any, ...], tuple[Any, ...]] = InternTable(lambda key: key, 10_000)
_HEAD_FIELDS = ("session_id", "status", "op_code", "success", "outcome")


def _head_field(i: int) -> property:
    return property(lambda session: session[0][i], doc=f"As read from the status ({i}).")


class OpSession(tuple):
    """An operation's session as far as the exporter uses it; never its data. Thousands
    are held, so it is one flat tuple: the fields few values share, as one shared tuple,
    then start_time, end_time, data_time and the messages (time, text, time, text, ...);
    read them by name. Made, compared and replaced as a named tuple is."""

    __slots__ = ()
    _fields = (
        "session_id",  # OCS's counter of sessions per agent run (restarts at 0)
        "status",  # one of STATUSES
        "op_code",
        "success",  # None until done
        "start_time",
        "end_time",  # None until done
        "outcome",  # one of OUTCOMES once done
        "data_time",  # newest numeric timestamp among the data keys
        "log",  # the last MAX_MESSAGES, texts cut, flat
    )

    def __new__(
        cls,
        session_id: int,
        status: str,
        op_code: int,
        success: bool | None,
        start_time: float | None,
        end_time: float | None,
        outcome: str | None,
        data_time: float | None,
        log: tuple[float | str, ...] = (),
    ) -> OpSession:
        head = _HEADS[session_id, status, op_code, success, outcome]
        return tuple.__new__(cls, (head, start_time, end_time, data_time, *log))

    session_id: int = _head_field(0)  # type: ignore[assignment]
    status: str = _head_field(1)  # type: ignore[assignment]
    op_code: int = _head_field(2)  # type: ignore[assignment]
    success: bool | None = _head_field(3)  # type: ignore[assignment]
    outcome: str | None = _head_field(4)  # type: ignore[assignment]
    start_time: float | None = property(itemgetter(1))  # type: ignore[assignment]
    end_time: float | None = property(itemgetter(2))  # type: ignore[assignment]
    data_time: float | None = property(itemgetter(3))  # type: ignore[assignment]

    @property
    def log(self) -> tuple[float | str, ...]:
        return self[4:]

    def _asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def _replace(self, **changes: Any) -> OpSession:
        if changes.keys() == {"data_time"}:  # a running process's, read again: the common one
            return tuple.__new__(OpSession, (*self[:3], changes["data_time"], *self[4:]))
        return OpSession(**{**self._asdict(), **changes})

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._asdict().items())
        return f"OpSession({fields})"

    @property
    def messages(self) -> tuple[tuple[float, str], ...]:
        """The last MAX_MESSAGES messages as (Unix time, text), oldest first."""
        return tuple(zip(self[4::2], self[5::2], strict=True))

    @property
    def last_message_time(self) -> float | None:
        return self[-2] if len(self) > 4 else None  # type: ignore[return-value]

    @property
    def done(self) -> bool:
        return self[0][1] == "done"


class InvalidSession(ValueError):
    """An answer that is not a status; ``reason`` is one of :data:`INVALID_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def finite_number(value: object) -> float | None:
    """``value`` as a finite number (of seconds, here), else None (bools, strings, NaN, inf, and
    integers too large for a float are not times)."""
    if type(value) is not float and type(value) is not int:
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _required_time(session: dict, key: str) -> float:
    seconds = finite_number(session.get(key))
    if seconds is None:
        raise InvalidSession("bad_timestamp", f"{key} {session.get(key)!r:.40}")
    return seconds


def data_time(data: dict, keys: tuple[str, ...] = DATA_KEYS) -> float | None:
    """The newest numeric timestamp under ``keys`` in ``data`` or in a mapping one level
    down (e.g. ``data["fields"]["timestamp"]``); None when there is none."""
    times = [finite_number(data.get(key)) for key in keys]
    for value in data.values():
        if type(value) is dict:
            times += [finite_number(value.get(key)) for key in keys]
    found = [t for t in times if t is not None]
    return max(found) if found else None


def _messages(entries: object, *times: float | None) -> tuple[tuple[float | str, ...], bool]:
    """The last MAX_MESSAGES entries flat (time, text, ...), texts cut, and whether the
    list or a text was beyond what OCS sends. A message at one of ``times`` (OCS stamps
    the status changes with the session's start and end) shares its float."""
    if type(entries) is not list:
        raise InvalidSession("bad_field", "messages is not a list")
    trimmed = len(entries) > MESSAGES_LIMIT
    shared = {t: t for t in times if t is not None}
    log: list[float | str] = []
    for entry in entries[-MAX_MESSAGES:]:
        if type(entry) not in (list, tuple) or len(entry) != 2 or type(entry[1]) is not str:
            raise InvalidSession("bad_field", f"message {entry!r:.40}")
        when, text = finite_number(entry[0]), entry[1]
        if when is None:
            raise InvalidSession("bad_timestamp", f"message time {entry[0]!r:.40}")
        trimmed = trimmed or len(text) > TEXT_LIMIT
        log += (shared.get(when, when), _TEXTS[text[:MESSAGE_CHARS]])
    return tuple(log), trimmed


def outcome(success: bool | None, texts: Sequence[str]) -> str:
    """How a finished run ended. A failure is told by its message, the last one that is not
    a status change: OCS adds it just before 'Status is now "done".'."""
    if success is True:
        return "succeeded"
    for text in reversed(texts):
        if not text.startswith(_STATUS_CHANGE):
            if text.startswith("CRASH:"):
                return "crashed"
            return "error" if text.startswith("ERROR:") else "failed"
    return "failed"


def read_status(
    answer: Any, data_keys: tuple[str, ...] = DATA_KEYS
) -> tuple[OpSession | None, bool]:
    """As :func:`parse_status`, and whether the answer was trimmed (kept, but counted)."""
    if type(answer) not in (list, tuple) or len(answer) != 3:
        raise InvalidSession("not_a_status", "the answer is not [code, message, session]")
    code, _, session = answer
    if type(code) is int and code == ERROR:
        raise InvalidSession("unknown_operation", f"{answer[1]!r:.80}")
    if type(code) is not int or code != OK or type(session) is not dict:
        raise InvalidSession("not_a_status", f"code {code!r:.20}, session not a mapping")
    if not session:
        return None, False  # no session active: never run since the agent started
    session_id, status, op_code = (session.get(k) for k in ("session_id", "status", "op_code"))
    success, data = session.get("success"), session.get("data")
    if type(session_id) is not int or session_id < 0:
        raise InvalidSession("bad_field", f"session_id {session_id!r:.40}")
    if status not in STATUSES or type(op_code) is not int or not 1 <= op_code <= 8:
        raise InvalidSession("bad_field", f"status {status!r:.40}, op_code {op_code!r:.40}")
    if (success is not None and type(success) is not bool) or type(data) is not dict:
        raise InvalidSession("bad_field", "success or data")
    done = status == "done"
    start = _required_time(session, "start_time")
    end = _required_time(session, "end_time") if done else None
    log, trimmed = _messages(session.get("messages"), start, end)
    parsed = OpSession(
        session_id=session_id,
        status=STATUSES[STATUSES.index(status)],  # the shared string, not the wire's
        op_code=op_code,
        success=success,
        start_time=start,
        end_time=end,
        outcome=outcome(success, log[1::2]) if done else None,  # type: ignore[arg-type]
        data_time=data_time(data, data_keys),
        log=log,
    )
    return parsed, trimmed


def parse_status(answer: Any, data_keys: tuple[str, ...] = DATA_KEYS) -> OpSession | None:
    """The session in an answer to ``status``; None when the operation has not run since
    the agent started. Raises InvalidSession when the answer is not one. Only the fields of
    :class:`OpSession` are read: a large ``data`` costs a look at its keys, no copy."""
    return read_status(answer, data_keys)[0]
