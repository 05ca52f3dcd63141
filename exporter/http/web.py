"""HTTP: the metrics, a status page, the agents in JSON, and health and readiness probes."""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.web import resource, server

from exporter import __version__
from exporter.heartbeat import OPCODES
from exporter.render import deflate
from exporter.render.exposition import AgentExposition
from exporter.state import AgentState
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


STATE_COLOURS = {
    1: "#8e8e8e",  # NONE
    2: "#e0b400",  # STARTING
    3: "#2e9e44",  # RUNNING
    4: "#e0b400",  # STOPPING
    5: "#2f6fd0",  # SUCCEEDED
    6: "#d1302f",  # FAILED
    7: "#6b4f7a",  # EXPIRED
    8: "#ef7b12",  # DEGRADED
}

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .3rem}
.summary{margin:.4rem 0 1rem;color:#444}
.summary b{font-size:1.1rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{background:#f0f0f0;font-weight:600}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;color:#fff;font-weight:600}
.up{background:#2e9e44}.down{background:#d1302f}
.op{display:inline-block;margin:.1rem .2rem .1rem 0;padding:.1rem .45rem;border-radius:.3rem;
color:#fff;font-size:.85rem;white-space:nowrap}
.muted{color:#777}
footer{margin-top:1rem;font-size:.85rem;color:#666}
a{color:#2f6fd0}
"""


def heard_ago(last_heartbeat: float | None, now: float) -> str:
    """How long ago the last heartbeat was; "never" for an agent of the site config file that
    has not been heard."""
    if last_heartbeat is None:
        return '<span class="muted">never</span>'
    return _ago(now - last_heartbeat)


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


class StatusPage(resource.Resource):
    """``/``: every agent, up or down, and each operation's state; reloads itself."""

    isLeaf = True
    refresh_seconds = 5

    def __init__(
        self,
        state: AgentState,
        ready: Callable[[], bool],
        telemetry_path: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.state = state
        self.ready = ready
        self.telemetry_path = telemetry_path
        self.clock = clock

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return self.render_page().encode()

    def render_page(self) -> str:
        esc = html.escape
        now = self.clock()
        agents = sorted(self.state.snapshot().agents, key=lambda a: (a.up, a.instance_id))
        up = sum(a.up for a in agents)
        rows = []
        for agent in agents:
            ops = "".join(
                f'<span class="op" style="background:{STATE_COLOURS[code]}" '
                f'title="{esc(op)}: {code}">{esc(op)} {OPCODES[code]}</span>'
                for op, code in sorted(agent.op_codes.items())
            )
            badge = (
                '<span class="badge up">UP</span>'
                if agent.up
                else ('<span class="badge down">DOWN</span>')
            )
            rows.append(
                f'<tr class="agent" data-instance-id="{esc(agent.instance_id)}">'
                f"<td>{badge}</td><td><b>{esc(agent.instance_id)}</b><br>"
                f'<span class="muted">{esc(agent.address)}</span></td>'
                f"<td>{esc(agent.agent_class) or '<span class=muted>unknown</span>'}</td>"
                f'<td class="ago">{heard_ago(agent.last_heartbeat, now)}</td>'
                f"<td>{ops or '<span class=muted>none</span>'}</td></tr>"
            )
        if not rows:
            rows.append('<tr><td colspan="5" class="muted">No agent heard yet.</td></tr>')
        router = (
            '<span class="badge up">connected</span>'
            if self.ready()
            else '<span class="badge down">disconnected</span>'
        )
        path = esc(self.telemetry_path)
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{self.refresh_seconds}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OCS Exporter</title><style>{STYLE}</style></head>
<body><h1>OCS Exporter</h1>
<div class="summary">Router {router} &nbsp; <b id="agents-up">{up}</b> up,
<b id="agents-down">{len(agents) - up}</b> down, of {len(agents)} agents.</div>
<table><thead><tr><th>State</th><th>Agent</th><th>Class</th>
<th>Last heartbeat</th><th>Operations</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<footer><a href="{path}">Metrics</a> &middot; <a href="/-/healthy">Health</a> &middot;
<a href="/-/ready">Readiness</a> &middot; <a href="/api/agents">Agents (JSON)</a> &middot;
version {__version__} &middot;
refreshes every {self.refresh_seconds} s</footer>
</body></html>
"""


class AgentsJSON(resource.Resource):
    """``/api/agents``: every agent as the RegistryAgent's ``main`` session data, in JSON:
    ``{"observatory.fake1": {"expired": false, "time_expired": null, ...}, ...}``."""

    isLeaf = True

    def __init__(self, state: AgentState) -> None:
        super().__init__()
        self.state = state

    def body(self) -> bytes:
        return json.dumps(registry_data(self.state.snapshot().agents)).encode()

    def render_GET(self, request: server.Request) -> object:
        """Rendered on the reactor's thread pool, as the metrics: 10,000 agents take
        ~0.1 s."""
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
