"""The panel shapes the dashboards use: stat, label, state timeline, time series and table.

Each takes the panel's id (kept stable for links to a panel), title, description and size
(width, height in grid units; the SDK lays panels out left to right in rows of 24).
"""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import common as viz
from grafana_foundation_sdk.builders import (
    dashboard,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.models import common as vizmodel
from grafana_foundation_sdk.models import dashboard as model

from .common import (
    DATASOURCE,
    GREEN,
    GREY,
    OUTCOME_COLOURS,
    by_thresholds,
    prop,
    query,
    steps,
    transformation,
)

Size = tuple[int, int]
Steps = tuple[tuple[str, float | None], ...]
Panel = TypeVar("Panel", stat.Panel, statetimeline.Panel, timeseries.Panel, table.Panel)


def placed(panel: Panel, panel_id: int, title: str, description: str, size: Size) -> Panel:
    """`panel` with its id, title, description and size, reading the dashboard's datasource."""
    return (
        panel.id(panel_id)
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(size[0])
        .height(size[1])
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


def tooltip(mode: vizmodel.TooltipDisplayMode, order: vizmodel.SortOrder) -> viz.VizTooltipOptions:
    return viz.VizTooltipOptions().mode(mode).sort(order)


def stat_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    *,
    size: Size = (4, 4),
    thresholds: Steps = GREEN,
) -> stat.Panel:
    """The last value of each series as a number on a background coloured by thresholds.

    Grafana's stat options `wideLayout` (true) and `showPercentChange` (false) keep their
    defaults: the SDK's stat model does not have them.
    """
    return (
        placed(stat.Panel(), panel_id, title, description, size)
        .with_target(target.instant())
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


def timeline_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    mapping: model.ValueMap,
    *,
    size: Size,
) -> statetimeline.Panel:
    """States over time, a row per series, coloured and named by `mapping`."""
    return (
        placed(statetimeline.Panel(), panel_id, title, description, size)
        .with_target(target.range())
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
        .tooltip(tooltip(vizmodel.TooltipDisplayMode.SINGLE, vizmodel.SortOrder.NONE))
    )


def timeseries_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    unit: str,
    *,
    size: Size,
    thresholds: Steps = GREEN,
) -> timeseries.Panel:
    """Lines from zero up, one per series, no points, gaps left open."""
    return (
        placed(timeseries.Panel(), panel_id, title, description, size)
        .with_target(target.range())
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
        .tooltip(tooltip(vizmodel.TooltipDisplayMode.MULTI, vizmodel.SortOrder.DESCENDING))
    )


def counts_panel(
    panel_id: int,
    title: str,
    description: str,
    target: prometheus.Dataquery,
    *,
    size: Size,
) -> timeseries.Panel:
    """Whole counts per interval as bars, one per series."""
    return (
        timeseries_panel(panel_id, title, description, target, "short", size=size)
        .draw_style(vizmodel.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .decimals(0)
    )


def by_outcome(panel: timeseries.Panel) -> timeseries.Panel:
    """`panel` with each series coloured by the run outcome its name ends with (the legend's
    last word)."""
    for outcome, colour in OUTCOME_COLOURS.items():
        fixed = {"mode": "fixed", "fixedColor": colour}
        panel = panel.override_by_regexp(f"{outcome}$", [prop("color", fixed)])
    return panel


def table_panel(
    panel_id: int,
    title: str,
    description: str,
    exprs: list[str],
    columns: dict[str, str],
    hidden: list[str],
    *,
    height: int,
    sort_by: str,
    descending: bool = False,
) -> table.Panel:
    """A full-width table of instant queries (refIds A, B, ...) merged into one row per
    series: `columns` (field -> header) in that order, `hidden` fields left out, rows sorted
    by the column `sort_by` (largest first if `descending`). Field overrides are the
    caller's.

    The SDK's table builder has no field defaults: Grafana's (align auto, no inspect) apply.
    """
    panel = placed(table.Panel(), panel_id, title, description, (24, height))
    for index, expr in enumerate(exprs):
        panel = panel.with_target(query(expr, ref=chr(ord("A") + index), table=True))
    return (
        panel.with_transformation(transformation("merge"))
        .with_transformation(
            transformation(
                "organize",
                excludeByName=dict.fromkeys(hidden, True),
                indexByName={name: index for index, name in enumerate(columns)},
                renameByName=columns,
            )
        )
        .color_scheme(by_thresholds())
        .thresholds(steps(*GREEN))
        .mappings([])
        .show_header(True)
        .cell_height(vizmodel.TableCellHeight.SM)
        .footer(viz.TableFooterOptions().show(False).reducer(["sum"]).count_rows(False).fields(""))
        .sort_by([viz.TableSortByFieldState().display_name(sort_by).desc(descending)])
    )
