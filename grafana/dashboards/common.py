"""What the three dashboards share: the dashboard frame, the `datasource`, `job` and agent
variables, the job-scoped query helper, value mappings and field config pieces, and the alert
thresholds they colour by."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import dashboard, prometheus
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from .promql import AGENT_FILTERS, JOB, series, unscoped_selectors

DATASOURCE_UID = "ocs-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
DEFAULT_JOB = "ocs-exporter"
TAG = "ocs"

GREY = "#8e8e8e"
# OpCode value -> (name, colour): ocs.base.OpCode, all eight codes.
OPCODES = {
    1: ("NONE", GREY),
    2: ("STARTING", "light-yellow"),
    3: ("RUNNING", "green"),
    4: ("STOPPING", "semi-dark-yellow"),
    5: ("SUCCEEDED", "blue"),
    6: ("FAILED", "red"),
    7: ("EXPIRED", "dark-purple"),
    8: ("DEGRADED", "orange"),
}

# How a finished run ended (ocs_op_runs_total's outcome label) -> colour.
OUTCOME_COLOURS = {
    "succeeded": "green",
    "failed": "orange",
    "crashed": "red",
    "error": "purple",
}

RULES = Path(__file__).resolve().parents[1] / "alerts" / "ocs-rules.yml"


def alert_threshold(alert: str, rules: Path = RULES) -> float:
    """The number an alert's expression compares with (`... ) > N`), read from the rule
    file, so that a panel colours by the threshold the alert uses."""
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                (number,) = re.findall(r"\)\s*>\s*([0-9.]+)", rule["expr"])
                return float(number)
    raise KeyError(f"no alert {alert} in {rules}")


# OcsProcessStale's threshold: the age at which a running process's data is stale.
STALE_AFTER = alert_threshold("OcsProcessStale")


def default_fresh_time(rules: Path = RULES) -> float:
    """The fresh time of a feed that declares none: the number the recording rule
    ocs:feed_fresh_time_seconds adds to `ocs_feed_info * 0`, read from the rule file."""
    for group in yaml.safe_load(rules.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("record") == "ocs:feed_fresh_time_seconds":
                (number,) = re.findall(r"\*\s*0\s*\+\s*([0-9.]+)", rule["expr"])
                return float(number)
    raise KeyError(f"no recording rule ocs:feed_fresh_time_seconds in {rules}")


# OcsFeedStale's default fresh time (180 s as shipped).
FRESH_DEFAULT = default_fresh_time()

# ---------------------------------------------------------------------------- queries


def query(
    expr: str, legend: str = "", ref: str = "A", *, table: bool = False
) -> prometheus.Dataquery:
    """A Prometheus target on the dashboard's datasource (a table's: instant, as a table);
    refuses an expression that reads a series of any other job."""
    unscoped = unscoped_selectors(expr)
    if unscoped:
        raise ValueError(f"series without {JOB} in {expr!r}: {unscoped}")
    target = (
        prometheus.Dataquery().datasource(DATASOURCE).ref_id(ref).expr(expr).legend_format(legend)
    )
    return target.instant().format(PromQueryFormat.TABLE) if table else target


# ---------------------------------------------------------------------------- variables


def datasource_variable() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .regex("")
        .current(model.VariableOption(selected=True, text="OCS Prometheus", value=DATASOURCE_UID))
    )


def query_variable(name: str, label: str, description: str, expr: str) -> dashboard.QueryVariable:
    """A variable of the label values the datasource returns, refreshed with the time range."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(expr)
        .regex("")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


def all_values(variable: dashboard.QueryVariable) -> dashboard.QueryVariable:
    """Several values or all of them, `All` selected, matched as a regular expression."""
    everything = model.VariableOption(selected=True, text=["All"], value=["$__all"])
    return variable.multi(True).include_all(True).all_value(".*").current(everything)


def job_variable(default: str) -> dashboard.QueryVariable:
    """The exporter's scrape job: every job that exports the exporter's build info."""
    return (
        query_variable(
            "job",
            "Job",
            "Prometheus scrape job of the OCS exporter: one exporter deployment, its replicas"
            " merged.",
            "label_values(ocs_exporter_build_info, job)",
        )
        .multi(False)
        .include_all(False)
        .current(model.VariableOption(selected=True, text=default, value=default))
    )


def agent_class_variable() -> dashboard.QueryVariable:
    return all_values(
        query_variable(
            "agent_class",
            "Agent class",
            "OCS agent classes to show.",
            f"label_values({series('ocs_agent_up')}, agent_class)",
        )
    )


def agent_variable(label: str) -> dashboard.QueryVariable:
    return query_variable(
        "agent",
        label,
        "OCS agent instance-ids (instance_id label).",
        f"label_values({series('ocs_agent_up', AGENT_FILTERS[0])}, instance_id)",
    )


# ---------------------------------------------------------------------------- dashboard


def frame(uid: str, title: str, description: str, since: str, job: str) -> dashboard.Dashboard:
    """A dashboard of the OCS folder: tagged, linked to the others, refreshed every 30 s, its
    first variables the datasource and the job (`job` by default)."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .live_now(False)
        .refresh("30s")
        .time(since, "now")
        .link(
            dashboard.DashboardLink("OCS dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
            .target_blank(False)
            .icon("external link")
            .tooltip("")
            .url("")
        )
        .with_variable(datasource_variable())
        .with_variable(job_variable(job))
    )


# ---------------------------------------------------------------------------- field config


def value_map(options: dict[object, tuple[str, str]]) -> model.ValueMap:
    """A value mapping: value -> (text, colour), in the order given."""
    return model.ValueMap(
        options={
            str(value): model.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(options.items())
        }
    )


OPCODE_MAPPING = value_map(OPCODES)
UP_MAPPING = value_map({0: ("DOWN", "red"), 1: ("UP", "green")})
ROUTER_MAPPING = value_map({0: ("DISCONNECTED", "red"), 1: ("CONNECTED", "green")})


def steps(*colours: tuple[str, float | None]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: (colour, from value), the first from None (minus infinity)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(color=colour, value=value) for colour, value in colours])
    )


GREEN = (("green", None),)


def by_thresholds() -> dashboard.FieldColor:
    return dashboard.FieldColor().mode(model.FieldColorModeId.THRESHOLDS)


def prop(name: str, value: object) -> model.DynamicConfigValue:
    """One property of a field override (`unit`, `custom.width`, `mappings`, ...)."""
    return model.DynamicConfigValue(id_val=name, value=value)


# A table column in seconds, to the second.
SECONDS = (prop("unit", "s"), prop("decimals", 0))


def coloured_count(*colours: tuple[str, float | None]) -> list[model.DynamicConfigValue]:
    """A table column of whole numbers, the text coloured by thresholds."""
    return [
        prop("decimals", 0),
        prop("thresholds", steps(*colours).build()),
        prop("custom.cellOptions", {"type": "color-text"}),
    ]


def transformation(kind: str, **options: object) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=kind, options=options)


def data_age() -> list[model.DynamicConfigValue]:
    """A table column of data ages in seconds, red from OcsProcessStale's threshold."""
    return [
        prop("unit", "s"),
        *coloured_count(("green", None), ("orange", STALE_AFTER / 2), ("red", STALE_AFTER)),
    ]
