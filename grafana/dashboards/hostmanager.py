"""The HostManager panels: who manages each agent and with what target, how stable the
HostManager rates it (OcsAgentUnstable), and each HostManager's parse status and orphans
(OcsHostManagerConfigError). The exporter reads them from the HostManagers' `manager`
sessions every --collector.sessions.interval (30 s)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, timeseries

from .common import GREY, SECONDS, UP_MAPPING, coloured_count, prop, query, value_map
from .panels import Size, stat_panel, table_panel, timeseries_panel
from .promql import AGENT_UP, agent_series, merged, series

# One series per (agent, HostManager listing it): label `manager`, the HostManager's id.
TARGET = merged("max", agent_series("ocs_agent_target_up"))
STABILITY = merged("max", agent_series("ocs_agent_stability"))
MANAGERS = merged("max", agent_series("ocs_agent_managers"))
# A HostManager's own series, whatever the agent variables select: its class is HostManager.
PARSED = merged("max", series("ocs_hostmanager_config_parse_success"))
PARSED_AT = merged("max", series("ocs_hostmanager_config_parse_timestamp_seconds"))
ORPHANS = merged("max", series("ocs_hostmanager_orphans"))
UNSTABLE_BELOW = 0.5  # OcsAgentUnstable's threshold

TARGET_MAPPING = value_map({1: ("up", "green"), 0: ("down", GREY)})
STABILITY_COLOURS = (("red", None), ("orange", UNSTABLE_BELOW), ("green", 0.9))
NOTE_STABILITY = (
    " Stability is the HostManager's own: 1 minus 5 s divided by the age of each unexpected"
    " exit of the agent in the last 2 minutes (and always the latest), summed; a lone exit"
    f" reads 0.5 ten seconds later, and below {UNSTABLE_BELOW:g} for 10 minutes (an exit every"
    " 22 s or sooner) is OcsAgentUnstable."
)


def managed(expr: str) -> str:
    """`expr`, one value per agent, kept for the agents a HostManager lists. Its rows have no
    `manager`: Grafana's merge puts them beside the agent's rows by their shared labels (no
    group_left, which fails outright when two replicas disagree)."""
    return f"{expr} and on (job, agent_address) {TARGET}"


def unstable_count(panel_id: int) -> stat.Panel:
    return stat_panel(
        panel_id,
        "Unstable agents",
        "Agents a HostManager rates below 0.5 stability now: it keeps restarting them."
        + NOTE_STABILITY,
        query(f"count({STABILITY} < {UNSTABLE_BELOW:g}) or vector(0)", "Unstable agents"),
        size=(4, 8),
        thresholds=(("green", None), ("red", 1)),
    )


def stability_panel(panel_id: int, legend: str, size: Size) -> timeseries.Panel:
    """The stability of the selected managed agents while below 1 (after an exit)."""
    return timeseries_panel(
        panel_id,
        "Agent stability",
        "The stability each HostManager gives the selected agents it manages, drawn while"
        " below 1 (after an unexpected exit); one line per agent and HostManager." + NOTE_STABILITY,
        query(f"{STABILITY} < 1", legend),
        "percentunit",
        size=size,
        thresholds=STABILITY_COLOURS,
    ).max(1)


def managed_table(panel_id: int) -> table.Panel:
    """Every managed agent by HostManager: target, state, stability, managers listing it."""
    columns = {
        "instance_id": "Agent",
        "manager": "HostManager",
        "agent_class": "Agent class",
        "Value #A": "Target",
        "Value #B": "State",
        "Value #C": "Stability",
        "Value #D": "HostManagers listing it",
    }
    return (
        table_panel(
            panel_id,
            "Managed agents",
            "Every selected agent a HostManager manages, one row per HostManager listing it, the"
            " least stable first. Target: what the HostManager wants (up or down; its `update`"
            " task changes it); it decides whether the agent is expected to run. State: whether"
            " the agent heartbeats. HostManagers listing it: more than 1 is a conflict (the site"
            " config lists it on two hosts); then none of them decides." + NOTE_STABILITY,
            [TARGET, managed(AGENT_UP), STABILITY, MANAGERS],
            columns,
            ["Time", "job", "agent_address"],
            height=8,
            sort_by="Stability",
        )
        .override_by_name(
            "Target",
            [
                prop("mappings", [TARGET_MAPPING]),
                prop("custom.cellOptions", {"type": "color-text"}),
            ],
        )
        .override_by_name(
            "State",
            [
                prop("mappings", [UP_MAPPING]),
                prop("custom.cellOptions", {"type": "color-background"}),
                prop("custom.width", 90),
            ],
        )
        .override_by_name("Stability", [*coloured_count(*STABILITY_COLOURS), prop("decimals", 2)])
        .override_by_name("HostManagers listing it", coloured_count(("green", None), ("red", 2)))
    )


def hostmanagers_table(panel_id: int) -> table.Panel:
    """Every HostManager's files: parsed or not, since when, and its orphan containers."""
    columns = {
        "instance_id": "HostManager",
        "file": "File",
        "Value #A": "Parsed",
        "Value #B": "Since last parse",
        "Value #C": "Orphans",
    }
    return (
        table_panel(
            panel_id,
            "HostManagers",
            "Every HostManager of the job (whatever agents are selected) and the files it reads:"
            " [SCF] is the site config file, others docker compose files. Parsed: whether its"
            " last read succeeded (no for 5 minutes is OcsHostManagerConfigError; a site config"
            " it could not parse at start leaves it managing nothing). Since last parse: the"
            " HostManager re-reads compose files every 2 s, the site config at start and on"
            " update(reload_config=True). Orphans: docker containers of the host no HostManager"
            " manages (its remove_orphans task stops them), per HostManager, beside each of its"
            " files.",
            [PARSED, f"time() - {PARSED_AT}", ORPHANS],
            columns,
            ["Time", "job", "agent_address", "agent_class"],
            height=6,
            sort_by="Parsed",
        )
        .override_by_name(
            "Parsed",
            [
                prop("mappings", [value_map({1: ("yes", "green"), 0: ("NO", "red")})]),
                prop("custom.cellOptions", {"type": "color-background"}),
            ],
        )
        .override_by_name("Since last parse", list(SECONDS))
        .override_by_name("Orphans", coloured_count(("green", None), ("orange", 1)))
    )


def target_stat(panel_id: int) -> stat.Panel:
    """The agent dashboard's: the target each HostManager listing the agent gives it."""
    return (
        stat_panel(
            panel_id,
            "HostManager target",
            "The target state each HostManager managing this agent gives it (named by the"
            " HostManager's instance-id): up, it is expected to run; down, it is not, and raises"
            " no Down or Missing alert. The HostManager's `update` task changes it; the exporter"
            " reads it every --collector.sessions.interval (30 s). No value: no HostManager"
            " manages the agent, and the site config file decides.",
            query(TARGET, "{{manager}}"),
            size=(12, 4),
            thresholds=((GREY, None),),
        )
        .mappings([TARGET_MAPPING])
        .no_value("Not managed")
    )


def stability_stat(panel_id: int) -> stat.Panel:
    """The agent dashboard's: the agent's stability by each HostManager listing it."""
    return (
        stat_panel(
            panel_id,
            "Stability",
            "How stable each HostManager managing this agent rates it, 0 to 1." + NOTE_STABILITY,
            query(STABILITY, "{{manager}}"),
            size=(12, 4),
            thresholds=STABILITY_COLOURS,
        )
        .decimals(2)
        .no_value("Not managed")
    )
