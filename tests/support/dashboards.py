"""The provisioned Grafana dashboards as data: panels, variables and queries, and
Grafana's variables substituted; the program that generates them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]


# The program that writes the dashboards and the rules for a scrape job.
GENERATE = ROOT / "grafana" / "generate.py"


PROVISIONING = ROOT / "grafana" / "provisioning"


DASHBOARDS = PROVISIONING / "dashboards" / "ocs"


# Where the Grafana container sees PROVISIONING.
MOUNT = PurePosixPath("/etc/grafana/provisioning")


DATASOURCE_UID = "ocs-prometheus"


# The default of every dashboard's `job` variable: the scrape job of the examples.
DEFAULT_JOB = "ocs-exporter"


# What every series selector of a dashboard carries: the job chosen in the `job` variable.
JOB_MATCHER = 'job="$job"'


FILES = {
    "ocs-overview.json": "ocs-overview",
    "ocs-agent.json": "ocs-agent",
    "ocs-exporter.json": "ocs-exporter",
}


UIDS = tuple(FILES.values())


AGENT_DASHBOARDS = ("ocs-overview", "ocs-agent")


DATASOURCE_REFS = (
    {"type": "prometheus", "uid": "${datasource}"},
    {"type": "prometheus", "uid": "$datasource"},
)


OPCODES = {
    "1": "NONE",
    "2": "STARTING",
    "3": "RUNNING",
    "4": "STOPPING",
    "5": "SUCCEEDED",
    "6": "FAILED",
    "7": "EXPIRED",
    "8": "DEGRADED",
}


# Every per-agent metric: the dashboards' filters must apply to each.
AGENT_METRICS = (
    "ocs_agent_info",
    "ocs_agent_up",
    "ocs_agent_last_heartbeat_timestamp_seconds",
    "ocs_agent_heartbeat_gap_seconds",
    "ocs_agent_start_timestamp_seconds",
    "ocs_agent_restarts_total",
    "ocs_op_code",
    "ocs_op_info",
    "ocs_op_last_change_timestamp_seconds",
    "ocs_op_transitions_total",
    "ocs_op_session_start_timestamp_seconds",
    "ocs_op_session_end_timestamp_seconds",
    "ocs_op_session_last_message_timestamp_seconds",
    "ocs_op_data_timestamp_seconds",
    "ocs_op_runs_total",
    "ocs_op_session_duration_seconds",
    "ocs_feed_info",
    "ocs_feed_messages_total",
    "ocs_feed_last_message_timestamp_seconds",
    "ocs_feed_fresh_time_seconds",
)


BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s"}


# Values that select everything: what Grafana sends with "All" chosen in every variable, and
# the default job (one job at a time: the variable has no "All").
ALL_VARIABLES = {
    "datasource": DATASOURCE_UID,
    "job": DEFAULT_JOB,
    "agent_class": ".*",
    "agent": ".*",
    "instance": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
}


# $name, ${name}, ${name:format}, ${name.path}, and the deprecated [[name]], [[name:format]].
VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?:\.[^:}]*)?(?::[^}]*)?\}"
    r"|\[\[(?P<old>\w+)(?::[^\]]*)?\]\]"
    r"|\$(?P<bare>\w+)"
)


LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*\w+\s*\)\s*$", re.DOTALL)


QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.DOTALL)


# A series selector of the exporter's or Prometheus' metrics: name and {matchers}, if any.
SERIES = re.compile(r"\b((?:ocs|process)_\w+|up)\b(\{[^}]*\})?")


def series_selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, "{matchers}" or "") for every series selector of `expr`."""
    return SERIES.findall(expr)


def substitute(expr: str, variables: dict[str, str]) -> str:
    """`expr` with Grafana's variables replaced by `variables[name]`.

    Covers `$name`, `${name}`, `${name:format}` and `[[name]]`, built-ins included (give
    `__rate_interval`, `__interval`, `__range`, `__range_s`, ... as names). Values are put in
    as given, whatever the format: pass them already formatted (`.*`, `a|b`). A variable with
    no value raises KeyError; `$1` and the like are left alone (label_replace references).
    """

    def replace(match: re.Match) -> str:
        name = match["braced"] or match["old"] or match["bare"]
        if name in variables:
            return variables[name]
        if name.isdigit():
            return match[0]
        raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")

    return VARIABLE.sub(replace, expr)


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    """Run grafana/generate.py with `args`, from a directory of no importance."""
    return subprocess.run(
        [sys.executable, str(GENERATE), *args],
        cwd=ROOT / "grafana",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@cache
def dashboards() -> dict[str, dict]:
    """Every dashboard by uid."""
    loaded = [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]
    return {dashboard["uid"]: dashboard for dashboard in loaded}


def panels(container: dict):
    """Every panel, rows and the panels of collapsed rows included."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def variables(dashboard: dict) -> dict[str, dict]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def variable_query(variable: dict) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def panel_queries(uids: tuple[str, ...] = UIDS) -> list[tuple[str, str, str]]:
    return [
        (uid, panel["title"], target["expr"])
        for uid in uids
        for panel in panels(dashboards()[uid])
        for target in panel.get("targets", [])
    ]


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) for every query of every dashboard.

    Every panel target's `expr`, then every query variable, titled `variable NAME`: for
    `label_values(SELECTOR, label)` the SELECTOR (e.g. `ocs_agent_up`), for
    `query_result(EXPR)` the EXPR. Skipped: datasource variables, and variable queries with no
    series selector (`label_values(label)`, `label_names()`, `metrics(...)`). The expressions
    still hold Grafana variables: see `substitute` and ALL_VARIABLES.
    """
    queries = panel_queries()
    for uid, dashboard in dashboards().items():
        for name, variable in variables(dashboard).items():
            if variable["type"] != "query":
                continue
            query = variable_query(variable)
            match = LABEL_VALUES.match(query) or QUERY_RESULT.match(query)
            if match:
                queries.append((uid, f"variable {name}", match[match.lastgroup]))
    return queries


def hostmanager_stand_in(agent: str) -> dict:
    """A rule group making HostManager series from ``agent``'s, for dashboard tests that run
    no HostManager (test_hostmanager has a real one): as if HostManager hm-dash managed
    ``agent`` (target up, stability 0.3) and failed to parse its site config file. The
    alerts these series feed hold for minutes, longer than those tests run. Metric names
    without colons, as the exporter exports them."""
    up = f'ocs_agent_up{{instance_id="{agent}"}}'
    hm = (
        f'label_replace(label_replace(label_replace({up}, "instance_id", "hm-dash", "", ""),'
        ' "agent_address", "observatory.hm-dash", "", ""), "agent_class", "HostManager", "", "")'
    )
    scf = f'label_replace({hm}, "file", "[SCF]", "", "")'
    managed = f'label_replace({up}, "manager", "hm-dash", "", "")'
    rules = {
        "ocs_agent_target_up": f"{managed} * 0 + 1",
        "ocs_agent_stability": f"{managed} * 0 + 0.3",
        "ocs_agent_managers": f"{up} * 0 + 1",
        "ocs_hostmanager_config_parse_success": f"{scf} * 0",
        "ocs_hostmanager_config_parse_timestamp_seconds": f"{scf} * 0 + time()",
        "ocs_hostmanager_orphans": f"{hm} * 0 + 2",
    }
    return {
        "name": "hostmanager-stand-in",
        "rules": [{"record": name, "expr": expr} for name, expr in rules.items()],
    }
