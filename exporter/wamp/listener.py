"""The WAMP side: an autobahn Component that feeds heartbeat and feed events into the state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from exporter.config import WampAuth, WampTLS
from exporter.feeds import InvalidFeed
from exporter.flags import CALLS_PER_SECOND
from exporter.heartbeat import InvalidHeartbeat
from exporter.state import AgentRefused, AgentState, Heard
from exporter.wamp.calls import CallQueue
from exporter.wamp.errors import describe
from exporter.wamp.optypes import OpTypeQueries
from exporter.wamp.sessions import SessionQueries
from exporter.wamp.throttle import LogThrottle
from exporter.wamp.tls import client_tls

log = logging.getLogger("exporter.wamp.listener")

INITIAL_RETRY_DELAY = 1.0
RETRY_DELAY_GROWTH = 1.5
RETRY_DELAY_JITTER = 0.1


def authentication(auth: WampAuth | None) -> dict:
    """autobahn Component ``authentication`` for ticket or WAMP-CRA."""
    if auth is None:
        return {}
    key = "ticket" if auth.method == "ticket" else "secret"
    return {auth.method: {"authid": auth.authid, key: auth.secret}}


def heartbeat_topic(address_root: str) -> str:
    """The wildcard topic every agent's heartbeat matches: ``<root>..feeds.heartbeat``."""
    return f"{address_root}..feeds.heartbeat"


def feeds_topic(address_root: str) -> str:
    """The wildcard topic every feed of every agent matches: ``<root>..feeds.``."""
    return f"{address_root}..feeds."


HEARTBEAT_FEED = "heartbeat"  # the feed_name of every heartbeat's feed description


class HeartbeatListener(service.Service):
    """Stays joined to the router (reconnecting forever) and subscribed to every heartbeat,
    and with ``feeds`` to every feed: one wildcard subscription, its events told apart by
    their feed description (a heartbeat goes the heartbeat's way, any other feed to
    ``state.ingest_feed``).
    A router that refuses the feeds subscription gets the heartbeat one instead, said once.

    A heartbeat that tells something new is followed by calls to its agent, through one
    call queue: get_api for a new or restarted agent (``op_types``), and ``status`` for the
    operations whose op code changed (with ``sessions_interval``, the seconds between
    asking running operations again; ``session_queries`` is then a service to start); at
    most ``calls_per_second`` of them started in any second.
    """

    def __init__(
        self,
        state: AgentState,
        url: str,
        realm: str,
        address_root: str,
        serializers: tuple[str, ...] = ("msgpack", "cbor", "json"),
        max_retry_delay: float = 10.0,
        reactor: IReactorTime | None = None,
        tls: WampTLS | None = None,
        auth: WampAuth | None = None,
        op_types: bool = True,
        sessions_interval: float | None = None,
        calls_per_second: int = CALLS_PER_SECOND,
        feeds: bool = False,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415
        self.state = state
        self.url = url
        self.realm = realm
        self.feeds = feeds
        self.feeds_topic = feeds_topic(address_root)
        self.heartbeat_topic = heartbeat_topic(address_root)
        self.topic = self.feeds_topic if feeds else self.heartbeat_topic  # as subscribed
        self._told_heartbeats_only = False
        self.serializers = serializers
        self.max_retry_delay = max_retry_delay
        self.reactor = reactor
        self.auth = auth
        self.op_types = op_types
        self.tls_options = None
        if tls is not None:
            self.tls_options = client_tls(urlsplit(url).hostname or "", tls)
        self.connected = False
        self.throttle = LogThrottle(60.0)
        self.calls = CallQueue(reactor, per_second=calls_per_second)
        self.op_type_queries = OpTypeQueries(state, self.calls, self.throttle)
        self.session_queries: SessionQueries | None = None
        if sessions_interval is not None:
            self.session_queries = SessionQueries(
                state, self.calls, reactor, self.throttle, sessions_interval
            )
        self._outage_started: float | None = None  # reactor time the current outage began
        self._component: Component | None = None
        self._restart = None
        # Extra setup on every (re)join, called with the session once subscribed; a hook's
        # failure is logged and changes nothing else.
        self.join_hooks: list[Callable[[Any], Any]] = []

    def _make_component(self) -> Component:
        transport = {
            "type": "websocket",
            "url": self.url,
            "serializers": list(self.serializers),
            "max_retries": -1,
            "initial_retry_delay": INITIAL_RETRY_DELAY,
            "max_retry_delay": self.max_retry_delay,
            "retry_delay_growth": RETRY_DELAY_GROWTH,
            "retry_delay_jitter": RETRY_DELAY_JITTER,
            # Notice a router that vanished without closing the connection.
            "options": {"autoPingInterval": 10.0, "autoPingTimeout": 10.0},
        }
        if self.tls_options is not None:
            parts = urlsplit(self.url)
            transport["endpoint"] = {
                "type": "tcp",
                "host": parts.hostname,
                "port": parts.port or 443,
                "tls": self.tls_options,
            }
        component = Component(
            transports=[transport], realm=self.realm, authentication=authentication(self.auth)
        )
        component.on("join", self._on_join)
        component.on("leave", self._on_leave)
        component.on("disconnect", self._on_disconnect)
        component.on("connectfailure", self._on_connect_failure)
        return component

    # -- service ---------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._run()

    def stopService(self):  # noqa: ANN201 - a Deferred or None, as Twisted wants
        super().stopService()
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        self.connected = False
        if self._component is not None:
            return self._component.stop()
        return None

    def _run(self) -> None:
        self._restart = None
        self._component = self._make_component()
        done = self._component.start(self.reactor)
        done.addBoth(self._component_done)

    def _component_done(self, result: Any) -> None:
        # With max_retries=-1 autobahn ends a component only after a clean close; keep going.
        self.connected = False
        if self.running:
            log.debug("WAMP component ended (%s); starting it again", result)
            self._restart = self.reactor.callLater(INITIAL_RETRY_DELAY, self._run)

    # -- WAMP events -----------------------------------------------------------------------

    def _on_join(self, session: Any, details: Any) -> Any:
        if self.feeds:
            self.topic = self.feeds_topic
            # Without details=True: the event's feed description tells a heartbeat from
            # another feed (see _on_feed).
            options = SubscribeOptions(match="wildcard")
            d = session.subscribe(self._on_feed, self.topic, options=options)
            d.addErrback(self._feeds_refused, session)
        else:
            d = self._subscribe_heartbeats(session)

        def subscribed(_: Any) -> None:
            self.connected = True
            self.state.connection_restored()
            self.calls.joined(session)
            if self._outage_started is None:
                log.info(
                    "joined realm %s at %s, subscribed to %s", self.realm, self.url, self.topic
                )
            else:
                outage = self.reactor.seconds() - self._outage_started
                log.info("rejoined realm %s at %s after %.1f s", self.realm, self.url, outage)
            self._outage_started = None
            self._run_join_hooks(session)

        def refused(failure: Any) -> None:
            log.error("router refused subscription to %s: %s", self.topic, failure.value)
            session.leave()

        d.addCallbacks(subscribed, refused)
        return d

    def _subscribe_heartbeats(self, session: Any) -> Any:
        """Subscribes to every heartbeat (and to nothing else)."""
        self.topic = self.heartbeat_topic
        return session.subscribe(
            self._on_heartbeat, self.topic, options=SubscribeOptions(match="wildcard")
        )

    def _feeds_refused(self, failure: Any, session: Any) -> Any:
        """A role that may not subscribe to every feed: heartbeats only, said once per process
        (the feeds are tried again on every join, in case the role changed)."""
        failure.trap(ApplicationError)
        if failure.value.error != ApplicationError.NOT_AUTHORIZED:
            return failure
        if not self._told_heartbeats_only:
            self._told_heartbeats_only = True
            log.warning(
                "router refused subscription to %s (%s): exporting heartbeats only, no "
                "ocs_feed_* series; a role that may subscribe to %s exports every feed (see "
                "deploy/crossbar/exporter-role.json)",
                self.feeds_topic,
                describe(failure.value),
                self.feeds_topic,
            )
        return self._subscribe_heartbeats(session)

    def _run_join_hooks(self, session: Any) -> None:
        for hook in self.join_hooks:
            d = defer.maybeDeferred(hook, session)
            d.addErrback(self._join_hook_failed, hook)

    def _join_hook_failed(self, failure: Any, hook: Callable[[Any], Any]) -> None:
        name = getattr(hook, "__qualname__", repr(hook))
        log.error("join hook %s failed: %s", name, describe(failure.value))

    def _on_leave(self, session: Any, details: Any) -> None:
        self._lost(f"left realm: {details.reason}")

    def _on_disconnect(self, session: Any, was_clean: bool = True) -> None:
        self._lost("connection closed" if was_clean else "connection lost")

    def _on_connect_failure(self, component: Any, exc: Exception) -> None:
        if self.connected:  # autobahn reports a dropped session here too
            self._lost(describe(exc))
        elif self._outage_started is None:
            self._outage_started = self.reactor.seconds()
            log.warning(
                "cannot join realm %s at %s: %s; retrying, at most %.0f s apart",
                self.realm,
                self.url,
                describe(exc),
                self.max_retry_delay,
            )

    def _lost(self, why: str) -> None:
        """Log once per outage, however many events autobahn reports for it."""
        self.calls.lost()
        if self.connected:
            self.connected = False
            self.state.connection_lost()
            self._outage_started = self.reactor.seconds()
            log.warning("lost router %s (%s); reconnecting", self.url, why)

    def _on_feed(self, *args: Any, **kwargs: Any) -> None:
        """An event of the feeds subscription: a message of the heartbeat feed (its feed
        description says ``feed_name: heartbeat``) goes the heartbeat's way, any other to
        ``state.ingest_feed``, which counts what is not a feed message at all as malformed.
        Read from the payload, not the topic: the topic comes only with details=True, and
        the EventDetails autobahn then builds for every event costs about as much as the
        exporter's own handling of a feed message (``benchmarks.feeds`` shows the
        difference beside a bare subscriber)."""
        payload = args[0] if len(args) == 1 and not kwargs else None
        if type(payload) in (list, tuple) and len(payload) == 2:
            feed = payload[1]
            if type(feed) is dict and feed.get("feed_name") == HEARTBEAT_FEED:
                self._heartbeat(payload)
                return
        try:
            self.state.ingest_feed(payload)
        except InvalidFeed as exc:
            agent = exc.agent_address or "an unknown agent"
            if self.throttle.allow(("feed", agent)):
                log.warning(
                    "rejected feed message from %s (%s): %s; further rejections of its feed "
                    "messages are counted and not logged for 60 s",
                    agent,
                    exc.reason,
                    exc.detail,
                )

    def _on_heartbeat(self, *args: Any, **kwargs: Any) -> None:
        self._heartbeat(args[0] if len(args) == 1 and not kwargs else None)

    def _heartbeat(self, payload: Any) -> None:
        try:
            heard = self.state.ingest(payload)
            if heard is not None:
                self._ask(payload, heard)
        except InvalidHeartbeat as exc:
            agent = exc.agent_address or "an unknown agent"
            if self.throttle.allow(agent):
                log.warning(
                    "rejected heartbeat from %s (%s): %s; further rejections for it are "
                    "counted and not logged for 60 s",
                    agent,
                    exc.reason,
                    exc.detail,
                )
        except AgentRefused as exc:
            if self.throttle.allow(AgentRefused):
                log.warning(
                    "not tracking new agent %s: --max-agents=%d agents are tracked already; "
                    "further refusals are counted and not logged for 60 s",
                    exc,
                    self.state.max_agents,
                )

    def _ask(self, payload: list, heard: Heard) -> None:
        """Queue the calls a heartbeat that changed something asks for."""
        op_codes, feed = payload
        address, session_id = feed["agent_address"], feed.get("session_id")
        if heard.new_session and self.op_types:
            self.op_type_queries.ask(address, session_id)
        if heard.changed and self.session_queries is not None:
            self.session_queries.changed(address, session_id, heard.changed, op_codes)
