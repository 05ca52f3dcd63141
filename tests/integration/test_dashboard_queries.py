"""The dashboards' queries: against a real Prometheus scraping a real exporter under two job
names, every one returns data for the job the `job` variable names and no other; through
promtool, every one parses, and `promtool test rules` evaluates the agent dashboards' queries
against one and two exporter replicas, which must show the same thing."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

import testbed
from exporter.sessions import OUTCOMES
from tests.support.dashboards import (
    AGENT_DASHBOARDS,
    ALL_VARIABLES,
    DEFAULT_JOB,
    OPCODES,
    UIDS,
    dashboard_queries,
    hostmanager_stand_in,
    panel_queries,
    substitute,
)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: scripts/install-system-deps.sh installs it")
    return path


# ---------------------------------------------------------------------------- real Prometheus

# The examples' job name, and another: the dashboards must work under any.
JOBS = (DEFAULT_JOB, "ocs")
AGENT = "dash1"


@pytest.fixture(scope="module")
def prometheus(bed, tmp_path_factory):
    """One exporter, scraped by one Prometheus as two jobs (JOBS) every second; agent dash1
    runs acq and its delay_task has FAILED, the exporter has read both sessions (start, end,
    data timestamp, runs), its acq publishes the recorded feed false_temperatures, and every
    job has samples enough for rates (of heartbeats and feed messages); HostManager series
    come from hostmanager_stand_in."""
    bed.start_agent(AGENT, "--mode", "acq", "--sample-rate", "1")
    exporter = bed.start_exporter()
    target = f"127.0.0.1:{exporter.port}"
    workdir = tmp_path_factory.mktemp("dashboards")
    (workdir / "hostmanager.yml").write_text(
        yaml.safe_dump({"groups": [hostmanager_stand_in(AGENT)]})
    )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "hostmanager.yml")],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job in JOBS
        ],
    }
    prom = testbed.Prometheus(workdir, config)
    try:
        prom.start()
        # Heard means joined, its procedures registered: a busy machine starts it slowly.
        exporter.wait_metric("ocs_agent_up", 1, timeout=60, instance_id=AGENT)
        bed.client(AGENT).delay_task(delay=0, succeed=False)
        failed = f'instance_id="{AGENT}", operation="delay_task"'
        acq = f'instance_id="{AGENT}", operation="acq"'
        feed = f'instance_id="{AGENT}", feed="false_temperatures"'
        testbed.wait_for(
            lambda: all(
                prom.query(f'ocs_op_code{{job="{job}", {failed}}} == 6')
                and prom.query(f'ocs_op_session_end_timestamp_seconds{{job="{job}", {failed}}}')
                and prom.query(f'ocs_op_data_timestamp_seconds{{job="{job}", {acq}}}')
                and prom.query(f'rate(ocs_exporter_heartbeats_total{{job="{job}"}}[15s]) > 0')
                and prom.query(f'rate(ocs_feed_messages_total{{job="{job}", {feed}}}[15s]) > 0')
                and prom.query(f'ocs_hostmanager_orphans{{job="{job}"}}')
                for job in JOBS
            ),
            # The agent's start, its acq and feed, two session answers and enough samples for
            # rates: a minute on a quiet machine, more on a busy shared one.
            150,
            f"{AGENT}'s FAILED delay_task, its sessions, heartbeat and false_temperatures rates"
            " of every job, and the HostManager rules' series, in Prometheus",
        )
        yield prom
    finally:
        testbed.stop_processes([prom, exporter])


@pytest.mark.parametrize("job", JOBS)
def test_every_query_shows_the_chosen_job_and_only_it(prometheus, job):
    variables = {
        **ALL_VARIABLES,
        "job": job,
        "agent_class": "FakeDataAgent",
        "agent": AGENT,
        "__rate_interval": "15s",
    }
    queries = dashboard_queries()
    assert len(queries) > 40
    empty, foreign = [], []
    for uid, title, expr in queries:
        query = substitute(expr, variables)
        result = prometheus.query(query)
        jobs = {sample["metric"]["job"] for sample in result if "job" in sample["metric"]}
        if title == "variable job":
            assert jobs == set(JOBS), "the job variable offers every job"
            continue
        if not result:
            empty.append((uid, title, query))
        if jobs - {job}:
            foreign.append((uid, title, query, jobs))
    assert not empty, "queries without data:\n" + "\n".join(map(str, empty))
    assert not foreign, "queries showing other jobs:\n" + "\n".join(map(str, foreign))


# ---------------------------------------------------------------------------- promtool


def test_every_query_parses(tmp_path):
    rules = {
        "groups": [
            {
                "name": uid,
                "rules": [
                    {"record": f"dashboard:query_{number}:check", "expr": expr}
                    for number, (_, _, expr) in enumerate(
                        q for q in dashboard_queries() if q[0] == uid
                    )
                ],
            }
            for uid in UIDS
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    substituted = substitute(path.read_text(), ALL_VARIABLES)
    path.write_text(substituted)
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- replicas (promtool)

SELECTOR = re.compile(r"\b((?:ocs|process)_\w+|up)\b(\{)?")


def only_replica(expr: str, instance: str) -> str:
    """`expr` with every series selector restricted to one exporter replica."""

    def restrict(match: re.Match) -> str:
        metric, brace = match.groups()
        return (
            f'{metric}{{instance="{instance}", ' if brace else f'{metric}{{instance="{instance}"}}'
        )

    return SELECTOR.sub(restrict, expr)


# instance_id: agent_class, whether up, op codes while up
AGENTS = {
    "fake1": ("FakeDataAgent", True, {"acq": 3, "count": 5, "set_heartbeat": 1, "delay_task": 6}),
    "fake2": ("FakeDataAgent", False, {"acq": 3, "delay_task": 1}),
    "lab1": ("LabAgent", True, {"run": 8, "init": 2, "stop": 4}),
}
# instance_id: (host, expected) from the site config file; lab1 is heard but not listed, and
# fake3 is listed but never heard.
SITE_CONFIG = {"fake1": ("daq1", "true"), "fake2": ("daq1", "true"), "fake3": ("daq2", "true")}
PROCESSES = {"acq", "count", "run"}
UNTYPED = {"lab1"}  # agents that did not answer get_api: no ocs_op_info
# instance_id: {feed: (record, declared fresh time or None)}
FEEDS = {
    "fake1": {"false_temperatures": ("true", None), "slow": ("true", 900)},
    "fake2": {"false_temperatures": ("true", None)},
    "lab1": {"status": ("false", None)},
}


def replica_series(instance: str, joined: bool) -> list[dict]:
    """The exporter's series over 10 min at 15 s: `joined` to the router or cut off at 5 min.

    Feeds (FEEDS) send a message a second while heard, as the heartbeats. A down agent
    stopped heartbeating at 100 s; a replica that is cut off hears nothing after
    300 s, so it reads every agent down and every op code EXPIRED (7), measures a growing
    heartbeat gap, saw operations change later than the joined one (it first saw them
    later), and keeps the sessions it read last. fake1 restarted at 150 s; its delay_task
    failed, ran again and failed at 315 s.
    """
    series = []

    def add(metric: str, labels: dict, values: str) -> None:
        text = ", ".join(f'{k}="{v}"' for k, v in {**labels, "instance": instance}.items())
        series.append({"series": f"{metric}{{{text}}}", "values": values})

    add("ocs_exporter_crossbar_connected", {"job": "ocs-exporter"}, "1x40" if joined else "0x40")

    def agent_labels(instance_id: str, agent_class: str) -> dict:
        return {
            "job": "ocs-exporter",
            "agent_address": f"observatory.{instance_id}",
            "instance_id": instance_id,
            "agent_class": agent_class,
        }

    for instance_id, (host, expected) in SITE_CONFIG.items():
        if instance_id not in AGENTS:
            labels = agent_labels(instance_id, "FakeDataAgent")
            add("ocs_agent_info", {**labels, "host": host, "expected": expected}, "1x40")
            add("ocs_agent_up", labels, "0x40")
    for instance_id, (agent_class, heartbeating, op_codes) in AGENTS.items():
        labels = agent_labels(instance_id, agent_class)
        host, expected = SITE_CONFIG.get(instance_id, ("", "unknown"))
        info = {**labels, "expected": expected, **({"host": host} if host else {})}
        add("ocs_agent_info", info, "1x40")
        up = heartbeating and joined
        add("ocs_agent_up", labels, "1x40" if up else "0x40")
        if not heartbeating:
            last, gap = "100x40", "1x6 20+15x33"
        elif joined:
            last, gap = "0+15x40", "1x40"
        else:
            last, gap = "0+15x20 300x20", "1x20 15+15x19"
        add("ocs_agent_last_heartbeat_timestamp_seconds", labels, last)
        add("ocs_agent_heartbeat_gap_seconds", labels, gap)
        restarted = instance_id == "fake1"
        add("ocs_agent_restarts_total", labels, "0x10 1x30" if restarted else "0x40")
        add(
            "ocs_agent_start_timestamp_seconds",
            labels,
            "-600x10 150x30" if restarted else "-600x40",
        )
        for operation, code in op_codes.items():
            op = {**labels, "operation": operation}
            add("ocs_op_code", op, f"{code if up else 7}x40")
            add("ocs_op_last_change_timestamp_seconds", op, "50x40" if joined else "60x40")
            if instance_id not in UNTYPED:
                op_type = "process" if operation in PROCESSES else "task"
                add("ocs_op_info", {**op, "op_type": op_type}, "1x40")
            for metric, extra, values in session_series(code, heartbeating, joined):
                add(metric, {**op, **extra}, values)
            if code == 6:  # failed again at 315 s: missed by a replica cut off at 300 s
                again = "1x20 2x20" if joined else "1x40"
                add("ocs_op_transitions_total", {**op, "to": "RUNNING"}, again)
                add("ocs_op_transitions_total", {**op, "to": "FAILED"}, again)
            else:
                add("ocs_op_transitions_total", {**op, "to": OPCODES[str(code)]}, "1x40")
        for metric, extra, values in feed_series(instance_id, last):
            add(metric, {**labels, **extra}, values)
    series.extend(hostmanager_series(instance))
    return series


def hostmanager_series(instance: str) -> list[dict]:
    """The series of HostManager hm1 as replica `instance` exports them. hm1 manages fake1
    (target up, exiting in a loop: stability 0.3) and fake2 (target down, stable), parsed
    its site config file but not its compose file, and sees two orphans. A replica cut off
    from the router keeps the data it read last, which has not changed here."""
    hm = {"agent_address": "observatory.hm1", "instance_id": "hm1", "agent_class": "HostManager"}
    series = []
    for instance_id, target, stability in (("fake1", 1, 0.3), ("fake2", 0, 1)):
        agent = {
            "agent_address": f"observatory.{instance_id}",
            "instance_id": instance_id,
            "agent_class": AGENTS[instance_id][0],
        }
        series.append(("ocs_agent_target_up", {**agent, "manager": "hm1"}, f"{target}x40"))
        series.append(("ocs_agent_stability", {**agent, "manager": "hm1"}, f"{stability}x40"))
        series.append(("ocs_agent_managers", agent, "1x40"))
    for file, parsed in (("[SCF]", 1), ("/srv/docker-compose.yml", 0)):
        series.append(
            ("ocs_hostmanager_config_parse_success", {**hm, "file": file}, f"{parsed}x40")
        )
        series.append(
            ("ocs_hostmanager_config_parse_timestamp_seconds", {**hm, "file": file}, "30x40")
        )
    series.append(("ocs_hostmanager_orphans", hm, "2x40"))
    common = {"job": "ocs-exporter", "instance": instance}
    return [
        {
            "series": f"{metric}{{{labels_text({**common, **labels})}}}",
            "values": values,
        }
        for metric, labels, values in series
    ]


def labels_text(labels: dict) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels.items())


def feed_series(instance_id: str, last: str) -> list[tuple[str, dict, str]]:
    """(metric, labels beyond the agent's, values) of the agent's FEEDS: a message a second,
    heard while its heartbeats are (`last`, their times)."""
    series = []
    for feed, (record, fresh) in FEEDS.get(instance_id, {}).items():
        series.append(("ocs_feed_info", {"feed": feed, "record": record}, "1x40"))
        series.append(("ocs_feed_last_message_timestamp_seconds", {"feed": feed}, last))
        series.append(("ocs_feed_messages_total", {"feed": feed}, last))
        if fresh:
            series.append(("ocs_feed_fresh_time_seconds", {"feed": feed}, f"{fresh}x40"))
    return series


def session_series(code: int, heartbeating: bool, joined: bool) -> list[tuple[str, dict, str]]:
    """(metric, labels beyond the operation's, values) of the sessions and runs of an
    operation whose op code is `code` while its agent is up.

    None for an operation never run. Running ones started at 50 s and keep data moving (on a
    replica cut off at 300 s it stops there, on a down agent at 100 s); only RUNNING ones keep
    a data timestamp. The FAILED task ran from 0 to 10 s and again from 310 to 315 s, which a
    replica cut off at 300 s missed; the SUCCEEDED process ended at 20 s.
    """
    if code == 1:
        return []
    again = joined and code == 6
    counted = {6: ("failed", "1x20 2x20" if again else "1x40"), 5: ("succeeded", "1x40")}
    outcome, runs = counted.get(code, ("", ""))
    series = [
        ("ocs_op_runs_total", {"outcome": name}, runs if name == outcome else "0x40")
        for name in OUTCOMES
    ]
    if code in (5, 6):
        end = "10x20 315x20" if again else ("10x40" if code == 6 else "20x40")
        start, last = ("0x20 310x20" if again else "0x40"), end
        series.append(("ocs_op_session_end_timestamp_seconds", {}, end))
    else:
        start = "50x40"
        moving = "0+15x40" if joined else "0+15x20 300x19"
        last = moving if heartbeating else "0+15x6 100x33"
        if code == 3:
            series.append(("ocs_op_data_timestamp_seconds", {}, last))
    series.append(("ocs_op_session_start_timestamp_seconds", {}, start))
    series.append(("ocs_op_session_last_message_timestamp_seconds", {}, last))
    return series


def replica_cases() -> list:
    try:
        queries = panel_queries(AGENT_DASHBOARDS)
    except (OSError, ValueError, KeyError):
        return []  # the tests of the files above say what is wrong
    return [pytest.param(*query, id=f"{query[0]}/{query[1]}") for query in queries]


@pytest.mark.parametrize(("uid", "title", "expr"), replica_cases())
def test_two_replicas_show_what_one_replica_shows(tmp_path, uid, title, expr):
    both = substitute(expr, ALL_VARIABLES)
    one = only_replica(both, "a")
    checks = [
        # Selects something, or the comparisons below prove nothing.
        {"expr": f"absent({one})", "eval_time": "10m", "exp_samples": []},
        {"expr": f"({both}) != ({one})", "eval_time": "10m", "exp_samples": []},
        {"expr": f"({both}) unless ({one})", "eval_time": "10m", "exp_samples": []},
        {"expr": f"({one}) unless ({both})", "eval_time": "10m", "exp_samples": []},
    ]
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "two replicas joined to the router",
                "interval": "15s",
                "input_series": replica_series("a", True) + replica_series("b", True),
                "promql_expr_test": checks,
            },
            {
                "name": "replica b cut off from the router",
                "interval": "15s",
                "input_series": replica_series("a", True) + replica_series("b", False),
                "promql_expr_test": checks,
            },
        ],
    }
    path = tmp_path / "replicas.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{uid} / {title}:\n{result.stdout}{result.stderr}"
