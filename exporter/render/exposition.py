"""Fast rendering of the agent series for ``/metrics``, in work proportional to what changed.

At 10,000 agents x 4 operations (hundreds of thousands of series, tens of MB of text)
building metric families afresh and compressing them on every scrape costs seconds. Here
agents are kept in blocks of :data:`BLOCK_SIZE`; each block keeps, per family, its lines
compressed (:class:`exporter.render.deflate.Piece`) and where each agent's lines end. When
some of its agents changed (a new record) or went up or down, their new lines of the
families the change touches are spliced into the texts that changed (a session that moved
on touches the session families only); when agents came or went, the block is made again.
A scrape takes the state's snapshot, checks each block, formats the values that move
without a new record (the heartbeat times and gaps, and the operations' data times, which
move at every status of a running process asked again) and joins the pieces into one gzip
member; an uncompressed scrape inflates them. What the lines say comes from the family
table (:mod:`exporter.render.families`), as for :class:`testbed.reference.AgentCollector`,
whose output this one equals (the tests compare the two); the exporter's own and the
process metrics still come from prometheus_client.
"""

from __future__ import annotations

import gc
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import accumulate, chain
from operator import itemgetter

from exporter.render import deflate
from exporter.render.deflate import Piece
from exporter.render.families import families
from exporter.render.lines import (
    HEADERS,
    INDEX,
    MOVING,
    MOVING_LINES,
    SAMPLED,
    Writer,
    affected,
    agent_labels,
    agent_lines,
    changed_fields,
    sampled_formats,
    writers,
)
from exporter.state import AgentState
from exporter.view import AgentRecord, AgentView

BLOCK_SIZE = 32  # agents per block: small enough to redo, large enough to compress well
# The line counts of a family none of a block's agents has lines of (most have no feeds):
# shared by such blocks, never changed (a block gives the family its own when it needs one).
_NO_COUNTS = array("I")


# What a block's lines are made of: its agents' records (a change makes a new one, so the
# same objects mean the same lines) and whether each is up.
Key = tuple[tuple[AgentRecord, ...], bytes]
ADDRESS, RECORD, UP = (itemgetter(AgentView._fields.index(f)) for f in ("address", "record", "up"))


def _same_address(new: AgentRecord, old: AgentRecord) -> bool:
    return new.address == old.address


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


def _relined(text: bytes, counts: Sequence[int], new: dict[int, bytes]) -> bytes:
    """``text``, each agent's ``counts[position]`` lines in turn, with the lines of the
    agents in ``new`` replaced by theirs (a line ends at the first newline: label values
    have theirs escaped)."""
    lines = text.split(b"\n")
    out, start = [], 0
    for position, count in enumerate(counts):
        made = new.get(position)
        if made is not None:
            out.append(made)
        elif count:
            out.append(b"\n".join(lines[start : start + count]) + b"\n")
        start += count
    return b"".join(out)


class _Block:
    """Up to BLOCK_SIZE agents: per family index their lines compressed and where each
    agent's lines end in that text, and per moving family the format string of its lines
    (heartbeat times: one line, one value, per heard agent; data times: one per operation
    with one, as many per agent as ``sampled_counts`` says, an empty array when none has
    any: most agents have no feeds). ``key`` says which versions of
    its agents, up or down, all this is for."""

    __slots__ = ("ends", "formats", "heard", "heard_at", "key", "pieces", "sampled_counts")
    __slots__ += ("sampled_formats", "size")

    def __init__(self) -> None:
        self.key: Key = ((), b"")
        self.heard_at = b""  # per agent, 1 if heard (it has a line in the formats)
        self.pieces: dict[int, Piece] = {}
        # Per family, where each agent's lines end: 4 bytes each, a block's text is small.
        self.ends: dict[int, array[int]] = {}
        self.formats = [b""] * len(MOVING)  # per moving family
        self.heard = 0  # agents heard
        # Per family of SAMPLED (data times), the agents' lines' format and how many each has.
        self.sampled_formats = [b""] * len(SAMPLED)
        self.sampled_counts = [_NO_COUNTS for _ in SAMPLED]
        self.size = 0  # agents assigned to it

    def update(self, views: Sequence[AgentView], key: Key, writers: Sequence[Writer]) -> set[int]:
        """Brings the block to ``key``; returns the family indices whose text changed. The
        same agents: the changed ones' lines are spliced into the texts that changed (even
        when all changed, that redoes only the families the changes touch); else (agents
        came or went) the block is rendered again."""
        (records, ups), (old, old_ups) = key, self.key
        if len(records) == len(old) and all(map(_same_address, records, old)):
            moved = [
                i
                for i, record in enumerate(records)
                if record is not old[i] or ups[i] != old_ups[i]
            ]
            return self._splice(views, moved, key, writers)
        return self._make(views, key, writers)

    def _make(self, views: Sequence[AgentView], key: Key, writers: Sequence[Writer]) -> set[int]:
        n = len(views)
        texts: dict[int, list[bytes]] = {}
        ends: dict[int, array[int]] = {}
        formats: list[list[bytes]] = [[] for _ in MOVING]
        sampled: list[list[bytes]] = [[] for _ in SAMPLED]
        counts = [array("I") for _ in SAMPLED]
        for position, agent in enumerate(views):
            text = agent_labels(agent)
            for lines, out, count in zip(
                sampled_formats(agent, text), sampled, counts, strict=True
            ):
                out.append(lines)  # type: ignore[arg-type]
                count.append(lines.count(b"\n"))  # type: ignore[union-attr]
            if agent.last_heartbeat is not None:
                labels = text.encode().replace(b"%", b"%%")
                for line, out in zip(MOVING_LINES, formats, strict=True):
                    out.append(line % labels)
            for index, lines in agent_lines(agent, text, writers).items():
                if index not in texts:
                    texts[index], ends[index] = [], array("I", [0]) * n
                data = lines.encode()
                texts[index].append(data)
                ends[index][position] = len(data)
        for index, sizes in ends.items():
            ends[index] = array("I", accumulate(sizes))
        pieces = {index: deflate.compress(b"".join(parts)) for index, parts in texts.items()}
        before = self.pieces
        changed = {i for i in before.keys() | pieces.keys() if i not in before or i not in pieces}
        changed.update(i for i in before.keys() & pieces.keys() if before[i].data != pieces[i].data)
        self.pieces, self.ends = pieces, ends
        self.formats = [b"".join(lines) for lines in formats]
        self.sampled_formats = [b"".join(lines) for lines in sampled]
        # A family no agent of the block has lines of keeps no count per agent.
        self.sampled_counts = [c if any(c) else _NO_COUNTS for c in counts]
        self.heard_at = bytes([agent.last_heartbeat is not None for agent in views])
        self.heard, self.key = sum(self.heard_at), key
        return changed

    def _splice(
        self,
        views: Sequence[AgentView],
        moved: list[int],
        key: Key,
        writers: Sequence[Writer],
    ) -> set[int]:
        made: dict[int, dict[int, bytes]] = {}  # family -> position -> its new lines
        timed: dict[int, bytes | None] = {}  # position -> its labels, None: not heard
        sampled: list[dict[int, bytes]] = [{} for _ in SAMPLED]  # as made, per SAMPLED
        (records, ups), (old, old_ups) = key, self.key
        for position in moved:
            agent, before, record = views[position], old[position], records[position]
            text = agent_labels(agent)
            heard = agent.last_heartbeat is not None
            labelled = (before.instance_id, before.agent_class) != (
                record.instance_id,
                record.agent_class,
            )
            if labelled or heard != self.heard_at[position]:
                timed[position] = text.encode() if heard else None  # its time lines change
            changed = changed_fields(before, record)
            for new, lines in zip(sampled, sampled_formats(agent, text, changed), strict=True):
                if lines is not None:  # else the record changed none of its lines
                    new[position] = lines
            chosen = affected(writers, before, record, ups[position] != old_ups[position])
            lines = agent_lines(agent, text, chosen)
            for index in [writer.index for writer in chosen]:
                made.setdefault(index, {})[position] = (
                    lines[index].encode() if index in lines else b""
                )
        edited = {index for index, new in made.items() if self._splice_family(index, new)}
        if timed:
            self._splice_formats(timed)
        for i, new in enumerate(sampled):
            if new:
                counts = self.sampled_counts[i]
                if not counts:  # none had lines: a count per agent from now on
                    counts = self.sampled_counts[i] = array("I", bytes(4 * len(records)))
                self.sampled_formats[i] = _relined(self.sampled_formats[i], counts, new)
                for position, lines in new.items():
                    counts[position] = lines.count(b"\n")
        self.key = key
        return edited

    def _splice_family(self, index: int, new: dict[int, bytes]) -> bool:
        """The agents' ``new`` lines (by position) in the family's text, compressed again
        unless they equal the old ones; whether they did not."""
        ends = self.ends.get(index) or array("I", [0]) * len(self.key[0])
        text = None
        for position, data in new.items():
            start = ends[position - 1] if position else 0
            if len(data) == ends[position] - start:
                if text is None:
                    text = _inflate(self.pieces.get(index))
                if text[start : ends[position]] == data:
                    continue
            break
        else:
            return False  # every agent's lines as they were
        if text is None:
            text = _inflate(self.pieces.get(index))
        sizes = [end - start for start, end in zip([0, *ends], ends, strict=False)]
        out, done = [], 0
        for position in sorted(new):
            data = new[position]
            start = ends[position - 1] if position else 0
            out += (text[done:start], data)
            done = ends[position]
            sizes[position] = len(data)
        out.append(text[done:])
        text = b"".join(out)
        if text:
            self.pieces[index] = deflate.compress(text)
            self.ends[index] = array("I", accumulate(sizes))
        else:
            self.pieces.pop(index, None)
            self.ends.pop(index, None)
        return True

    def _splice_formats(self, timed: dict[int, bytes | None]) -> None:
        """The moved agents' lines in the heartbeat times' format strings, the others' kept
        as they are: one line per heard agent."""
        heard_at = bytearray(self.heard_at)
        for position, labels in timed.items():
            heard_at[position] = labels is not None
        formats = []
        for line, text in zip(MOVING_LINES, self.formats, strict=True):
            new = {
                position: b"" if labels is None else line % labels.replace(b"%", b"%%")
                for position, labels in timed.items()
            }
            formats.append(_relined(text, self.heard_at, new))
        self.formats = formats
        self.heard_at, self.heard = bytes(heard_at), sum(heard_at)


def _picker(positions: list[int]) -> Callable[[Sequence[AgentView]], tuple[AgentView, ...]]:
    """A function picking the items at ``positions``, as a tuple, in C: a slice when they
    follow each other, as agents that came in order do (it holds no position per agent)."""
    if len(positions) > 1 and positions[-1] - positions[0] == len(positions) - 1:
        return itemgetter(slice(positions[0], positions[-1] + 1))
    if len(positions) == 1:
        position = positions[0]
        return lambda views: (views[position],)
    return itemgetter(*positions) if positions else lambda _: ()


class _Text(list):
    """Text written in parts, for an uncompressed scrape: the same calls as a Stream."""

    write = list.append

    def piece(self) -> bytes:
        return b"".join(self)


class AgentExposition:
    """Renders every agent family of :data:`exporter.render.families.AGENT_FAMILIES` (and
    ``ocs_op_state`` when ``op_state``, the duration histogram when the state keeps one),
    in the text format or OpenMetrics (minus # EOF)."""

    def __init__(self, state: AgentState, op_state: bool = False) -> None:
        self.state = state
        self.op_state = op_state
        chosen = families(op_state, durations=state.durations is not None)
        self.writers = writers(chosen)
        self.families = [INDEX[family.name] for family in chosen]  # indices in FAMILIES
        self._blocks: list[_Block] = []
        self._block_of: dict[str, int] = {}  # agent address -> index in _blocks
        self._addresses: list[str] = []  # the agents of the last scrape, in order
        self._pickers: list[Callable[[Sequence[AgentView]], tuple[AgentView, ...]]] = []
        self._open: list[int] = []  # blocks with room; new agents go to the last
        self._families: dict[int, Piece] = {}  # family index -> every block's lines
        self._dirty: set[int] = set()  # families whose blocks changed since joined
        self._lock = threading.Lock()  # scrapes may run concurrently on the thread pool

    def parts(self, openmetrics: bool = False, compressed: bool = False) -> list[Piece | bytes]:
        """The agent families in exposition order: pieces (unchanged since some earlier
        scrape) and the moving families' lines made now, compressed as they are made when
        ``compressed`` (a gzip scrape), else as bytes."""
        with _collector_paused():
            # The views are gone when the collector resumes.
            return self._parts(openmetrics, compressed)

    def _parts(self, openmetrics: bool, compressed: bool) -> list[Piece | bytes]:
        with self._lock:
            views = self.state.snapshot().agents
            buckets = self._sort(views)
            moving = [deflate.Stream() if compressed else _Text() for _ in MOVING]
            values = [family.value for _, family in MOVING]
            sampled = [deflate.Stream() if compressed else _Text() for _ in SAMPLED]
            fills = [family.values for _, family in SAMPLED]
            for block, bucket in zip(self._blocks, buckets, strict=True):
                key = (tuple(map(RECORD, bucket)), bytes(map(UP, bucket)))
                if key != block.key:
                    self._dirty |= block.update(bucket, key, self.writers)
                if block.heard:
                    heard = bucket
                    if block.heard < len(bucket):
                        heard = [agent for agent in bucket if agent.last_heartbeat is not None]
                    for line, value, out in zip(block.formats, values, moving, strict=True):
                        out.write(line % tuple(map(value, heard)))
                for line, fill, out in zip(block.sampled_formats, fills, sampled, strict=True):
                    if line:
                        times = chain.from_iterable(map(fill, bucket))  # type: ignore[arg-type]
                        out.write(line % tuple(times))
            made = {
                index: out.piece()
                for (index, _), out in zip((*MOVING, *SAMPLED), moving + sampled, strict=True)
            }
            parts: list[Piece | bytes] = []
            headers = HEADERS[openmetrics]
            for index in self.families:
                parts.append(headers[index])
                parts.append(made[index] if index in made else self._family(index))
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

    def _sort(self, views: tuple[AgentView, ...]) -> list[tuple[AgentView, ...]]:
        """The views per block. While the same agents come in the same order (the state
        keeps its order; agents come and go rarely) the views are picked per block as
        last time, without looking at them one by one."""
        addresses = list(map(ADDRESS, views))
        if addresses != self._addresses:
            self._pickers = [_picker(positions) for positions in self._assign(addresses)]
            self._addresses = addresses
        return [pick(views) for pick in self._pickers]

    def _assign(self, addresses: list[str]) -> list[list[int]]:
        """Each block's agents' positions among ``addresses``, assigning new agents to
        blocks with room; agents that are gone (forgotten) leave theirs."""
        block_of = self._block_of
        indices = list(map(block_of.get, addresses))
        if len(addresses) - indices.count(None) < len(block_of):
            self._release(set(addresses))
        positions: list[list[int]] = [[] for _ in self._blocks]
        for position, (address, known) in enumerate(zip(addresses, indices, strict=True)):
            index = known
            if index is None:
                index = block_of[address] = self._room()
                if index == len(positions):
                    positions.append([])
            positions[index].append(position)
        return positions

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
