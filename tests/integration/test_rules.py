"""The alerting bundle: rules and their promtool tests, the runbook, the example configs.

Runs Debian's ``promtool`` and ``amtool`` (found on PATH); no server is started.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.dashboards import dashboards, generate, variables

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
RULES = GRAFANA / "alerts" / "ocs-rules.yml"
RULE_TESTS = GRAFANA / "alerts" / "tests" / "ocs-rules.test.yml"
RUNBOOK = GRAFANA / "runbook.md"
PROMETHEUS_CONFIG = GRAFANA / "examples" / "prometheus.yml"
DEPLOY_PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTMANAGER_CONFIG = GRAFANA / "examples" / "alertmanager.yml"

RUNBOOK_URL = "https://github.com/ocs-exporter/ocs-exporter/blob/main/grafana/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}
# Alerts about one agent or one of its operations; Alertmanager inhibits them by `scope`.
AGENT_ALERTS = {
    "OcsAgentDown",
    "OcsAgentMissing",
    "OcsAgentFlapping",
    "OcsAgentRestarted",
    "OcsAgentRestartLoop",
    "OcsAgentHeartbeatStalling",
    "OcsOperationFailed",
    "OcsOperationDegraded",
    "OcsProcessNotRunning",
    "OcsTaskCrashed",
    "OcsProcessStale",
    "OcsFeedStale",
    "OcsAgentUnstable",
    "OcsHostManagerConfigError",
}
# Alerts about whether an agent runs: agents the site config says are not expected to run
# (ocs_agent_info{expected="false"}) never raise them. OcsAgentMissing only looks at
# expected="true" agents.
RUN_ALERTS = {"OcsAgentDown", "OcsAgentFlapping", "OcsAgentRestarted", "OcsAgentRestartLoop"}
NOT_EXPECTED_GUARD = 'unless on (job, agent_address) ocs:agent_info:max{expected="false"}'
# (muting alert, muted alert) about the same agent: the first explains the second.
AGENT_INHIBITIONS = {
    ("OcsAgentRestartLoop", "OcsAgentRestarted"),
    ("OcsAgentRestartLoop", "OcsAgentFlapping"),
    ("OcsTaskCrashed", "OcsOperationFailed"),
}
# Alerts that mean no replica of the job can see the agents; they mute the agent alerts.
BLIND_ALERTS = {"OcsExporterRouterDisconnected", "OcsExporterAbsent"}
# One replica down mutes nothing: another replica may still watch the agents, and with a
# single replica the agents' series go stale, so agent alerts cannot fire anyway.
REQUIRED_ALERTS = {*AGENT_ALERTS, *BLIND_ALERTS, "OcsExporterDown", "OcsInvalidHeartbeats"}
# Hold times fixed by the design; other alerts may choose their own.
HOLD_TIMES = {
    "OcsAgentDown": "1m",
    "OcsAgentMissing": "5m",
    "OcsOperationDegraded": "10m",
    "OcsProcessNotRunning": "5m",
    "OcsAgentHeartbeatStalling": "5m",
    "OcsExporterRouterDisconnected": "1m",
}
ROUTER_OUTAGE_GUARD = "unless on (job) (ocs:exporter_crossbar_connected:max == 0)"
CAMEL_CASE = re.compile(r"Ocs(?:[A-Z][a-z0-9]+)+")
DURATION = re.compile(r"[0-9]+[smhdwy]")


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if shutil.which(str(args[0])) is None:
        pytest.fail(f"{args[0]} is not on PATH")
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def assert_succeeds(result: subprocess.CompletedProcess[str]) -> None:
    output = f"$ {' '.join(result.args)}\n{result.stdout}{result.stderr}"
    assert result.returncode == 0, output


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def recording_rules() -> dict[str, str]:
    return {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_headings() -> list[str]:
    return re.findall(r"^#{1,6} +(.+?) *#* *$", RUNBOOK.read_text(), flags=re.MULTILINE)


def rule_test_cases() -> list[dict]:
    return [case for test in load(RULE_TESTS)["tests"] for case in test["alert_rule_test"]]


def test_rules_pass_promtool_lint():
    assert_succeeds(run("promtool", "check", "rules", "--lint-fatal", RULES))


def test_rule_unit_tests_pass():
    assert_succeeds(run("promtool", "test", "rules", RULE_TESTS))


# Each mutant breaks one property the rules must have; the promtool tests must notice.
MUTANTS = {
    "agent alerts fire during a router outage": (ROUTER_OUTAGE_GUARD, ""),
    "replicas not merged": ("max without (instance)", "max without ()"),
    "EXPIRED taken for FAILED": ("ocs_op_code == 6", "ocs_op_code >= 6"),
    "router alert per replica": (
        "max by (job) (ocs_exporter_crossbar_connected) == 0",
        "ocs_exporter_crossbar_connected == 0",
    ),
    "router outages counted as flapping": (
        "unless on (job, instance) (min_over_time(ocs_exporter_crossbar_connected[15m]) == 0)",
        "",
    ),
    "invalid heartbeats summed over replicas": (
        "max without (instance) (rate(",
        "sum without (instance) (rate(",
    ),
    "never-heard agents reported down": (
        "and on (job, agent_address) max without (instance) "
        "(ocs_agent_last_heartbeat_timestamp_seconds)",
        "",
    ),
    "agents not expected to run alert": (NOT_EXPECTED_GUARD, ""),
    "agents heard by one replica reported missing": (
        "unless on (job, agent_address) ocs_agent_last_heartbeat_timestamp_seconds",
        "unless on (job, agent_address, instance) ocs_agent_last_heartbeat_timestamp_seconds",
    ),
    "failed processes reported as failed operations": (
        'unless on (job, agent_address, operation) ocs:op_info:max{op_type="process"}',
        "",
    ),
    "tasks reported as processes": (
        'and on (job, agent_address, operation) ocs:op_info:max{op_type="process"}',
        "",
    ),
    "restarts summed over replicas": (
        "max without (instance) (increase(ocs_agent_restarts_total",
        "sum without (instance) (increase(ocs_agent_restarts_total",
    ),
    "heartbeat gaps of a replica cut off from the router": (
        "min without (instance) (ocs_agent_heartbeat_gap_seconds)",
        "max without (instance) (ocs_agent_heartbeat_gap_seconds)",
    ),
    "stalling reported for down agents": (
        "and on (job, agent_address) (ocs:agent_up:max == 1)",
        "",
    ),
    "exporter alerts about every job's targets": (
        "expr: up and on (job) ocs:exporter_job",
        "expr: up",
    ),
    "absent job reported without its job label": (
        "ocs:exporter_job unless on (job) ocs:exporter_up",
        "absent(ocs:exporter_up)",
    ),
    "crashes summed over replicas": (
        "max without (instance, outcome) (increase(ocs_op_runs_total",
        "sum without (instance, outcome) (increase(ocs_op_runs_total",
    ),
    "failed runs taken for crashes": ('outcome="crashed"', 'outcome=~"crashed|failed"'),
    "a crash in the first session seen missed": (
        'unless ocs_op_runs_total{outcome="crashed"} offset 15m',
        'unless ocs_op_runs_total{outcome="crashed"}',
    ),
    "old crashes alerting again when an exporter restarts": (
        "(max_over_time(ocs_op_session_end_timestamp_seconds[15m]))\n            < 900",
        "(max_over_time(ocs_op_session_end_timestamp_seconds[15m]))\n            > 0",
    ),
    "crashed processes reported as crashed tasks": (
        "< 900\n          )\n          unless on (job, agent_address, operation) "
        'ocs:op_info:max{op_type="process"}',
        "< 900\n          )",
    ),
    "processes stale after a minute": ("> 600", "> 60"),
    "stale data of a replica cut off from the router": (
        "max without (instance) (ocs_op_data_timestamp_seconds)",
        "min without (instance) (ocs_op_data_timestamp_seconds)",
    ),
    "stale data of processes not running": (
        "\n          and on (job, agent_address, operation) "
        "max without (instance) (ocs_op_code == 3)",
        "",
    ),
    "running read after merging replicas": (
        "max without (instance) (ocs_op_code == 3)",
        "max without (instance) (ocs_op_code) == 3",
    ),
    "stale data of tasks": (
        "(ocs_op_code == 3)\n          and on (job, agent_address, operation) "
        'ocs:op_info:max{op_type="process"}',
        "(ocs_op_code == 3)",
    ),
    "the default fresh time not 180 s": ("* 0 + 180", "* 0 + 1800"),
    "declared fresh times ignored": (
        "max without (instance) (ocs_feed_fresh_time_seconds)\n          or ",
        "",
    ),
    "unrecorded feeds alert": (
        'and on (job, agent_address, feed) max without (instance) (ocs_feed_info{record="true"})',
        "",
    ),
    "feed times of a replica cut off from the router": (
        "max without (instance) (ocs_feed_last_message_timestamp_seconds)\n          >",
        "min without (instance) (ocs_feed_last_message_timestamp_seconds)\n          >",
    ),
    "feeds of agents running no process alert": (
        "\n          and on (job, agent_address) (\n"
        "            max without (instance) (ocs_op_code == 3 or ocs_op_code == 8)\n"
        "            unless on (job, agent_address, operation) "
        'ocs:op_info:max{op_type="task"}\n          )',
        "",
    ),
    "DEGRADED processes not counted as running": (
        "(ocs_op_code == 3 or ocs_op_code == 8)",
        "(ocs_op_code == 3)",
    ),
    "feeds of agents whose operations have no type not watched": (
        "(ocs_op_code == 3 or ocs_op_code == 8)\n"
        "            unless on (job, agent_address, operation) "
        'ocs:op_info:max{op_type="task"}',
        "(ocs_op_code == 3 or ocs_op_code == 8)\n"
        "            and on (job, agent_address, operation) "
        'ocs:op_info:max{op_type="process"}',
    ),
    "feeds stopped with their process alert": (
        "\n          unless on (job, agent_address, feed) (",
        "\n          unless on (job, agent_address, feed) (vector(0) and ",
    ),
    "ended tasks taken for stopped processes": (
        "(ocs_op_code == 4 or ocs_op_code == 5 or ocs_op_code == 6)\n"
        "                unless on (job, agent_address, operation) "
        'ocs:op_info:max{op_type="task"}',
        "(ocs_op_code == 4 or ocs_op_code == 5 or ocs_op_code == 6)",
    ),
    "a feed stopping a minute after a process stopped taken for stopped with it": (
        "              + 30\n",
        "              + 90\n",
    ),
    "agents whose HostManager target is down reported missing": (
        'ocs:agent_info:max{expected="true"}',
        'ocs:agent_info:max{expected=~"true|false"}',
    ),
    "agents exiting once a minute taken for unstable": (") < 0.5", ") < 0.9"),
    "stability of a replica cut off from the router": (
        "ocs_agent_stability\n            unless on (job, instance) "
        "(ocs_exporter_crossbar_connected == 0)",
        "ocs_agent_stability",
    ),
    "parse status of a replica cut off from the router": (
        "ocs_hostmanager_config_parse_success\n            unless on (job, instance) "
        "(ocs_exporter_crossbar_connected == 0)",
        "ocs_hostmanager_config_parse_success",
    ),
}


def mutated_rules(source: str, old: str) -> set[str]:
    """The names of the rules a change of every ``old`` alters: the rules whose text holds
    it, and every rule that reads a recorded series of an altered one."""
    names = set()
    for found in re.finditer(re.escape(old), source):
        before = source[: found.start()]
        start = max(before.rfind("- alert:"), before.rfind("- record:"))
        if start >= 0:  # else a comment above the first rule
            names.add(before[start:].split(":", 1)[1].split()[0])
    while True:
        readers = {
            rule.get("alert") or rule["record"]
            for rule in rules()
            if any(name in rule["expr"] for name in names if ":" in name)
        }
        if readers <= names:
            return names
        names |= readers


def split_rule_tests(directory: Path) -> list[tuple[str, Path]]:
    """The promtool test file, one test group per file in ``directory`` (each reading
    ``../`` + the rules file, as the original does): each group's text and its file."""
    tests = load(RULE_TESTS)
    groups = []
    for i, group in enumerate(tests.pop("tests")):
        path = directory / f"group-{i}.test.yml"
        text = yaml.safe_dump({**tests, "tests": [group]})
        path.write_text(text)
        groups.append((text, path))
    return groups


@pytest.mark.parametrize(("old", "new"), MUTANTS.values(), ids=MUTANTS.keys())
def test_rule_unit_tests_catch_broken_rules(tmp_path, old, new):
    source = RULES.read_text()
    assert old in source, f"the rules no longer contain {old!r}: update the mutant"
    (tmp_path / RULES.name).write_text(source.replace(old, new))
    (tmp_path / "tests").mkdir()
    mutant = run("promtool", "check", "rules", tmp_path / RULES.name)
    assert_succeeds(mutant)  # still valid rules, only wrong ones
    # Every test group is run, those that test an altered rule first: the first failure is
    # enough, and the others would take most of the time (one group is a fraction of a second).
    names = mutated_rules(source, old)
    groups = split_rule_tests(tmp_path / "tests")
    first = [path for text, path in groups if any(name in text for name in names)]
    rest = [path for _, path in groups if path not in first]
    for batch in (first, rest):
        if batch and run("promtool", "test", "rules", *batch).returncode != 0:
            return
    pytest.fail(f"promtool tests pass with a broken rule ({old!r} -> {new!r})")


def test_the_split_rule_tests_are_the_rule_tests(tmp_path):
    # What the mutants run is the whole test file: every group, each passing on the rules.
    groups = split_rule_tests(tmp_path)
    assert len(groups) == len(load(RULE_TESTS)["tests"]) > 20
    shutil.copy(RULES, tmp_path.parent / RULES.name)
    assert_succeeds(run("promtool", "test", "rules", *(path for _, path in groups)))


def test_the_exporter_job_is_named_once():
    # grafana/generate.py --job NAME sets this one label; no rule selects a job itself.
    named = [rule for rule in rules() if "job" in rule.get("labels", {})]
    assert [rule.get("record") for rule in named] == ["ocs:exporter_job"]
    assert named[0]["labels"]["job"] == "ocs-exporter"
    for rule in rules():
        assert not re.search(r"\bjob\s*(=|!=|=~|!~)", rule["expr"]), rule


# ---------------------------------------------------------------------------- another job


def rules_for_job(tmp_path: Path, job: str) -> Path:
    """The rule file grafana/generate.py writes for the scrape job `job`."""
    result = generate("--job", job, "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "out" / "alerts" / RULES.name


def test_rules_for_another_job_pass_promtool_lint(tmp_path):
    assert_succeeds(
        run("promtool", "check", "rules", "--lint-fatal", rules_for_job(tmp_path, "ocs"))
    )


def exporter_alert(name: str, labels: dict[str, str], description: str) -> dict:
    summary = alerts()[name]["annotations"]["summary"]
    return {
        "exp_labels": {"severity": "critical", "scope": "exporter", **labels},
        "exp_annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": RUNBOOK_URL + name.lower(),
        },
    }


def test_rules_for_job_ocs_watch_job_ocs(tmp_path):
    """`up{job="ocs"} == 0` fires OcsExporterDown; the old job's targets no longer count."""
    rules = rules_for_job(tmp_path, "ocs")
    down = exporter_alert(
        "OcsExporterDown",
        {"job": "ocs", "instance": "exporter-a:10020"},
        "Scrapes of exporter-a:10020 (job ocs) have been failing for more than 2 minutes.",
    )
    absent = exporter_alert(
        "OcsExporterAbsent",
        {"job": "ocs"},
        "There has been no target of job ocs for more than 5 minutes: nothing watches the OCS"
        " agents.",
    )
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "job ocs down, job ocs-exporter down too",
                "interval": "1m",
                "input_series": [
                    {"series": 'up{job="ocs",instance="exporter-a:10020"}', "values": "1 0x10"},
                    {"series": 'up{job="ocs-exporter",instance="old:10020"}', "values": "0x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "OcsExporterDown", "exp_alerts": [down]},
                    {"eval_time": "10m", "alertname": "OcsExporterAbsent", "exp_alerts": []},
                ],
            },
            {
                "name": "only job ocs-exporter scraped",
                "interval": "1m",
                "input_series": [
                    {"series": 'up{job="ocs-exporter",instance="old:10020"}', "values": "1x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "OcsExporterAbsent", "exp_alerts": [absent]},
                    {"eval_time": "10m", "alertname": "OcsExporterDown", "exp_alerts": []},
                ],
            },
        ],
    }
    path = tmp_path / "job-ocs.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    assert_succeeds(run("promtool", "test", "rules", path))


def test_rule_unit_tests_pass_for_another_job(tmp_path):
    """The whole promtool suite, its series and expected alerts of job ocs, on the rules
    generated for job ocs."""
    rules = rules_for_job(tmp_path, "ocs")
    # The job's name, not the project's in the runbook links.
    text = re.sub(r"(?<![\w/-])ocs-exporter(?![\w/-])", "ocs", RULE_TESTS.read_text())
    assert 'ocs-exporter"' not in text and "job: ocs\n" in text
    (rules.parent / "tests").mkdir()
    tests = rules.parent / "tests" / RULE_TESTS.name
    tests.write_text(text)
    assert_succeeds(run("promtool", "test", "rules", tests))


def test_rule_tests_load_the_rule_file():
    files = load(RULE_TESTS)["rule_files"]
    assert [(RULE_TESTS.parent / name).resolve() for name in files] == [RULES]


def test_required_alerts_exist():
    missing = REQUIRED_ALERTS - alerts().keys()
    assert not missing


def test_recording_rules_are_named_ocs():
    for name in recording_rules():
        assert name.startswith("ocs:"), name


@pytest.mark.parametrize("name", sorted(alerts()))
def test_alert_metadata(name):
    rule = alerts()[name]
    assert CAMEL_CASE.fullmatch(name), f"{name} is not Ocs + CamelCase"
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert "{{" not in annotations["summary"], "summary must be static"
    assert re.search(r"\{\{[^}]*\$(labels|value)", annotations["description"])
    url = annotations["runbook_url"]
    assert url == RUNBOOK_URL + name.lower()
    anchors = {github_anchor(heading) for heading in runbook_headings()}
    assert url.removeprefix(RUNBOOK_URL) in anchors
    assert name in runbook_headings(), f"no runbook heading reads exactly {name}"


def test_hold_times_are_plain_durations_on_their_own_lines():
    text = RULES.read_text()
    for name, rule in alerts().items():
        if "for" in rule:
            assert isinstance(rule["for"], str), name
            assert DURATION.fullmatch(rule["for"]), f"{name}: for: {rule['for']!r}"
    for name, hold in HOLD_TIMES.items():
        assert alerts()[name].get("for") == hold, name
    lines = re.findall(r"^ +for: ([^ #\n]+) *$", text, flags=re.MULTILINE)
    assert len(lines) == sum("for" in rule for rule in alerts().values())


def test_agent_alerts_are_scoped_and_hold_back_during_router_outages():
    scoped = {name for name, rule in alerts().items() if rule["labels"].get("scope") == "agent"}
    assert scoped == AGENT_ALERTS
    for name in AGENT_ALERTS:
        expr = " ".join(alerts()[name]["expr"].split())
        assert expr.endswith(ROUTER_OUTAGE_GUARD), name
    for name in BLIND_ALERTS:
        assert alerts()[name]["labels"].get("scope") != "agent", name


def test_alerts_about_whether_an_agent_runs_skip_agents_not_expected_to_run():
    for name in RUN_ALERTS:
        assert NOT_EXPECTED_GUARD in " ".join(alerts()[name]["expr"].split()), name
    # Alerts about a running agent's heartbeats and operations still apply to them.
    for name in AGENT_ALERTS - RUN_ALERTS:
        assert 'expected="false"' not in alerts()[name]["expr"], name
    assert 'ocs:agent_info:max{expected="true"}' in alerts()["OcsAgentMissing"]["expr"]


def test_agent_alerts_aggregate_instance_away():
    records = recording_rules()
    for name in AGENT_ALERTS:
        expr = alerts()[name]["expr"]
        used = [records[record] for record in records if record in expr]
        assert any("without (instance)" in text for text in [expr, *used]), name


def test_every_alert_has_a_firing_and_a_silent_case():
    firing: set[str] = set()
    silent: set[str] = set()
    for case in rule_test_cases():
        (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = set(alerts())
    assert names - firing == set(), "alerts never expected to fire"
    assert names - silent == set(), "alerts never expected to stay silent"
    assert (firing | silent) <= names, "test cases for alerts that do not exist"


def test_prometheus_example_passes_promtool_and_loads_the_rules(tmp_path):
    # Run from elsewhere: rule_files must resolve against the config file's directory.
    result = run("promtool", "check", "config", PROMETHEUS_CONFIG, cwd=tmp_path)
    assert_succeeds(result)
    assert "SUCCESS: 1 rule files found" in result.stdout
    config = load(PROMETHEUS_CONFIG)
    rule_files = [(PROMETHEUS_CONFIG.parent / path).resolve() for path in config["rule_files"]]
    assert rule_files == [RULES]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "ocs-exporter"]
    assert job["static_configs"][0]["targets"] == ["ocs-exporter:10020"]
    [manager] = config["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["alertmanager:9093"]


def watched_job() -> str:
    (rule,) = [rule for rule in rules() if rule.get("record") == "ocs:exporter_job"]
    return rule["labels"]["job"]


@pytest.mark.parametrize(
    "path",
    [PROMETHEUS_CONFIG, DEPLOY_PROMETHEUS / "prometheus.yml"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_shipped_prometheus_configs_scrape_the_job_the_rules_and_dashboards_name(path):
    job = watched_job()
    assert [scrape["job_name"] for scrape in load(path)["scrape_configs"]] == [job]
    for uid, dashboard in dashboards().items():
        assert variables(dashboard)["job"]["current"]["value"] == job, uid
    assert "generate.py --job" in path.read_text()  # how to name it otherwise


def test_global_view_federates_the_job_the_rules_name():
    (federate,) = load(DEPLOY_PROMETHEUS / "global.yml")["scrape_configs"]
    assert f'{{job="{watched_job()}"}}' in federate["params"]["match[]"]


def walk_keys(node: object) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in walk_keys(value)}
    if isinstance(node, list):
        return {key for value in node for key in walk_keys(value)}
    return set()


def matches(matcher: str, labels: dict[str, str]) -> bool:
    """Whether an Alertmanager matcher such as ``alertname=~"A|B"`` selects ``labels``."""
    found = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', matcher)
    assert found, f"cannot read matcher {matcher!r}"
    name, op, value = found.groups()
    actual = labels.get(name, "")
    if op in ("=~", "!~"):
        return bool(re.fullmatch(value, actual)) == (op == "=~")
    return (actual == value) == (op == "=")


def test_alertmanager_example_passes_amtool():
    assert_succeeds(run("amtool", "check-config", ALERTMANAGER_CONFIG))
    config = load(ALERTMANAGER_CONFIG)
    assert not walk_keys(config) & {"match", "match_re", "source_match", "target_match"}
    assert "agent_address" in config["route"]["group_by"]


def alert_labels(name: str) -> dict[str, str]:
    return {"alertname": name, **alerts()[name]["labels"]}


def test_exporter_outages_and_restart_loops_inhibit_exactly_what_they_explain():
    inhibit_rules = load(ALERTMANAGER_CONFIG)["inhibit_rules"]
    labels = {name: alert_labels(name) for name in alerts()}  # the rules file read once

    def muting(target: str, source: str) -> list[dict]:
        return [
            rule
            for rule in inhibit_rules
            if all(matches(m, labels[source]) for m in rule["source_matchers"])
            and all(matches(m, labels[target]) for m in rule["target_matchers"])
        ]

    for source in labels:
        for target in labels:
            rules = muting(target, source)
            blind = source in BLIND_ALERTS and target in AGENT_ALERTS
            same_agent = (source, target) in AGENT_INHIBITIONS
            assert bool(rules) == (blind or same_agent), (source, target)
            for rule in rules:
                assert "job" in rule["equal"], (source, target)
                # One agent's alert mutes only that agent's.
                assert same_agent == ("agent_address" in rule["equal"]), (source, target)


def test_info_alerts_go_to_a_receiver_that_does_not_page():
    receivers = {}
    for name in sorted(alerts()):
        labels = [f"{key}={value}" for key, value in alert_labels(name).items()]
        result = run(
            "amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels
        )
        assert_succeeds(result)
        receivers[name] = result.stdout.split()
    for name, received in receivers.items():
        info = alerts()[name]["labels"]["severity"] == "info"
        assert received == (["ocs-info"] if info else ["ocs-default"]), name
    assert ["ocs-info"] in receivers.values()
