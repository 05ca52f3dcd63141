"""The status page rendered from a state with a fake clock."""

import pytest
from twisted.web.test.requesthelper import DummyRequest

from exporter.http.status import PAGE_SIZE, StatusPage
from exporter.state import AgentState, ExpectedAgent
from tests.support.fakes import FakeClock, heartbeat


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
