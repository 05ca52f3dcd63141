"""--registry-compat: the exporter answering as OCS's RegistryAgent.

Unit tests build the registry data from a state with a fake clock and drive the WAMP
handlers directly; live tests read it with the real ``ocs`` client on a real router, side
by side with a real RegistryAgent watching the same agents.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
import yaml
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.internet.task import Clock

from exporter import testbed
from exporter.config import ConfigError, settings_from_args
from exporter.listener import HeartbeatListener
from exporter.registry_compat import REGISTER_RETRY, RegistryCompat, registry_data
from exporter.state import AgentState
from exporter.web import AgentsJSON
from tests.conftest import Testbed
from tests.fakes import FakeClock, heartbeat
from tests.tls import make_authority

KEYS = {"expired", "time_expired", "last_updated", "op_codes", "agent_class", "agent_address"}
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
    assert json.loads(body) == registry_data(state.snapshot().agents)


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
    with caplog.at_level(logging.INFO, logger="exporter.registry_compat"):
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
    with caplog.at_level(logging.ERROR, logger="exporter.listener"):
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
    assert settings_from_args([*BASE, "--registry-compat", "false"]).registry_compat is False


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

REAL = "registry-real"
COMPAT = "registry-compat"
TIMEOUT = 5.0  # the RegistryAgent's, hard-coded; given to the exporter as --agent-timeout


def start_registry_agent(bed, instance_id: str) -> subprocess.Popen:
    """A real RegistryAgent, listed in the site file as the agents are."""
    bed.entries.append(
        {"agent-class": "RegistryAgent", "instance-id": instance_id, "arguments": []}
    )
    bed.write_site_file()
    proc = testbed.start_agent(bed.site_file, instance_id, bed.workdir)
    bed.agents[instance_id] = proc
    return proc


def data_of(bed, instance_id: str) -> dict:
    """What socs' MultiSlotController reads: ``main.status().session['data']``."""
    return bed.client(instance_id).main.status().session["data"]


def address(instance_id: str) -> str:
    return f"{testbed.ADDRESS_ROOT}.{instance_id}"


@pytest.fixture(scope="module")
def compat(bed):
    """An exporter answering as ``registry-compat``, joined before anything below starts,
    then agents ``reg-a`` and ``reg-b`` and a real RegistryAgent ``registry-real``."""
    exporter = bed.start_exporter(
        "--registry-compat",
        "--registry-compat.instance-id",
        COMPAT,
        "--agent-timeout",
        str(TIMEOUT),
    )
    bed.start_agent("reg-a", "--mode", "acq", "--sample-rate", "1")
    bed.start_agent("reg-b")
    start_registry_agent(bed, REAL)

    def both_know_both() -> bool:
        real, ours = data_of(bed, REAL), data_of(bed, COMPAT)
        return all(
            not d.get(address(i), {"expired": True})["expired"]
            for d in (real, ours)
            for i in ("reg-a", "reg-b")
        ) and all(d[address("reg-a")]["op_codes"].get("acq") == 3 for d in (real, ours))

    try:
        # reg-a's first heartbeats report acq NONE until its startup process runs.
        testbed.wait_for(
            both_know_both, 60, "both registries to list reg-a and reg-b up, reg-a's acq running"
        )
        yield exporter
    finally:
        # The shared router outlives this module: leave no registry and no extra agents.
        leave(bed, [exporter.proc], "reg-a", "reg-b", REAL)


def leave(bed, procs: list, *instance_ids: str) -> None:
    """Stop these processes and agents, and take the agents out of the site file."""
    testbed.stop_processes(procs + [bed.agents[i] for i in instance_ids if i in bed.agents])
    bed.entries[:] = [e for e in bed.entries if e["instance-id"] not in instance_ids]
    bed.write_site_file()


def assert_same_entry(real: dict, ours: dict) -> None:
    assert set(ours) == set(real) == KEYS
    for key in ("expired", "op_codes", "agent_class", "agent_address"):
        assert ours[key] == real[key], key
    # The registry copies its state into session.data once a second.
    assert abs(ours["last_updated"] - real["last_updated"]) < 2.5
    assert type(ours["last_updated"]) is type(real["last_updated"]) is float


@pytest.mark.integration
def test_same_data_as_the_real_registry(bed, compat):
    real, ours = data_of(bed, REAL), data_of(bed, COMPAT)
    assert_same_entry(real[address("reg-a")], ours[address("reg-a")])
    assert_same_entry(real[address("reg-b")], ours[address("reg-b")])
    assert ours[address("reg-a")]["op_codes"]["acq"] == 3
    # Each hears the other's heartbeat (neither hears its own, as crossbar excludes the
    # publisher); every agent the registry hears, the exporter hears too.
    assert ours[address(REAL)]["op_codes"] == {"main": 3, "register_agent": 1}
    assert ours[address(REAL)]["agent_class"] == "RegistryAgent"
    assert real[address(COMPAT)]["op_codes"] == {"main": 3}
    assert real[address(COMPAT)]["agent_class"] == "RegistryAgent"
    assert real[address(COMPAT)]["expired"] is False
    heard_now = {key for key, entry in real.items() if not entry["expired"]}
    assert heard_now - {address(COMPAT)} <= set(ours)
    for key in set(real) & set(ours):
        assert set(real[key]) == set(ours[key]) == KEYS
        assert real[key]["agent_address"] == ours[key]["agent_address"] == key
        assert real[key]["agent_class"] == ours[key]["agent_class"]


@pytest.mark.integration
def test_status_reply_has_the_session_shape_ocs_clients_expect(bed, compat):
    real = bed.client(REAL).main.status()
    ours = bed.client(COMPAT).main.status()
    assert ours.status == real.status == 0
    assert set(ours.session) == set(real.session)
    for key in ("op_name", "op_code", "status", "success", "end_time", "degraded"):
        assert ours.session[key] == real.session[key], key
    assert "main[session=0]; status=running" in repr(ours)
    api = bed.client(COMPAT)._api
    real_api = bed.client(REAL)._api
    assert set(api) == set(real_api)
    assert api["agent_class"] == real_api["agent_class"] == "RegistryAgent"
    assert [p[0] for p in api["processes"]] == [p[0] for p in real_api["processes"]]
    assert bed.client(COMPAT).main.wait(timeout=0.2).status == 1  # TIMEOUT: never ends
    assert bed.client(COMPAT).main.start().status == -1  # already running
    assert bed.client(COMPAT).main.stop().status == -1  # cannot be stopped


@pytest.mark.integration
def test_expired_agent_side_by_side(bed, compat):
    bed.client("reg-b").set_heartbeat(heartbeat=False)
    key = address("reg-b")

    def both_expired() -> tuple[dict, dict] | None:
        real, ours = data_of(bed, REAL)[key], data_of(bed, COMPAT)[key]
        return (real, ours) if real["expired"] and ours["expired"] else None

    try:
        # The registry: 5 s timeout checked every second; 4 s more for a busy machine.
        real, ours = testbed.wait_for(both_expired, TIMEOUT + 1 + 4, "reg-b expired in both")
        read_at = time.time()
        assert_same_entry(real, ours)
        assert set(ours["op_codes"].values()) == {7}
        assert ours["time_expired"] == pytest.approx(ours["last_updated"] + TIMEOUT)
        # The registry stamps time_expired when its loop notices, up to ~1 s later.
        assert ours["time_expired"] - 1.0 <= real["time_expired"] <= read_at + 0.5
        # The registry re-stamps time_expired every second; ours stays where it was.
        testbed.wait_for(
            lambda: data_of(bed, REAL)[key]["time_expired"] > real["time_expired"] + 1,
            10,
            "the registry to re-stamp time_expired",
        )
        assert data_of(bed, COMPAT)[key] == ours
    finally:
        bed.client("reg-b").set_heartbeat(heartbeat=True)

    def both_up() -> tuple[dict, dict] | None:
        real, ours = data_of(bed, REAL)[key], data_of(bed, COMPAT)[key]
        return (real, ours) if not real["expired"] and not ours["expired"] else None

    real, ours = testbed.wait_for(both_up, 15, "reg-b up again in both")
    assert real["time_expired"] is None and ours["time_expired"] is None
    assert ours["op_codes"]["set_heartbeat"] in (3, 5)


@pytest.mark.integration
def test_api_agents_serves_the_same_data(bed, compat):
    status, headers, body = compat.get("/api/agents")
    over_wamp = data_of(bed, COMPAT)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    served = json.loads(body)
    assert set(served) == set(over_wamp)
    for key, entry in served.items():
        assert set(entry) == set(over_wamp[key]) == KEYS
    for key in (address("reg-a"), address(REAL)):
        assert_same_entry(over_wamp[key], served[key])


@pytest.mark.integration
def test_ocs_client_cli_scan_use_registry(bed, compat):
    cli = Path(sys.executable).with_name("ocs-client-cli")
    result = subprocess.run(
        [str(cli), "--site-file", str(bed.site_file), "scan", "--use-registry", COMPAT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "List of Registered Agents" in result.stdout
    listed = {line.strip() for line in result.stdout.splitlines()}
    assert {"reg-a", "reg-b", REAL} <= listed


@pytest.mark.integration
def test_api_agents_behind_basic_auth(bed, compat, tmp_path):
    password = "agents-password"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {"ops": hashed}}))
    exporter = bed.start_exporter("--web.config.file", str(config), wait_ready=False)
    auth = {"Authorization": "Basic " + base64.b64encode(f"ops:{password}".encode()).decode()}
    try:
        testbed.wait_for(lambda: exporter.get("/-/ready", auth)[0] == 200, 30, "ready")
        assert exporter.get("/api/agents")[0] == 401
        status, headers, _ = exporter.get("/api/agents", auth)
        assert status == 200 and headers["Content-Type"] == "application/json"
        testbed.wait_for(
            lambda: address("reg-a") in json.loads(exporter.get("/api/agents", auth)[2]),
            30,
            "reg-a heard and listed",
        )
    finally:
        exporter.stop()


@pytest.mark.integration
def test_refused_registration_logs_one_line_then_takes_over(bed, compat):
    """Two exporters asking for the same instance id: the second is refused, logs one
    line, stays ready, retries quietly, and answers once the first is gone."""
    flags = ("--registry-compat", "--registry-compat.instance-id", "registry-dup")
    started = []
    try:
        started.append(first := bed.start_exporter(*flags))
        testbed.wait_for(lambda: "answering as the RegistryAgent" in first.log(), 10, "first")
        started.append(second := bed.start_exporter(*flags))
        testbed.wait_for(lambda: "refused to register" in second.log(), 10, "the refusal")
        testbed.wait_for(  # at least one quiet retry (logged at debug only)
            lambda: "still refused" in second.log(), REGISTER_RETRY + 10, "a retry"
        )
        refusals = [line for line in second.log().splitlines() if "refused to register" in line]
        assert len(refusals) == 1, refusals
        assert "observatory.registry-dup" in refusals[0]
        assert "procedure_already_exists" in refusals[0]
        assert second.ready()
        assert second.metrics().get("ocs_exporter_crossbar_connected") == 1
        assert bed.client("registry-dup")._api["instance_pid"] == first.proc.pid
        first.stop()
        testbed.wait_for(
            lambda: bed.client("registry-dup")._api["instance_pid"] == second.proc.pid,
            REGISTER_RETRY + 10,
            "the second exporter to take over",
        )
        assert address("reg-a") in data_of(bed, "registry-dup")
    finally:
        testbed.stop_processes([exporter.proc for exporter in started])


@pytest.mark.integration
def test_registration_is_redone_after_a_router_restart(own_bed):
    exporter = own_bed.start_exporter("--registry-compat", "--wamp.max-retry-delay", "2")
    own_bed.start_agent("reg-c")

    def listed() -> bool:
        return address("reg-c") in data_of(own_bed, "registry")

    testbed.wait_for(listed, 30, "reg-c in the registry data")
    own_bed.router.stop()
    own_bed.router.start()
    exporter.wait_ready(30)
    testbed.wait_for(listed, 30, "the registry answering again after the restart")
    assert exporter.log().count("answering as the RegistryAgent observatory.registry") == 2


@pytest.mark.integration
@pytest.mark.parametrize("allowed", [False, True], ids=["subscribe-only", "registry-compat"])
def test_least_privilege_roles(tmp_path_factory, allowed):
    """The shipped roles, verbatim: the subscribe-only one of deploy/crossbar may not
    register (one line, still ready); the registry-compat one lets the exporter answer."""
    workdir = tmp_path_factory.mktemp("compat-role")
    name = "exporter-role-registry-compat.json" if allowed else "exporter-role.json"
    ca = make_authority(workdir, "router-ca")
    server = ca.issue_server(workdir, "router")
    bed = Testbed(
        workdir,
        secured=testbed.Secured(
            port=testbed.free_port(),
            key=server.key,
            certificate=server.cert,
            tickets={"exporter": "compat-ticket"},
            role_file=testbed.EXPORTER_ROLE_FILE.with_name(name),
        ),
    )
    try:
        bed.router.start()
        bed.start_agent("reg-d")
        (workdir / "ticket").write_text("compat-ticket\n")
        exporter = bed.start_exporter(
            "--registry-compat",
            "--site-hub",
            bed.router.secured.url,
            "--wamp.tls-ca-file",
            str(ca.cert),
            "--wamp.authid",
            "exporter",
            "--wamp.secret-file",
            str(workdir / "ticket"),
        )
        if allowed:
            testbed.wait_for(
                lambda: address("reg-d") in data_of(bed, "registry"), 30, "the registry data"
            )
            # Its heartbeat reaches the agents' side of the router.
            heard = subprocess.run(
                [
                    str(Path(sys.executable).with_name("ocs-client-cli")),
                    "--site-file",
                    str(bed.site_file),
                    "scan",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            assert "registry" in {line.strip() for line in heard.stdout.splitlines()}
            assert "refused" not in exporter.log()
        else:
            testbed.wait_for(lambda: "refused to register" in exporter.log(), 10, "refusal")
            [line] = [line for line in exporter.log().splitlines() if "refused" in line]
            assert "observatory.registry" in line and "wamp.error.not_authorized" in line
            assert "may not register" in line
        assert exporter.ready()
        assert exporter.get("/api/agents")[0] == 200
    finally:
        bed.stop()
