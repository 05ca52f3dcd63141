"""Fast rendering of the agent series for ``/metrics``, in work proportional to what changed.

At 10,000 agents x 4 operations (~200,000 series, ~25 MB of text) building metric families
afresh and compressing them on every scrape costs seconds. Here agents are kept in blocks
of :data:`BLOCK_SIZE`; each block keeps, per family, its lines compressed
(:class:`exporter.deflate.Piece`), made again only when one of its agents changed (its
``version``) or went up or down. A scrape decides liveness, checks each block, formats the
heartbeat timestamps and gaps (the only values that move every second) and joins the
pieces into one gzip member; an uncompressed scrape inflates them. The output is the same
as :class:`exporter.collector.AgentCollector`'s (the tests compare the two); the exporter's
own and the process metrics still come from prometheus_client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_LATEST
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.web import resource, server

from exporter import deflate
from exporter.collector import AGENT_FAMILIES, OP_STATE_FAMILY, expected_label
from exporter.deflate import Piece
from exporter.state import EXPIRED, OPCODES, Agent, AgentState, Row

log = logging.getLogger("exporter.web")
EOF = b"# EOF\n"
TEXT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"  # the classic text format
OPENMETRICS_TYPE = OPENMETRICS_LATEST.encode()
BLOCK_SIZE = 32  # agents per block: small enough to redo, large enough to compress well


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


FAMILIES = (*AGENT_FAMILIES, OP_STATE_FAMILY)
INDEX = {family[0]: i for i, family in enumerate(FAMILIES)}
LAST, GAP = (
    INDEX["ocs_agent_last_heartbeat_timestamp_seconds"],
    INDEX["ocs_agent_heartbeat_gap_seconds"],
)
LAST_LINE = b"ocs_agent_last_heartbeat_timestamp_seconds{%b} %r\n"
GAP_LINE = b"ocs_agent_heartbeat_gap_seconds{%b} %r\n"


def _headers(openmetrics: bool) -> list[Piece]:
    headers = []
    for family, kind, _, help in FAMILIES:
        name, shown = family, kind
        if not openmetrics:  # the classic text format: counters as name_total, no stateset
            name = family + "_total" if kind == "counter" else family
            shown = "gauge" if kind == "stateset" else kind
        headers.append(deflate.compress(f"# HELP {name} {help}\n# TYPE {name} {shown}\n".encode()))
    return headers


HEADERS = {False: _headers(False), True: _headers(True)}


def _lines(name: str, labels: str, samples: Iterable[tuple[str, float]]) -> bytes:
    """``name{labels,extra} value`` lines; ``extra`` is a rendered label list or empty."""
    return "".join(
        f"{name}{{{labels}{extra}}} {float(value)!r}\n" for extra, value in samples
    ).encode()


def _op(name: str) -> str:
    return f',operation="{_escape(name)}"'


def agent_labels(agent: Agent) -> str:
    return (
        f'agent_address="{_escape(agent.address)}",'
        f'instance_id="{_escape(agent.instance_id)}",'
        f'agent_class="{_escape(agent.agent_class)}"'
    )


def agent_lines(agent: Agent, labels: str, up: bool, op_state: bool) -> dict[int, bytes]:
    """The agent's lines per family index, but for the heartbeat time and gap."""
    heard = agent.last_wall is not None
    codes = agent.op_codes if up else dict.fromkeys(agent.op_codes, EXPIRED)
    samples: dict[str, list] = {
        "ocs_agent_info": [
            (f',host="{_escape(agent.host)}",expected="{expected_label(agent.expected)}"', 1)
        ],
        "ocs_agent_up": [("", 1 if up else 0)],
        "ocs_agent_start_timestamp_seconds": (
            [("", agent.start_time)] if agent.start_time is not None else []
        ),
        "ocs_agent_restarts_total": [("", agent.restarts)] if heard else [],
        "ocs_op_code": [(_op(name), code) for name, code in codes.items()],
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
            if name in codes
        ],
    }
    if op_state:
        samples["ocs_op_state"] = [
            (f'{_op(name)},ocs_op_state="{state}"', number == code)
            for name, code in codes.items()
            for number, state in OPCODES.items()
        ]
    rendered = {}
    for index, (family, kind, _, _) in enumerate(FAMILIES):
        sample_name = family + "_total" if kind == "counter" else family
        if samples.get(sample_name):
            rendered[index] = _lines(sample_name, labels, samples[sample_name])
    return rendered


class _Block:
    """Up to BLOCK_SIZE agents: per family index their lines compressed, and the agents'
    labels for the lines made at every scrape. ``key`` says which versions of its agents,
    up or down, the pieces are for."""

    __slots__ = ("key", "labels", "pieces", "size")

    def __init__(self) -> None:
        self.key: tuple[int, ...] | None = None
        self.pieces: dict[int, Piece] = {}
        self.labels: list[bytes] = []
        self.size = 0  # agents assigned to it

    def make(self, rows: list[Row], key: tuple[int, ...], op_state: bool) -> None:
        texts: dict[int, list[bytes]] = {}
        labels = []
        for agent, _, up, _, _ in rows:
            text = agent_labels(agent)
            labels.append(text.encode())
            for index, lines in agent_lines(agent, text, up, op_state).items():
                texts.setdefault(index, []).append(lines)
        self.pieces = {index: deflate.compress(b"".join(parts)) for index, parts in texts.items()}
        self.labels = labels
        self.key = key


class AgentExposition:
    """Renders every agent family of :data:`exporter.collector.AGENT_FAMILIES` (and
    ``ocs_op_state`` when ``op_state``), in the text format or OpenMetrics (minus # EOF)."""

    def __init__(self, state: AgentState, op_state: bool = False) -> None:
        self.state = state
        self.op_state = op_state
        self.families = len(FAMILIES) if op_state else len(FAMILIES) - 1
        self._blocks: list[_Block] = []
        self._block_of: dict[str, int] = {}  # agent address -> index in _blocks
        self._open: list[int] = []  # blocks with room; new agents go to the last
        self._lock = threading.Lock()  # scrapes may run concurrently on the thread pool

    def parts(self, openmetrics: bool = False) -> list[Piece | bytes]:
        """The agent families as pieces (unchanged since some earlier scrape) and bytes
        (made now), in exposition order."""
        rows = self.state.rows()
        with self._lock:
            buckets = self._sort(rows)
            last: list[bytes] = []
            gap: list[bytes] = []
            add_last, add_gap = last.append, gap.append
            for block, bucket in zip(self._blocks, buckets, strict=True):
                key = tuple([row[1] * 2 + row[2] for row in bucket])
                if key != block.key:
                    block.make(bucket, key, self.op_state)
                for row, labels in zip(bucket, block.labels, strict=True):
                    if row[3] is not None:
                        add_last(LAST_LINE % (labels, row[3]))
                        add_gap(GAP_LINE % (labels, row[4]))
            parts: list[Piece | bytes] = []
            for index, header in enumerate(HEADERS[openmetrics][: self.families]):
                parts.append(header)
                if index == LAST:
                    parts.append(b"".join(last))
                elif index == GAP:
                    parts.append(b"".join(gap))
                else:
                    parts.extend(
                        block.pieces[index] for block in self._blocks if index in block.pieces
                    )
            return parts

    def render(self, openmetrics: bool = False) -> bytes:
        return deflate.text_of(self.parts(openmetrics))

    def _sort(self, rows: list[Row]) -> list[list[Row]]:
        """The rows per block, assigning new agents to blocks with room; agents that are
        gone (forgotten) leave theirs."""
        block_of = self._block_of
        indices = [block_of.get(row[0].address) for row in rows]
        if len(rows) - indices.count(None) < len(block_of):
            self._release({row[0].address for row in rows})
        buckets: list[list[Row]] = [[] for _ in self._blocks]
        for row, known in zip(rows, indices, strict=True):
            index = known
            if index is None:
                index = block_of[row[0].address] = self._room()
                if index == len(buckets):
                    buckets.append([])
            buckets[index].append(row)
        return buckets

    def _room(self) -> int:
        while self._open and self._blocks[self._open[-1]].size >= BLOCK_SIZE:
            self._open.pop()
        if not self._open:
            self._open.append(len(self._blocks))
            self._blocks.append(_Block())
        index = self._open[-1]
        self._blocks[index].size += 1
        return index

    def _release(self, current: set[str]) -> None:
        for address in [a for a in self._block_of if a not in current]:
            index = self._block_of.pop(address)
            self._blocks[index].size -= 1
            if index not in self._open:
                self._open.insert(0, index)


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
    ) -> None:
        super().__init__()
        self.registry = registry
        self.agents = agents
        self.run = run

    def body(self, openmetrics: bool, compress: bool) -> bytes:
        if openmetrics:
            own = generate_openmetrics(self.registry)
            parts = [own[: -len(EOF)], *self.agents.parts(openmetrics=True), EOF]
        else:
            parts = [generate_latest(self.registry), *self.agents.parts()]
        return deflate.gzip_member(parts) if compress else deflate.text_of(parts)

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

        self.run(self.body, openmetrics, compress).addCallbacks(send, failed)
        return server.NOT_DONE_YET
