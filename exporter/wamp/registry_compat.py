"""A drop-in for OCS's RegistryAgent (``--registry-compat``).

The exporter registers on the router as an OCS agent at ``<address_root>.<instance id>``,
with one process, ``main``, always RUNNING, whose session ``data`` is what the RegistryAgent
puts there: one entry per agent address, built from the state when asked. So
``OCSClient('registry').main.status().session['data']`` keeps working without a registry.

Only the part of the OCS agent interface that clients use is served (ocs 0.12,
``ocs.ocs_agent.OCSAgent``): the management procedure ``<address>`` and the operations
procedure ``<address>.ops``; and, once registered, a heartbeat on
``<address>.feeds.heartbeat`` every second, so that OCS tools see the agent alive.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from autobahn.wamp.exception import ApplicationError
from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from exporter import __version__
from exporter.state import AgentState
from exporter.view import AgentView

log = logging.getLogger("exporter.wamp.registry_compat")

AGENT_CLASS = "RegistryAgent"  # what get_api and the heartbeat say, as the registry's do
PROCESS = "main"
RUNNING = 3  # OpCode

# ocs.base.ResponseCode
OK = 0
ERROR = -1
TIMEOUT = 1

HEARTBEAT_INTERVAL = 1.0  # seconds, as every OCS agent
REGISTER_RETRY = 10.0  # seconds between attempts to register after a refusal

MAIN_DOC = """main()

        **Process** - Served by the OCS exporter in place of the RegistryAgent: always
        running, it cannot be started or stopped. Its session data maps each agent address
        to the RegistryAgent's fields (expired, time_expired, last_updated, op_codes,
        agent_class, agent_address), read from the exporter's state when asked.
        """


def registry_entry(agent: AgentView) -> dict[str, Any]:
    """One agent as the RegistryAgent encodes it (``RegisteredAgent.encoded()``)."""
    down = not agent.up
    return {
        "expired": down,
        "time_expired": agent.expired_at if down else None,
        "last_updated": agent.last_heartbeat,
        "op_codes": dict(agent.op_codes),
        "agent_class": agent.agent_class or None,
        "agent_address": agent.address,
    }


def registry_data(agents: Iterable[AgentView]) -> dict[str, dict[str, Any]]:
    """The RegistryAgent's ``main`` session data: agent address -> :func:`registry_entry`.

    Only agents heard since the exporter started, as the registry: tools read
    ``last_updated`` as a number. Agents listed in the site config but never heard are in
    the metrics (``ocs_agent_up 0``), not here.
    """
    return {
        agent.address: registry_entry(agent) for agent in agents if agent.last_heartbeat is not None
    }


class RegistryCompat(service.Service):
    """Answers as an OCS RegistryAgent on every router session the listener joins.

    :meth:`on_join` is a listener join hook: it registers the two procedures on the new
    session. If the router refuses (a role without ``register``, or another agent already
    holds the address), one line is logged, nothing else changes, and registering is tried
    again quietly every ``REGISTER_RETRY`` seconds, so that the exporter takes over once a
    RegistryAgent it was started next to is stopped.
    """

    def __init__(
        self,
        state: AgentState,
        address_root: str,
        instance_id: str = "registry",
        reactor: IReactorTime | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415
        self.state = state
        self.instance_id = instance_id
        self.address = f"{address_root}.{instance_id}"
        self.reactor = reactor
        self.clock = clock
        self.start_time = clock()
        self.session_id = str(self.start_time)  # as OCS agents: str(time.time()) at start
        self.access_data = {
            "version": 1,
            "policy": "none",
            "update_timestamp": self.start_time,
            "update_count": 0,
            "step": 0,
        }
        self.session: Any = None  # the WAMP session the procedures are registered on
        self._joined: Any = None  # the listener's latest session
        self._retry: IDelayedCall | None = None
        self._heartbeat: task.LoopingCall | None = None

    # -- service: the heartbeat ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._heartbeat = task.LoopingCall(self.heartbeat)
        self._heartbeat.clock = self.reactor
        self._heartbeat.start(HEARTBEAT_INTERVAL, now=False)

    def stopService(self):  # noqa: ANN201 - a Deferred or None, as Twisted wants
        super().stopService()
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self._cancel_retry()
        self.session = None

    def feed(self) -> dict[str, Any]:
        """The heartbeat feed's description, as ``ocs.ocs_feed.Feed.encoded()``."""
        return {
            "agent_address": self.address,
            "agg_params": {},
            "feed_name": "heartbeat",
            "address": f"{self.address}.feeds.heartbeat",
            "record": False,
            "session_id": self.session_id,
            "agent_class": AGENT_CLASS,
        }

    def heartbeat(self) -> None:
        """Publish ``[{"main": 3}, feed]``, while registered on a live session."""
        session = self.session
        if session is None or not session.is_attached():
            return
        try:
            session.publish(f"{self.address}.feeds.heartbeat", [{PROCESS: RUNNING}, self.feed()])
        except Exception as exc:  # the transport went away between the check and now
            log.debug("registry compat heartbeat not sent: %s", exc)

    # -- joining ---------------------------------------------------------------------------

    def on_join(self, session: Any) -> defer.Deferred:
        """Register ``<address>.ops`` and ``<address>`` on a newly joined session."""
        self.session = None
        self._joined = session
        self._cancel_retry()
        return self._register(session, first=True)

    @defer.inlineCallbacks
    def _register(self, session: Any, first: bool) -> Any:
        registered = []
        try:
            registered.append((yield session.register(self._ops_call, self.address + ".ops")))
            registered.append((yield session.register(self._management_call, self.address)))
        except ApplicationError as exc:
            for registration in registered:
                registration.unregister().addErrback(lambda _: None)
            if first:
                log.error(
                    "--registry-compat: the router refused to register %s (%s)%s; not "
                    "answering as the RegistryAgent, trying again every %.0f s; the metrics "
                    "are not affected",
                    self.address,
                    exc.error,
                    _refusal_hint(exc.error),
                    REGISTER_RETRY,
                )
            else:
                log.debug("--registry-compat: %s still refused (%s)", self.address, exc.error)
            if self.running and session is self._joined and session.is_attached():
                self._retry = self.reactor.callLater(REGISTER_RETRY, self._register_again)
            return
        self.session = session
        log.info("answering as the RegistryAgent %s (process %r)", self.address, PROCESS)
        self.heartbeat()

    def _register_again(self) -> None:
        self._retry = None
        session = self._joined
        if self.running and session is not None and session.is_attached():
            d = self._register(session, first=False)
            d.addErrback(lambda f: log.debug("registry compat: registering again: %s", f.value))

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    # -- the procedures: <address> (management) and <address>.ops ---------------------------

    def _management_call(self, q: str, **kwargs: Any) -> defer.Deferred:
        return self._in_thread(self.management, q, **kwargs)

    def _ops_call(
        self,
        action: str,
        op_name: str,
        params: Any = None,
        timeout: float | None = None,
        password: str | None = None,
    ) -> Any:
        if action == "wait":  # may wait on the reactor's clock
            return self.operations(action, op_name, params, timeout, password)
        return self._in_thread(self.operations, action, op_name, params, timeout, password)

    def _in_thread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Answers carry every agent (~0.1 s to build for 10,000): built on the reactor's
        thread pool, as the metrics are, not on the reactor that takes the heartbeats."""
        pool = self.reactor.getThreadPool()
        return threads.deferToThreadPool(self.reactor, pool, f, *args, **kwargs)

    def management(self, q: str, **kwargs: Any) -> Any:
        """``OCSAgent._management_handler``: describe this agent; None for unknown queries."""
        if q == "get_api":
            return {
                "agent_class": AGENT_CLASS,
                "instance_hostname": socket.gethostname(),
                "instance_pid": os.getpid(),
                "feeds": self._feeds(),
                "processes": self._processes(),
                "tasks": [],
                "access_control": self.access_data,
            }
        if q == "get_tasks":
            return []
        if q == "get_processes":
            return self._processes()
        if q == "get_feeds":
            return self._feeds()
        if q == "get_agent_class":
            return AGENT_CLASS
        return None

    def _feeds(self) -> list:
        return [("heartbeat", self.feed())]

    def _processes(self) -> list:
        info = {"blocking": False, "docstring": MAIN_DOC, "op_type": "process", "min_privs": 1}
        return [(PROCESS, self.main_session(), info)]

    def main_session(self) -> dict[str, Any]:
        """The ``main`` process's session, as ``OpSession.encoded()``, data built now."""
        started = self.start_time
        return {
            "session_id": 0,
            "op_name": PROCESS,
            "op_code": RUNNING,
            "cred_level": 1,
            "status": "running",
            "degraded": False,
            "success": None,
            "start_time": started,
            "end_time": None,
            "data": registry_data(self.state.snapshot().agents),
            "messages": [
                (started, 'Status is now "starting".'),
                (started, 'Status is now "running".'),
                (started, f"Served by ocs-exporter {__version__} (--registry-compat)."),
            ],
        }

    def operations(
        self,
        action: str,
        op_name: str,
        params: Any = None,
        timeout: float | None = None,
        password: str | None = None,
    ) -> Any:
        """``OCSAgent._ops_handler``: (status, message, session) for start, stop, abort,
        wait and status."""
        known = op_name == PROCESS
        if action == "status":
            if not known:
                return (ERROR, f'No task or process called "{op_name}"', {})
            return (OK, "Session active.", self.main_session())
        if action == "start":
            if not known:
                return (ERROR, f'No task or process called "{op_name}"', {})
            return (ERROR, f'Operation "{op_name}" already in progress.', self.main_session())
        if action in ("stop", "abort"):
            if not known:
                return (ERROR, f'No operation called "{op_name}".', {})
            if action == "abort":
                return (ERROR, f'Cannot "abort" "{op_name}" because it is a "process".', {})
            return (
                ERROR,
                f'Process "{op_name}" is served by the OCS exporter and cannot be stopped.',
                self.main_session(),
            )
        if action == "wait":
            if not known:
                return (ERROR, f'Unknown operation "{op_name}".', {})
            return self._wait(op_name, timeout)
        return (ERROR, f'No implementation for "{action}"', {})

    def _wait(self, op_name: str, timeout: float | None) -> Any:
        """``main`` never ends: time out, after ``timeout`` seconds if positive, else now
        (the RegistryAgent would block forever on ``timeout=None``)."""

        def timed_out() -> tuple:
            message = f'Operation "{op_name}" still running; wait timed out.'
            return (TIMEOUT, message, self.main_session())

        if isinstance(timeout, int | float) and 0 < timeout < math.inf:
            return task.deferLater(self.reactor, float(timeout), timed_out)
        return timed_out()


def _refusal_hint(error: str) -> str:
    if error == "wamp.error.procedure_already_exists":
        return ": another agent (a RegistryAgent?) already answers at that address"
    if error == "wamp.error.not_authorized":
        return ": the exporter's WAMP role may not register procedures there"
    return ""
