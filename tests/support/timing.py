"""The worst case from an event to an alert's notification, worked out from the rule file,
the Prometheus and Alertmanager configs and the exporter's agent timeout and sessions
interval: the numbers of the timing table in docs/alerts.md and the bound the end-to-end
alert tests hold the real stack to.

The sum, per alert: what it takes the exporter to see the event (the agent timeout, or the
next heartbeat, ...), then the next scrape, the next rule evaluation (later by a group's
interval if the alert reads a recording rule of that group not evaluated before it), its
``for`` rounded up to whole evaluations, and the ``group_wait`` of the Alertmanager route it
takes.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from exporter.flags import build_parser, duration
from tests.support.monitoring import ALERTMANAGER_EXAMPLE

PROMETHEUS_EXAMPLE = ALERTMANAGER_EXAMPLE.parent / "prometheus.yml"

HEARTBEAT_PERIOD = 1.0  # OCS agents publish a heartbeat every second (a fixed LoopingCall)
LOOKBACK_DELTA = 300.0  # Prometheus's --query.lookback-delta default
SCRAPE_TIMEOUT = 10.0  # Prometheus's scrape_timeout default, capped at the scrape interval
GROUP_WAIT = "30s"  # Alertmanager's group_wait default

# What delays each alert before its expression can be true, besides scrape, evaluation,
# `for` and group_wait; the event itself is described in docs/alerts.md. A new alert must be
# thought through and added here: the table test fails until it is.
#   timeout:  an agent reads down only once the agent timeout has passed since its last
#             heartbeat (for OcsAgentFlapping, when the fourth change is one to down).
#   heartbeat: an operation's new state reaches the exporter with the agent's next heartbeat.
#   gap:      the gap metric counts the open gap, so it passes the expression's threshold
#             that long after the last regular heartbeat.
#   hung:     a scrape of a hung exporter fails only at the scrape timeout.
#   stale:    a process's data reads stale once the threshold has passed since its last data
#             timestamp. The exporter's reading of the session (at the latest an interval
#             after that timestamp) and the scrape carrying it come within the threshold, so
#             neither adds to it: the age Prometheus computes can only be older than the
#             agent's, never younger. Hence also no scrape term, and the check that the
#             threshold is above the interval plus the scrape interval.
#   fresh:    a feed reads stale once its fresh time has passed since its last message; the
#             row uses the default fresh time of the recording rule
#             ocs:feed_fresh_time_seconds (a feed may declare its own). As for `stale`, the
#             scrape carrying the last message time comes within that time and adds nothing,
#             and the default must be above the scrape interval.
#   sessions: HostManager data (targets, stability, parse status) reaches the exporter when
#             it next reads the HostManager's `manager` session, up to a
#             --collector.sessions.interval after the HostManager changed it.
#   lookback: a target dropped without a staleness marker (a removed job, a Prometheus
#             restart) keeps its last `up` sample for the lookback delta; no scrape follows.
DELAYS: dict[str, tuple[str, ...]] = {
    "OcsAgentDown": ("timeout",),
    "OcsAgentMissing": ("sessions",),
    "OcsOperationFailed": ("heartbeat",),
    "OcsOperationDegraded": ("heartbeat",),
    "OcsAgentFlapping": ("timeout",),
    "OcsProcessNotRunning": ("heartbeat",),
    "OcsAgentRestarted": (),
    "OcsAgentRestartLoop": (),
    "OcsAgentHeartbeatStalling": ("gap",),
    "OcsTaskCrashed": ("heartbeat",),
    "OcsProcessStale": ("stale",),
    "OcsFeedStale": ("fresh",),
    "OcsAgentUnstable": ("sessions",),
    "OcsHostManagerConfigError": ("sessions",),
    "OcsExporterRouterDisconnected": (),
    "OcsExporterReplicaDisconnected": (),
    "OcsExporterDown": ("hung",),
    "OcsExporterAbsent": ("lookback",),
    "OcsInvalidHeartbeats": (),
    "OcsExporterAgentsRefused": (),
}

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*')


@dataclass(frozen=True)
class Settings:
    """What the bound depends on: parsed rule groups and configs, the agent timeout and the
    sessions interval in s."""

    groups: list[dict]
    prometheus: dict
    alertmanager: dict
    agent_timeout: float
    sessions_interval: float = 30.0

    @classmethod
    def of(
        cls, prometheus: dict, alertmanager: dict, exporter_flags: Sequence[str], base: Path
    ) -> Settings:
        """Settings from configs as data; rule files relative to ``base``, as Prometheus
        resolves them against its config file's directory."""
        groups = []
        for name in prometheus.get("rule_files", []):
            groups += yaml.safe_load((base / name).read_text())["groups"]
        flags = exporter_settings(exporter_flags)
        return cls(
            groups, prometheus, alertmanager, flags.agent_timeout, flags.collector_sessions_interval
        )

    @classmethod
    def shipped(cls) -> Settings:
        """The example configs, the rule file they load and the exporter's default flags."""
        return cls.of(
            yaml.safe_load(PROMETHEUS_EXAMPLE.read_text()),
            yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text()),
            (),
            PROMETHEUS_EXAMPLE.parent,
        )


def exporter_settings(exporter_flags: Sequence[str] = ()) -> argparse.Namespace:
    """The exporter's flags as it reads them from ``exporter_flags`` and the environment."""
    return build_parser().parse_args(list(exporter_flags))


@dataclass(frozen=True)
class Timing:
    """One alert's terms in seconds (0: does not apply) and the route it takes."""

    alert: str
    timeout: float
    other: tuple[tuple[str, float], ...]
    scrape: float
    evaluation: float
    hold: float
    group_wait: float
    receiver: str

    @property
    def bound(self) -> float:
        extra = sum(seconds for _, seconds in self.other)
        return self.timeout + extra + self.scrape + self.evaluation + self.hold + self.group_wait

    def cells(self) -> list[str]:
        """The table row, without the alert's name and event."""
        other = ", ".join(f"{text(s)} {what}" for what, s in self.other) or "-"
        return [
            text(self.timeout),
            other,
            text(self.scrape),
            text(self.evaluation),
            text(self.hold),
            f"{text(self.group_wait)} (`{self.receiver}`)",
            f"**{text(self.bound)}**",
        ]


def text(seconds: float) -> str:
    """Seconds as a Prometheus duration (``2m5s``, ``2.5s``); ``-`` for 0."""
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    parts = ((hours, "h"), (minutes, "m"), (rest, "s"))
    return "".join(f"{n:g}{unit}" for n, unit in parts if n) or "-"


def alerts(settings: Settings) -> list[str]:
    return [r["alert"] for g in settings.groups for r in g["rules"] if "alert" in r]


def timings(settings: Settings) -> dict[str, Timing]:
    return {name: timing(name, settings) for name in alerts(settings)}


def timing(alert: str, settings: Settings) -> Timing:
    group, position = _find(settings.groups, alert=alert)
    rule = group["rules"][position]
    interval = _evaluation_interval(group, settings.prometheus)
    scrape_interval, scrape_timeout = _scrape(settings.prometheus)
    if alert not in DELAYS:
        raise KeyError(f"{alert}: say what delays it in DELAYS ({__name__})")
    delays = DELAYS[alert]
    other = []
    if "heartbeat" in delays:
        other.append(("heartbeat", HEARTBEAT_PERIOD))
    if "gap" in delays:
        other.append(("gap", _threshold(rule["expr"])))
    if "sessions" in delays:
        other.append(("sessions interval", settings.sessions_interval))
    if "hung" in delays:
        other.append(("scrape timeout", scrape_timeout))
    if "lookback" in delays:
        other.append(("lookback", LOOKBACK_DELTA))
    if "stale" in delays:
        threshold = _threshold(rule["expr"])
        if threshold <= settings.sessions_interval + scrape_interval:
            raise ValueError(
                f"{alert}: a {threshold:g} s threshold is not above the sessions interval"
                f" ({settings.sessions_interval:g} s) plus the scrape interval"
                f" ({scrape_interval:g} s): healthy processes would read stale"
            )
        other.append(("data age", threshold))
    if "fresh" in delays:
        fresh = default_fresh_time(settings.groups)
        if fresh <= scrape_interval:
            raise ValueError(
                f"{alert}: a default fresh time of {fresh:g} s is not above the scrape"
                f" interval ({scrape_interval:g} s): healthy feeds would read stale"
            )
        other.append(("fresh time", fresh))
    lag = _recording_lag(settings, group, position)
    if lag:
        other.append(("recording rules", lag))
    receiver, group_wait = _route(settings.alertmanager["route"], _static_labels(rule))
    return Timing(
        alert=alert,
        timeout=settings.agent_timeout if "timeout" in delays else 0,
        other=tuple(other),
        scrape=0 if {"lookback", "stale", "fresh"} & set(delays) else scrape_interval,
        evaluation=interval,
        hold=math.ceil(duration(rule.get("for", "0")) / interval) * interval,
        group_wait=group_wait,
        receiver=receiver,
    )


def _find(groups: list[dict], **key: str) -> tuple[dict, int]:
    ((kind, name),) = key.items()
    for group in groups:
        for position, rule in enumerate(group["rules"]):
            if rule.get(kind) == name:
                return group, position
    raise KeyError(f"no {kind} rule {name}")


def _evaluation_interval(group: dict, prometheus: dict) -> float:
    default = prometheus.get("global", {}).get("evaluation_interval", "1m")
    return duration(group.get("interval", default))


def _scrape(prometheus: dict) -> tuple[float, float]:
    """The exporter job's scrape interval and timeout, with Prometheus's defaults."""
    jobs = prometheus["scrape_configs"]
    assert len(jobs) == 1, "the example scrapes one job, the exporter; which one is it now?"
    glob = prometheus.get("global", {})
    interval = duration(jobs[0].get("scrape_interval", glob.get("scrape_interval", "1m")))
    timeout = jobs[0].get("scrape_timeout", glob.get("scrape_timeout"))
    return interval, duration(timeout) if timeout else min(SCRAPE_TIMEOUT, interval)


def _threshold(expr: str) -> float:
    (number,) = re.findall(r"\)\s*>\s*([0-9.]+)", expr)
    return float(number)


def default_fresh_time(groups: list[dict]) -> float:
    """The fresh time of a feed that declares none: the number the recording rule
    ``ocs:feed_fresh_time_seconds`` adds to ``ocs_feed_info * 0``."""
    group, position = _find(groups, record="ocs:feed_fresh_time_seconds")
    (number,) = re.findall(r"\*\s*0\s*\+\s*([0-9.]+)", group["rules"][position]["expr"])
    return float(number)


def _recording_lag(settings: Settings, group: dict, position: int) -> float:
    """How far behind the recorded series a rule reads can be: a recording rule evaluated
    before it in its group is fresh; any other is up to its own group's interval old, plus
    the lag of what it reads in turn."""
    groups = settings.groups
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    lag = 0.0
    for name in set(_NAME.findall(group["rules"][position]["expr"])) & records:
        source, at = _find(groups, record=name)
        behind = source is not group or at > position
        interval = _evaluation_interval(source, settings.prometheus) if behind else 0
        lag = max(lag, _recording_lag(settings, source, at) + interval)
    return lag


def _static_labels(rule: dict) -> dict[str, str]:
    return {"alertname": rule["alert"], **rule.get("labels", {})}


def _route(route: dict, labels: dict[str, str], parent: dict | None = None) -> tuple[str, float]:
    """The receiver and group_wait of the first route the alert matches; children inherit
    what they do not set. (A route with ``continue`` lets later ones notify as well; the
    first notification still comes from the first match.)"""
    settings = {"group_wait": GROUP_WAIT, **(parent or {})}
    settings.update({k: route[k] for k in ("receiver", "group_wait") if k in route})
    for child in route.get("routes", []):
        if all(_matches(m, labels) for m in _matchers(child)):
            return _route(child, labels, settings)
    return settings["receiver"], duration(settings["group_wait"])


def _matchers(route: dict) -> list[str]:
    return [
        *route.get("matchers", []),
        *(f'{k}="{v}"' for k, v in route.get("match", {}).items()),
        *(f'{k}=~"{v}"' for k, v in route.get("match_re", {}).items()),
    ]


def _matches(matcher: str, labels: dict[str, str]) -> bool:
    name, op, value = _MATCHER.fullmatch(matcher).groups()
    if name not in labels:
        raise ValueError(f"route matcher {matcher!r} reads {name}, which only the series know")
    if op in ("=", "!="):
        return (labels[name] == value) == (op == "=")
    return bool(re.fullmatch(value, labels[name])) == (op == "=~")
