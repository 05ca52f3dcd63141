"""``/``: the status page. Every agent, down ones first, a page of them at a time; each
operation's state, and its latest session (status, outcome, times, last messages); each
feed's messages; whether it should run and who decided; a HostManager's files and orphans.
Plain HTML and CSS, no script; every string that comes from an agent is escaped."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from html import escape as esc

from twisted.web import resource, server

from exporter import __version__
from exporter.heartbeat import OPCODES
from exporter.sessions import OpSession
from exporter.state import AgentState
from exporter.view import HOSTMANAGER, AgentView

PAGE_SIZE = 100  # agents per page: the page's cost stays bounded however many there are

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
tr.sessions>td{padding:0 .6rem .6rem 2rem;border-bottom:1px solid #cfcfcf}
table.sessions{font-size:.85rem}
table.sessions th{background:#f7f7f7;font-weight:500}
.outcome{font-weight:600}
.succeeded{color:#2f6fd0}.failed{color:#d1302f}.crashed{color:#8b0000}.error{color:#c25e00}
ol.messages{margin:0;padding:0;list-style:none}
ol.messages li{white-space:pre-wrap;overflow-wrap:anywhere;max-height:6em;overflow:hidden}
ol.messages time{color:#777;margin-right:.4rem}
nav.pages{margin:.6rem 0}
footer{margin-top:1rem;font-size:.85rem;color:#666}
a{color:#2f6fd0}
"""

MUTED_NONE = '<span class="muted">none</span>'
FAILED_NO = '<span class="failed">no</span>'
DASH = '<span class="muted">&mdash;</span>'
UP = '<span class="badge up">UP</span>'
DOWN = '<span class="badge down">DOWN</span>'


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


def _utc(t: float) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromtimestamp(t, datetime.UTC)
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return None


def when(t: float | None, now: float) -> str:
    """A session's start or end: its UTC time, and how long ago in words."""
    if t is None:
        return DASH
    moment = _utc(t)
    if moment is None:
        return esc(repr(t))
    return (
        f'<time datetime="{moment.isoformat()}">{moment:%Y-%m-%d %H:%M:%S} UTC</time>'
        f'<br><span class="muted">{_ago(now - t)} ago</span>'
    )


def message_time(t: float, now: float) -> str:
    """A message's time: the UTC time of day, with the date when it is not today's."""
    moment, today = _utc(t), _utc(now)
    if moment is None:
        return f"<time>{esc(repr(t))}</time>"
    shown = (
        f"{moment:%H:%M:%S}"
        if today and moment.date() == today.date()
        else f"{moment:%Y-%m-%d %H:%M:%S}"
    )
    return f'<time datetime="{moment.isoformat()}">{shown}</time>'


def session_row(op: str, session: OpSession, now: float) -> str:
    """One operation's latest session."""
    success = {True: "yes", False: "no", None: DASH}[session.success]
    outcome = (
        f'<span class="outcome {esc(session.outcome)}">{esc(session.outcome)}</span>'
        if session.outcome
        else DASH
    )
    messages = "".join(
        f"<li>{message_time(t, now)}{esc(text)}</li>" for t, text in session.messages
    )
    return (
        f'<tr data-operation="{esc(op)}"><td>{esc(op)}</td><td>{esc(session.status)}</td>'
        f"<td>{success}</td><td>{outcome}</td><td>{when(session.start_time, now)}</td>"
        f"<td>{when(session.end_time, now)}</td>"
        f'<td><ol class="messages">{messages}</ol></td></tr>'
    )


def sessions_row(agent: AgentView, now: float) -> str:
    """A row under the agent's: its operations' latest sessions; empty when none is known."""
    sessions = agent.record.sessions
    rows = [session_row(op, sessions[op], now) for op in sorted(agent.op_codes) if op in sessions]
    if not rows:
        return ""
    return (
        f'<tr class="sessions" data-sessions-of="{esc(agent.instance_id)}"><td colspan="6">'
        '<table class="sessions"><thead><tr><th>Operation</th><th>Session</th>'
        "<th>Success</th><th>Outcome</th><th>Started</th><th>Ended</th>"
        "<th>Last messages (UTC)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></td></tr>"
    )


def feeds_row(agent: AgentView, now: float) -> str:
    """A row under the agent's: its feeds (the heartbeat aside); empty when it has none."""
    feeds = agent.record.feeds
    if not feeds:
        return ""
    rows = [
        f'<tr data-feed="{esc(name)}"><td>{esc(name)}</td>'
        f"<td>{'yes' if info.record else 'no'}</td>"
        f"<td>{DASH if info.fresh_time is None else f'{info.fresh_time:g} s'}</td>"
        f"<td>{count}</td><td>{when(last, now)}</td></tr>"
        for (name, info), count, last in zip(
            feeds.items(), agent.feed_counts, agent.feed_times, strict=True
        )
    ]
    return (
        f'<tr class="sessions" data-feeds-of="{esc(agent.instance_id)}"><td colspan="6">'
        '<table class="sessions"><thead><tr><th>Feed</th><th>Recorded</th>'
        "<th>Fresh time</th><th>Messages</th><th>Last message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></td></tr>"
    )


def expected_cell(agent: AgentView) -> str:
    """Whether the agent should run, who decided (the rule of docs/configuration.md), its
    HostManagers' targets and stabilities, and its host name."""
    expected, by = agent.expected, agent.expected_by
    shown = {True: "yes", False: "no", None: "unknown"}[expected]
    if by == HOSTMANAGER:
        by = f"hostmanager {agent.managers[0].manager}"
    elif len(agent.managers) > 1:  # a conflict: none of them decides
        by = f"site config ({len(agent.managers)} HostManagers list it)"
    else:
        by = "site config" if agent.configured is not None else "not listed"
    targets = {True: "up", False: "down", None: "passive"}
    listed = "".join(
        f'<br><span class="muted" data-manager="{esc(m.manager)}">{esc(m.manager)}: target '
        f"{targets[m.target_up]}, stability {m.stability:.2f}</span>"
        for m in agent.managers
    )
    host = f'<br><span class="muted">on {esc(agent.hostname)}</span>' if agent.hostname else ""
    return (
        f'<td class="expected"><b>{shown}</b> <span class="muted">by {esc(by)}</span>'
        f"{listed}{host}</td>"
    )


def hostmanager_row(agent: AgentView, now: float) -> str:
    """A row under a HostManager's: the files it parsed and its orphan containers."""
    data = agent.record.hostmanager
    if data is None:
        return ""
    rows = [
        f'<tr data-file="{esc(name)}"><td>{esc(name)}</td>'
        f"<td>{'yes' if ok else FAILED_NO}</td>"
        f"<td>{when(at, now)}</td></tr>"
        for name, ok, at in data.parse_status
    ]
    return (
        f'<tr class="sessions" data-hostmanager="{esc(agent.instance_id)}"><td colspan="6">'
        f"Manages {len(data.children)} agents; {data.orphans} orphan containers."
        '<table class="sessions"><thead><tr><th>File</th><th>Parsed</th><th>When</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></td></tr>"
    )


def agent_row(agent: AgentView, now: float) -> str:
    ops = "".join(
        f'<span class="op" style="background:{STATE_COLOURS[code]}" '
        f'title="{esc(op)}: {code}">{esc(op)} {OPCODES[code]}</span>'
        for op, code in sorted(agent.op_codes.items())
    )
    badge = (
        '<span class="badge up">UP</span>' if agent.up else '<span class="badge down">DOWN</span>'
    )
    return (
        (
            f'<tr class="agent" data-instance-id="{esc(agent.instance_id)}">'
            f"<td>{badge}</td><td><b>{esc(agent.instance_id)}</b><br>"
            f'<span class="muted">{esc(agent.address)}</span></td>'
            f"<td>{esc(agent.agent_class) or '<span class=muted>unknown</span>'}</td>"
            f'<td class="ago">{heard_ago(agent.last_heartbeat, now)}</td>'
            f"<td>{ops or MUTED_NONE}</td>{expected_cell(agent)}</tr>"
        )
        + sessions_row(agent, now)
        + feeds_row(agent, now)
        + hostmanager_row(agent, now)
    )


def page_number(request: server.Request) -> int:
    """The ``page`` query argument, 1 when missing or not a positive number."""
    values = request.args.get(b"page") or [b"1"]
    try:
        return max(int(values[0]), 1)
    except ValueError:
        return 1


def pages_nav(page: int, pages: int, first: int, last: int, total: int) -> str:
    """Which agents this page shows, with links to the previous and next pages."""
    if pages <= 1:
        return ""
    links = [f"Agents {first}&ndash;{last} of {total} (page {page} of {pages})"]
    if page > 1:
        links.append(f'<a rel="prev" href="?page={page - 1}">&lsaquo; previous</a>')
    if page < pages:
        links.append(f'<a rel="next" href="?page={page + 1}">next &rsaquo;</a>')
    return f'<nav class="pages">{" &middot; ".join(links)}</nav>'


class StatusPage(resource.Resource):
    """``/``: every agent, up or down, each operation's state and latest session, and its
    feeds; reloads
    itself. ``PAGE_SIZE`` agents a page (``/?page=2``...), down agents first: only the
    agents shown are rendered, so the page costs the same at 100 agents or 10,000."""

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
        return self.render_page(page_number(request)).encode()

    def render_page(self, page: int = 1) -> str:
        now = self.clock()
        agents = sorted(self.state.snapshot().agents, key=lambda a: (a.up, a.instance_id))
        total = len(agents)
        up = sum(a.up for a in agents)
        pages = max(-(-total // PAGE_SIZE), 1)
        page = min(page, pages)
        start = (page - 1) * PAGE_SIZE
        shown = agents[start : start + PAGE_SIZE]
        rows = [agent_row(agent, now) for agent in shown]
        if not rows:
            rows.append('<tr><td colspan="6" class="muted">No agent heard yet.</td></tr>')
        nav = pages_nav(page, pages, start + 1, start + len(shown), total)
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
<b id="agents-down">{total - up}</b> down, of {total} agents.</div>
{nav}<table><thead><tr><th>State</th><th>Agent</th><th>Class</th>
<th>Last heartbeat</th><th>Operations</th><th>Should run</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>{nav}
<footer><a href="{path}">Metrics</a> &middot; <a href="/-/healthy">Health</a> &middot;
<a href="/-/ready">Readiness</a> &middot; <a href="/api/agents">Agents (JSON)</a> &middot;
version {__version__} &middot;
refreshes every {self.refresh_seconds} s</footer>
</body></html>
"""
