"""The status page read as a browser reads it: the sessions table of each agent, as text,
from the page the exporter renders or from the DOM headless Chromium dumps."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import NamedTuple

# A message no agent should be able to turn into markup: a script, an ampersand, an element
# with a handler, quotes of both kinds. Either would rename the page if it ran (no alert():
# a dialog would hang headless Chromium instead of failing the test).
HOSTILE = "<script>document.title='pwned'</script> & <img src=x onerror=\"document.title='x'\">"


class SessionRow(NamedTuple):
    """One operation's session row: each cell's text, the messages as (time, text), and
    the names of the elements inside the row."""

    cells: list[str]
    messages: list[tuple[str, str]]
    elements: set[str]


class _Sessions(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: dict[tuple[str, str], SessionRow] = {}
        self.agent: str | None = None
        self.row: SessionRow | None = None
        self.cell: list[str] | None = None
        self.time: list[str] | None = None
        self.in_message = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and "data-sessions-of" in attributes:
            self.agent = attributes["data-sessions-of"]
        elif tag == "tr" and "data-operation" in attributes and self.agent is not None:
            self.row = SessionRow([], [], set())
            self.rows[self.agent, attributes["data-operation"] or ""] = self.row
        elif self.row is not None:
            self.row.elements.add(tag)
            if tag == "td":
                self.cell = []
            elif tag == "li":
                self.row.messages.append(("", ""))
                self.in_message = True
            elif tag == "time" and self.in_message:
                self.time = []

    def handle_endtag(self, tag: str) -> None:
        if self.row is None:
            if tag == "table":
                self.agent = None
        elif tag == "td" and self.cell is not None:
            self.row.cells.append("".join(self.cell))
            self.cell = None
        elif tag == "time" and self.time is not None:
            self.row.messages[-1] = ("".join(self.time), "")
            self.time = None
        elif tag == "li":
            self.in_message = False
        elif tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.time is not None:
            self.time.append(data)
        elif self.row is not None and self.in_message:
            when, text = self.row.messages[-1]
            self.row.messages[-1] = (when, text + data)


def session_rows(html: str) -> dict[tuple[str, str], SessionRow]:
    """(instance id, operation) -> its session row, for every session on the page."""
    parser = _Sessions()
    parser.feed(html)
    parser.close()
    return parser.rows
