"""The agent families' lines in the exposition text, as the family table describes them.

The table (:mod:`exporter.render.families`) says what each family's samples are; here they
become lines of the text format, OpenMetrics's being the same but for the headers. Used by
the fast renderer (:mod:`exporter.render.exposition`), which keeps what it makes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from operator import attrgetter
from typing import NamedTuple

from prometheus_client.utils import floatToGoString

from exporter.interning import InternTable
from exporter.render import deflate
from exporter.render.deflate import Piece
from exporter.render.families import (
    FAMILIES,
    LABEL_FIELDS,
    MOVING_DIGITS,
    READ_FIELDS,
    Family,
    Sample,
)
from exporter.sessions import OpSession
from exporter.view import AgentRecord, AgentView, Durations


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


INDEX = {family.name: i for i, family in enumerate(FAMILIES)}
# The heartbeat times and gaps (a family's ``moving`` value) are formatted at every scrape
# into per-block format strings: "%.6f" is several times faster than the shortest repr.
MOVING = tuple((i, f) for i, f in enumerate(FAMILIES) if f.moving and f.value is not None)
MOVING_LINES = tuple(
    f"{family.sample_name}{{%b}} %%.{MOVING_DIGITS}f\n".encode() for _, family in MOVING
)
# The data times (a ``moving`` family's ``values``): zero or more lines per agent, whose
# labels change only with the record. They have their own per-block format strings rather
# than the heartbeat times' path made general: that path counts on one line per heard agent
# (it splices and fills lines by position), and a scrape there takes one value per agent,
# in C; here it takes a tuple per agent. Values are shown in full ("%r", as repr() shows
# every other family's): they are fewer, and exactly what the agent wrote. The feeds'
# message counts and last times are made the same way.
SAMPLED = tuple((i, f) for i, f in enumerate(FAMILIES) if f.moving and f.samples is not None)


def _headers(openmetrics: bool) -> list[Piece]:
    headers = []
    for family in FAMILIES:
        name, shown = family.name, family.kind
        if not openmetrics:  # the classic text format: counters as name_total, no stateset
            name = family.sample_name
            shown = "gauge" if family.kind == "stateset" else family.kind
        text = f"# HELP {name} {family.help}\n# TYPE {name} {shown}\n"
        headers.append(deflate.compress(text.encode()))
    return headers


HEADERS = {False: _headers(False), True: _headers(True)}


def _label_texts(family: Family) -> InternTable[tuple[str, ...] | str, str]:
    """The family's labels after the agent's, rendered, for the label values seen: the
    same few operation names and classes come back in every agent's lines."""

    def text(values: tuple[str, ...] | str) -> str:
        if isinstance(values, str):
            values = (values,)
        pairs = zip(family.labels, values, strict=True)
        return "".join([f',{name}="{_escape(value)}"' for name, value in pairs])

    return InternTable(text, 50_000)  # names are few in practice; never grow unbounded


# A histogram's bucket bounds, each as its le label and "} ", +Inf last, as prometheus_client
# writes them (Go's float format: le="1e+06").
_BOUNDS: InternTable[tuple[float, ...], tuple[str, ...]] = InternTable(
    lambda bounds: tuple(f',le="{floatToGoString(b)}"}} ' for b in (*bounds, math.inf)), 100
)


def _histogram(name: str, head: str, histogram: Durations) -> str:
    """A histogram's lines: ``head`` is the agent's and the family's labels, unclosed."""
    bounds, counts, total = histogram
    lines = [
        f"{name}_bucket{{{head}{le}{float(n)!r}\n"
        for le, n in zip(_BOUNDS[bounds], counts, strict=True)
    ]
    lines.append(f"{name}_count{{{head}}} {float(counts[-1])!r}\n")
    lines.append(f"{name}_sum{{{head}}} {float(total)!r}\n")
    return "".join(lines)


class Writer(NamedTuple):
    """How to write one family's lines of an agent (but for the moving families)."""

    index: int
    start: str  # the sample name and "{"
    samples: Callable[[AgentView], Collection[Sample]] | None
    value: Callable[[AgentView], float | None] | None
    label_texts: InternTable[tuple[str, ...] | str, str] | None
    states: list[tuple[int, str]] | None  # a stateset's: (number, its label and "} ")
    histogram: str | None  # a histogram's name
    reads: frozenset[str]  # as the family's

    @classmethod
    def of(cls, index: int, family: Family) -> Writer:
        states = None
        if family.states is not None:
            states = [(n, f',{family.name}="{state}"}} ') for n, state in family.states.items()]
        label_texts = _label_texts(family) if family.labels else None
        start = family.sample_name + "{"
        histogram = family.name if family.kind == "histogram" else None
        samples, value, reads = family.samples, family.value, family.reads
        return cls(index, start, samples, value, label_texts, states, histogram, reads)


_WRITERS = {i: Writer.of(i, family) for i, family in enumerate(FAMILIES) if not family.moving}


def writers(chosen: Sequence[Family]) -> tuple[Writer, ...]:
    """The writers of the ``chosen`` families (but the moving ones), in table order."""
    return tuple(_WRITERS[INDEX[f.name]] for f in chosen if INDEX[f.name] in _WRITERS)


def affected(
    writers: Sequence[Writer], old: AgentRecord, new: AgentRecord, up_changed: bool
) -> Sequence[Writer]:
    """The writers whose lines may differ between an agent's ``old`` and ``new`` record:
    a record's values are never changed, so a field holding the same object holds the same
    value. A session that moved on (say a run ended) touches the session families, not the
    agent's every line."""
    changed = changed_fields(old, new)
    if changed is None:
        return writers
    others = up_changed or not changed <= READ_FIELDS
    if "sessions" in changed:
        changed |= _session_changes(old.sessions, new.sessions)
    return [w for w in writers if (changed & w.reads if w.reads else others)]


def changed_fields(old: AgentRecord, new: AgentRecord) -> set[str] | None:
    """The fields of an agent's record that differ between ``old`` and ``new`` (a record's
    values are never changed: the same object, the same value); None when its labels do,
    which changes every line."""
    changed = {name for name, a, b in zip(AgentRecord._fields, old, new, strict=True) if a is not b}
    return None if changed & LABEL_FIELDS else changed


_SESSION_READS = tuple((f"sessions.{field}", attrgetter(field)) for field in OpSession._fields)


def _session_changes(old: dict[str, OpSession], new: dict[str, OpSession]) -> set[str]:
    """``sessions.<field>`` for each field of an operation's session that differs."""
    if old.keys() != new.keys():
        return {name for name, _ in _SESSION_READS}
    return {
        name
        for op, session in new.items()
        if session != old[op]
        for name, get in _SESSION_READS
        if get(session) != get(old[op])
    }


_SAMPLED_TEXTS = tuple(
    (family.sample_name + "{", _label_texts(family), family.samples, family.reads)
    for _, family in SAMPLED
)


def sampled_formats(
    agent: AgentView, labels: str, changed: set[str] | None = None
) -> list[bytes | None]:
    """Per family of SAMPLED, the agent's lines with a "%r" in place of each value: the
    values are its ``values`` in the same order, formatted in at each scrape. With
    ``changed`` (see :func:`changed_fields`), None for a family that reads none of them."""
    formats: list[bytes | None] = []
    for start, texts, samples_of, reads in _SAMPLED_TEXTS:
        if reads and changed is not None and not changed & reads:
            formats.append(None)
            continue
        head = (start + labels).replace("%", "%%")
        lines = [
            f"{head}{texts[values].replace('%', '%%')}}} %r\n"
            for values, _ in samples_of(agent)  # type: ignore[misc]
        ]
        formats.append("".join(lines).encode())
    return formats


def agent_labels(agent: AgentView) -> str:
    record = agent.record
    return (
        f'agent_address="{_escape(agent.address)}",'
        f'instance_id="{_escape(record.instance_id)}",'
        f'agent_class="{_escape(record.agent_class)}"'
    )


def agent_lines(agent: AgentView, labels: str, writers: Sequence[Writer]) -> dict[int, str]:
    """The agent's lines per family index, but for the moving families'."""
    lines = {}
    for index, start, samples_of, value_of, texts, states, histogram, _ in writers:
        if value_of is not None:
            value = value_of(agent)
            if value is not None:
                lines[index] = f"{start}{labels}}} {float(value)!r}\n"
            continue
        samples = samples_of(agent)  # type: ignore[misc]
        if not samples:
            continue
        head = start + labels
        if histogram is not None:
            lines[index] = "".join(
                [_histogram(histogram, labels + texts[values], value) for values, value in samples]
            )
        elif states is not None:  # a series per state; the sample's value says which is true
            lines[index] = "".join(
                [
                    f"{head}{texts[values]}{state}{'1.0' if number == value else '0.0'}\n"
                    for values, value in samples
                    for number, state in states
                ]
            )
        else:
            lines[index] = "".join(
                [f"{head}{texts[values]}}} {float(value)!r}\n" for values, value in samples]
            )
    return lines
