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
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_LATEST
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from twisted.internet import threads
from twisted.python.failure import Failure
from twisted.web import resource, server

from exporter.collector import AGENT_FAMILIES, OP_STATE_FAMILY, expected_label
from exporter.state import EXPIRED, OPCODES, Agent, AgentState

log = logging.getLogger("exporter.web")
EOF = b"# EOF\n"
TEXT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"  # the classic text format
OPENMETRICS_TYPE = OPENMETRICS_LATEST.encode()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


FAMILIES = (*AGENT_FAMILIES, OP_STATE_FAMILY)
INDEX = {family[0]: i for i, family in enumerate(FAMILIES)}
LAST, GAP = (
    INDEX["ocs_agent_last_heartbeat_timestamp_seconds"],
    INDEX["ocs_agent_heartbeat_gap_seconds"],
)
# The families whose lines depend on whether the agent is up.
LIVE = frozenset(INDEX[name] for name in ("ocs_agent_up", "ocs_op_code", "ocs_op_state"))


def _headers(openmetrics: bool) -> list[bytes]:
    headers = []
    for family, kind, _, help in FAMILIES:
        name, shown = family, kind
        if not openmetrics:  # the classic text format: counters as name_total, no stateset
            name = family + "_total" if kind == "counter" else family
            shown = "gauge" if kind == "stateset" else kind
        headers.append(f"# HELP {name} {help}\n# TYPE {name} {shown}\n".encode())
    return headers


HEADERS = {False: _headers(False), True: _headers(True)}


def _lines(name: str, labels: str, samples: Iterable[tuple[str, float]]) -> bytes:
    """``name{labels,extra} value`` lines; ``extra`` is a rendered label list or empty."""
    return "".join(
        f"{name}{{{labels}{extra}}} {float(value)!r}\n" for extra, value in samples
    ).encode()


def _render(samples: dict[str, list], labels: str) -> tuple[tuple[int, bytes], ...]:
    """(family index, lines) for the families that have samples, in exposition order."""
    rendered = []
    for index, (family, kind, _, _) in enumerate(FAMILIES):
        sample_name = family + "_total" if kind == "counter" else family
        if samples.get(sample_name):
            rendered.append((index, _lines(sample_name, labels, samples[sample_name])))
    return tuple(rendered)


def _op(name: str) -> str:
    return f',operation="{_escape(name)}"'


class _AgentLines:
    """One agent's rendered lines, for one version of it: per family index, the bytes to
    emit while the agent is up; those for while it is down are made when first needed
    (most agents are up), sharing the families that do not depend on liveness."""

    __slots__ = ("_down", "gap_prefix", "labels", "last_prefix", "op_state", "ops", "up", "version")

    def __init__(self, agent: Agent, version: int, op_state: bool) -> None:
        labels = (
            f'agent_address="{_escape(agent.address)}",'
            f'instance_id="{_escape(agent.instance_id)}",'
            f'agent_class="{_escape(agent.agent_class)}"'
        )
        self.version = version
        self.labels = labels
        self.ops = agent.op_codes  # never mutated by the state: safe to keep
        self.op_state = op_state
        self._down: tuple[tuple[int, bytes], ...] | None = None
        self.last_prefix = f"ocs_agent_last_heartbeat_timestamp_seconds{{{labels}}} ".encode()
        self.gap_prefix = f"ocs_agent_heartbeat_gap_seconds{{{labels}}} ".encode()
        heard = agent.last_wall is not None
        static = {
            "ocs_agent_info": [
                (f',host="{_escape(agent.host)}",expected="{expected_label(agent.expected)}"', 1)
            ],
            "ocs_agent_start_timestamp_seconds": (
                [("", agent.start_time)] if agent.start_time is not None else []
            ),
            "ocs_agent_restarts_total": [("", agent.restarts)] if heard else [],
            "ocs_op_last_change_timestamp_seconds": [
                (_op(name), when) for name, when in agent.changed.items()
            ],
            "ocs_op_transitions_total": [
                (f'{_op(name)},to="{OPCODES[code]}"', count)
                for (name, code), count in agent.transitions.items()
            ],
            "ocs_op_info": [
                (f'{_op(name)},op_type="{_escape(kind)}"', 1)
                for name, kind in (agent.op_types or {}).items()
                if name in self.ops
            ],
        }
        self.up = self._merge(_render(static, labels), self._live(True))

    def _live(self, up: bool) -> tuple[tuple[int, bytes], ...]:
        codes = self.ops if up else dict.fromkeys(self.ops, EXPIRED)
        samples = {
            "ocs_agent_up": [("", 1 if up else 0)],
            "ocs_op_code": [(_op(name), code) for name, code in codes.items()],
        }
        if self.op_state:
            samples["ocs_op_state"] = [
                (f'{_op(name)},ocs_op_state="{state}"', number == code)
                for name, code in codes.items()
                for number, state in OPCODES.items()
            ]
        return _render(samples, self.labels)

    @staticmethod
    def _merge(*parts: tuple[tuple[int, bytes], ...]) -> tuple[tuple[int, bytes], ...]:
        return tuple(sorted((p for part in parts for p in part), key=lambda p: p[0]))

    @property
    def down(self) -> tuple[tuple[int, bytes], ...]:
        if self._down is None:
            static = tuple(p for p in self.up if p[0] not in LIVE)
            self._down = self._merge(static, self._live(False))
        return self._down


class AgentExposition:
    """Renders every agent family of :data:`exporter.collector.AGENT_FAMILIES` (and
    ``ocs_op_state`` when ``op_state``), in the text format or OpenMetrics (minus # EOF)."""

    def __init__(self, state: AgentState, op_state: bool = False) -> None:
        self.state = state
        self.op_state = op_state
        self._cache: dict[str, _AgentLines] = {}
        self._lock = threading.Lock()  # scrapes may run concurrently on the thread pool

    def render(self, openmetrics: bool = False) -> bytes:
        rows = self.state.rows()
        families: list[list[bytes]] = [[header] for header in HEADERS[openmetrics]]
        add_last, add_gap = families[LAST].append, families[GAP].append
        with self._lock:
            cache = self._cache
            get = cache.get
            for agent, version, up, last, gap in rows:
                lines = get(agent.address)
                if lines is None or lines.version != version:
                    lines = cache[agent.address] = _AgentLines(agent, version, self.op_state)
                for index, text in lines.up if up else lines.down:
                    families[index].append(text)
                if last is not None:
                    add_last(lines.last_prefix + repr(last).encode() + b"\n")
                    add_gap(lines.gap_prefix + repr(gap).encode() + b"\n")
            if len(cache) > len(rows):  # forgotten agents drop out
                current = {row[0].address for row in rows}
                for address in [a for a in cache if a not in current]:
                    del cache[address]
        if not self.op_state:
            families.pop()
        return b"".join(b"".join(family) for family in families)


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
            body = own[: -len(EOF)] + self.agents.render(openmetrics=True) + EOF
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
