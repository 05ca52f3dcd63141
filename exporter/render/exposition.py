"""Fast rendering of the agent series for ``/metrics``, in work proportional to what changed.

At 10,000 agents x 4 operations (~200,000 series, ~25 MB of text) building metric families
afresh and compressing them on every scrape costs seconds. Here agents are kept in blocks
of :data:`BLOCK_SIZE`; each block keeps, per family, its lines compressed
(:class:`exporter.render.deflate.Piece`) and where each agent's lines end. When a few of its agents
changed (their ``version``) or went up or down, their new lines are spliced into the
families whose text changed; else the block is made again. A scrape decides liveness,
checks each block, formats the heartbeat timestamps and gaps (the only values that move
every second) and joins the pieces into one gzip member; an uncompressed scrape inflates
them. The output is the same as :class:`testbed.reference.AgentCollector`'s (the tests
compare the two); the exporter's own and the process metrics still come from
prometheus_client.
"""

from __future__ import annotations

import gc
import threading
import zlib
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate

from exporter.render import deflate
from exporter.render.deflate import Piece
from exporter.render.families import AGENT_FAMILIES, OP_STATE_FAMILY, expected_label
from exporter.state import EXPIRED, OPCODES, Agent, AgentState, Row

BLOCK_SIZE = 32  # agents per block: small enough to redo, large enough to compress well
SPLICE_MAX = 4  # agents of a block changed at most for splicing their lines in


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


FAMILIES = (*AGENT_FAMILIES, OP_STATE_FAMILY)
INDEX = {family[0]: i for i, family in enumerate(FAMILIES)}
LAST, GAP = (
    INDEX["ocs_agent_last_heartbeat_timestamp_seconds"],
    INDEX["ocs_agent_heartbeat_gap_seconds"],
)
# The heartbeat times and gaps are formatted at every scrape, to the microsecond: "%.6f" is
# several times faster than the shortest repr, and the reference collector rounds alike.
LAST_LINE = b"ocs_agent_last_heartbeat_timestamp_seconds{%b} %%.6f\n"
GAP_LINE = b"ocs_agent_heartbeat_gap_seconds{%b} %%.6f\n"


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


_OP_LABELS: dict[str, str] = {}  # operation name -> its rendered label, for names seen


def _op(name: str) -> str:
    label = _OP_LABELS.get(name)
    if label is None:
        if len(_OP_LABELS) >= 100_000:  # names are few in practice; never grow unbounded
            _OP_LABELS.clear()
        label = _OP_LABELS[name] = f',operation="{_escape(name)}"'
    return label


def agent_labels(agent: Agent) -> str:
    return (
        f'agent_address="{_escape(agent.address)}",'
        f'instance_id="{_escape(agent.instance_id)}",'
        f'agent_class="{_escape(agent.agent_class)}"'
    )


def _family_index(family: str) -> int:
    return INDEX[family[: -len("_total")] if family.endswith("_total") else family]


(INFO, UP, START, RESTARTS, CODE, CHANGE, TRANSITIONS, OP_INFO, OP_STATE) = map(
    _family_index,
    (
        "ocs_agent_info",
        "ocs_agent_up",
        "ocs_agent_start_timestamp_seconds",
        "ocs_agent_restarts_total",
        "ocs_op_code",
        "ocs_op_last_change_timestamp_seconds",
        "ocs_op_transitions_total",
        "ocs_op_info",
        "ocs_op_state",
    ),
)


def agent_lines(agent: Agent, labels: str, up: bool, op_state: bool) -> dict[int, str]:
    """The agent's lines per family index, but for the heartbeat time and gap."""
    codes = agent.op_codes if up else dict.fromkeys(agent.op_codes, EXPIRED)
    lines = {
        INFO: f'ocs_agent_info{{{labels},host="{_escape(agent.host)}",'
        f'expected="{expected_label(agent.expected)}"}} 1.0\n',
        UP: f"ocs_agent_up{{{labels}}} {'1.0' if up else '0.0'}\n",
    }
    if agent.start_time is not None:
        start = float(agent.start_time)
        lines[START] = f"ocs_agent_start_timestamp_seconds{{{labels}}} {start!r}\n"
    if agent.last_wall is not None:
        lines[RESTARTS] = f"ocs_agent_restarts_total{{{labels}}} {float(agent.restarts)!r}\n"
    if codes:
        head = "ocs_op_code{" + labels
        lines[CODE] = "".join([f"{head}{_op(n)}}} {float(c)!r}\n" for n, c in codes.items()])
    if agent.changed:
        head = "ocs_op_last_change_timestamp_seconds{" + labels
        lines[CHANGE] = "".join(
            [f"{head}{_op(n)}}} {float(t)!r}\n" for n, t in agent.changed.items()]
        )
    if agent.transitions:
        head = "ocs_op_transitions_total{" + labels
        lines[TRANSITIONS] = "".join(
            [
                f'{head}{_op(n)},to="{OPCODES[c]}"}} {float(k)!r}\n'
                for (n, c), k in agent.transitions.items()
            ]
        )
    if agent.op_types:
        head = "ocs_op_info{" + labels
        info = [
            f'{head}{_op(n)},op_type="{_escape(kind)}"}} 1.0\n'
            for n, kind in agent.op_types.items()
            if n in codes
        ]
        if info:
            lines[OP_INFO] = "".join(info)
    if op_state and codes:
        head = "ocs_op_state{" + labels
        lines[OP_STATE] = "".join(
            [
                f'{head}{_op(n)},ocs_op_state="{state}"}} {"1.0" if number == c else "0.0"}\n'
                for n, c in codes.items()
                for number, state in OPCODES.items()
            ]
        )
    return lines


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A scrape makes a tuple per agent that lives until it ends: cyclic collections during
    it would move them all to older generations, and soon make a full collection (tens of
    ms at 10,000 agents) run inside a scrape. Paused, they die young; collections that
    other threads' allocations call for meanwhile run after it."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _inflate(piece: Piece | None) -> bytes:
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(piece.data) if piece else b""


class _Block:
    """Up to BLOCK_SIZE agents: per family index their lines compressed, where each agent's
    lines end in that text and a hash of them, and the format strings of the lines made at
    every scrape (one line, one value, per heard agent). ``key`` says which versions of its
    agents, up or down, all this is for."""

    __slots__ = (
        "addresses",
        "ends",
        "gap_format",
        "hashes",
        "heard",
        "heard_at",
        "key",
        "last_format",
        "pieces",
        "size",
    )

    def __init__(self) -> None:
        self.key: tuple[int, ...] = ()
        self.addresses: list[str] = []
        self.heard_at = b""  # per agent, 1 if it has a heartbeat time (a line in the formats)
        self.pieces: dict[int, Piece] = {}
        self.ends: dict[int, array[int]] = {}  # per family, where each agent's lines end
        self.hashes: dict[int, array[int]] = {}  # per family, hash() of each agent's lines
        self.last_format = self.gap_format = b""
        self.heard = False  # any agent with a heartbeat time
        self.size = 0  # agents assigned to it

    def update(self, rows: list[Row], key: tuple[int, ...], op_state: bool) -> set[int]:
        """Brings the block to ``key``; returns the family indices whose text changed. A few
        agents changed: their lines are spliced into the texts that changed; else (agents
        came or went, or many changed) the block is rendered again."""
        old = self.key
        if len(key) == len(old) and [row[0].address for row in rows] == self.addresses:
            moved = [i for i in range(len(key)) if key[i] != old[i]]
            if len(moved) <= SPLICE_MAX:
                return self._splice(rows, moved, key, op_state)
        return self._make(rows, key, op_state)

    def _make(self, rows: list[Row], key: tuple[int, ...], op_state: bool) -> set[int]:
        n = len(rows)
        texts: dict[int, list[bytes]] = {}
        ends: dict[int, array[int]] = {}
        hashes: dict[int, array[int]] = {}
        last, gap = [], []
        for position, (agent, _, up, heard_at, _) in enumerate(rows):
            text = agent_labels(agent)
            if heard_at is not None:
                labels = text.encode().replace(b"%", b"%%")
                last.append(LAST_LINE % labels)
                gap.append(GAP_LINE % labels)
            for index, lines in agent_lines(agent, text, up, op_state).items():
                if index not in texts:
                    texts[index], ends[index] = [], array("L", [0]) * n
                    hashes[index] = array("q", [0]) * n
                data = lines.encode()
                texts[index].append(data)
                ends[index][position] = len(data)
                hashes[index][position] = hash(data)
        for index, sizes in ends.items():
            ends[index] = array("L", accumulate(sizes))
        pieces = {index: deflate.compress(b"".join(parts)) for index, parts in texts.items()}
        before = self.pieces
        changed = {i for i in before.keys() | pieces.keys() if i not in before or i not in pieces}
        changed.update(i for i in before.keys() & pieces.keys() if before[i].data != pieces[i].data)
        self.pieces, self.ends, self.hashes = pieces, ends, hashes
        self.addresses = [row[0].address for row in rows]
        self.last_format, self.gap_format = b"".join(last), b"".join(gap)
        self.heard_at = bytes([row[3] is not None for row in rows])
        self.heard, self.key = bool(last), key
        return changed

    def _splice(
        self, rows: list[Row], moved: list[int], key: tuple[int, ...], op_state: bool
    ) -> set[int]:
        n = len(rows)
        edits: dict[int, list[tuple[int, bytes]]] = {}  # family -> (position, new lines)
        timed: dict[int, bytes | None] = {}  # position -> its labels, None: no time lines
        for position in moved:
            agent, _, up, heard_at, _ = rows[position]
            text = agent_labels(agent)
            timed[position] = text.encode() if heard_at is not None else None
            lines = agent_lines(agent, text, up, op_state)
            for index in lines.keys() | self.hashes.keys():
                data = lines[index].encode() if index in lines else b""
                hashes = self.hashes.get(index)
                if hash(data) != (hashes[position] if hashes else 0):
                    edits.setdefault(index, []).append((position, data))
        for index, changes in edits.items():
            text = _inflate(self.pieces.get(index))
            ends = self.ends.get(index) or array("L", [0]) * n
            hashes = self.hashes.get(index) or array("q", [0]) * n
            sizes = [end - start for start, end in zip([0, *ends], ends, strict=False)]
            out, done = [], 0
            for position, data in changes:  # in position order
                start = ends[position - 1] if position else 0
                out += (text[done:start], data)
                done = ends[position]
                sizes[position] = len(data)
                hashes[position] = hash(data)
            out.append(text[done:])
            text = b"".join(out)
            if text:
                self.pieces[index] = deflate.compress(text)
                self.ends[index], self.hashes[index] = array("L", accumulate(sizes)), hashes
            else:
                del self.pieces[index], self.ends[index], self.hashes[index]
        self._splice_formats(timed)
        self.key = key
        return set(edits)

    def _splice_formats(self, timed: dict[int, bytes | None]) -> None:
        """The moved agents' lines in the format strings, the others' kept as they are (a
        line ends at the first newline: label values have theirs escaped)."""
        last_lines = iter(self.last_format.split(b"\n"))
        gap_lines = iter(self.gap_format.split(b"\n"))
        last, gap, heard_at = [], [], bytearray(self.heard_at)
        for position, had in enumerate(self.heard_at):
            lines = (next(last_lines) + b"\n", next(gap_lines) + b"\n") if had else None
            if position in timed:
                labels = timed[position]
                lines = None
                if labels is not None:
                    labels = labels.replace(b"%", b"%%")
                    lines = (LAST_LINE % labels, GAP_LINE % labels)
                heard_at[position] = lines is not None
            if lines is not None:
                last.append(lines[0])
                gap.append(lines[1])
        self.last_format, self.gap_format = b"".join(last), b"".join(gap)
        self.heard_at, self.heard = bytes(heard_at), bool(last)


class _Lines(list):
    """Text written in parts, for an uncompressed scrape: the same calls as a Stream."""

    write = list.append

    def piece(self) -> bytes:
        return b"".join(self)


class AgentExposition:
    """Renders every agent family of :data:`exporter.render.families.AGENT_FAMILIES` (and
    ``ocs_op_state`` when ``op_state``), in the text format or OpenMetrics (minus # EOF)."""

    def __init__(self, state: AgentState, op_state: bool = False) -> None:
        self.state = state
        self.op_state = op_state
        self.families = len(FAMILIES) if op_state else len(FAMILIES) - 1
        self._blocks: list[_Block] = []
        self._block_of: dict[str, int] = {}  # agent address -> index in _blocks
        self._open: list[int] = []  # blocks with room; new agents go to the last
        self._families: dict[int, Piece] = {}  # family index -> every block's lines
        self._dirty: set[int] = set()  # families whose blocks changed since joined
        self._lock = threading.Lock()  # scrapes may run concurrently on the thread pool

    def parts(self, openmetrics: bool = False, compressed: bool = False) -> list[Piece | bytes]:
        """The agent families in exposition order: pieces (unchanged since some earlier
        scrape) and the heartbeat times and gaps made now, compressed as they are made
        when ``compressed`` (a gzip scrape), else as bytes."""
        with _collector_paused():
            # The rows are gone when the collector resumes.
            return self._parts(openmetrics, compressed)

    def _parts(self, openmetrics: bool, compressed: bool) -> list[Piece | bytes]:
        with self._lock:
            rows = self.state.rows()
            buckets = self._sort(rows)
            last: deflate.Stream | _Lines = deflate.Stream() if compressed else _Lines()
            gap: deflate.Stream | _Lines = deflate.Stream() if compressed else _Lines()
            for block, bucket in zip(self._blocks, buckets, strict=True):
                key = tuple([row[1] * 2 + row[2] for row in bucket])
                if key != block.key:
                    self._dirty |= block.update(bucket, key, self.op_state)
                if block.heard:
                    heard = [row for row in bucket if row[3] is not None]
                    last.write(block.last_format % tuple([row[3] for row in heard]))
                    gap.write(block.gap_format % tuple([row[4] for row in heard]))
            parts: list[Piece | bytes] = []
            for index, header in enumerate(HEADERS[openmetrics][: self.families]):
                parts.append(header)
                if index == LAST:
                    parts.append(last.piece())
                elif index == GAP:
                    parts.append(gap.piece())
                else:
                    parts.append(self._family(index))
            self._dirty.clear()
            return parts

    def _family(self, index: int) -> Piece:
        """The family's lines of every block as one piece, joined again only when one of
        the blocks' changed: a scrape then handles a few pieces, not thousands."""
        piece = self._families.get(index)
        if piece is None or index in self._dirty:
            piece = self._families[index] = deflate.concat(
                block.pieces[index] for block in self._blocks if index in block.pieces
            )
        return piece

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
