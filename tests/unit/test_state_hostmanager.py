"""AgentState and HostManagers: their manager session's data kept, and the one rule of
whether an agent should run (a HostManager's target over the site config file)."""

from __future__ import annotations

import logging

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from exporter.hostmanager import MANAGER_REASONS, ManagerData
from exporter.state import AgentState, Conflict, ExpectedAgent
from exporter.view import HOSTMANAGER, SITE_CONFIG, Managed
from exporter.wamp.calls import CallQueue
from exporter.wamp.sessions import SessionQueries
from exporter.wamp.throttle import LogThrottle
from tests.support.fakes import FakeClock, heartbeat, session_answer

HM_SESSION = "1795518400.25"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def state(clock):
    return AgentState(
        "observatory", timeout=5.0, monotonic=clock.monotonic, wall=clock.time, forget_after=60
    )


def agents(state):
    return {a.instance_id: a for a in state.snapshot().agents}


def child(instance_id, target="up", action=None, stability=1.0, agent_class="FakeDataAgent"):
    return {
        "instance_id": instance_id,
        "agent_class": agent_class,
        "target_state": target,
        "next_action": action or (target if target in ("up", "down") else "up"),
        "stability": stability,
        "operable": True,
        "restart_required": False,
    }


def manager_data(*children, files=None, orphans=0):
    return {
        "child_states": list(children),
        "config_parse_status": files or {"[SCF]": [True, 1_800_000_000.0, ""]},
        "orphans": {f"c{i}": {} for i in range(orphans)},
        "new_tags": {},
    }


def hostmanager(state, instance_id="hm1", session=HM_SESSION):
    state.ingest(
        heartbeat(instance_id, {"manager": 3, "update": 1}, session, agent_class="HostManager")
    )


def tell(state, data, instance_id="hm1", session=HM_SESSION, status="running"):
    """The HostManager's manager process answers status with ``data``."""
    answer = session_answer("manager", 1, status, True if status == "done" else None, data={})
    answer[2]["data"] = data
    return state.set_session(f"observatory.{instance_id}", session, "manager", answer)


def test_the_hostmanager_target_decides_over_the_site_config(state):
    state.set_expected(
        [
            ExpectedAgent("fake1", "FakeDataAgent", "host1", True),
            ExpectedAgent("fake2", "FakeDataAgent", "host1", False),
        ]
    )
    for name in ("fake1", "fake2", "fake3"):
        state.ingest(heartbeat(name))
    hostmanager(state)
    assert tell(state, manager_data(child("fake1", "down"), child("fake2", "up"))) == ()
    seen = agents(state)
    assert (seen["fake1"].expected, seen["fake1"].expected_by) == (False, HOSTMANAGER)
    assert (seen["fake2"].expected, seen["fake2"].expected_by) == (True, HOSTMANAGER)
    assert seen["fake1"].configured is True  # the site config's own word is still known
    assert (seen["fake3"].expected, seen["fake3"].expected_by) == (None, SITE_CONFIG)
    assert seen["fake1"].managers == (Managed("hm1", False, 1.0),)
    assert seen["fake3"].managers == ()
    hm = seen["hm1"]
    assert hm.hostmanager.orphans == 0
    assert hm.hostmanager.parse_status == (("[SCF]", True, 1_800_000_000.0),)
    assert hm.expected is None  # a HostManager not listed anywhere


def test_a_passive_target_leaves_the_site_config_rule(state):
    state.set_expected([ExpectedAgent("fake1", "FakeDataAgent", "host1", True)])
    state.ingest(heartbeat("fake1"))
    hostmanager(state)
    tell(state, manager_data(child("fake1", "passive")))
    agent = agents(state)["fake1"]
    assert (agent.expected, agent.expected_by) == (True, SITE_CONFIG)
    assert agent.managers == (Managed("hm1", None, 1.0),)


def test_two_hostmanagers_listing_an_agent_is_a_conflict_told_once(state):
    state.set_expected([ExpectedAgent("fake1", "FakeDataAgent", "host1", True)])
    state.ingest(heartbeat("fake1"))
    hostmanager(state, "hm1")
    hostmanager(state, "hm2")
    assert tell(state, manager_data(child("fake1", "down")), "hm1") == ()
    told = tell(state, manager_data(child("fake1", "down")), "hm2")
    assert told == (Conflict("observatory.fake1", ("hm1", "hm2")),)
    agent = agents(state)["fake1"]
    assert (agent.expected, agent.expected_by) == (True, SITE_CONFIG)  # not merged
    assert len(agent.managers) == 2
    assert tell(state, manager_data(child("fake1", "down")), "hm2") == ()  # told once
    tell(state, manager_data(), "hm2")  # hm2 lets it go: hm1 decides again
    agent = agents(state)["fake1"]
    assert (agent.expected, agent.expected_by) == (False, HOSTMANAGER)
    told = tell(state, manager_data(child("fake1", "up")), "hm2")
    assert told == (Conflict("observatory.fake1", ("hm1", "hm2")),)  # a new conflict


def test_a_conflict_over_an_agent_no_longer_tracked_is_told_again_when_it_returns(state):
    hostmanager(state, "hm1")
    hostmanager(state, "hm2")
    tell(state, manager_data(child("ghost", "up")), "hm1")
    told = tell(state, manager_data(child("ghost", "up")), "hm2")
    assert told == (Conflict("observatory.ghost", ("hm1", "hm2")),)
    # Both make it passive, then both let it go: never heard, it is no longer tracked.
    tell(state, manager_data(child("ghost", "passive")), "hm1")
    tell(state, manager_data(child("ghost", "passive")), "hm2")
    assert "ghost" not in agents(state)
    tell(state, manager_data(), "hm1")
    tell(state, manager_data(), "hm2")
    assert state._conflicts == set()
    tell(state, manager_data(child("ghost", "up")), "hm1")
    told = tell(state, manager_data(child("ghost", "up")), "hm2")
    assert told == (Conflict("observatory.ghost", ("hm1", "hm2")),)  # told again


def test_an_agent_listed_but_never_heard_is_tracked_while_listed(state):
    hostmanager(state)
    tell(state, manager_data(child("ghost", "up", agent_class="FakeDataAgent[d]")))
    ghost = agents(state)["ghost"]
    assert (ghost.heard, ghost.up, ghost.expected) == (False, False, True)
    assert ghost.agent_class == "FakeDataAgent"
    assert ghost.address == "observatory.ghost"
    tell(state, manager_data())  # no longer listed: gone, not counted as forgotten
    assert "ghost" not in agents(state)
    assert state.snapshot_counters().forgotten == 0


def test_a_passive_child_never_heard_is_not_tracked(state):
    hostmanager(state)
    tell(state, manager_data(child("redis", "passive", agent_class="[docker]")))
    assert "redis" not in agents(state)


def test_listed_agents_are_not_forgotten(state, clock):
    hostmanager(state)
    state.ingest(heartbeat("fake1"))
    tell(state, manager_data(child("fake1", "up")))
    clock.advance(120)
    hostmanager(state)  # the HostManager is still heard
    assert "fake1" in agents(state)


@pytest.mark.parametrize("how", ["restart", "forgotten", "session end"])
def test_the_data_goes_with_the_hostmanager(state, clock, how):
    state.set_expected([ExpectedAgent("fake1", "FakeDataAgent", "host1", True)])
    state.ingest(heartbeat("fake1"))
    hostmanager(state)
    tell(state, manager_data(child("fake1", "down"), child("ghost", "up")))
    assert agents(state)["fake1"].expected is False
    if how == "restart":
        hostmanager(state, session="1795518999.5")
        assert agents(state)["hm1"].hostmanager is None
    elif how == "forgotten":
        clock.advance(61)
        state.ingest(heartbeat("fake1"))
        assert "hm1" not in agents(state)
    else:
        tell(state, manager_data(child("fake1", "down")), status="done")
        assert agents(state)["hm1"].hostmanager is None
    seen = agents(state)
    assert (seen["fake1"].expected, seen["fake1"].expected_by) == (True, SITE_CONFIG)
    assert seen["fake1"].managers == ()
    assert "ghost" not in seen


def test_invalid_data_is_counted_and_the_previous_kept(state):
    state.ingest(heartbeat("fake1"))
    hostmanager(state)
    tell(state, manager_data(child("fake1", "down")))
    assert tell(state, {"child_states": "nope"}) == ()
    tell(state, {"orphans": []})
    tell(state, [])  # no session data mapping: the status itself is refused
    assert agents(state)["fake1"].expected is False
    counters = state.snapshot_counters()
    counts = counters.invalid_manager_data
    assert set(counts) == set(MANAGER_REASONS)
    assert (counts["bad_child"], counts["bad_orphans"]) == (1, 1)
    assert sum(counts.values()) == 2
    assert counters.invalid_sessions["bad_field"] == 1


def test_only_a_hostmanagers_manager_process_is_read(state):
    state.ingest(heartbeat("fake1", {"manager": 3}))  # not a HostManager
    state.ingest(heartbeat("fake2"))
    state.set_session(
        "observatory.fake1",
        "1795518440.6412797",
        "manager",
        session_answer("manager", 1, data={"child_states": [child("fake2", "down")]}),
    )
    state.set_session("observatory.fake1", "1795518440.6412797", "manager", ["x"])
    assert agents(state)["fake2"].managers == ()
    assert sum(state.snapshot_counters().invalid_manager_data.values()) == 0


def test_a_stale_answer_is_ignored(state):
    state.ingest(heartbeat("fake1"))
    hostmanager(state)
    tell(state, manager_data(child("fake1", "down")), session="an earlier run")
    assert agents(state)["fake1"].managers == ()


def test_the_same_data_again_makes_no_new_record(state):
    state.ingest(heartbeat("fake1"))
    state.ingest(heartbeat("fake2"))
    hostmanager(state)
    data = manager_data(child("fake1", "up"), child("fake2", "up"))
    tell(state, data)
    before = {a.instance_id: a.record for a in state.snapshot().agents}
    tell(state, manager_data(child("fake1", "up"), child("fake2", "up")))
    after = {a.instance_id: a.record for a in state.snapshot().agents}
    assert all(after[name] is before[name] for name in before)
    # A stability moving makes a new record for that agent only (and the HostManager's).
    tell(state, manager_data(child("fake1", "up", stability=0.5), child("fake2", "up")))
    moved = {a.instance_id: a.record for a in state.snapshot().agents}
    assert moved["fake2"] is before["fake2"]
    assert moved["fake1"] is not before["fake1"]
    assert moved["fake1"].managers == (Managed("hm1", True, 0.5),)


def test_agents_without_a_hostmanager_share_the_empty_defaults(state):
    state.ingest(heartbeat("fake1"))
    state.ingest(heartbeat("fake2"))
    one, two = (a.record for a in state.snapshot().agents)
    assert one.managers is two.managers
    assert one.hostmanager is None and one.hostname == ""


def test_a_restarted_agent_keeps_its_managers_and_hostname(state):
    state.ingest(heartbeat("fake1"))
    state.set_op_types("observatory.fake1", "1795518440.6412797", {"acq": "process"}, "daq-1")
    hostmanager(state)
    tell(state, manager_data(child("fake1", "down")))
    state.ingest(heartbeat("fake1", session_id="1795519000.5"))
    agent = agents(state)["fake1"]
    assert agent.expected is False and agent.hostname == "daq-1"
    state.set_op_types("observatory.fake1", "1795519000.5", {"acq": "process"})
    assert agents(state)["fake1"].hostname == "daq-1"  # not told: the one known kept
    state.set_op_types("observatory.fake1", "1795519000.5", {"acq": "process"}, "daq-2")
    assert agents(state)["fake1"].hostname == "daq-2"


def test_a_site_config_reload_keeps_a_listed_agent_never_heard(state):
    state.set_expected([ExpectedAgent("ghost", "FakeDataAgent", "host1", True)])
    hostmanager(state)
    tell(state, manager_data(child("ghost", "down")))
    state.set_expected([])
    ghost = agents(state)["ghost"]
    assert (ghost.expected, ghost.configured) == (False, None)


def test_manager_data_is_kept_whole_on_the_hostmanager(state):
    hostmanager(state)
    files = {"[SCF]": [True, 1.0, ""], "/srv/compose.yml": [False, 2.0, "boom"]}
    tell(state, manager_data(child("fake1", "up"), files=files, orphans=2))
    data = agents(state)["hm1"].hostmanager
    assert isinstance(data, ManagerData)
    assert data.orphans == 2
    assert data.parse_status == (("/srv/compose.yml", False, 2.0), ("[SCF]", True, 1.0))


class _Session:
    """Answers every status call at once with the HostManager data of its agent."""

    def __init__(self, data: dict) -> None:
        self.data = data

    def call(self, procedure, *args):
        manager = procedure.rsplit(".", 2)[-2]
        answer = session_answer("manager", 1, data={})
        answer[2]["data"] = self.data[manager]
        return succeed(answer)


def test_the_sessions_collector_logs_a_conflict_once(caplog):
    clock, fake = Clock(), FakeClock()
    state = AgentState("observatory", 5.0, fake.monotonic, fake.time)
    calls = CallQueue(clock)
    queries = SessionQueries(state, calls, clock, LogThrottle(60.0, clock.seconds))
    listed = manager_data(child("fake1", "up"))
    calls.joined(_Session({"hm1": listed, "hm2": listed}))
    state.ingest(heartbeat("fake1"))
    with caplog.at_level(logging.INFO, logger="exporter.wamp.sessions"):
        for _ in range(2):
            for name in ("hm1", "hm2"):
                hostmanager(state, name)
                queries.changed(f"observatory.{name}", HM_SESSION, ["manager"], {"manager": 3})
                clock.advance(1)
    [line] = [r.getMessage() for r in caplog.records]
    assert "observatory.fake1 is listed by 2 HostManagers (hm1, hm2)" in line
    assert agents(state)["fake1"].managers[1].manager == "hm2"
