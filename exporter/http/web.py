"""HTTP: the metrics, the agents in JSON, health and readiness probes, and the site that
serves them with the status page (:mod:`exporter.http.status`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.web import resource, server

from exporter.http.status import StatusPage
from exporter.render import deflate
from exporter.render.exposition import AgentExposition
from exporter.sessions import OpSession
from exporter.state import AgentState
from exporter.view import AgentView
from exporter.wamp.registry_compat import registry_data

log = logging.getLogger(__name__)
EOF = b"# EOF\n"


def client_gone(request: server.Request) -> Callable[[], bool]:
    """Asked later, whether the client of ``request`` has hung up since this call, so that
    work ending after it (a bcrypt check, a rendering in a thread) is not written to a
    closed connection. Call it before that work starts: a request tells only those who
    asked before its connection was lost."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))
    return lambda: bool(gone)


def respond_later(
    request: server.Request,
    rendered: defer.Deferred,
    headers: list[tuple[bytes, bytes]],
    what: str,
    error_body: bytes = b"",
) -> defer.Deferred:
    """Answers ``request`` with the body ``rendered`` gives, unless the client has gone
    meanwhile; a failure is logged and answered 500 with ``error_body``."""
    gone = client_gone(request)

    def send(body: bytes) -> None:
        if not gone():
            for name, value in headers:
                request.setHeader(name, value)
            request.write(body)
            request.finish()

    def failed(failure: Failure) -> None:
        log.error("rendering %s failed: %s", what, failure.getTraceback())
        if not gone():
            request.setResponseCode(500)
            if error_body:
                request.write(error_body)
            request.finish()

    return rendered.addCallbacks(send, failed)


def _q_zero(coding: str) -> bool:
    """Whether one Accept-Encoding element refuses its coding: ``gzip;q=0``."""
    for parameter in coding.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) == 0
            except ValueError:
                return False
    return False


def _header(request: server.Request, name: bytes) -> str:
    """A request header as text; latin-1 reads any bytes a client may send."""
    value = request.getHeader(name)
    return value.decode("latin-1") if value else ""


def negotiate(accept: str | None, accept_encoding: str | None) -> tuple[bool, bytes, bool]:
    """(OpenMetrics?, Content-Type, gzip?) for a scrape, as prometheus_client's own servers
    choose them (``choose_encoder``, ``gzip_accepted``), except that a coding with
    ``q=0`` is refused, as HTTP says, where ``gzip_accepted`` reads ``gzip;q=0`` as gzip."""
    _, content_type = choose_encoder((accept or "").lower())  # media types ignore case
    offered = ",".join(c for c in (accept_encoding or "").split(",") if not _q_zero(c))
    openmetrics = content_type.startswith("application/openmetrics-text")
    return openmetrics, content_type.encode(), gzip_accepted(offered)


class MetricsPage(resource.Resource):
    """The telemetry path: the exporter's own metrics from ``registry`` (prometheus_client)
    followed by the agent series; text format, or OpenMetrics when the scraper asks for it;
    gzip when accepted. Rendered by ``run`` (``deferToThread``-like), off the reactor
    thread: the service gives it one thread of its own, since scrapes take the agents'
    lock in turn anyway and one thread keeps their buffers in one malloc arena."""

    isLeaf = True

    def __init__(
        self,
        registry: CollectorRegistry,
        agents: AgentExposition,
        run: Callable[..., defer.Deferred] = threads.deferToThread,
        after: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.agents = agents
        self.run = run
        self.after = after

    def body(self, openmetrics: bool, compress: bool) -> bytes:
        """The response body. Every name here is a legacy Prometheus name, so the escaping
        a scraper may ask for (``negotiate``) changes no byte of it."""
        if openmetrics:
            own = generate_openmetrics(self.registry)
            parts = [own[: -len(EOF)], *self.agents.parts(True, compress), EOF]
        else:
            parts = [generate_latest(self.registry), *self.agents.parts(False, compress)]
        return deflate.gzip_member(parts) if compress else deflate.text_of(parts)

    def render_GET(self, request: server.Request) -> object:
        openmetrics, content_type, compress = negotiate(
            _header(request, b"accept"), _header(request, b"accept-encoding")
        )
        headers = [(b"Content-Type", content_type)]
        if compress:
            headers.append((b"Content-Encoding", b"gzip"))
        rendered = respond_later(
            request,
            self.run(self.body, openmetrics, compress),
            headers,
            "the metrics",
            b"error rendering the metrics\n",
        )
        if self.after is not None:
            rendered.addBoth(self._then_after)
        return server.NOT_DONE_YET

    def _then_after(self, result: object) -> object:
        self.run(self.after).addErrback(
            lambda failure: log.error("after a scrape: %s", failure.getTraceback())
        )
        return result


class Text(resource.Resource):
    """A plain-text answer whose status comes from a check made per request."""

    isLeaf = True

    def __init__(self, check: Callable[[], bool], ok: str, not_ok: str) -> None:
        super().__init__()
        self.check = check
        self.ok = ok
        self.not_ok = not_ok

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if self.check():
            return self.ok.encode() + b"\n"
        request.setResponseCode(503)
        return self.not_ok.encode() + b"\n"

    render_HEAD = render_GET


def session_json(session: OpSession | None) -> dict[str, Any] | None:
    """An operation's latest session as ``/api/agents`` shows it; None when none is known."""
    if session is None:
        return None
    return {
        "session_id": session.session_id,
        "status": session.status,
        "op_code": session.op_code,
        "success": session.success,
        "outcome": session.outcome,
        "start_time": session.start_time,
        "end_time": session.end_time,
        "last_message_time": session.last_message_time,
        "data_time": session.data_time,
        "messages": [[t, text] for t, text in session.messages],
    }


def feeds_json(agent: AgentView) -> dict[str, dict[str, Any]]:
    """The agent's feeds (the heartbeat aside): feed name -> what it declares, its messages
    heard and the Unix time of the last."""
    return {
        name: {
            "record": info.record,
            "fresh_time": info.fresh_time,
            "messages": count,
            "last_message_time": last,
        }
        for (name, info), count, last in zip(
            agent.record.feeds.items(), agent.feed_counts, agent.feed_times, strict=True
        )
    }


def managed_json(agent: AgentView) -> dict[str, Any]:
    """Whether the agent should run and who says so, its host name, the HostManagers
    listing it, and a HostManager's own data (None for other agents)."""
    targets = {True: "up", False: "down", None: None}
    data = agent.record.hostmanager
    return {
        "expected": agent.expected,
        "expected_by": agent.expected_by,
        "hostname": agent.hostname,
        "managers": [
            {"manager": m.manager, "target": targets[m.target_up], "stability": m.stability}
            for m in agent.managers
        ],
        "hostmanager": None
        if data is None
        else {
            "files": {
                name: {"success": ok, "timestamp": when} for name, ok, when in data.parse_status
            },
            "orphans": data.orphans,
            "children": len(data.children),
        },
    }


def agents_json(agents: Iterable[AgentView]) -> dict[str, dict[str, Any]]:
    """``/api/agents``: the RegistryAgent's ``main`` session data (:func:`registry_data`),
    each agent's entry with more keys: ``operations``: operation -> ``{"session": ...}``,
    ``feeds`` (:func:`feeds_json`) and those of :func:`managed_json`. The registry drop-in
    serves :func:`registry_data` alone, unchanged."""
    agents = tuple(agents)
    data = registry_data(agents)
    for agent in agents:
        entry = data.get(agent.address)
        if entry is not None:
            sessions = agent.sessions  # with the newest data times
            entry["operations"] = {
                op: {"session": session_json(sessions.get(op))} for op in agent.op_codes
            }
            entry["feeds"] = feeds_json(agent)
            entry.update(managed_json(agent))
    return data


class AgentsJSON(resource.Resource):
    """``/api/agents``: every agent heard, as the RegistryAgent's ``main`` session data plus
    each operation's latest session, in JSON: ``{"observatory.fake1": {"expired": false,
    "time_expired": null, ..., "operations": {"acq": {"session": {...}}}}, ...}``."""

    isLeaf = True

    def __init__(self, state: AgentState) -> None:
        super().__init__()
        self.state = state

    def body(self) -> bytes:
        return json.dumps(agents_json(self.state.snapshot().agents)).encode()

    def render_GET(self, request: server.Request) -> object:
        """Rendered on the reactor's thread pool, as the metrics: it carries every agent."""
        headers = [(b"Content-Type", b"application/json"), (b"Cache-Control", b"no-store")]
        respond_later(request, threads.deferToThread(self.body), headers, "/api/agents")
        return server.NOT_DONE_YET

    render_HEAD = render_GET


def make_site(
    metrics: resource.Resource,
    state: AgentState,
    ready: Callable[[], bool],
    telemetry_path: str = "/metrics",
) -> server.Site:
    """The exporter's web site: ``/``, ``metrics`` at the telemetry path, ``/-/healthy``,
    ``/-/ready``, ``/api/agents``."""
    root = resource.Resource()
    root.putChild(b"", StatusPage(state, ready, telemetry_path))
    probes = resource.Resource()
    probes.putChild(b"healthy", Text(lambda: True, "Healthy", "Unhealthy"))
    probes.putChild(
        b"ready", Text(ready, "Ready", "Not ready: not joined and subscribed to the router")
    )
    root.putChild(b"-", probes)
    node = root
    *parents, leaf = telemetry_path.strip("/").split("/")
    for part in parents:
        child = resource.Resource()
        node.putChild(part.encode(), child)
        node = child
    node.putChild(leaf.encode(), metrics)
    api = root.children.get(b"api")  # a telemetry path under /api/ made it already
    if api is None:
        api = resource.Resource()
        root.putChild(b"api", api)
    if b"agents" not in api.children:
        api.putChild(b"agents", AgentsJSON(state))
    site = server.Site(root)
    site.displayTracebacks = False
    return site
