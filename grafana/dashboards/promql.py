"""The dashboards' PromQL: series of the chosen job only, and the expressions several panels
share."""

from __future__ import annotations

import re

# Every series a dashboard reads is the chosen job's. Exact match, not `=~`: a job is one
# exporter deployment (its replicas differ only in `instance` and are merged with
# `max without (instance)`), adding up two deployments that may watch the same router would
# count its agents twice, and a job name is never read as a regular expression.
JOB = 'job="$job"'
AGENT_FILTERS = ('agent_class=~"$agent_class"', 'instance_id=~"$agent"')

_SELECTOR = re.compile(r"\b(?:ocs_\w+|process_\w+|up\b)(\{[^}]*\})?")


def series(metric: str, *matchers: str) -> str:
    """`metric{job="$job", matchers...}`: the one way a dashboard names a series."""
    return f"{metric}{{{', '.join((JOB, *matchers))}}}"


def agent_series(metric: str, *matchers: str) -> str:
    """A per-agent series of the job, filtered by the agent class and agent variables."""
    return series(metric, *matchers, *AGENT_FILTERS)


def unscoped_selectors(expr: str) -> list[str]:
    """The series selectors of `expr` that lack the job matcher."""
    return [m[0] for m in _SELECTOR.finditer(expr) if JOB not in (m[1] or "")]


def merged(function: str, selector: str) -> str:
    """`function without (instance) (selector)`: the exporter replicas as one."""
    return f"{function} without (instance) ({selector})"


AGENT_UP = merged("max", agent_series("ocs_agent_up"))
AGENT_INFO = merged("max", agent_series("ocs_agent_info"))
EXPECTED_INFO = merged("max", agent_series("ocs_agent_info", 'expected="true"'))

# An operation's code from the replicas that hear its agent, else (the agent is down for
# every replica) whatever any replica says, which is EXPIRED.
OP_CODES = (
    f"max without (instance) ({agent_series('ocs_op_code')}"
    f" and on (job, instance, agent_address) ({agent_series('ocs_agent_up')} == 1))"
    f" or {merged('max', agent_series('ocs_op_code'))}"
)
OPS_FAILED = f"count({merged('max', agent_series('ocs_op_code') + ' == 6')}) or vector(0)"

SINCE_HEARTBEAT = (
    f"time() - {merged('max', agent_series('ocs_agent_last_heartbeat_timestamp_seconds'))}"
)
UPTIME = (
    f"(time() - {merged('max', agent_series('ocs_agent_start_timestamp_seconds'))})"
    f" and on (job, agent_address) ({AGENT_UP} == 1)"
)


def increase(selector: str, window: str, without: str = "instance") -> str:
    """The largest increase any replica counted: replicas count the same events."""
    return f"max without ({without}) (increase({selector}[{window}]))"


FAILED = 'to="FAILED"'
FAILED_ENTRIES = (
    f"round(sum({increase(agent_series('ocs_op_transitions_total', FAILED), '$__range')}))"
    " or vector(0)"
)


# Operation sessions, as the exporter reads them (--collector.sessions). Each value is the
# newest any replica read: a replica cut off from the router keeps the ones it read last.
PROCESS = 'op_type="process"'
RUNS = agent_series("ocs_op_runs_total")


def newest(metric: str, *matchers: str) -> str:
    """The newest value of a per-operation timestamp any replica read."""
    return merged("max", agent_series(metric, *matchers))


DATA_AGE = f"time() - {newest('ocs_op_data_timestamp_seconds')}"
RUNNING_PROCESSES = (
    f"{merged('max', agent_series('ocs_op_code') + ' == 3')}"
    f" and on (job, agent_address, operation) {newest('ocs_op_info', PROCESS)}"
)


def of_running_processes(expr: str) -> str:
    """`expr`, a value per operation, kept for the processes that are RUNNING."""
    return f"{expr} and on (job, agent_address, operation) ({RUNNING_PROCESSES})"


# Data feeds (--collector.feeds): a feed's last message time is the newest any replica heard
# (a replica cut off from the router keeps an old one); messages are counted by each replica,
# and the largest rate kept (a sum would double it).
FEED = "job, agent_address, feed"
FEED_AGE = f"time() - {newest('ocs_feed_last_message_timestamp_seconds')}"
FEED_RATE = (
    f"max without (instance) (rate({agent_series('ocs_feed_messages_total')}[$__rate_interval]))"
)
RECORDED = newest("ocs_feed_info", 'record="true"')


def fresh_time(default: float) -> str:
    """Each feed's fresh time: the one it declares, else `default` (the alert rules' recording
    rule ocs:feed_fresh_time_seconds, written out: dashboards read no recorded series)."""
    declared = newest("ocs_feed_fresh_time_seconds")
    info = f"max without (instance, record) ({agent_series('ocs_feed_info')})"
    return f"({declared} or {info} * 0 + {default:g})"


def of_recorded(expr: str) -> str:
    """`expr`, a value per feed, kept for the recorded feeds."""
    return f"{expr} and on ({FEED}) {RECORDED}"
