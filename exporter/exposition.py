"""Fast rendering of the agent series for ``/metrics``.

At 10,000 agents x 4 operations (~60,000 series, ~7 MB) building metric families afresh on
every scrape costs seconds. Here each agent's sample lines are rendered once, when the agent
first appears or its labels or op codes change (its ``version``), and kept; a scrape only
decides liveness, picks the cached lines and formats the heartbeat timestamps. The output is
the same as :class:`exporter.collector.AgentCollector`'s (the tests compare the two); the
exporter's own and the process metrics still come from prometheus_client.
"""

from __future__ import annotations

import gzip
import logging
import threading

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_LATEST
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from twisted.internet import threads
from twisted.python.failure import Failure
from twisted.web import resource, server

from exporter.collector import AGENT_HELP
from exporter.state import EXPIRED, AgentState

log = logging.getLogger("exporter.web")
EOF = b"# EOF\n"
TEXT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"  # the classic text format
OPENMETRICS_TYPE = OPENMETRICS_LATEST.encode()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _AgentLines:
    """One agent's rendered lines (bytes), for one version of it."""

    __slots__ = ("last_prefix", "ops_down", "ops_up", "up_0", "up_1", "version")

    def __init__(
        self, address: str, version: int, instance_id: str, agent_class: str, ops: dict
    ) -> None:
        labels = (
            f'agent_address="{_escape(address)}",instance_id="{_escape(instance_id)}",'
            f'agent_class="{_escape(agent_class)}"'
        )
        self.version = version
        self.up_1 = f"ocs_agent_up{{{labels}}} 1.0\n".encode()
        self.up_0 = f"ocs_agent_up{{{labels}}} 0.0\n".encode()
        self.last_prefix = f"ocs_agent_last_heartbeat_timestamp_seconds{{{labels}}} ".encode()
        self.ops_up = "".join(
            f'ocs_op_code{{{labels},operation="{_escape(op)}"}} {float(code)!r}\n'
            for op, code in ops.items()
        ).encode()
        self.ops_down = "".join(
            f'ocs_op_code{{{labels},operation="{_escape(op)}"}} {float(EXPIRED)!r}\n' for op in ops
        ).encode()


def _header(name: str) -> bytes:
    return f"# HELP {name} {AGENT_HELP[name]}\n# TYPE {name} gauge\n".encode()


HEADERS = {
    name: _header(name)
    for name in ("ocs_agent_up", "ocs_agent_last_heartbeat_timestamp_seconds", "ocs_op_code")
}


class AgentExposition:
    """Renders ``ocs_agent_up``, ``ocs_agent_last_heartbeat_timestamp_seconds`` and
    ``ocs_op_code`` in the text format (also valid inside OpenMetrics)."""

    def __init__(self, state: AgentState) -> None:
        self.state = state
        self._cache: dict[str, _AgentLines] = {}
        self._lock = threading.Lock()  # scrapes may run concurrently on the thread pool

    def render(self) -> bytes:
        rows = self.state.rows()
        up_lines: list[bytes] = [HEADERS["ocs_agent_up"]]
        last_lines: list[bytes] = [HEADERS["ocs_agent_last_heartbeat_timestamp_seconds"]]
        op_lines: list[bytes] = [HEADERS["ocs_op_code"]]
        add_up, add_last, add_op = up_lines.append, last_lines.append, op_lines.append
        with self._lock:
            cache = self._cache
            get = cache.get
            for address, version, instance_id, agent_class, ops, up, last in rows:
                lines = get(address)
                if lines is None or lines.version != version:
                    lines = cache[address] = _AgentLines(
                        address, version, instance_id, agent_class, ops
                    )
                if up:
                    add_up(lines.up_1)
                    add_op(lines.ops_up)
                else:
                    add_up(lines.up_0)
                    add_op(lines.ops_down)
                add_last(lines.last_prefix + repr(last).encode() + b"\n")
            if len(cache) > len(rows):  # forgotten agents drop out
                current = {row[0] for row in rows}
                for address in [a for a in cache if a not in current]:
                    del cache[address]
        return b"".join(up_lines) + b"".join(last_lines) + b"".join(op_lines)


class MetricsPage(resource.Resource):
    """The telemetry path: the exporter's own metrics from ``registry`` (prometheus_client)
    followed by the agent series; text format, or OpenMetrics when the scraper asks for it;
    gzip when accepted. Rendered on the reactor's thread pool."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry, agents: AgentExposition) -> None:
        super().__init__()
        self.registry = registry
        self.agents = agents

    def body(self, openmetrics: bool, compress: bool) -> bytes:
        if openmetrics:
            own = generate_openmetrics(self.registry)
            body = own[: -len(EOF)] + self.agents.render() + EOF
        else:
            body = generate_latest(self.registry) + self.agents.render()
        # Level 1: at 7 MB the default level 9 alone would take longer than the scrape target.
        return gzip.compress(body, compresslevel=1, mtime=0) if compress else body

    def render_GET(self, request: server.Request) -> object:
        accept = (request.getHeader("accept") or "").lower()
        openmetrics = "application/openmetrics-text" in accept
        compress = "gzip" in (request.getHeader("accept-encoding") or "").lower()
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def send(body: bytes) -> None:
            if gone:
                return
            request.setHeader(b"Content-Type", OPENMETRICS_TYPE if openmetrics else TEXT_TYPE)
            if compress:
                request.setHeader(b"Content-Encoding", b"gzip")
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            log.error("rendering the metrics failed: %s", failure.getTraceback())
            if not gone:
                request.setResponseCode(500)
                request.write(b"error rendering the metrics\n")
                request.finish()

        threads.deferToThread(self.body, openmetrics, compress).addCallbacks(send, failed)
        return server.NOT_DONE_YET
