"""OCS exporter health: the exporter replicas of one job, each on its own."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, timeseries
from grafana_foundation_sdk.models import common as vizmodel

from .common import (
    ROUTER_MAPPING,
    UP_MAPPING,
    all_values,
    frame,
    query,
    query_variable,
)
from .panels import (
    label_panel,
    legend,
    stat_panel,
    timeline_panel,
    timeseries_panel,
)
from .promql import series

UID = "ocs-exporter"
INSTANCE = 'instance=~"$instance"'


def replicas(metric: str) -> str:
    """`metric` of the chosen replicas of the job."""
    return series(metric, INSTANCE)


def rate(metric: str) -> str:
    return f"rate({replicas(metric)}[$__rate_interval])"


def instance_variable() -> dashboard.QueryVariable:
    # From `up`, not a metric of the exporter's own: a replica Prometheus cannot scrape
    # stays listed, and reads DOWN.
    return all_values(
        query_variable(
            "instance",
            "Exporter replica",
            "Exporter replicas (Prometheus targets of the job).",
            f"label_values({series('up')}, instance)",
        )
    )


def graph(
    panel_id: int,
    title: str,
    description: str,
    expr: str,
    unit: str,
    width: int,
    legend_format: str = "{{instance}}",
) -> timeseries.Panel:
    """A line per replica over time, 8 grid units high."""
    return timeseries_panel(
        panel_id, title, description, query(expr, legend_format), unit, size=(width, 8)
    )


def build(job: str) -> dashboard.Dashboard:
    return (
        frame(
            UID,
            "OCS exporter health",
            "Health of the OCS Prometheus exporter replicas themselves.",
            "now-6h",
            job,
        )
        .with_variable(instance_variable())
        .with_panel(
            stat_panel(
                1,
                "Exporter up",
                "Whether Prometheus can scrape each exporter replica of the job. DOWN: the"
                " process is stopped, or its port is unreachable from Prometheus.",
                query(replicas("up"), "{{instance}}"),
                thresholds=(("red", None), ("green", 1)),
            ).mappings([UP_MAPPING])
        )
        .with_panel(
            stat_panel(
                2,
                "Router connected",
                "Each replica's WAMP session with the crossbar router. DISCONNECTED: the replica"
                " hears no heartbeats and retries on its own; check the router and the network.",
                query(replicas("ocs_exporter_crossbar_connected"), "{{instance}}"),
                size=(5, 4),
                thresholds=(("red", None), ("green", 1)),
            ).mappings([ROUTER_MAPPING])
        )
        .with_panel(
            label_panel(
                3,
                "Version",
                "Exporter version each replica runs. Replicas should normally run the same one.",
                query(replicas("ocs_exporter_build_info"), "{{version}} on {{instance}}"),
                6,
            )
        )
        .with_panel(
            stat_panel(
                4,
                "Uptime",
                "Time since each exporter process started. A short uptime that keeps resetting"
                " means it is restarting (crash loop or health check).",
                query(f"time() - {replicas('process_start_time_seconds')}", "{{instance}}"),
                size=(5, 4),
                thresholds=(("orange", None), ("green", 600)),
            )
            .color_mode(vizmodel.BigValueColorMode.VALUE)
            .unit("s")
        )
        .with_panel(
            stat_panel(
                5,
                "Agents tracked",
                "Agents (up or down, heard or only listed in the site config file) each replica"
                " tracks and exports. Replicas hearing the same router with the same site config"
                " should agree; at --max-agents the exporter refuses new agents.",
                query(replicas("ocs_exporter_agents"), "{{instance}}"),
            ).color_mode(vizmodel.BigValueColorMode.NONE)
        )
        .with_panel(
            timeline_panel(
                6,
                "Exporter up over time",
                "Scrape success of each replica over time (Prometheus' up metric).",
                query(replicas("up"), "{{instance}}"),
                UP_MAPPING,
                size=(12, 5),
            )
        )
        .with_panel(
            timeline_panel(
                7,
                "Router connection over time",
                "Each replica's connection to the crossbar router over time. While DISCONNECTED"
                " the replica reports every agent DOWN after the agent timeout.",
                query(replicas("ocs_exporter_crossbar_connected"), "{{instance}}"),
                ROUTER_MAPPING,
                size=(12, 5),
            )
        )
        .with_panel(
            graph(
                8,
                "Heartbeat rate",
                "Heartbeats received per second by each replica: about one per second per"
                " running agent. A drop to zero with the router connected means agents stopped"
                " publishing or the exporter's subscription broke.",
                rate("ocs_exporter_heartbeats_total"),
                "cps",
                12,
            )
        )
        .with_panel(
            graph(
                9,
                "Invalid heartbeats by reason",
                "Heartbeats the exporter rejected, per second, by reason (malformed, legacy,"
                " bad_op_codes, bad_op_name, bad_op_code, bad_agent_address, bad_field)."
                " Anything above zero: the exporter's log names the agent; 'legacy' means a"
                " very old OCS version.",
                rate("ocs_exporter_heartbeats_invalid_total"),
                "cps",
                12,
                "{{reason}} ({{instance}})",
            ).legend(legend(vizmodel.LegendDisplayMode.TABLE, ["max", "lastNotNull"]))
        )
        .with_panel(
            graph(
                10,
                "CPU",
                "CPU used by each exporter process (1 = one full core). Sustained high values"
                " with many agents: the heartbeat rate may be more than one process can take.",
                rate("process_cpu_seconds_total"),
                "percentunit",
                8,
            )
        )
        .with_panel(
            graph(
                11,
                "Resident memory",
                "Resident memory of each exporter process. Steady growth with a constant number"
                " of agents would be a leak.",
                replicas("process_resident_memory_bytes"),
                "bytes",
                8,
            )
        )
        .with_panel(
            graph(
                12,
                "Open file descriptors",
                "Open file descriptors of each exporter process (sockets to the router and from"
                " scrapers). Steady growth would be a leak.",
                replicas("process_open_fds"),
                "short",
                8,
            )
        )
        .with_panel(
            graph(
                13,
                "Agents tracked over time",
                "Agents each replica tracks over time. Jumps up: new agents heard (or a site"
                " config reload); down: agents forgotten after --forget-after, or an exporter"
                " restart.",
                replicas("ocs_exporter_agents"),
                "short",
                6,
            )
        )
        .with_panel(
            graph(
                14,
                "Operation type queries",
                "get_api calls per second the exporter made to learn which operations are tasks"
                " and which processes (one per agent session), by result. failed: the agent did"
                " not answer (or the router's role forbids the call); its operations have no"
                " op_type, and a failed process then alerts as OcsOperationFailed.",
                rate("ocs_exporter_op_type_queries_total"),
                "cps",
                6,
                "{{result}} ({{instance}})",
            )
        )
        .with_panel(
            graph(
                15,
                "Refused heartbeats",
                "Heartbeats per second from agents not tracked because --max-agents agents"
                " already are (alert OcsExporterAgentsRefused). Above zero: those agents are"
                " not monitored.",
                rate("ocs_exporter_heartbeats_refused_total"),
                "cps",
                6,
            )
        )
        .with_panel(
            graph(
                16,
                "Forgotten agents",
                "Agents per second dropped after --forget-after without a heartbeat (only agents"
                " not listed in the site config file are forgotten).",
                rate("ocs_exporter_agents_forgotten_total"),
                "short",
                6,
            )
        )
        .with_panel(
            graph(
                17,
                "Session queries",
                "status calls per second the exporter made to read operations' sessions"
                " (--collector.sessions: when an op code changes, and every"
                " --collector.sessions.interval for running operations), by result. timeout: an"
                " agent did not answer within 10 s; error: the router or the agent refused (the"
                " router's role must allow calling .ops); invalid: the answer was not a session.",
                rate("ocs_exporter_session_queries_total"),
                "cps",
                12,
                "{{result}} ({{instance}})",
            )
        )
        .with_panel(
            graph(
                18,
                "Invalid session answers by reason",
                "Answers to status the exporter refused, per second, by reason (not_a_status,"
                " unknown_operation, bad_field, bad_timestamp), and answers it kept trimmed"
                " (trimmed: more messages or longer texts than OCS sends). Above zero: some agent"
                " answers status otherwise than OCS does (another OCS version, or not OCS).",
                rate("ocs_exporter_session_answers_invalid_total"),
                "cps",
                12,
                "{{reason}} ({{instance}})",
            )
        )
    )
