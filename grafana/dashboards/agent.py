"""OCS agent: one agent's liveness, heartbeat history and operations."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as viz
from grafana_foundation_sdk.builders import dashboard, table
from grafana_foundation_sdk.models import common as vizmodel

from .common import (
    DATASOURCE,
    GREY,
    OPCODE_MAPPING,
    SECONDS,
    STALE_AFTER,
    UP_MAPPING,
    agent_class_variable,
    agent_variable,
    coloured_count,
    data_age,
    frame,
    prop,
    query,
)
from .feeds import agent_table, rate_panel
from .hostmanager import stability_stat, target_stat
from .panels import (
    by_outcome,
    counts_panel,
    label_panel,
    stat_panel,
    table_panel,
    timeline_panel,
    timeseries_panel,
)
from .promql import (
    AGENT_INFO,
    AGENT_UP,
    DATA_AGE,
    FAILED,
    FAILED_ENTRIES,
    OP_CODES,
    OPS_FAILED,
    RUNS,
    SINCE_HEARTBEAT,
    UPTIME,
    agent_series,
    increase,
    merged,
    newest,
)

UID = "ocs-agent"
HEARTBEAT_AGE = (("green", None), ("orange", 60), ("red", 300))
NOTE_SCRAPE = (
    " The timestamp is read when Prometheus scrapes, so up to one scrape interval plus the 1 s"
    " heartbeat period is normal for a healthy agent."
)


def operations_table() -> table.Panel:
    columns = {
        "operation": "Operation",
        "Value #A": "State",
        "op_type": "Type",
        "Value #C": "Since last change",
        "Value #D": "FAILED in range",
    }
    # A replica that started later first saw every change later: the earliest time counts.
    since_change = "time() - " + merged("min", agent_series("ocs_op_last_change_timestamp_seconds"))
    # Every operation gets a row, 0 where it never failed in the range.
    entries = agent_series("ocs_op_transitions_total", FAILED)
    failed = (
        f"round({increase(entries, '$__range', without='instance, to')})"
        f" or 0 * {merged('max', agent_series('ocs_op_code'))}"
    )
    return (
        table_panel(
            15,
            "Operations",
            "Each operation of the agent: its state now, whether it is a task (runs once) or a"
            " process (runs until stopped), as the agent's get_api said (empty if it did not"
            " answer), how long since its state last changed (or since the exporter first saw"
            " it), and how many times it entered FAILED over the time range.",
            [OP_CODES, merged("max", agent_series("ocs_op_info")), since_change, failed],
            columns,
            ["Time", "job", "agent_address", "instance_id", "agent_class", "Value #B"],
            height=8,
            sort_by="Operation",
        )
        .override_by_name(
            "State",
            [
                prop("mappings", [OPCODE_MAPPING]),
                prop("custom.cellOptions", {"type": "color-background"}),
                prop("custom.width", 120),
            ],
        )
        .override_by_name("Since last change", list(SECONDS))
        .override_by_name("FAILED in range", coloured_count(("green", None), ("red", 1)))
    )


def sessions_table() -> table.Panel:
    columns = {
        "operation": "Operation",
        "Value #A": "Session started",
        "Value #B": "Session ended",
        "Value #C": "Last message",
        "Value #D": "Data age",
        "Value #E": "Runs in range",
        "Value #F": "Crashed in range",
    }
    # Grafana's date units read milliseconds.
    times = [
        f"1000 * {newest(f'ocs_op_session_{name}_timestamp_seconds')}"
        for name in ("start", "end", "last_message")
    ]
    runs = f"round(sum without (outcome) ({increase(RUNS, '$__range')}))"
    crashed = agent_series("ocs_op_runs_total", 'outcome="crashed"')
    return (
        table_panel(
            18,
            "Latest sessions",
            "Each operation's latest session, as the exporter read it with status"
            " (--collector.sessions) when the operation's state changed, and every"
            " --collector.sessions.interval while it runs: when it started and ended (empty"
            " while it runs), its last message (the status page shows the messages"
            " themselves), and the age of the newest timestamp in its session data (empty when"
            f" it keeps none; from {STALE_AFTER:g} s a running process is OcsProcessStale)."
            " Runs and crashed runs: finished sessions over the time range.",
            [
                *times,
                DATA_AGE,
                runs,
                f"round({increase(crashed, '$__range', without='instance, outcome')})",
            ],
            columns,
            ["Time", "job", "agent_address", "instance_id", "agent_class"],
            height=8,
            sort_by="Operation",
        )
        .override_by_name("Session started", [prop("unit", "dateTimeAsIso")])
        .override_by_name("Session ended", [prop("unit", "dateTimeAsIso")])
        .override_by_name("Last message", [prop("unit", "dateTimeAsIso")])
        .override_by_name("Data age", data_age())
        .override_by_name("Runs in range", [prop("decimals", 0)])
        .override_by_name("Crashed in range", coloured_count(("green", None), ("red", 1)))
    )


def build(job: str) -> dashboard.Dashboard:
    return (
        frame(
            UID,
            "OCS agent",
            "One OCS agent: liveness, heartbeat history and its operations' states.",
            "now-3h",
            job,
        )
        .with_variable(agent_class_variable())
        .with_variable(agent_variable("Agent (instance-id)").multi(False).include_all(False))
        .with_panel(
            stat_panel(
                1,
                "Agent state",
                "UP: the agent's heartbeat reached an exporter within the agent timeout (default"
                " 5 s). DOWN: it stopped heartbeating, or it is listed in the site config file"
                " and has not been heard since the exporter started (Since last heartbeat then"
                " reads Never heard); check the agent process, its host and its log. No data:"
                " the exporters know nothing of this agent.",
                query(AGENT_UP, "{{instance_id}}"),
                thresholds=(("red", None), ("green", 1)),
            )
            .mappings([UP_MAPPING])
            .no_value("Unknown agent")
        )
        .with_panel(
            label_panel(
                2,
                "Agent class",
                "The agent's class, as its heartbeat reports it.",
                query(AGENT_UP, "{{agent_class}}"),
                6,
            )
        )
        .with_panel(
            label_panel(
                3,
                "Agent address",
                "The agent's WAMP address (address root and instance-id), the one OCS clients"
                " call.",
                query(AGENT_UP, "{{agent_address}}"),
                6,
            )
        )
        .with_panel(
            stat_panel(
                4,
                "Since last heartbeat",
                "Time since the most recent heartbeat any exporter replica received from this"
                " agent." + NOTE_SCRAPE,
                query(SINCE_HEARTBEAT, "{{instance_id}}"),
                thresholds=HEARTBEAT_AGE,
            )
            .color_mode(vizmodel.BigValueColorMode.VALUE)
            .unit("s")
            .no_value("Never heard")
        )
        .with_panel(
            stat_panel(
                5,
                "Operations FAILED",
                "This agent's operations whose last run ended FAILED; see which in Current"
                " operation states, then read the agent's log.",
                query(OPS_FAILED, "Operations FAILED"),
                thresholds=(("green", None), ("red", 1)),
            )
        )
        .with_panel(
            label_panel(
                11,
                "Site config",
                "The agent's host in the site config file, and whether the file expects it to"
                " run: true (listed), false (listed with manage: ignore or .../down: no alert"
                " about whether it runs) or unknown (heard on the router, not listed).",
                query(AGENT_INFO, "host {{host}}, expected {{expected}}"),
                9,
            )
        )
        .with_panel(
            stat_panel(
                12,
                "Uptime",
                "Time since the agent's process started (from its session id). Empty while the"
                " agent is DOWN. A short uptime that keeps resetting means it is restarting.",
                query(UPTIME, "{{instance_id}}"),
                size=(5, 4),
                thresholds=(("orange", None), ("green", 900)),
            )
            .color_mode(vizmodel.BigValueColorMode.VALUE)
            .unit("s")
            .no_value("Not running")
        )
        .with_panel(
            stat_panel(
                13,
                "Restarts in range",
                "New sessions (process restarts) of the agent over the dashboard's time range,"
                " as counted by the exporter. Several in a short time: OcsAgentRestartLoop;"
                " check the agent's log.",
                query(
                    f"round({increase(agent_series('ocs_agent_restarts_total'), '$__range')})",
                    "{{instance_id}}",
                ),
                size=(5, 4),
                thresholds=(("green", None), ("orange", 1), ("red", 3)),
            )
            .color_mode(vizmodel.BigValueColorMode.VALUE)
            .no_value("Never heard")
        )
        .with_panel(
            stat_panel(
                14,
                "FAILED entries in range",
                "How many times the agent's operations entered FAILED over the time range, even"
                " briefly (a task failed and run again at once). Which ones: Operations table,"
                " FAILED in range.",
                query(FAILED_ENTRIES, "FAILED entries"),
                size=(5, 4),
                thresholds=(("green", None), ("orange", 1)),
            )
        )
        .with_panel(
            stat_panel(
                6,
                "Current operation states",
                "The latest state of each of the agent's operations. FAILED (red) ended with an"
                " error; DEGRADED (orange) runs but cannot do its job; EXPIRED (purple) means"
                " the agent stopped heartbeating, so the real state is unknown.",
                query(OP_CODES, "{{operation}}"),
                size=(24, 5),
                thresholds=((GREY, None),),
            )
            .mappings([OPCODE_MAPPING])
            .text_mode(vizmodel.BigValueTextMode.VALUE_AND_NAME)
        )
        .with_panel(operations_table())
        .with_panel(
            timeline_panel(
                7,
                "Operation states over time",
                "Each operation's state over the selected time range: when it started, how long"
                " it ran, how it ended. Hover a bar for the time it changed.",
                query(OP_CODES, "{{operation}}"),
                OPCODE_MAPPING,
                size=(24, 10),
            )
        )
        .with_panel(
            counts_panel(
                16,
                "Operation transitions",
                "Entries of each operation into each state (operation → state), per rate"
                " interval, as the exporter counted them on every heartbeat: a state that lasted"
                " less than a scrape interval (a task that FAILED and was restarted at once)"
                " still shows here, though it may never show in the state timeline above.",
                query(
                    increase(agent_series("ocs_op_transitions_total"), "$__rate_interval"),
                    "{{operation}} → {{to}}",
                ),
                size=(24, 8),
            )
        )
        .with_panel(sessions_table())
        .with_panel(
            by_outcome(
                counts_panel(
                    19,
                    "Run outcomes",
                    "Finished runs of each operation per rate interval (operation → outcome):"
                    " succeeded; failed (it reported failure); crashed (it raised an exception: a"
                    " task's crash is OcsTaskCrashed); error (called badly). Each run counted once,"
                    " when the exporter reads its finished session.",
                    query(increase(RUNS, "$__rate_interval"), "{{operation}} → {{outcome}}"),
                    size=(12, 8),
                )
            )
        )
        .with_panel(
            timeseries_panel(
                20,
                "Session data age",
                "Age of the newest timestamp in each operation's session data, for operations"
                " that keep one (session.data keys of --collector.sessions.data-keys). A running"
                " process's line stays low (up to the sessions interval plus a scrape interval);"
                " a ramp means its data stopped moving: above the line, OcsProcessStale. It"
                " also ramps once an operation stops.",
                query(DATA_AGE, "{{operation}}"),
                "s",
                size=(12, 8),
                thresholds=(("green", None), ("red", STALE_AFTER)),
            ).thresholds_style(
                viz.GraphThresholdsStyleConfig().mode(vizmodel.GraphTresholdsStyleMode.LINE)
            )
        )
        .with_row(dashboard.Row("Heartbeat history").id(8).datasource(DATASOURCE))
        .with_panel(
            timeline_panel(
                9,
                "Agent up over time",
                "UP/DOWN over the time range: DOWN spans are when the agent's heartbeat stopped"
                " (agent stopped or hung, host or network trouble, or every exporter lost the"
                " router).",
                query(AGENT_UP, "{{instance_id}}"),
                UP_MAPPING,
                size=(24, 4),
            )
        )
        .with_panel(
            timeseries_panel(
                10,
                "Seconds since last heartbeat",
                "Age of the latest heartbeat over time: a sawtooth below the scrape interval is"
                " healthy; a ramp means the heartbeats stopped." + NOTE_SCRAPE,
                query(SINCE_HEARTBEAT, "{{instance_id}}"),
                "s",
                size=(12, 8),
                thresholds=HEARTBEAT_AGE,
            )
        )
        .with_panel(
            timeseries_panel(
                17,
                "Heartbeat gap",
                "Longest gap between consecutive heartbeats over the last 15 to 30 s, including"
                " the one still open, as the exporter replica that hears the agent best measured"
                " it, to 0.1 s (finer is scheduling noise, and differs between replicas). About"
                " 1 s is healthy; above 3 s for 5 minutes is OcsAgentHeartbeatStalling; at 5 s"
                " the agent reads DOWN. While DOWN it grows with the time since the last"
                " heartbeat.",
                # The replica that hears the agent best: one cut off from the router measures
                # the outage, not the agent.
                query(
                    f"round({merged('min', agent_series('ocs_agent_heartbeat_gap_seconds'))}, 0.1)",
                    "{{instance_id}}",
                ),
                "s",
                size=(12, 8),
                thresholds=(("green", None), ("orange", 3), ("red", 5)),
            ).thresholds_style(
                viz.GraphThresholdsStyleConfig().mode(vizmodel.GraphTresholdsStyleMode.LINE)
            )
        )
        .with_panel(agent_table(21))
        .with_panel(rate_panel(22, "{{feed}}", (24, 8)))
        .with_panel(target_stat(23))
        .with_panel(stability_stat(24))
    )
