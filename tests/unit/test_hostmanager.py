"""exporter.hostmanager: a HostManager's manager session data, and every way it is refused."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.heartbeat import MAX_NAME_LENGTH
from exporter.hostmanager import (
    MANAGER_REASONS,
    MAX_CHILDREN,
    MAX_FILES,
    Child,
    InvalidManagerData,
    ManagerData,
    parse_manager_data,
)
from tests.support.strategies import json_like, scalars

# The manager process's session.data as ocs 0.11's HostManager fills it in: child_states
# as its docstring's example (with the operable and restart_required it adds), the site
# config file and a compose file parsed, one orphan container.
REAL = {
    "child_states": [
        {
            "next_action": "up",
            "target_state": "up",
            "stability": 1.0,
            "agent_class": "Lakeshore372Agent",
            "instance_id": "thermo1",
            "operable": True,
            "restart_required": False,
        },
        {
            "next_action": "down",
            "target_state": "down",
            "stability": 1.0,
            "agent_class": "ACUAgent",
            "instance_id": "acu-1",
            "operable": True,
            "restart_required": False,
        },
        {
            "next_action": "up",
            "target_state": "up",
            "stability": 0.25,
            "agent_class": "FakeDataAgent[d]",
            "instance_id": "faker6",
            "operable": True,
            "restart_required": True,
        },
    ],
    "config_parse_status": {
        "[SCF]": [True, 1795518440.5, ""],
        "/home/ocs/config/docker-compose.yml": [
            False,
            1795518442.25,
            "Failed to interpret /home/ocs/config/docker-compose.yml",
        ],
    },
    "orphans": {
        "30027f37e0ef4b": {
            "compose_file": "/home/ocs/config/docker-compose.yml",
            "service": "ocs-faker3",
            "container_id": "30027f37e0ef4b",
            "running": True,
            "exit_code": 0,
            "container_found": True,
            "running_image": "sha256:7eaa6d6f6",
        }
    },
    "new_tags": {"faker6": "simonsobs/ocs:v0.11.3"},
}


def spoilt(**changes: object) -> dict:
    data = copy.deepcopy(REAL)
    data.update(changes)
    return data


def child(**changes: object) -> dict:
    entry = dict(REAL["child_states"][0])
    entry.update(changes)
    return entry


def reason_of(data: object) -> str:
    with pytest.raises(InvalidManagerData) as caught:
        parse_manager_data(data)
    return caught.value.reason


def test_the_real_shape():
    assert parse_manager_data(REAL) == ManagerData(
        children=(
            Child("thermo1", "Lakeshore372Agent", False, True, True, 1.0),
            Child("acu-1", "ACUAgent", False, False, False, 1.0),
            Child("faker6", "FakeDataAgent", True, True, True, 0.25),
        ),
        parse_status=(
            ("/home/ocs/config/docker-compose.yml", False, 1795518442.25),
            ("[SCF]", True, 1795518440.5),
        ),
        orphans=1,
    )


def test_tuples_as_a_local_caller_sees_them_and_integer_times():
    data = spoilt(config_parse_status={"[SCF]": (True, 1795518440, "")})
    assert parse_manager_data(data).parse_status == (("[SCF]", True, 1795518440.0),)


def test_missing_keys_read_as_empty_before_the_process_fills_them_in():
    assert parse_manager_data({}) == ManagerData((), (), 0)
    assert parse_manager_data({"child_states": [], "orphans": {}}) == ManagerData((), (), 0)


@pytest.mark.parametrize(
    ("agent_class", "name", "docker"),
    [
        ("FakeDataAgent[d]", "FakeDataAgent", True),
        ("FakeDataAgent[d?]", "FakeDataAgent", True),
        ("FakeDataAgent", "FakeDataAgent", False),
        ("[docker]", "[docker]", False),  # a service not in the site config
    ],
)
def test_docker_suffixes_are_stripped(agent_class, name, docker):
    (parsed,) = parse_manager_data({"child_states": [child(agent_class=agent_class)]}).children
    assert (parsed.agent_class, parsed.docker) == (name, docker)


@pytest.mark.parametrize(
    ("target", "target_up"),
    [("up", True), ("down", False), ("passive", None), ("anything", None)],
)
def test_only_up_and_down_targets_decide(target, target_up):
    (parsed,) = parse_manager_data({"child_states": [child(target_state=target)]}).children
    assert parsed.target_up is target_up


@pytest.mark.parametrize(
    ("action", "running"), [("up", True), ("down", False), ("?", False), ("wait_start", False)]
)
def test_running_is_next_action_up(action, running):
    (parsed,) = parse_manager_data({"child_states": [child(next_action=action)]}).children
    assert parsed.running is running


@pytest.mark.parametrize(("given_", "kept"), [(0, 0.0), (0.5, 0.5), (1, 1.0), (1.5, 1.0)])
def test_stability_is_kept_within_0_and_1(given_, kept):
    (parsed,) = parse_manager_data({"child_states": [child(stability=given_)]}).children
    assert parsed.stability == kept


CASES = [
    ([], "not_a_mapping"),
    (None, "not_a_mapping"),
    (spoilt(child_states={"thermo1": {}}), "bad_child"),
    (spoilt(child_states=["thermo1"]), "bad_child"),
    (spoilt(child_states=[child(instance_id="a b")]), "bad_child"),
    (spoilt(child_states=[child(instance_id="")]), "bad_child"),
    (spoilt(child_states=[child(instance_id="x" * (MAX_NAME_LENGTH + 1))]), "bad_child"),
    (spoilt(child_states=[child(agent_class=3)]), "bad_child"),
    (spoilt(child_states=[child(agent_class="A\nB")]), "bad_child"),
    (spoilt(child_states=[child(target_state=None)]), "bad_child"),
    (spoilt(child_states=[child(next_action=1)]), "bad_child"),
    (spoilt(child_states=[child(stability="1.0")]), "bad_child"),
    (spoilt(child_states=[child(stability=True)]), "bad_child"),
    (spoilt(child_states=[child(stability=float("nan"))]), "bad_child"),
    (spoilt(child_states=[child(stability=10**400)]), "bad_child"),
    (spoilt(child_states=[child(), child()]), "bad_child"),
    (spoilt(config_parse_status=[]), "bad_parse_status"),
    (spoilt(config_parse_status={"[SCF]": [True, 1.0]}), "bad_parse_status"),
    (spoilt(config_parse_status={"[SCF]": ["yes", 1.0, ""]}), "bad_parse_status"),
    (spoilt(config_parse_status={"[SCF]": [True, "now", ""]}), "bad_parse_status"),
    (spoilt(config_parse_status={"[SCF]": [True, float("inf"), ""]}), "bad_parse_status"),
    (spoilt(config_parse_status={"": [True, 1.0, ""]}), "bad_parse_status"),
    (spoilt(config_parse_status={"a\tb": [True, 1.0, ""]}), "bad_parse_status"),
    (spoilt(orphans=[]), "bad_orphans"),
    (spoilt(orphans="none"), "bad_orphans"),
    (
        spoilt(child_states=[child(instance_id=f"a{i}") for i in range(MAX_CHILDREN + 1)]),
        "too_many",
    ),
    (
        spoilt(config_parse_status={f"f{i}": [True, 1.0, ""] for i in range(MAX_FILES + 1)}),
        "too_many",
    ),
]


@pytest.mark.parametrize(("data", "reason"), CASES)
def test_every_reason(data, reason):
    assert reason_of(data) == reason


def test_every_reason_has_a_case():
    assert {reason for _, reason in CASES} == set(MANAGER_REASONS)


def test_the_limits_themselves_pass():
    children = [child(instance_id=f"a{i}") for i in range(MAX_CHILDREN)]
    files = {f"f{i}": [True, 1.0, ""] for i in range(MAX_FILES)}
    parsed = parse_manager_data({"child_states": children, "config_parse_status": files})
    assert (len(parsed.children), len(parsed.parse_status)) == (MAX_CHILDREN, MAX_FILES)


children = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "instance_id": st.one_of(st.text(max_size=8), scalars),
            "agent_class": st.one_of(st.sampled_from(["A", "A[d]", "A[d?]"]), scalars),
            "target_state": st.one_of(st.sampled_from(["up", "down", "passive"]), scalars),
            "next_action": st.one_of(st.sampled_from(["up", "down"]), scalars),
            "stability": scalars,
        },
    ),
    max_size=4,
)
near_real = st.fixed_dictionaries(
    {},
    optional={
        "child_states": st.one_of(children, json_like),
        "config_parse_status": st.one_of(
            st.dictionaries(st.text(max_size=6), st.lists(scalars, max_size=4)), json_like
        ),
        "orphans": json_like,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_like, near_real))
def test_arbitrary_data_parse_or_raise_invalid_manager_data(data):
    try:
        parsed = parse_manager_data(data)
    except InvalidManagerData as exc:
        assert exc.reason in MANAGER_REASONS
        return
    assert type(data) is dict
    assert len(parsed.children) <= MAX_CHILDREN
    for each in parsed.children:
        assert each.target_up in (True, False, None)
        assert 0.0 <= each.stability <= 1.0
        assert not each.agent_class.endswith(("[d]", "[d?]"))
    for _, success, when in parsed.parse_status:
        assert type(success) is bool and type(when) is float
