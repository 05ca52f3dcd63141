"""The web side without a network: what a scrape is served (format and gzip), answers
written only while the client is there, basic auth through twisted.web.guard with the
probes left outside it, and what ``/api/agents`` answers. Requests go through a real Site
over an in-memory transport."""

from __future__ import annotations

import base64
import gc
import gzip
import json

import pytest
from prometheus_client import CollectorRegistry, Gauge
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from exporter.http.basicauth import BcryptChecker, GuardedRoot, find_resource
from exporter.http.web import AgentsJSON, MetricsPage, make_site, negotiate, respond_later
from exporter.service import AUTH_EXEMPT
from exporter.state import AgentState
from exporter.wamp.registry_compat import registry_data
from testbed import ROOT
from testbed.feedflood import feed_payload
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.pages import HOSTILE
from tests.support.webconfig import HASH, PASSWORD, WRONG, InlineThread, creds

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_ESCAPED = OPENMETRICS + "; escaping=underscores"  # asked for with a version
PROMETHEUS_2 = (  # what Prometheus 2.x sends
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

# --- Content negotiation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=1.0, identity; q=0.5, *;q=0", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000, deflate", False),
        ("identity", False),
        ("*", False),
        ("", False),
        (None, False),
        ("x-gzip-like", False),
    ],
)
def test_gzip_only_when_accepted_with_a_quality_above_zero(accept_encoding, gzipped):
    assert negotiate(None, accept_encoding)[2] is gzipped


@pytest.mark.parametrize(
    ("accept", "openmetrics", "content_type"),
    [
        (None, False, TEXT),
        ("", False, TEXT),
        ("*/*", False, TEXT),
        ("text/plain", False, TEXT),
        ("application/openmetrics-text", True, OPENMETRICS),
        (
            "application/openmetrics-text; version=1.0.0",
            True,
            OPENMETRICS_ESCAPED,
        ),
        (
            "Application/OpenMetrics-Text; version=1.0.0",
            True,
            OPENMETRICS_ESCAPED,
        ),
        (PROMETHEUS_2, True, OPENMETRICS_ESCAPED),
        ("application/openmetrics-text;version=0.0.1,text/plain;version=0.0.4;q=0.5", False, TEXT),
    ],
)
def test_format_and_content_type_as_prometheus_client_chooses(accept, openmetrics, content_type):
    assert negotiate(accept, None)[:2] == (openmetrics, content_type.encode())


class NoAgents:
    def parts(self, openmetrics: bool, compress: bool) -> list:
        return []


def scrape(**headers: str) -> DummyRequest:
    registry = CollectorRegistry()
    Gauge("ocs_exporter_test", "A test gauge.", registry=registry).set(1)
    page = MetricsPage(registry, NoAgents(), run=defer.maybeDeferred)
    request = DummyRequest([b""])
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
    assert page.render_GET(request) is server.NOT_DONE_YET
    assert request.finished
    return request


def test_the_metrics_page_serves_what_was_negotiated():
    plain = scrape(accept_encoding="gzip;q=0")
    assert plain.responseHeaders.getRawHeaders(b"content-encoding") is None
    assert plain.responseHeaders.getRawHeaders(b"content-type") == [TEXT.encode()]
    text = b"".join(plain.written)
    assert text.startswith(b"# HELP ocs_exporter_test A test gauge.\n")
    zipped = scrape(accept_encoding="gzip", accept="application/openmetrics-text")
    assert zipped.responseHeaders.getRawHeaders(b"content-encoding") == [b"gzip"]
    assert zipped.responseHeaders.getRawHeaders(b"content-type") == [OPENMETRICS.encode()]
    body = gzip.decompress(b"".join(zipped.written))
    assert body.startswith(b"# HELP ocs_exporter_test A test gauge.\n")
    assert body.endswith(b"\n# EOF\n") and body.count(b"# EOF") == 1


# --- Answers written only while the client is there ------------------------------------


def test_an_answer_is_written_while_the_client_waits():
    request, rendered = DummyRequest([b""]), defer.Deferred()
    respond_later(request, rendered, [(b"Content-Type", b"text/plain")], "a test")
    rendered.callback(b"body\n")
    assert request.written == [b"body\n"] and request.finished == 1


@pytest.mark.parametrize("outcome", ["body", "failure"])
def test_nothing_is_written_once_the_client_has_gone(outcome):
    request, rendered = DummyRequest([b""]), defer.Deferred()
    respond_later(request, rendered, [(b"Content-Type", b"text/plain")], "a test", b"error\n")
    request.processingFailed(Failure(ConnectionDone()))  # the client hangs up
    if outcome == "body":
        rendered.callback(b"body\n")
    else:
        rendered.errback(RuntimeError("boom"))
    assert request.written == [] and request.finished == 0 and request.responseCode is None


# --- Basic auth through twisted.web.guard ----------------------------------------------


class Metrics(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        return b"metrics\n"


class Ready:
    value = True

    def __call__(self) -> bool:
        return self.value


def guarded_site(checker: ICredentialsChecker, ready: Ready | None = None) -> server.Site:
    """The exporter's site with basic auth, put together as the service does."""
    site = make_site(Metrics(), AgentState("observatory", 5.0), ready or Ready(), "/metrics")
    root = site.resource
    exempt = tuple(find_resource(root, path) for path in AUTH_EXEMPT)
    site.resource = GuardedRoot(root, checker, exempt)
    site.reactor = Clock()  # the connection's timeouts
    return site


class Connection:
    """One HTTP/1.0 request to ``site`` over an in-memory transport."""

    def __init__(self, site: server.Site, path: str, auth: bytes | None = None) -> None:
        self.channel = site.buildProtocol(None)
        self.transport = StringTransport()
        self.channel.makeConnection(self.transport)
        lines = [f"GET {path} HTTP/1.0"]
        if auth is not None:
            lines.append("Authorization: " + auth.decode())
        self.channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())

    def response(self) -> tuple[int, dict[str, str], bytes]:
        head, _, body = self.transport.value().partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        return int(status.split()[1]), {k.lower(): v for k, v in headers.items()}, body

    def hang_up(self) -> None:
        self.channel.connectionLost(Failure(ConnectionDone()))


def get(site: server.Site, path: str, auth: bytes | None = None) -> tuple[int, dict, bytes]:
    return Connection(site, path, auth).response()


def assert_challenged(answer: tuple[int, dict, bytes]) -> None:
    status, headers, body = answer
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="ocs-exporter"'
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert body == b"Unauthorized\n"


GOOD = creds("prometheus", PASSWORD)


@pytest.fixture
def thread() -> InlineThread:
    return InlineThread()


@pytest.fixture
def site(thread) -> server.Site:
    return guarded_site(BcryptChecker({"prometheus": HASH.encode()}, thread))


@pytest.mark.parametrize(
    "path", ["/", "/metrics", "/api/agents", "/no/such/page", "/-/healthyx", "/-/", "/-"]
)
def test_everything_but_the_probes_needs_credentials(site, thread, path):
    assert_challenged(get(site, path))
    assert thread.calls == 0


@pytest.mark.parametrize("auth", [None, GOOD, creds("prometheus", WRONG), b"Bearer abc"])
def test_health_and_readiness_probes_need_no_credentials(thread, auth):
    ready = Ready()
    site = guarded_site(BcryptChecker({"prometheus": HASH.encode()}, thread), ready)
    assert get(site, "/-/healthy", auth)[::2] == (200, b"Healthy\n")
    assert get(site, "/-/ready", auth)[::2] == (200, b"Ready\n")
    ready.value = False
    assert get(site, "/-/ready", auth)[0] == 503
    assert thread.calls == 0  # no bcrypt for a probe, whatever it sends


def test_the_right_password_opens_every_page_checked_once(site, thread):
    assert get(site, "/metrics", GOOD)[::2] == (200, b"metrics\n")
    assert get(site, "/metrics", GOOD)[::2] == (200, b"metrics\n")
    assert get(site, "/", GOOD)[0] == 200
    assert get(site, "/no/such/page", GOOD)[0] == 404
    assert thread.calls == 1


@pytest.mark.parametrize(
    "auth",
    [
        creds("prometheus", WRONG),
        creds("nobody", PASSWORD),
        creds("prometheus", ""),
        creds("Prometheus", PASSWORD),
    ],
)
def test_wrong_credentials_are_challenged(site, auth):
    assert_challenged(get(site, "/metrics", auth))


@implementer(ICredentialsChecker)
class Recording:
    """Records the user names and passwords that reach it; lets nobody in."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bytes]] = []

    def requestAvatarId(self, credentials: IUsernamePassword) -> defer.Deferred:
        self.seen.append((credentials.username, credentials.password))
        return defer.fail(UnauthorizedLogin())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (creds("prometheus", "a:b"), (b"prometheus", b"a:b")),
        (b"basic " + base64.b64encode(b"u:"), (b"u", b"")),
        (None, None),
        (b"Bearer abc", None),
        (b"Basic " + base64.b64encode(b"no-colon"), None),
    ],
)
def test_what_the_authorization_header_hands_the_checker(header, expected):
    checker = Recording()
    assert_challenged(get(guarded_site(checker), "/metrics", header))
    assert checker.seen == ([expected] if expected else [])


def test_a_header_that_is_not_base64_is_challenged(site):
    assert_challenged(get(site, "/metrics", b"Basic not-base64!"))


@pytest.fixture
def logged_failures():
    failures = []

    def observe(event: dict) -> None:
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    yield failures
    gc.collect()  # a Deferred's unhandled error is logged when it is collected
    globalLogPublisher.removeObserver(observe)


@pytest.mark.parametrize("password", [PASSWORD, WRONG])
def test_a_client_that_hangs_up_during_bcrypt_gets_nothing_and_logs_nothing(
    logged_failures, password
):
    thread = InlineThread(fire=False)
    site = guarded_site(BcryptChecker({"prometheus": HASH.encode()}, thread))
    connection = Connection(site, "/metrics", creds("prometheus", password))
    assert thread.pending and connection.transport.value() == b""  # bcrypt under way
    connection.hang_up()
    thread.run()
    assert connection.transport.value() == b""
    gc.collect()
    assert logged_failures == []
    assert get(site, "/metrics", creds("prometheus", password))[0] in (200, 401)
    assert thread.calls == 1  # the outcome was cached all the same


def test_the_answer_waits_for_bcrypt_off_the_calling_thread():
    thread = InlineThread(fire=False)
    site = guarded_site(BcryptChecker({"prometheus": HASH.encode()}, thread))
    connection = Connection(site, "/metrics", GOOD)
    assert connection.transport.value() == b""
    thread.run()
    assert connection.response()[::2] == (200, b"metrics\n")


# --- /api/agents ----------------------------------------------------------------------

HOSTILE_FEED = '<b>"feed"&'  # a sane feed name: JSON carries it as it is


def test_api_agents_adds_each_operations_latest_session_to_the_registry_data():
    clock = FakeClock()
    now = clock.wall
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    state.ingest(heartbeat("fake1", {"acq": 3, "delay_task": 6, "count": 1}))
    state.ingest(heartbeat("quiet", {"acq": 1}))
    address, session = "observatory.fake1", "1795518440.6412797"  # fakes.heartbeat's
    data = {"timestamp": now - 1, "fields": {"temperature": 1.5}}
    running = session_answer("acq", data=data, start_time=now - 60)
    ended = session_answer("delay_task", 1, "done", False, HOSTILE, None, now - 9, now)
    state.set_session(address, session, "acq", running)
    state.set_session(address, session, "delay_task", ended)
    readings = feed_payload(address, "readings", {}, True, {"fresh_time": 60}, session)
    state.ingest_feed(readings)
    state.ingest_feed(feed_payload(address, HOSTILE_FEED, {}, session_id=session))
    clock.advance(2)
    state.ingest_feed(readings)
    data = json.loads(AgentsJSON(state).body())
    registry = registry_data(state.snapshot().agents)
    assert list(data) == list(registry)
    for key, entry in data.items():
        added = ("operations", "feeds", "expected", "expected_by", "hostname", "managers")
        added += ("hostmanager",)
        assert {k: v for k, v in entry.items() if k not in added} == registry[key]
    assert data["observatory.quiet"]["operations"] == {"acq": {"session": None}}
    assert data["observatory.quiet"]["feeds"] == {}
    assert {k: data[address][k] for k in added[2:]} == {
        "expected": None,
        "expected_by": "site config",
        "hostname": "",
        "managers": [],
        "hostmanager": None,
    }
    assert data[address]["feeds"] == {
        "readings": {
            "record": True,
            "fresh_time": 60.0,
            "messages": 2,
            "last_message_time": now + 2,
        },
        HOSTILE_FEED: {
            "record": False,
            "fresh_time": None,
            "messages": 1,
            "last_message_time": now,
        },
    }
    assert data[address]["operations"] == {
        "acq": {
            "session": {
                "session_id": 0,
                "status": "running",
                "op_code": 3,
                "success": None,
                "outcome": None,
                "start_time": now - 60,
                "end_time": None,
                "last_message_time": now - 59.75,
                "data_time": now - 1,
                "messages": [
                    [now - 60, 'Status is now "starting".'],
                    [now - 59.75, 'Status is now "running".'],
                ],
            }
        },
        "delay_task": {
            "session": {
                "session_id": 1,
                "status": "done",
                "op_code": 6,
                "success": False,
                "outcome": "failed",
                "start_time": now - 9,
                "end_time": now,
                "last_message_time": now,
                "data_time": None,
                "messages": [
                    [now - 9, 'Status is now "starting".'],
                    [now - 8.75, 'Status is now "running".'],
                    [now - 8.5, HOSTILE],  # JSON carries the text as it is
                    [now, 'Status is now "done".'],
                ],
            }
        },
        "count": {"session": None},  # never run
    }


def test_the_documented_json_is_what_api_agents_serves():
    """docs/metrics.md: the example parses, and it and the field table name exactly the
    fields of a session as served."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    section = text[text.index("### `/api/agents`") :]
    example = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    [entry] = example.values()
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    state.ingest(heartbeat("fake1", {"acq": 3}))
    state.set_session("observatory.fake1", "1795518440.6412797", "acq", session_answer("acq"))
    readings = feed_payload("observatory.fake1", "readings", {}, True, {"fresh_time": 60})
    state.ingest_feed(readings)
    [served] = json.loads(AgentsJSON(state).body()).values()
    assert list(entry) == list(served)
    session = served["operations"]["acq"]["session"]
    assert list(entry["operations"]["delay_task"]["session"]) == list(session)
    assert list(entry["feeds"]["temperatures"]) == list(served["feeds"]["readings"])
    table = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    assert [name.strip("` ") for row in table for name in row.split(",")] == list(session)
