"""--registry-compat live: side by side with OCS's own RegistryAgent on a real router."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
import yaml

import testbed
from exporter.wamp.registry_compat import REGISTER_RETRY
from tests.support.bed import Testbed
from tests.support.metrics import KEYS
from tests.support.registry import address, api_only, data_of, leave
from tests.support.tls import make_authority

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
        # Each registry must also have heard the other: the RegistryAgent copies what it
        # heard into its session once a second, so on a loaded machine it can list the
        # agents before the exporter's first heartbeat reaches it.
        heard = {REAL: ours, COMPAT: real}
        return (
            all(
                not d.get(address(i), {"expired": True})["expired"]
                for d in (real, ours)
                for i in ("reg-a", "reg-b")
            )
            and all(d[address("reg-a")]["op_codes"].get("acq") == 3 for d in (real, ours))
            and all(
                d.get(address(i), {}).get("op_codes", {}).get("main") == 3 for i, d in heard.items()
            )
        )

    try:
        # reg-a's first heartbeats report acq NONE until its startup process runs.
        testbed.wait_for(
            both_know_both,
            60,
            "both registries to list reg-a, reg-b and each other up, reg-a's acq running",
        )
        yield exporter
    finally:
        # The shared router outlives this module: leave no registry and no extra agents.
        leave(bed, [exporter.proc], "reg-a", "reg-b", REAL)


def assert_same_entry(real: dict, ours: dict) -> None:
    assert set(ours) == set(real) == KEYS
    for key in ("expired", "op_codes", "agent_class", "agent_address"):
        assert ours[key] == real[key], key
    # The registry copies its state into session.data once a second.
    assert abs(ours["last_updated"] - real["last_updated"]) < 2.5
    assert type(ours["last_updated"]) is type(real["last_updated"]) is float


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


def test_api_agents_serves_the_same_data(bed, compat):
    status, headers, body = compat.get("/api/agents")
    over_wamp = data_of(bed, COMPAT)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    served = json.loads(body)
    assert set(served) == set(over_wamp)
    for key, entry in served.items():
        assert set(api_only(entry)["operations"]) == set(entry["op_codes"])  # /api/agents' own
        assert set(entry) == set(over_wamp[key]) == KEYS
    for key in (address("reg-a"), address(REAL)):
        assert_same_entry(over_wamp[key], served[key])


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
