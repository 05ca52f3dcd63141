"""What the three dashboards share: the dashboard frame, the `datasource`, `job` and agent
variables, the value mappings, the job-scoped query helper and the panel shapes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as viz
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.models import common as vizmodel
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


def frame(uid: str, title: str, description: str, since: str) -> dashboard.Dashboard:
    """A dashboard of the OCS folder: tagged, linked to the others, refreshed every 30 s."""
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


def transformation(kind: str, **options: object) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(id_val=kind, options=options)


# ---------------------------------------------------------------------------- panels


def stat_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    *,
    size: tuple[int, int] = (4, 4),
    thresholds: tuple[tuple[str, float | None], ...] = GREEN,
) -> stat.Panel:
    """The last value of each series as a number on a background coloured by thresholds.

    Grafana's stat options `wideLayout` (true) and `showPercentChange` (false) keep their
    defaults: the SDK's stat model does not have them.
    """
    return (
        stat.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target.instant())
        .span(size[0])
        .height(size[1])
        .mappings([])
        .thresholds(steps(*thresholds))
        .color_scheme(by_thresholds())
        .unit("none")
        .reduce_options(viz.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(vizmodel.BigValueColorMode.BACKGROUND)
        .graph_mode(vizmodel.BigValueGraphMode.NONE)
        .justify_mode(vizmodel.BigValueJustifyMode.AUTO)
        .orientation(vizmodel.VizOrientation.AUTO)
        .text_mode(vizmodel.BigValueTextMode.AUTO)
    )


def label_panel(
    panel_id: int, title: str, description: str, target: prometheus.Dataquery, width: int
) -> stat.Panel:
    """A label of the series (its legend) as plain text."""
    return (
        stat_panel(panel_id, title, description, target, size=(width, 4))
        .color_mode(vizmodel.BigValueColorMode.NONE)
        .text_mode(vizmodel.BigValueTextMode.NAME)
    )


def legend(
    mode: vizmodel.LegendDisplayMode = vizmodel.LegendDisplayMode.LIST,
    calcs: list[str] | None = None,
) -> viz.VizLegendOptions:
    return (
        viz.VizLegendOptions()
        .show_legend(True)
        .display_mode(mode)
        .placement(vizmodel.LegendPlacement.BOTTOM)
        .calcs(calcs or [])
    )


def timeline_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    mapping: model.ValueMap,
    *,
    size: tuple[int, int],
) -> statetimeline.Panel:
    """States over time, a row per series, coloured and named by `mapping`."""
    return (
        statetimeline.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target.range())
        .span(size[0])
        .height(size[1])
        .line_width(0)
        .fill_opacity(80)
        .color_scheme(by_thresholds())
        .thresholds(steps((GREY, None)))
        .mappings([mapping])
        .merge_values(True)
        .show_value(vizmodel.VisibilityMode.AUTO)
        .align_value(vizmodel.TimelineValueAlignment.LEFT)
        .row_height(0.9)
        .legend(legend())
        .tooltip(
            viz.VizTooltipOptions()
            .mode(vizmodel.TooltipDisplayMode.SINGLE)
            .sort(vizmodel.SortOrder.NONE)
        )
    )


def timeseries_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str,
    *,
    size: tuple[int, int],
    thresholds: tuple[tuple[str, float | None], ...] = GREEN,
) -> timeseries.Panel:
    """Lines from zero up, one per series, no points, gaps left open."""
    return (
        timeseries.Panel()
        .id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target.range())
        .span(size[0])
        .height(size[1])
        .draw_style(vizmodel.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(vizmodel.VisibilityMode.NEVER)
        .span_nulls(False)
        .axis_soft_min(0)
        .color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.PALETTE_CLASSIC))
        .unit(unit)
        .thresholds(steps(*thresholds))
        .mappings([])
        .legend(legend())
        .tooltip(
            viz.VizTooltipOptions()
            .mode(vizmodel.TooltipDisplayMode.MULTI)
            .sort(vizmodel.SortOrder.DESCENDING)
        )
    )
