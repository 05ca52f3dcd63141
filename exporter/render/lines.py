"""The agent families' lines in the exposition text, as the family table describes them.

The table (:mod:`exporter.render.families`) says what each family's samples are; here they
become lines of the text format, OpenMetrics's being the same but for the headers. Used by
the fast renderer (:mod:`exporter.render.exposition`), which keeps what it makes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

from exporter.interning import InternTable
from exporter.render import deflate
from exporter.render.deflate import Piece
from exporter.render.families import (
    AGENT_FAMILIES,
    MOVING_DIGITS,
    OP_STATE_FAMILY,
    Family,
    Sample,
    families,
)
from exporter.view import AgentView


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


FAMILIES = (*AGENT_FAMILIES, OP_STATE_FAMILY)
INDEX = {family.name: i for i, family in enumerate(FAMILIES)}
# The heartbeat times and gaps (a family's ``moving`` value) are formatted at every scrape
# into per-block format strings: "%.6f" is several times faster than the shortest repr.
MOVING = tuple((i, family) for i, family in enumerate(FAMILIES) if family.moving)
MOVING_LINES = tuple(
    f"{family.sample_name}{{%b}} %%.{MOVING_DIGITS}f\n".encode() for _, family in MOVING
)


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


class Writer(NamedTuple):
    """How to write one family's lines of an agent (but for the moving families)."""

    index: int
    start: str  # the sample name and "{"
    samples: Callable[[AgentView], Collection[Sample]] | None
    value: Callable[[AgentView], float | None] | None
    label_texts: InternTable[tuple[str, ...] | str, str] | None
    states: list[tuple[int, str]] | None  # a stateset's: (number, its label and "} ")

    @classmethod
    def of(cls, index: int, family: Family) -> Writer:
        states = None
        if family.states is not None:
            states = [(n, f',{family.name}="{state}"}} ') for n, state in family.states.items()]
        label_texts = _label_texts(family) if family.labels else None
        start = family.sample_name + "{"
        return cls(index, start, family.samples, family.value, label_texts, states)


_WRITERS = [Writer.of(i, family) for i, family in enumerate(FAMILIES) if not family.moving]
WRITERS = {  # without and with ocs_op_state
    op_state: tuple(w for w in _WRITERS if FAMILIES[w.index] in families(op_state))
    for op_state in (False, True)
}


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
    for index, start, samples_of, value_of, texts, states in writers:
        if value_of is not None:
            value = value_of(agent)
            if value is not None:
                lines[index] = f"{start}{labels}}} {float(value)!r}\n"
            continue
        samples = samples_of(agent)  # type: ignore[misc]
        if not samples:
            continue
        head = start + labels
        if states is not None:  # a series per state; the sample's value says which is true
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
