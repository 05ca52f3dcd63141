"""OCS overview: every agent and operation of one exporter job at a glance."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table
from grafana_foundation_sdk.models import dashboard as model

from .common import (
    GREY,
    OPCODE_MAPPING,
    ROUTER_MAPPING,
    SECONDS,
    STALE_AFTER,
    UP_MAPPING,
    agent_class_variable,
    agent_variable,
    all_values,
    coloured_count,
    data_age,
    frame,
    prop,
    query,
    value_map,
)
from .feeds import FEED_AGE, FRESH_TIME, rate_panel, recorded_table
from .hostmanager import hostmanagers_table, managed_table, stability_panel, unstable_count
from .panels import (
    by_outcome,
    counts_panel,
    stat_panel,
    table_panel,
    timeline_panel,
)
from .promql import (
    AGENT_INFO,
    AGENT_UP,
    DATA_AGE,
    EXPECTED_INFO,
    FAILED_ENTRIES,
    OP_CODES,
    OPS_FAILED,
    RECORDED,
    RUNS,
    SINCE_HEARTBEAT,
    UPTIME,
    agent_series,
    increase,
    merged,
    newest,
    of_running_processes,
    series,
)

UID = "ocs-overview"

LINK = (
    "/d/ocs-agent/ocs-agent?${__url_time_range}&${datasource:queryparam}&${job:queryparam}"
    "&${agent_class:queryparam}&var-agent=${__value.text}"
)


RED_FROM_1 = (("green", None), ("red", 1))


def agent_link() -> list[model.DynamicConfigValue]:
    """A column of instance-ids linking to each agent's dashboard."""
    # A data link as Grafana stores it: the SDK has no model for one inside an override.
    return [
        prop(
            "links",
            [{"title": "Agent dashboard for ${__value.text}", "url": LINK, "targetBlank": False}],
        )
    ]


def agents_table() -> table.Panel:
    columns = {
        "instance_id": "Instance ID",
        "Value #A": "State",
        "agent_class": "Agent class",
        "agent_address": "Agent address",
        "host": "Host",
        "expected": "Expected",
        "Value #B": "Since last heartbeat",
        "Value #E": "Uptime",
        "Value #D": "Restarts (24h)",
    }
    restarts = f"round({increase(agent_series('ocs_agent_restarts_total'), '24h')})"
    # The site config's labels (C) from their own query, merged by Grafana: no group_left,
    # which would fail outright if two replicas read different site config files.
    exprs = [AGENT_UP, SINCE_HEARTBEAT, AGENT_INFO, restarts, UPTIME]
    return (
        table_panel(
            5,
            "Agents",
            "Every agent listed in the site config file or heard since the exporters started,"
            " DOWN first. Click an instance-id for that agent's dashboard. Expected: whether the"
            " site config file expects it to run. 'Since last heartbeat' grows while an agent"
            " is down, and is empty for an agent never heard. The timestamp is read when"
            " Prometheus scrapes, so up to one scrape interval plus the 1 s heartbeat period is"
            " normal for a healthy agent. Uptime: since the agent's process started (empty"
            " while DOWN). Restarts (24h): new sessions seen in the last 24 hours.",
            exprs,
            columns,
            ["Time", "job", "Value #C"],
            height=10,
            sort_by="State",
        )
        .override_by_name("Instance ID", agent_link())
        .override_by_name(
            "State",
            [
                prop("mappings", [UP_MAPPING]),
                prop("custom.cellOptions", {"type": "color-background"}),
                prop("custom.width", 90),
            ],
        )
        .override_by_name(
            "Since last heartbeat",
            [prop("unit", "s"), *coloured_count(("green", None), ("orange", 60), ("red", 300))],
        )
        .override_by_name(
            "Expected",
            [
                prop(
                    "mappings",
                    [
                        value_map(
                            {
                                "true": ("yes", "green"),
                                "false": ("no (ignore / down)", GREY),
                                "unknown": ("not in site config", "orange"),
                            }
                        )
                    ],
                ),
                prop("custom.cellOptions", {"type": "color-text"}),
            ],
        )
        .override_by_name("Uptime", list(SECONDS))
        .override_by_name(
            "Restarts (24h)", coloured_count(("green", None), ("orange", 1), ("red", 3))
        )
    )


def process_data_table() -> table.Panel:
    columns = {
        "instance_id": "Agent",
        "operation": "Process",
        "agent_class": "Agent class",
        "Value #A": "Data age",
        "Value #B": "Session running for",
    }
    running_for = "time() - " + newest("ocs_op_session_start_timestamp_seconds")
    return (
        table_panel(
            10,
            "Process data age",
            "Every RUNNING process that keeps a data timestamp in its session (session.data"
            " keys timestamp, last_updated, last_update: --collector.sessions.data-keys), the"
            " oldest data first. Data age: since the newest timestamp the exporter read; red"
            f" from {STALE_AFTER:g} s, when OcsProcessStale fires: the process says it runs but"
            " produces nothing. The exporter reads a running session every"
            " --collector.sessions.interval (30 s), so a healthy process reads up to that plus"
            " a scrape interval old. Processes without such a timestamp are not listed.",
            [of_running_processes(DATA_AGE), of_running_processes(running_for)],
            columns,
            ["Time", "job", "agent_address"],
            height=8,
            sort_by="Data age",
            descending=True,
        )
        .override_by_name("Agent", agent_link())
        .override_by_name("Data age", data_age())
        .override_by_name("Session running for", list(SECONDS))
    )


def build(job: str) -> dashboard.Dashboard:
    return (
        frame(
            UID,
            "OCS overview",
            "Every OCS agent and operation at a glance, from the OCS Prometheus exporter.",
            "now-6h",
            job,
        )
        .with_variable(agent_class_variable())
        .with_variable(all_values(agent_variable("Agent")))
        .with_panel(
            stat_panel(
                1,
                "Agents up",
                "OCS agents whose heartbeat reached an exporter within its agent timeout"
                " (default 5 s). Agents listed in the site config file count from the"
                " exporter's start, heard or not; see Expected agents missing for the ones that"
                " should run and do not.",
                query(f"count({AGENT_UP} == 1) or vector(0)", "Agents up"),
                thresholds=(("red", None), ("green", 1)),
            )
        )
        .with_panel(
            stat_panel(
                2,
                "Agents down",
                "Agents that are not heartbeating (no heartbeat within the timeout on any"
                " exporter replica), including agents of the site config file never heard since"
                " the exporter started and agents it lists as not expected to run. Non-zero:"
                " find them in the Agents table below (sorted DOWN first) and check the agent"
                " process and its host. Every operation of a down agent shows EXPIRED.",
                query(f"count({AGENT_UP} == 0) or vector(0)", "Agents down"),
                thresholds=RED_FROM_1,
            )
        )
        .with_panel(
            stat_panel(
                7,
                "Expected agents missing",
                "Agents the site config file expects to run (not manage: ignore, not .../down)"
                " that are DOWN or have not been heard since the exporter started (alerts"
                " OcsAgentDown and OcsAgentMissing). Non-zero: find them in the Agents table"
                " (State DOWN, Expected yes).",
                query(
                    f"count({AGENT_UP} == 0 and on (job, agent_address) {EXPECTED_INFO})"
                    " or vector(0)",
                    "Expected agents missing",
                ),
                thresholds=RED_FROM_1,
            )
        )
        .with_panel(
            stat_panel(
                3,
                "Operations FAILED",
                "Operations (tasks or processes) whose last run ended FAILED. Find them as red"
                " bars in the Operation states timeline, then read the agent's log. A FAILED"
                " state stays until the operation is run again.",
                query(OPS_FAILED, "Operations FAILED"),
                thresholds=RED_FROM_1,
            )
        )
        .with_panel(
            stat_panel(
                8,
                "FAILED entries (range)",
                "How many times operations entered FAILED over the dashboard's time range,"
                " counted by the exporter on every heartbeat: a task that failed and was run"
                " again at once still counts, unlike Operations FAILED, which shows the current"
                " state. Counts made by an exporter replica before Prometheus scraped it are not"
                " included.",
                query(FAILED_ENTRIES, "FAILED entries"),
                thresholds=(("green", None), ("orange", 1)),
            )
        )
        .with_panel(
            stat_panel(
                4,
                "Router connected",
                "Whether an exporter replica is connected to the crossbar (WAMP) router."
                " DISCONNECTED: no heartbeat can arrive, so every agent soon shows DOWN; check"
                " the router first. No data: no exporter is being scraped (see the Exporter"
                " health dashboard).",
                query(merged("max", series("ocs_exporter_crossbar_connected")), "Router"),
                thresholds=(("red", None), ("green", 1)),
            )
            .mappings([ROUTER_MAPPING])
            .no_value("No exporter data")
        )
        .with_panel(agents_table())
        .with_panel(
            timeline_panel(
                6,
                "Operation states",
                "State over time of every operation of every selected agent, one row each"
                " (instance-id, operation). Red FAILED: the operation ended with an error;"
                " orange DEGRADED: running but the agent reports it cannot do its job; purple"
                " EXPIRED: the agent stopped heartbeating, state unknown. Hover a bar for the"
                " time it changed.",
                query(OP_CODES, "{{instance_id}} {{operation}}"),
                OPCODE_MAPPING,
                size=(24, 16),
            )
        )
        .with_panel(
            by_outcome(
                counts_panel(
                    9,
                    "Run outcomes",
                    "Finished runs of the selected agents' operations per rate interval, by how"
                    " they ended: succeeded; failed (the operation reported failure); crashed (it"
                    " raised an exception, its message starts CRASH:; alert OcsTaskCrashed for"
                    " tasks); error (called badly, ERROR:). Counted once per run by the exporter,"
                    " from the sessions it reads when an operation's state changes"
                    " (--collector.sessions).",
                    query(
                        f"sum by (job, outcome) ({increase(RUNS, '$__rate_interval')})",
                        "{{outcome}}",
                    ),
                    size=(24, 8),
                )
            )
        )
        .with_panel(process_data_table())
        .with_panel(
            stat_panel(
                11,
                "Recorded feeds stale",
                "Recorded data feeds of the selected agents silent for longer than their fresh"
                " time (see Stale feeds below). OcsFeedStale fires for those whose agent runs a"
                " process that did not stop when the feed did.",
                query(
                    f"count(({FEED_AGE}) > {FRESH_TIME} and on (job, agent_address, feed)"
                    f" {RECORDED}) or vector(0)",
                    "Recorded feeds stale",
                ),
                size=(4, 8),
                thresholds=RED_FROM_1,
            )
        )
        .with_panel(rate_panel(13, "{{instance_id}} {{feed}}", (20, 8)))
        .with_panel(recorded_table(12).override_by_name("Agent", agent_link()))
        .with_panel(unstable_count(14))
        .with_panel(stability_panel(15, "{{instance_id}} ({{manager}})", (20, 8)))
        .with_panel(managed_table(16).override_by_name("Agent", agent_link()))
        .with_panel(hostmanagers_table(17).override_by_name("HostManager", agent_link()))
    )
