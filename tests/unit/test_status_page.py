"""The status page rendered from a state with a fake clock."""

import pytest
from twisted.web.test.requesthelper import DummyRequest

from exporter.http.status import DASH, PAGE_SIZE, StatusPage
from exporter.state import AgentState, ExpectedAgent
from testbed.feedflood import feed_payload
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.pages import HOSTILE, session_rows


def page(connected=True, *payloads, advance=0.0):
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    for payload in payloads:
        state.ingest(payload)
    clock.advance(advance)
    return StatusPage(state, lambda: connected, "/metrics", clock=clock.time).render_page()


def test_lists_agents_with_state_class_age_and_named_operations():
    html = page(True, heartbeat("fake1", {"acq": 3, "delay_task": 6}), advance=1.5)
    assert 'data-instance-id="fake1"' in html
    assert "observatory.fake1" in html and "FakeDataAgent" in html
    assert "acq RUNNING" in html and "delay_task FAILED" in html
    assert "1.5 s" in html
    assert '<b id="agents-up">1</b>' in html and '<b id="agents-down">0</b>' in html
    assert 'http-equiv="refresh"' in html
    assert "connected" in html and "disconnected" not in html


def test_down_agents_come_first_with_expired_operations():
    html = page(True, heartbeat("a-up"), heartbeat("z-down"), advance=0)
    assert html.index("a-up") < html.index("z-down")
    html = page(False, heartbeat("a", {"acq": 3}), advance=10)
    assert "acq EXPIRED" in html and "DOWN" in html and "disconnected" in html
    assert '<b id="agents-down">1</b>' in html


def test_agent_supplied_strings_are_escaped():
    html = page(True, heartbeat("x", {"op": 3}, agent_class="<script>alert(1)</script>"))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_no_agents_yet():
    assert "No agent heard yet" in page(True)


def test_no_external_assets():
    html = page(True, heartbeat("fake1"))
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_a_listed_agent_never_heard_is_down_and_never_heard():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    state.set_expected([ExpectedAgent("quiet1", "FakeDataAgent", "host1", True)])
    state.ingest(heartbeat("fake1"))
    html = StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_page()
    assert 'data-instance-id="quiet1"' in html and "never" in html
    assert '<b id="agents-up">1</b>' in html and '<b id="agents-down">1</b>' in html


# --- A page of agents at a time ---------------------------------------------------------


def many(count: int, down: int = 0) -> tuple[AgentState, FakeClock]:
    """``count`` agents, the first ``down`` of them (by name) silent for 10 s."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    for i in range(down):
        state.ingest(heartbeat(f"a{i:05d}", {"acq": 3}))
    clock.advance(10)
    for i in range(down, count):
        state.ingest(heartbeat(f"a{i:05d}", {"acq": 3}))
    return state, clock


def rendered_ids(html: str) -> list[str]:
    return [part.split('"')[0] for part in html.split('class="agent" data-instance-id="')[1:]]


def test_ten_thousand_agents_render_one_page_of_them():
    state, clock = many(10_000, down=3)
    status = StatusPage(state, lambda: True, "/metrics", clock=clock.time)
    first = status.render_page()
    ids = rendered_ids(first)
    assert len(ids) == PAGE_SIZE
    assert ids[:4] == ["a00000", "a00001", "a00002", "a00003"]  # down ones first
    assert '<b id="agents-up">9997</b>' in first and '<b id="agents-down">3</b>' in first
    assert f"Agents 1&ndash;{PAGE_SIZE} of 10000" in first
    assert 'href="?page=2"' in first and 'rel="prev"' not in first
    pages = 10_000 // PAGE_SIZE
    last = status.render_page(pages)
    assert rendered_ids(last)[-1] == "a09999" and len(rendered_ids(last)) == PAGE_SIZE
    assert f'href="?page={pages - 1}"' in last and 'rel="next"' not in last
    assert status.render_page(pages + 50) == last  # past the end: the last page


def test_a_short_list_has_no_page_links():
    state, clock = many(3)
    html = StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_page()
    assert len(rendered_ids(html)) == 3 and "<nav" not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [(None, 1), (b"2", 2), (b"0", 1), (b"-3", 1), (b"two", 1), (b"", 1), (b"99999999999", 3)],
)
def test_the_page_comes_from_the_query(query, expected):
    state, clock = many(2 * PAGE_SIZE + 1)
    request = DummyRequest([b""])
    if query is not None:
        request.args[b"page"] = [query]
    html = StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_GET(request)
    assert f"(page {expected} of 3)".encode() in html
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/html; charset=utf-8"]


# --- Each operation's latest session ----------------------------------------------------

NOW = FakeClock().wall  # 2027-01-15 08:00:00 UTC
SESSION = "1795518440.6412797"  # the agent session of tests.support.fakes.heartbeat


def with_sessions(codes: dict, answers: dict, instance_id: str = "fake1") -> str:
    """The page of one agent whose operations ``codes`` answered ``answers`` (op -> answer)."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    state.ingest(heartbeat(instance_id, codes))
    for op, answer in answers.items():
        state.set_session(f"observatory.{instance_id}", SESSION, op, answer)
    return StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_page()


def session_cells(html: str, op: str, instance_id: str = "fake1") -> list[str]:
    """The cells of ``op``'s session row under the agent ``instance_id``, as HTML."""
    rows = html[html.index(f'data-sessions-of="{instance_id}"') :].partition("</table>")[0]
    row = rows[rows.index(f'<tr data-operation="{op}">') :].partition("</tr>")[0]
    return [cell.split("</td>")[0] for cell in row.split("<td>")[1:]]


def failed(op: str, message: str, start: float, end: float, success: bool = False) -> list:
    return session_answer(op, 1, "done", success, message, start_time=start, end_time=end)


def test_each_operation_shows_its_latest_session_with_times_and_messages():
    running = session_answer("acq", start_time=NOW - 120)
    ended = failed("delay_task", "Exited after 0.0 seconds", NOW - 300, NOW - 240)
    html = with_sessions(
        {"acq": 3, "delay_task": 6, "count": 1}, {"acq": running, "delay_task": ended}
    )
    op, status, success, outcome, started, ended_at, messages = session_cells(html, "acq")
    assert (op, status, outcome, ended_at) == ("acq", "running", DASH, DASH)
    assert success == DASH  # no success until done
    assert "2027-01-15 07:58:00 UTC" in started and "2 min ago" in started
    assert messages == (
        '<ol class="messages">'
        '<li><time datetime="2027-01-15T07:58:00+00:00">07:58:00</time>'
        "Status is now &quot;starting&quot;.</li>"
        '<li><time datetime="2027-01-15T07:58:00.250000+00:00">07:58:00</time>'
        "Status is now &quot;running&quot;.</li></ol>"
    )
    cells = session_cells(html, "delay_task")
    assert cells[1:4] == ["done", "no", '<span class="outcome failed">failed</span>']
    assert "07:55:00 UTC" in cells[4] and "5 min ago" in cells[4]
    assert "07:56:00 UTC" in cells[5] and "4 min ago" in cells[5]
    assert "Exited after 0.0 seconds" in cells[6]
    assert 'data-operation="count"' not in html  # never run: no session


@pytest.mark.parametrize(
    ("text", "success", "shown"),
    [
        ("CRASH: [Failure instance: Traceback: ZeroDivisionError]", False, "crashed"),
        ("ERROR: Param 'delay'=x is not of required type", False, "error"),
        ("Exited after 1.0 seconds", True, "succeeded"),
    ],
)
def test_how_a_run_ended_is_named(text, success, shown):
    answer = failed("delay_task", text, NOW - 5, NOW - 4, success)
    html = with_sessions({"delay_task": 5 if success else 6}, {"delay_task": answer})
    cells = session_cells(html, "delay_task")
    assert cells[2] == ("yes" if success else "no")
    assert cells[3] == f'<span class="outcome {shown}">{shown}</span>'


def test_message_texts_and_operation_names_are_escaped():
    html = with_sessions({"x<i>": 6}, {"x<i>": failed("x<i>", HOSTILE, NOW - 5, NOW - 4)})
    assert "<script" not in html and "<img" not in html and "<i>" not in html
    cells = session_cells(html, "x&lt;i&gt;")
    assert cells[0] == "x&lt;i&gt;"
    assert (
        "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt; &amp; "
        "&lt;img src=x onerror=&quot;document.title=&#x27;x&#x27;&quot;&gt;</li>"
    ) in cells[6]
    # Read as a browser reads it: the same text back, and no element but the page's own.
    row = session_rows(html)["fake1", "x<i>"]
    assert row.cells[0] == "x<i>"
    assert [text for _, text in row.messages][-2:] == [HOSTILE, 'Status is now "done".']
    assert row.elements == {"td", "span", "br", "time", "ol", "li"}


def test_a_message_of_another_day_shows_its_date():
    day = 86400.0
    answer = session_answer("acq", message="old", start_time=NOW - 2 * day)
    cells = session_cells(with_sessions({"acq": 3}, {"acq": answer}), "acq")
    assert '<time datetime="2027-01-13T08:00:00+00:00">2027-01-13 08:00:00</time>' in cells[6]
    assert "2.0 d ago" in cells[4]


def test_an_agent_without_sessions_has_no_sessions_row():
    html = with_sessions({"acq": 3}, {})
    assert 'data-instance-id="fake1"' in html and "data-sessions-of" not in html


def test_only_the_agents_shown_have_their_messages_rendered():
    state, clock = many(2 * PAGE_SIZE + 1)
    for i in range(2 * PAGE_SIZE + 1):
        answer = session_answer("acq", message=f"message of a{i:05d}")
        state.set_session(f"observatory.a{i:05d}", SESSION, "acq", answer)
    status = StatusPage(state, lambda: True, "/metrics", clock=clock.time)
    for page in (1, 2, 3):
        html = status.render_page(page)
        ids = rendered_ids(html)
        assert html.count("message of a") == len(ids)
        assert all(f"message of {i}<" in html for i in ids)


def test_each_feed_shows_what_it_declares_its_messages_and_the_last_one_escaped():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, monotonic=clock.monotonic, wall=clock.time)
    state.ingest(heartbeat("fake1", {"acq": 3}))
    state.ingest(heartbeat("quiet", {"acq": 3}))
    hostile = '<img/src="x">&'  # a sane feed name: no space
    readings = feed_payload("observatory.fake1", "readings", {}, True, {"fresh_time": 60})
    state.ingest_feed(feed_payload("observatory.fake1", hostile, {}))
    clock.advance(30)
    for _ in range(3):
        state.ingest_feed(readings)
    html = StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_page()
    assert "<img" not in html and 'data-feeds-of="quiet"' not in html
    rows = html[html.index('data-feeds-of="fake1"') :].partition("</table>")[0]
    cells = {}
    for part in rows.split("<tr data-feed=")[1:]:
        row = part.partition("</tr>")[0]
        cells[row.split('"')[1]] = [cell.split("</td>")[0] for cell in row.split("<td>")[1:]]
    assert list(cells) == ["&lt;img/src=&quot;x&quot;&gt;&amp;", "readings"]
    assert cells["readings"][:4] == ["readings", "yes", "60 s", "3"]
    assert "2027-01-15 08:00:30 UTC" in cells["readings"][4]
    assert cells["&lt;img/src=&quot;x&quot;&gt;&amp;"][1:4] == ["no", DASH, "1"]
    assert "30.0 s ago" in cells["&lt;img/src=&quot;x&quot;&gt;&amp;"][4]


def test_who_decides_whether_an_agent_should_run_and_a_hostmanagers_files_escaped():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    state.set_expected(
        [
            ExpectedAgent("fake1", "FakeDataAgent", "host1", True),
            ExpectedAgent("fake2", "FakeDataAgent", "host1", True),
        ]
    )
    for name in ("fake1", "fake2", "fake3"):
        state.ingest(heartbeat(name))
    sid = "1795518440.6412797"
    state.set_op_types("observatory.fake1", sid, {"acq": "process"}, HOSTILE)
    state.ingest(heartbeat("hm1", {"manager": 3}, "1795518400.5", agent_class="HostManager"))
    answer = session_answer("manager", 1, data={})
    answer[2]["data"] = {
        "child_states": [
            {
                "instance_id": "fake1",
                "agent_class": "FakeDataAgent",
                "target_state": "down",
                "next_action": "down",
                "stability": 0.25,
            },
            {
                "instance_id": "fake2",
                "agent_class": "FakeDataAgent",
                "target_state": "passive",
                "next_action": "up",
                "stability": 1.0,
            },
        ],
        "config_parse_status": {HOSTILE: [False, clock.wall - 30, "bad"], "[SCF]": [True, 1, ""]},
        "orphans": {"30027f37e0ef4b": {}},
    }
    state.set_session("observatory.hm1", "1795518400.5", "manager", answer)
    html = StatusPage(state, lambda: True, "/metrics", clock=clock.time).render_page()
    rows = {
        name: html.split(f'data-instance-id="{name}"', 1)[1].split("</tr>", 1)[0]
        for name in ("fake1", "fake2", "fake3", "hm1")
    }
    assert '<b>no</b> <span class="muted">by hostmanager hm1</span>' in rows["fake1"]
    assert "hm1: target down, stability 0.25" in rows["fake1"]
    assert '<b>yes</b> <span class="muted">by site config</span>' in rows["fake2"]
    assert "hm1: target passive" in rows["fake2"]
    assert '<b>unknown</b> <span class="muted">by not listed</span>' in rows["fake3"]
    assert HOSTILE not in html  # the host name and the file name, escaped
    assert "on &lt;" in rows["fake1"]
    files = html.split('data-hostmanager="hm1"', 1)[1].split("</table>", 1)[0]
    assert "Manages 2 agents; 1 orphan containers." in files
    assert "<td>[SCF]</td><td>yes</td>" in files
    assert '<span class="failed">no</span>' in files and "30.0 s ago" in files
