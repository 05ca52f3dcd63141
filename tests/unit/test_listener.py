"""The listener's event handling, driven directly with a fake clock (no router)."""

import logging

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock

from exporter.feeds import parse_feed
from exporter.state import AgentState
from exporter.wamp.listener import HeartbeatListener, feeds_topic, heartbeat_topic
from testbed.feedflood import feed_payload
from tests.support.fakes import heartbeat


def make():
    state = AgentState("observatory", 5.0)
    listener = HeartbeatListener(state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock())
    return state, listener


def test_topic_is_the_wildcard_heartbeat_topic():
    assert heartbeat_topic("site7") == "site7..feeds.heartbeat"


def test_one_positional_argument_is_a_heartbeat():
    state, listener = make()
    listener._on_heartbeat(heartbeat("fake1"))
    assert [a.instance_id for a in state.snapshot().agents] == ["fake1"]


def test_other_call_shapes_are_malformed():
    state, listener = make()
    op_codes, feed = heartbeat("fake1")
    listener._on_heartbeat(op_codes, feed)
    listener._on_heartbeat()
    listener._on_heartbeat(heartbeat("fake1"), extra=1)
    assert state.snapshot().agents == ()
    assert state.snapshot_counters().invalid["malformed"] == 3


def test_rejections_are_logged_once_a_minute_per_agent(caplog):
    state, listener = make()
    with caplog.at_level(logging.WARNING, logger="exporter.wamp.listener"):
        for _ in range(100):
            listener._on_heartbeat(heartbeat("a", {"acq": 0}))
            listener._on_heartbeat(heartbeat("b", {"acq": 0}))
    assert state.snapshot_counters().invalid["bad_op_code"] == 200
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "observatory.a" in messages[0] and "bad_op_code" in messages[0]


class Details:
    reason = "wamp.close.transport_lost"


def test_an_outage_is_logged_once(caplog):
    _, listener = make()
    listener.connected = True
    with caplog.at_level(logging.WARNING, logger="exporter.wamp.listener"):
        listener._on_connect_failure(None, ConnectionRefusedError("refused"))
        listener._on_leave(None, Details())
        listener._on_disconnect(None, was_clean=False)
        for _ in range(5):
            listener._on_connect_failure(None, ConnectionRefusedError("refused"))
    assert not listener.connected
    assert len(caplog.records) == 1
    assert "lost router" in caplog.records[0].getMessage()


def test_failing_to_join_from_the_start_is_logged_once(caplog):
    _, listener = make()
    with caplog.at_level(logging.WARNING, logger="exporter.wamp.listener"):
        for _ in range(5):
            listener._on_connect_failure(None, ConnectionRefusedError("Connection refused"))
    assert len(caplog.records) == 1
    assert "cannot join realm r" in caplog.records[0].getMessage()


def test_listener_tells_the_state_about_outages_and_rejoins():
    from tests.support.fakes import FakeClock

    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    listener = HeartbeatListener(state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock())
    listener._on_heartbeat(heartbeat("fake1"))
    listener.connected = True
    listener._on_disconnect(None, was_clean=False)
    clock.advance(60)
    assert not state.snapshot().agents[0].up

    class Session:
        def subscribe(self, handler, topic, options):
            from twisted.internet.defer import succeed

            return succeed(None)

    listener._on_join(Session(), None)
    assert listener.connected
    assert state.snapshot().agents[0].up  # grace after the rejoin


def test_refused_agents_are_logged_once(caplog):
    state = AgentState("observatory", 5.0, max_agents=1)
    listener = HeartbeatListener(state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock())
    with caplog.at_level(logging.WARNING, logger="exporter.wamp.listener"):
        for i in range(10):
            listener._on_heartbeat(heartbeat(f"a{i}"))
    assert state.snapshot_counters().refused == 9
    assert len(caplog.records) == 1 and "--max-agents=1" in caplog.records[0].getMessage()


def test_tls_errors_read_as_one_short_line():
    from OpenSSL import SSL

    from exporter.wamp.errors import describe

    error = SSL.Error([("SSL routines", "", "certificate verify failed")])
    assert describe(error) == "TLS: certificate verify failed"
    assert describe(ConnectionRefusedError("Connection refused\nmore")) == "Connection refused more"


def test_get_api_calls_are_queued_with_a_bound_on_calls_in_flight(caplog):
    from twisted.internet.defer import Deferred, succeed

    from exporter.wamp.calls import CALLS_IN_FLIGHT as GET_API_IN_FLIGHT

    state = AgentState("observatory", 5.0)
    listener = HeartbeatListener(state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock())
    calls: list[tuple[str, Deferred]] = []

    class Session:
        def subscribe(self, handler, topic, options):
            return succeed(None)

        def call(self, address, query):
            d = Deferred()
            calls.append((address, d))
            return d

    listener._on_join(Session(), None)
    for i in range(100):
        listener._on_heartbeat(heartbeat(f"a{i}", {"acq": 3}))
    assert len(calls) == GET_API_IN_FLIGHT  # the rest wait their turn
    api = {"tasks": [], "processes": [["acq", {}, {}]]}
    with caplog.at_level(logging.INFO, logger="exporter.wamp.optypes"):
        while calls:
            address, d = calls.pop(0)
            if address.endswith("0"):
                d.errback(RuntimeError("no answer"))
            else:
                d.callback(api)
    queries = state.snapshot_counters().op_type_queries
    assert queries == {"ok": 90, "failed": 10}
    assert all(a.op_types in ({"acq": "process"}, None) for a in state.snapshot().agents)
    assert len([r for r in caplog.records if "get_api" in r.getMessage()]) == 1


def test_new_agents_are_asked_only_when_op_types_are_wanted():
    from twisted.internet.defer import Deferred, succeed

    calls = []

    class Session:
        def subscribe(self, handler, topic, options):
            return succeed(None)

        def call(self, address, query):
            calls.append(address)
            return Deferred()

    for wanted in (True, False):
        state = AgentState("observatory", 5.0)
        listener = HeartbeatListener(
            state, "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock(), op_types=wanted
        )
        listener._on_join(Session(), None)
        listener._on_heartbeat(heartbeat("a", session_id="1"))
        listener._on_heartbeat(heartbeat("a", session_id="1"))  # known: not asked again
        listener._on_heartbeat(heartbeat("a", session_id="2"))  # restarted: asked again
        listener._on_disconnect(None, was_clean=False)
        listener._on_heartbeat(heartbeat("b"))  # no session: not asked
    assert calls == ["observatory.a", "observatory.a"]


# -- feeds: one wildcard subscription, events told apart by topic ---------------------------


class Recording(AgentState):
    """The state, also keeping every payload given to ingest_feed (parsed as the state does)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.feed_payloads = []

    def ingest_feed(self, payload):
        self.feed_payloads.append(payload)
        parse_feed(payload, self.prefix)


class Router:
    """A session that records subscriptions and refuses the topics of ``refuse``."""

    def __init__(self, refuse=(), error=ApplicationError.NOT_AUTHORIZED):
        self.refuse, self.error = refuse, error
        self.subscribed = []
        self.left = 0

    def subscribe(self, handler, topic, options):
        self.subscribed.append((topic, options.match, options.details_arg))
        if topic in self.refuse:
            return fail(ApplicationError(self.error, "subscribe on topic not allowed"))
        return succeed(None)

    def leave(self):
        self.left += 1


def feeding(feeds=True):
    state = Recording("observatory", 5.0)
    url = "ws://127.0.0.1:1/ws"
    return state, HeartbeatListener(state, url, "r", "observatory", reactor=Clock(), feeds=feeds)


def test_topics_are_the_wildcards():
    assert feeds_topic("site7") == "site7..feeds."
    assert heartbeat_topic("site7").startswith(feeds_topic("site7"))


def test_feeds_are_one_wildcard_subscription_without_details(caplog):
    _, listener = feeding()
    router = Router()
    with caplog.at_level(logging.INFO, logger="exporter.wamp.listener"):
        listener._on_join(router, None)
    assert router.subscribed == [("observatory..feeds.", "wildcard", None)]
    assert listener.connected and listener.topic == "observatory..feeds."
    assert caplog.records[-1].getMessage().endswith("subscribed to observatory..feeds.")


def test_events_go_to_the_heartbeat_or_the_feed_path_by_their_feed_name():
    state, listener = feeding()
    beat = heartbeat("fake1")
    listener._on_feed(beat)
    data = feed_payload("observatory.fake1", "false_temperatures", {"block": 1}, record=True)
    listener._on_feed(data)
    # A heartbeat says so in its feed; without that, or unreadable, an event is a feed
    # message (and counted as a malformed or bad one there), whatever its topic was.
    nameless = [beat[0], {k: v for k, v in beat[1].items() if k != "feed_name"}]
    listener._on_feed(nameless)
    listener._on_feed("nonsense")
    listener._on_feed(data, 2)
    listener._on_feed(tuple(heartbeat("fake2")))  # what a decoder may give: still a heartbeat
    assert [a.instance_id for a in state.snapshot().agents] == ["fake1", "fake2"]
    assert state.snapshot_counters().invalid["malformed"] == 0
    assert state.feed_payloads == [data, nameless, "nonsense", None]


def test_rejected_feed_messages_are_logged_once_a_minute_per_agent(caplog):
    state, listener = feeding()
    with caplog.at_level(logging.WARNING, logger="exporter.wamp.listener"):
        for i in range(50):
            for agent in ("a", "b"):
                listener._on_feed(feed_payload(f"observatory.{agent}", f"bad name {i}"))
        listener._on_feed(heartbeat("a", {"acq": 0}))
    assert len(state.feed_payloads) == 100
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages  # one per agent's feeds, one for the bad heartbeat
    assert "observatory.a (bad_feed_name)" in messages[0] and "bad name 0" in messages[0]
    assert "observatory.b (bad_feed_name)" in messages[1]
    assert "bad_op_code" in messages[2]


def test_a_refused_feeds_subscription_falls_back_to_heartbeats_said_once(caplog):
    state, listener = feeding()
    router = Router(refuse={"observatory..feeds."})
    with caplog.at_level(logging.INFO, logger="exporter.wamp.listener"):
        listener._on_join(router, None)
        listener._on_disconnect(None, was_clean=False)
        listener._on_join(router, None)  # a rejoin asks for the feeds again
    assert (
        router.subscribed
        == [
            ("observatory..feeds.", "wildcard", None),
            ("observatory..feeds.heartbeat", "wildcard", None),
        ]
        * 2
    )
    assert listener.connected and listener.topic == "observatory..feeds.heartbeat"
    assert router.left == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    told = [m for m in warnings if "heartbeats only" in m]
    assert len(told) == 1 and "exporter-role.json" in told[0] and "not_authorized" in told[0]
    joined = [r.getMessage() for r in caplog.records if "joined realm" in r.getMessage()]
    assert joined[0].endswith("subscribed to observatory..feeds.heartbeat")
    listener._on_heartbeat(heartbeat("fake1"))
    assert [a.instance_id for a in state.snapshot().agents] == ["fake1"]


def test_other_subscription_errors_leave_the_realm_as_before(caplog):
    _, listener = feeding()
    router = Router(refuse={"observatory..feeds."}, error="wamp.error.invalid_uri")
    with caplog.at_level(logging.ERROR, logger="exporter.wamp.listener"):
        listener._on_join(router, None)
    assert not listener.connected and router.left == 1
    assert len(router.subscribed) == 1
    assert "refused subscription to observatory..feeds." in caplog.records[0].getMessage()


def test_without_feeds_only_heartbeats_are_subscribed():
    _, listener = feeding(feeds=False)
    router = Router()
    listener._on_join(router, None)
    assert router.subscribed == [("observatory..feeds.heartbeat", "wildcard", None)]
    assert listener.connected and listener.topic == "observatory..feeds.heartbeat"
