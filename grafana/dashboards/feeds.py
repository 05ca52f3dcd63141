"""The data feed panels the overview and the agent dashboard share: each feed's message rate,
and its age beside its fresh time (OcsFeedStale)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table, timeseries

from .common import FRESH_DEFAULT, SECONDS, coloured_count, prop, query
from .panels import Size, table_panel, timeseries_panel
from .promql import FEED_AGE, FEED_RATE, agent_series, fresh_time, increase, of_recorded

FRESH_TIME = fresh_time(FRESH_DEFAULT)
FRESH_LEFT = f"{FRESH_TIME} - ({FEED_AGE})"
HIDDEN = ["Time", "job", "agent_address", "agent_class"]
NOTE_FRESH = (
    f" Fresh time: the feed's agg_params.fresh_time, else {FRESH_DEFAULT:g} s (the aggregator's"
    " default, as in the alert rules); a recorded feed silent for longer, while its agent runs"
    " a process that did not stop with it, is OcsFeedStale."
)


def rate_panel(panel_id: int, legend: str, size: Size) -> timeseries.Panel:
    """Messages per second of each feed of the selected agents (heartbeats not included)."""
    return timeseries_panel(
        panel_id,
        "Feed message rate",
        "Messages per second each data feed published on the router (<agent>.feeds.<feed>),"
        " as the exporter heard them (--collector.feeds); the heartbeat feed is not included."
        " A line dropping to 0 is a feed that stopped: its process stopped, or it is stuck."
        " A feed of an agent that restarted without it disappears.",
        query(FEED_RATE, legend),
        "cps",
        size=size,
    )


def ages_table(
    panel_id: int,
    title: str,
    description: str,
    exprs: list[str],
    columns: dict[str, str],
    hidden: list[str],
) -> table.Panel:
    """A table of feeds whose `Since last message` column is coloured by the default fresh
    time; `exprs` give the columns of `columns` named Value #A, #B, ..."""
    return (
        table_panel(
            panel_id,
            title,
            description + NOTE_FRESH,
            exprs,
            columns,
            hidden,
            height=8,
            sort_by="Fresh time left",
        )
        .override_by_name(
            "Since last message",
            [
                *SECONDS,
                *coloured_count(("green", None), ("red", FRESH_DEFAULT)),
            ],
        )
        .override_by_name("Fresh time", list(SECONDS))
        .override_by_name(
            "Fresh time left",
            [*SECONDS, *coloured_count(("red", None), ("orange", 0), ("green", 60))],
        )
    )


def recorded_table(panel_id: int) -> table.Panel:
    """Every recorded feed of the selected agents, the stalest first (the overview's)."""
    columns = {
        "instance_id": "Agent",
        "feed": "Feed",
        "Value #A": "Since last message",
        "Value #B": "Fresh time",
        "Value #C": "Fresh time left",
    }
    return ages_table(
        panel_id,
        "Stale feeds",
        "Every recorded data feed (record=True: the aggregator and the InfluxDB publisher keep"
        " it) of the selected agents, the stalest first: seconds since its last message, its"
        " fresh time, and what is left of it (red at 0 and below: stale).",
        [of_recorded(FEED_AGE), of_recorded(FRESH_TIME), of_recorded(FRESH_LEFT)],
        columns,
        HIDDEN,
    )


def agent_table(panel_id: int) -> table.Panel:
    """Every feed of the agent: whether it is recorded, its age, fresh time and messages."""
    columns = {
        "feed": "Feed",
        "record": "Recorded",
        "Value #B": "Since last message",
        "Value #C": "Fresh time",
        "Value #D": "Fresh time left",
        "Value #E": "Messages in range",
    }
    info = f"max without (instance) ({agent_series('ocs_feed_info')})"
    messages = f"round({increase(agent_series('ocs_feed_messages_total'), '$__range')})"
    return ages_table(
        panel_id,
        "Feeds",
        "Each data feed the agent published since the exporter heard its current session:"
        " whether it is recorded (record=True: the aggregator and the InfluxDB publisher keep"
        " it), seconds since its last message, its fresh time, what is left of it (red at 0"
        " and below: stale), and its messages over the time range.",
        [info, FEED_AGE, FRESH_TIME, FRESH_LEFT, messages],
        columns,
        [*HIDDEN, "instance_id", "Value #A"],
    ).override_by_name("Messages in range", [prop("decimals", 0)])
