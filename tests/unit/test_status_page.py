"""The status page rendered from a state with a fake clock."""

from exporter.http.web import StatusPage
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
