"""HTTP: the metrics, a landing page, and health and readiness probes."""

from __future__ import annotations

import html
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.web import resource, server

from exporter import __version__


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


class IndexPage(resource.Resource):
    isLeaf = True

    def __init__(self, telemetry_path: str) -> None:
        super().__init__()
        self.telemetry_path = telemetry_path

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        path = html.escape(self.telemetry_path)
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>OCS Exporter</title></head>
<body><h1>OCS Exporter</h1>
<p>Prometheus exporter for Observatory Control System agents, version {__version__}.</p>
<ul><li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li><li><a href="/-/ready">Readiness</a></li></ul>
</body></html>
""".encode()


def make_site(
    registry: CollectorRegistry, ready: Callable[[], bool], telemetry_path: str = "/metrics"
) -> server.Site:
    """The exporter's web site: ``/``, the telemetry path, ``/-/healthy``, ``/-/ready``."""
    root = resource.Resource()
    root.putChild(b"", IndexPage(telemetry_path))
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
    node.putChild(leaf.encode(), MetricsResource(registry))
    site = server.Site(root)
    site.displayTracebacks = False
    return site
