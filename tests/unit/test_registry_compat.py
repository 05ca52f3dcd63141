"""--registry-compat: the exporter answering as OCS's RegistryAgent.

Unit tests build the registry data from a state with a fake clock and drive the WAMP
handlers directly; live tests read it with the real ``ocs`` client on a real router, side
by side with a real RegistryAgent watching the same agents.
"""

from __future__ import annotations

import json
import logging

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.internet.task import Clock

from exporter.config import ConfigError, settings_from_args
from exporter.http.web import AgentsJSON
from exporter.state import AgentState
from exporter.wamp.listener import HeartbeatListener
from exporter.wamp.registry_compat import REGISTER_RETRY, RegistryCompat, registry_data
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.metrics import KEYS
from tests.support.registry import api_only

CODES = {"acq": 3, "count": 3, "set_heartbeat": 1, "delay_task": 6}


def make_state(timeout: float = 5.0) -> tuple[AgentState, FakeClock]:
    clock = FakeClock()
    state = AgentState("observatory", timeout, monotonic=clock.monotonic, wall=clock.time)
    return state, clock


# --- The data ---------------------------------------------------------------------------


def test_up_agent_as_the_registry_encodes_it():
    state, clock = make_state()
    state.ingest(heartbeat("fake1", CODES))
    heard_at = clock.wall
    clock.advance(1.5)
    data = registry_data(state.snapshot().agents)
    assert data == {
        "observatory.fake1": {
            "expired": False,
            "time_expired": None,
            "last_updated": heard_at,
            "op_codes": CODES,
            "agent_class": "FakeDataAgent",
            "agent_address": "observatory.fake1",
        }
    }
    assert type(data["observatory.fake1"]["last_updated"]) is float


def test_expired_agent_has_every_op_code_expired_and_a_fixed_time_expired():
    state, clock = make_state()
    state.ingest(heartbeat("fake1", CODES))
    state.ingest(heartbeat("fake2", {"acq": 3}))
    heard_at = clock.wall
    clock.advance(4.0)
    state.ingest(heartbeat("fake2", {"acq": 3}))
    clock.advance(2.0)  # fake1 silent for 6 s: expired; fake2 for 2 s: up
    data = registry_data(state.snapshot().agents)
    assert list(data) == ["observatory.fake1", "observatory.fake2"]  # as first heard
    entry = data["observatory.fake1"]
    assert set(entry) == KEYS
    assert entry["expired"] is True
    assert entry["op_codes"] == dict.fromkeys(CODES, 7)
    assert entry["last_updated"] == heard_at
    assert entry["time_expired"] == heard_at + 5.0  # the moment the timeout elapsed
    assert data["observatory.fake2"]["expired"] is False
    clock.advance(60.0)  # the registry re-stamps time_expired every second; we do not
    assert registry_data(state.snapshot().agents)["observatory.fake1"] == entry


def test_back_up_clears_expiry_and_removed_operations_drop_out():
    state, clock = make_state()
    state.ingest(heartbeat("fake1", CODES, session_id="1.0"))
    clock.advance(10.0)
    state.ingest(heartbeat("fake1", {"acq": 1}, session_id="2.0"))  # restarted, fewer ops
    entry = registry_data(state.snapshot().agents)["observatory.fake1"]
    assert entry["expired"] is False and entry["time_expired"] is None
    assert entry["op_codes"] == {"acq": 1}  # the registry would keep count, etc. forever
    assert entry["last_updated"] == clock.wall


def test_missing_agent_class_is_none_as_in_the_registry():
    state, _ = make_state()
    payload = heartbeat("old")
    del payload[1]["agent_class"]
    state.ingest(payload)
    assert registry_data(state.snapshot().agents)["observatory.old"]["agent_class"] is None


def test_site_agents_never_heard_are_left_out_as_the_registry_does():
    from exporter.state import ExpectedAgent

    state, _ = make_state()
    state.set_expected(
        [
            ExpectedAgent("quiet", "FakeDataAgent", "host1", True),
            ExpectedAgent("ignored", "FakeDataAgent", "host1", False),
        ]
    )
    state.ingest(heartbeat("heard"))
    data = registry_data(state.snapshot().agents)
    assert list(data) == ["observatory.heard"]
    assert isinstance(data["observatory.heard"]["last_updated"], float)


def test_api_agents_resource_is_the_same_data_in_json():
    state, clock = make_state()
    state.ingest(heartbeat("fake1", CODES))
    clock.advance(7.0)
    body = AgentsJSON(state).body()  # rendered on the thread pool, headers: live test
    served = json.loads(body)
    own = {key: api_only(entry) for key, entry in served.items()}
    operations = {key: entry["operations"] for key, entry in own.items()}
    feeds = {key: entry["feeds"] for key, entry in own.items()}
    assert served == registry_data(state.snapshot().agents)
    # ... and each operation's session and the feeds (none here; see tests/unit/test_web.py)
    assert operations == {"observatory.fake1": {op: {"session": None} for op in CODES}}
    assert feeds == {"observatory.fake1": {}}


# The registry data of fake2 (down) and fake1 (up, CODES), as the RegistryAgent's encoder
# writes it: the drop-in's session data stays this, byte for byte, whatever sessions add.
REGISTRY_JSON = (
    '{"observatory.fake2": {"expired": true, "time_expired": 1800000005.0, '
    '"last_updated": 1800000000.0, "op_codes": {"acq": 7}, '
    '"agent_class": "FakeDataAgent", "agent_address": "observatory.fake2"}, '
    '"observatory.fake1": {"expired": false, "time_expired": null, '
    '"last_updated": 1800000004.0, '
    '"op_codes": {"acq": 3, "count": 3, "set_heartbeat": 1, "delay_task": 6}, '
    '"agent_class": "FakeDataAgent", "agent_address": "observatory.fake1"}}'
)


def test_sessions_leave_the_registry_data_unchanged_byte_for_byte():
    session = "1795518440.6412797"  # fakes.heartbeat's
    served = []
    for with_sessions in (False, True):
        state, clock = make_state()
        state.ingest(heartbeat("fake2", {"acq": 3}))
        clock.advance(4.0)
        state.ingest(heartbeat("fake1", CODES))
        if with_sessions:
            ended = session_answer("delay_task", 1, "done", False, "CRASH: boom", None, 1.8e9)
            state.set_session("observatory.fake1", session, "delay_task", ended)
            state.set_session("observatory.fake1", session, "acq", session_answer("acq"))
            state.set_session("observatory.fake2", session, "acq", session_answer("acq"))
            assert all(agent.record.sessions for agent in state.snapshot().agents)
        clock.advance(2.0)
        compat, _ = make_compat(state)
        [(_, main, _)] = compat.management("get_api")["processes"]
        for data in (
            main["data"],
            compat.main_session()["data"],
            compat.operations("status", "main")[2]["data"],
        ):
            served.append(json.dumps(data).encode())
    assert served == [REGISTRY_JSON.encode()] * 6


# --- The WAMP handlers, without a router -------------------------------------------------


def make_compat(state: AgentState | None = None) -> tuple[RegistryCompat, Clock]:
    state = state or make_state()[0]
    reactor = Clock()
    return RegistryCompat(state, "observatory", "registry", reactor, clock=lambda: 1.8e9), reactor


def test_get_api_describes_one_running_process_main():
    state, _ = make_state()
    state.ingest(heartbeat("fake1", CODES))
    compat, _ = make_compat(state)
    api = compat.management("get_api")
    # The keys of a real agent's answer (ocs 0.12 OCSAgent._management_handler).
    assert set(api) == {
        "agent_class",
        "instance_hostname",
        "instance_pid",
        "feeds",
        "processes",
        "tasks",
        "access_control",
    }
    assert api["agent_class"] == "RegistryAgent"
    assert api["tasks"] == []
    [(name, session, info)] = api["processes"]
    assert name == "main" and info["op_type"] == "process"
    assert session["op_code"] == 3 and session["status"] == "running"
    assert session["data"] == registry_data(state.snapshot().agents)
    assert api["feeds"] == [("heartbeat", compat.feed())]
    assert compat.management("get_processes") == api["processes"]
    assert compat.management("get_agent_class") == "RegistryAgent"
    assert compat.management("get_tasks") == []
    assert compat.management("nonsense") is None


def test_status_start_stop_abort_and_unknown_operations():
    compat, _ = make_compat()
    status, message, session = compat.operations("status", "main", {})
    assert (status, message) == (0, "Session active.")
    assert set(session) == {
        "session_id",
        "op_name",
        "op_code",
        "cred_level",
        "status",
        "degraded",
        "success",
        "start_time",
        "end_time",
        "data",
        "messages",
    }
    assert session["start_time"] == 1.8e9 and session["end_time"] is None
    assert session["success"] is None and session["degraded"] is False
    assert compat.operations("start", "main", {})[:2] == (
        -1,
        'Operation "main" already in progress.',
    )
    assert compat.operations("stop", "main", {})[0] == -1
    assert compat.operations("abort", "main")[0] == -1
    assert compat.operations("status", "acq") == (-1, 'No task or process called "acq"', {})
    assert compat.operations("dance", "main")[0] == -1
    # ocs passes a password when the agent announces access control: accepted.
    assert compat.operations("status", "main", {}, password="")[0] == 0


def test_wait_times_out_after_its_timeout_and_at_once_without_one():
    compat, reactor = make_compat()
    assert compat.operations("wait", "main", timeout=None)[0] == 1
    assert compat.operations("wait", "main", timeout=0)[0] == 1
    d = compat.operations("wait", "main", timeout=3)
    results = []
    d.addCallback(results.append)
    reactor.advance(2.9)
    assert results == []
    reactor.advance(0.2)
    assert results[0][:2] == (1, 'Operation "main" still running; wait timed out.')


class Registration:
    def __init__(self, session: FakeSession, uri: str) -> None:
        self.session, self.uri = session, uri

    def unregister(self) -> defer.Deferred:
        self.session.procedures.pop(self.uri, None)
        return defer.succeed(None)


class FakeSession:
    """Just what RegistryCompat uses of an autobahn session; ``refuse`` answers register
    with that WAMP error once the first ``allow`` URIs have been registered."""

    def __init__(self, refuse: str | None = None, allow: int = 0) -> None:
        self.refuse = refuse
        self.allow = allow
        self.procedures: dict = {}
        self.published: list = []
        self.attached = True

    def register(self, handler, uri):
        if self.refuse and len(self.procedures) >= self.allow:
            return defer.fail(ApplicationError(self.refuse, "refused"))
        self.procedures[uri] = handler
        return defer.succeed(Registration(self, uri))

    def publish(self, topic, *args):
        self.published.append((topic, args))

    def is_attached(self):
        return self.attached


def test_join_registers_both_procedures_and_heartbeats_each_second():
    compat, reactor = make_compat()
    compat.startService()
    session = FakeSession()
    compat.on_join(session)
    assert set(session.procedures) == {"observatory.registry", "observatory.registry.ops"}
    assert session.published == [
        ("observatory.registry.feeds.heartbeat", ([{"main": 3}, compat.feed()],))
    ]
    feed = compat.feed()
    assert feed["agent_class"] == "RegistryAgent" and feed["session_id"] == str(1.8e9)
    reactor.advance(1.0)
    reactor.advance(1.0)
    assert len(session.published) == 3
    session.attached = False
    reactor.advance(1.0)
    assert len(session.published) == 3
    compat.stopService()


def test_refused_registration_logs_once_and_retries_quietly(caplog):
    compat, reactor = make_compat()
    compat.startService()
    session = FakeSession(refuse="wamp.error.procedure_already_exists", allow=1)
    with caplog.at_level(logging.INFO, logger="exporter.wamp.registry_compat"):
        compat.on_join(session)
        assert session.procedures == {}  # the one that got through was unregistered
        reactor.advance(REGISTER_RETRY)
        reactor.advance(REGISTER_RETRY)
        assert compat.session is None and session.published == []
        session.refuse = None  # the other registry went away
        reactor.advance(REGISTER_RETRY)
    messages = [r.getMessage() for r in caplog.records]
    refusals = [m for m in messages if "refused" in m]
    assert len(refusals) == 1
    assert "observatory.registry" in refusals[0] and "already answers" in refusals[0]
    assert compat.session is session and len(session.procedures) == 2
    assert any("answering as the RegistryAgent" in m for m in messages)
    compat.stopService()
    assert not reactor.getDelayedCalls()


def test_join_hook_failures_are_logged_and_do_not_stop_other_hooks(caplog):
    listener = HeartbeatListener(
        AgentState("observatory"), "ws://127.0.0.1:1/ws", "r", "observatory", reactor=Clock()
    )
    called = []

    def broken(session):
        raise RuntimeError("boom")

    listener.join_hooks = [
        broken,
        lambda session: defer.fail(ValueError("late boom")),
        called.append,
    ]
    with caplog.at_level(logging.ERROR, logger="exporter.wamp.listener"):
        listener._run_join_hooks("the session")
    assert called == ["the session"]
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 2 and "boom" in errors[0] and "late boom" in errors[1]


# --- Configuration ----------------------------------------------------------------------

BASE = ["--site-hub", "ws://127.0.0.1:1/ws", "--site-realm", "r", "--address-root", "obs"]


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("OCS_EXPORTER_REGISTRY_COMPAT", "OCS_EXPORTER_REGISTRY_COMPAT_INSTANCE_ID"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_off_by_default_and_a_bare_flag_turns_it_on(clean_env):
    settings = settings_from_args(BASE)
    assert settings.registry_compat is False
    assert settings.registry_compat_instance_id == "registry"
    settings = settings_from_args([*BASE, "--registry-compat"])
    assert settings.registry_compat is True
    settings = settings_from_args(
        [*BASE, "--registry-compat", "--registry-compat.instance-id", "reg2"]
    )
    assert settings.registry_compat is True and settings.registry_compat_instance_id == "reg2"
    assert settings_from_args([*BASE, "--no-registry-compat"]).registry_compat is False


@pytest.mark.parametrize("value, on", [("true", True), ("1", True), ("false", False), ("0", False)])
def test_environment(clean_env, value, on):
    clean_env.setenv("OCS_EXPORTER_REGISTRY_COMPAT", value)
    clean_env.setenv("OCS_EXPORTER_REGISTRY_COMPAT_INSTANCE_ID", "reg-env")
    settings = settings_from_args(BASE)
    assert settings.registry_compat is on
    assert settings.registry_compat_instance_id == "reg-env"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--registry-compat", "maybe"], "--registry-compat: 'maybe'"),
        (["--registry-compat.instance-id", "a.b"], "--registry-compat.instance-id: 'a.b'"),
        (["--registry-compat.instance-id", ""], "--registry-compat.instance-id: ''"),
    ],
)
def test_bad_values(clean_env, args, message):
    with pytest.raises(ConfigError, match=message):
        settings_from_args([*BASE, *args])


# --- Live: the real ocs client, a real RegistryAgent, the same agents ----------------------
