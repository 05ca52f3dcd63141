"""What a HostManager says about the agents it manages: pure Python.

A HostManager agent (one per host, class ``HostManager``) runs the process ``manager``,
whose session data holds ``child_states`` (a list of ``{instance_id, agent_class,
target_state, next_action, stability, operable, restart_required}``), ``config_parse_status``
(``{file: [success, timestamp, message]}``, ``[SCF]`` for the site config file) and
``orphans`` (``{container_id: {...}}``). :func:`parse_manager_data` keeps a small
:class:`ManagerData` of it, or raises :class:`InvalidManagerData`; it runs once per
HostManager per sessions interval.
"""

from __future__ import annotations

from typing import NamedTuple

from exporter.heartbeat import sane_name, sane_text
from exporter.sessions import finite_number

MAX_CHILDREN = 1000  # per HostManager (a host runs tens)
MAX_FILES = 64  # config_parse_status entries: the site config file and compose files
# Why a HostManager's data was refused: the `reason` label.
MANAGER_REASONS = (
    "not_a_mapping",  # the session data is not a mapping
    "bad_child",  # child_states not a list, or an entry not the documented shape
    "bad_parse_status",  # config_parse_status not {file: [success, timestamp, message]}
    "bad_orphans",  # orphans not a mapping
    "too_many",  # more than MAX_CHILDREN children or MAX_FILES files
)
DOCKER_SUFFIXES = ("[d]", "[d?]")  # a docker agent's class; "?": its service not found
TARGETS = {"up": True, "down": False}  # any other target (passive) decides nothing


class InvalidManagerData(ValueError):
    """Session data that is not a HostManager's; ``reason`` is one of MANAGER_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Child(NamedTuple):
    """An agent as its HostManager lists it."""

    instance_id: str
    agent_class: str  # the docker suffix stripped
    docker: bool  # the class had a docker suffix
    target_up: bool | None  # target up / down; None (passive...): the manager does not decide
    running: bool  # next_action is up: the HostManager has it running
    stability: float  # 0..1, low while it keeps restarting


class ManagerData(NamedTuple):
    children: tuple[Child, ...]
    parse_status: tuple[tuple[str, bool, float], ...]  # (file, success, timestamp)
    orphans: int  # containers no one manages


NO_DATA = ManagerData((), (), 0)


def _child(entry: object) -> Child:
    if type(entry) is not dict:
        raise InvalidManagerData("bad_child", f"entry {entry!r:.60}")
    instance_id, agent_class = entry.get("instance_id"), entry.get("agent_class")
    target, action = entry.get("target_state"), entry.get("next_action")
    stability = finite_number(entry.get("stability"))
    if not sane_name(instance_id) or not sane_text(agent_class):
        raise InvalidManagerData("bad_child", f"instance_id {instance_id!r:.60}")
    if not sane_text(target) or not sane_text(action) or stability is None:
        raise InvalidManagerData("bad_child", f"target, next_action or stability of {instance_id}")
    docker = agent_class.endswith(DOCKER_SUFFIXES)  # type: ignore[union-attr]
    if docker:
        agent_class = agent_class[: agent_class.rindex("[")]  # type: ignore[union-attr]
    # OCS keeps it in 0..1; a failure time ahead of the HostManager's clock could pass 1.
    stability = min(max(stability, 0.0), 1.0)
    return Child(
        instance_id,  # type: ignore[arg-type]
        agent_class,  # type: ignore[arg-type]
        docker,
        TARGETS.get(target),  # type: ignore[arg-type]
        action == "up",
        stability,
    )


def _children(entries: object) -> tuple[Child, ...]:
    if entries is None:
        return ()  # the process has not listed them yet
    if type(entries) is not list:
        raise InvalidManagerData("bad_child", "child_states is not a list")
    if len(entries) > MAX_CHILDREN:
        raise InvalidManagerData("too_many", f"{len(entries)} children (limit {MAX_CHILDREN})")
    children = tuple(map(_child, entries))
    if len({child.instance_id for child in children}) < len(children):
        raise InvalidManagerData("bad_child", "an instance_id listed twice")
    return children


def _parse_status(status: object) -> tuple[tuple[str, bool, float], ...]:
    if status is None:
        return ()
    if type(status) is not dict:
        raise InvalidManagerData("bad_parse_status", "config_parse_status is not a mapping")
    if len(status) > MAX_FILES:
        raise InvalidManagerData("too_many", f"{len(status)} files (limit {MAX_FILES})")
    files = []
    for name, entry in status.items():
        if not sane_text(name) or not name or type(entry) not in (list, tuple) or len(entry) != 3:
            raise InvalidManagerData("bad_parse_status", f"file {name!r:.60}")
        success, when = entry[0], finite_number(entry[1])
        if type(success) is not bool or when is None:
            raise InvalidManagerData("bad_parse_status", f"success or timestamp of {name!r:.60}")
        files.append((name, success, when))
    return tuple(sorted(files))


def parse_manager_data(data: object) -> ManagerData:
    """The :class:`ManagerData` of a ``manager`` session's data (a key missing, as before
    the process first fills it in, reads as empty); raises InvalidManagerData."""
    if type(data) is not dict:
        raise InvalidManagerData("not_a_mapping", f"data {type(data).__name__}")
    children = _children(data.get("child_states"))
    parse_status = _parse_status(data.get("config_parse_status"))
    orphans = data.get("orphans")
    if orphans is not None and type(orphans) is not dict:
        raise InvalidManagerData("bad_orphans", "orphans is not a mapping")
    return ManagerData(children, parse_status, len(orphans or ()))
