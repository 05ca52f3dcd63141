"""The agent metric families: names, types, labels and help, read by every renderer."""

from __future__ import annotations

AGENT_LABELS = ["agent_address", "instance_id", "agent_class"]
OP_LABELS = [*AGENT_LABELS, "operation"]

# The agent families, in exposition order: (name, type, extra labels, help). Counters are
# named without _total, as in OpenMetrics.
AGENT_FAMILIES = (
    (
        "ocs_agent_info",
        "gauge",
        ["host", "expected"],
        "Always 1 for every known agent, configured or heard; host from the site config, "
        "expected true (listed, should run), false (listed with manage ignore or .../down) "
        "or unknown (heard, not listed).",
    ),
    ("ocs_agent_up", "gauge", [], "1 if the agent heartbeated within the agent timeout, else 0."),
    (
        "ocs_agent_last_heartbeat_timestamp_seconds",
        "gauge",
        [],
        "Unix time the agent's last heartbeat was received.",
    ),
    (
        "ocs_agent_heartbeat_gap_seconds",
        "gauge",
        [],
        "Longest gap between consecutive heartbeats over the last 15 to 30 s, including the "
        "one still open.",
    ),
    (
        "ocs_agent_start_timestamp_seconds",
        "gauge",
        [],
        "Unix time the agent's process started, from its heartbeat's session id.",
    ),
    (
        "ocs_agent_restarts",
        "counter",
        [],
        "Agent restarts seen (a new session id in its heartbeat).",
    ),
    (
        "ocs_op_code",
        "gauge",
        ["operation"],
        "OpCode of the operation: 1 NONE, 2 STARTING, 3 RUNNING, 4 STOPPING, 5 SUCCEEDED, "
        "6 FAILED, 7 EXPIRED (agent down), 8 DEGRADED.",
    ),
    (
        "ocs_op_last_change_timestamp_seconds",
        "gauge",
        ["operation"],
        "Unix time the operation's op code last changed (or was first seen).",
    ),
    (
        "ocs_op_transitions",
        "counter",
        ["operation", "to"],
        "Entries of the operation into each OpCode, named in 'to'.",
    ),
    (
        "ocs_op_info",
        "gauge",
        ["operation", "op_type"],
        "Always 1; op_type is task or process, as the agent's get_api tells.",
    ),
)
OP_STATE_FAMILY = (
    "ocs_op_state",
    "stateset",
    ["operation"],
    "The operation's state as an OpenMetrics StateSet: one series per OpCode, one true.",
)
AGENT_HELP = {name: help for name, _, _, help in (*AGENT_FAMILIES, OP_STATE_FAMILY)}


def expected_label(expected: bool | None) -> str:
    return "unknown" if expected is None else ("true" if expected else "false")
