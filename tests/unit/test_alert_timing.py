"""The timing table of docs/alerts.md is what the rule file, the example Prometheus and
Alertmanager configs and the exporter's default agent timeout and sessions interval give, row
for row; and the worst case is summed the way Prometheus and Alertmanager take their turns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exporter.flags import env_name
from tests.support.timing import (
    DELAYS,
    PROMETHEUS_EXAMPLE,
    Settings,
    alerts,
    text,
    timing,
    timings,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
HEADER = [
    "alert",
    "event",
    "agent timeout",
    "other",
    "scrape",
    "evaluation",
    "`for`",
    "`group_wait` (receiver)",
    "bound",
]


def table() -> dict[str, list[str]]:
    """The timing table's rows by alert name: every cell after the name."""
    lines = DOC.read_text().splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith("| alert | event |")]
    assert len(start) == 1, f"{DOC.name} needs exactly one timing table"
    header, _, *rest = lines[start[0] :]
    assert _cells(header) == HEADER
    rows: dict[str, list[str]] = {}
    for line in rest:
        if not line.startswith("|"):
            break
        name, *cells = _cells(line)
        name = name.strip("`")
        assert name not in rows, f"two rows for {name}"
        rows[name] = cells
    return rows


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.fixture
def shipped(monkeypatch) -> Settings:
    """The shipped settings, whatever the environment running the tests sets."""
    monkeypatch.delenv(env_name("--agent-timeout"), raising=False)
    monkeypatch.delenv(env_name("--collector.sessions.interval"), raising=False)
    return Settings.shipped()


def test_the_table_has_a_row_for_every_alert_and_no_other(shipped):
    rows, names = set(table()), set(alerts(shipped))
    assert not names - rows, f"alerts missing from the timing table: {names - rows}"
    assert not rows - names, f"rows for alerts that do not exist: {rows - names}"


def test_every_row_is_what_the_rules_and_example_configs_give(shipped):
    rows = table()
    wrong = {
        name: (rows[name][1:], t.cells())
        for name, t in timings(shipped).items()
        if name in rows and rows[name][1:] != t.cells()
    }
    assert not wrong, "rows differing from the files (table, computed):\n" + "\n".join(
        f"{name}: {got} != {want}" for name, (got, want) in wrong.items()
    )
    assert all(rows[name][0] for name in rows), "every row says what the event is"


def test_every_alert_has_its_delays_thought_through(shipped):
    assert set(DELAYS) == set(alerts(shipped))


def test_the_agent_timeout_is_the_exporters_default(shipped, monkeypatch):
    monkeypatch.setenv(env_name("--agent-timeout"), "7")
    assert shipped.agent_timeout == 5
    assert Settings.shipped().agent_timeout == 7  # read as the exporter reads it


def test_the_sessions_interval_is_the_exporters_default(shipped, monkeypatch):
    monkeypatch.setenv(env_name("--collector.sessions.interval"), "1m")
    assert shipped.sessions_interval == 30
    assert Settings.shipped().sessions_interval == 60
    flags = ("--collector.sessions.interval", "5s")
    base = PROMETHEUS_EXAMPLE.parent
    assert Settings.of(shipped.prometheus, shipped.alertmanager, flags, base).sessions_interval == 5


# --- The sum, on small made-up configs ------------------------------------------------------


def settings(rules: list[dict], *, routes: tuple = (), **prometheus: object) -> Settings:
    """One group of ``rules`` evaluated every 15 s, a job scraped every 15 s, a root route
    waiting 30 s."""
    config = {"global": {"scrape_interval": "15s", "evaluation_interval": "15s"}, **prometheus}
    config.setdefault("scrape_configs", [{"job_name": "ocs-exporter"}])
    route = {"receiver": "root", "group_wait": "30s", "routes": list(routes)}
    return Settings([{"name": "g", "rules": rules}], config, {"route": route}, 5.0)


def alert(name: str = "OcsAgentDown", expr: str = "ocs_agent_up == 0", **fields) -> dict:
    return {"alert": name, "expr": expr, "labels": {"severity": "critical"}, **fields}


def test_agent_down_adds_the_agent_timeout_to_every_turn():
    t = timing("OcsAgentDown", settings([alert(**{"for": "1m"})]))
    assert (t.timeout, t.scrape, t.evaluation, t.hold, t.group_wait) == (5, 15, 15, 60, 30)
    assert t.bound == 125
    assert t.cells() == ["5s", "-", "15s", "15s", "1m", "30s (`root`)", "**2m5s**"]


def test_a_hold_is_rounded_up_to_whole_evaluations():
    assert timing("OcsAgentDown", settings([alert(**{"for": "20s"})])).hold == 30


def test_a_recording_rule_evaluated_later_or_elsewhere_costs_one_evaluation():
    record = {"record": "ocs:up", "expr": "ocs_agent_up"}
    reads = alert(expr="ocs:up == 0")
    assert timing("OcsAgentDown", settings([record, reads])).other == ()
    later = timing("OcsAgentDown", settings([reads, record]))
    assert later.other == (("recording rules", 15),)
    assert later.bound == 5 + 15 + 15 + 15 + 30
    apart = settings([reads])
    apart.groups.append({"name": "slow", "interval": "1m", "rules": [record]})
    assert timing("OcsAgentDown", apart).other == (("recording rules", 60),)


def test_a_hung_exporter_costs_the_scrape_timeout_prometheus_would_use():
    down = [alert("OcsExporterDown", "up == 0")]
    assert timing("OcsExporterDown", settings(down)).other == (("scrape timeout", 10),)
    fast = settings(down, **{"global": {"scrape_interval": "4s", "evaluation_interval": "4s"}})
    assert timing("OcsExporterDown", fast).other == (("scrape timeout", 4),)
    own = settings(down, scrape_configs=[{"job_name": "x", "scrape_timeout": "7s"}])
    assert timing("OcsExporterDown", own).other == (("scrape timeout", 7),)


def test_a_stall_is_seen_at_the_expressions_threshold():
    stall = alert("OcsAgentHeartbeatStalling", "max(ocs_agent_heartbeat_gap_seconds) > 3.5")
    assert timing("OcsAgentHeartbeatStalling", settings([stall])).other == (("gap", 3.5),)


def test_an_absent_target_waits_out_the_lookback_instead_of_a_scrape():
    t = timing("OcsExporterAbsent", settings([alert("OcsExporterAbsent", "absent(up)")]))
    assert (t.scrape, t.other) == (0, (("lookback", 300),))


STALE = "time() - max without (instance) (ocs_op_data_timestamp_seconds) > 600"


def test_a_stale_process_waits_out_the_threshold_instead_of_a_scrape():
    t = timing("OcsProcessStale", settings([alert("OcsProcessStale", STALE)]))
    assert (t.scrape, t.other) == (0, (("data age", 600),))
    assert t.bound == 600 + 15 + 30


def test_a_stale_threshold_within_the_sessions_interval_and_a_scrape_is_refused():
    close = settings([alert("OcsProcessStale", STALE.replace("600", "45"))])
    with pytest.raises(ValueError, match="healthy processes would read stale"):
        timing("OcsProcessStale", close)  # 30 s interval + 15 s scrape
    fast = dataclasses.replace(close, sessions_interval=29)
    assert timing("OcsProcessStale", fast).other == (("data age", 45),)


FRESH = {
    "record": "ocs:feed_fresh_time_seconds",
    "expr": "max without (instance) (ocs_feed_fresh_time_seconds) or ocs_feed_info * 0 + 180",
}
FEED_STALE = alert(
    "OcsFeedStale",
    "time() - ocs_feed_last_message_timestamp_seconds > ocs:feed_fresh_time_seconds",
    **{"for": "2m"},
)


def test_a_stale_feed_waits_out_the_default_fresh_time_instead_of_a_scrape():
    t = timing("OcsFeedStale", settings([FRESH, FEED_STALE]))
    assert (t.scrape, t.other) == (0, (("fresh time", 180),))
    assert t.bound == 180 + 15 + 120 + 30


def test_a_default_fresh_time_within_a_scrape_interval_is_refused():
    short = {**FRESH, "expr": FRESH["expr"].replace("+ 180", "+ 15")}
    with pytest.raises(ValueError, match="healthy feeds would read stale"):
        timing("OcsFeedStale", settings([short, FEED_STALE]))


def test_hostmanager_data_waits_for_the_next_read_of_its_session():
    unstable = alert("OcsAgentUnstable", "ocs_agent_stability < 0.5", **{"for": "10m"})
    config = dataclasses.replace(settings([unstable]), sessions_interval=20)
    t = timing("OcsAgentUnstable", config)
    assert (t.scrape, t.other) == (15, (("sessions interval", 20),))
    assert t.bound == 20 + 15 + 15 + 600 + 30


def test_the_first_matching_route_gives_the_group_wait_and_children_inherit():
    info = {"receiver": "info", "matchers": ['severity="info"'], "group_wait": "10s"}
    paging = {"receiver": "pager", "matchers": ["severity=~crit.*"]}
    config = settings([alert()], routes=(info, paging))
    assert (timing("OcsAgentDown", config).receiver, timing("OcsAgentDown", config).group_wait) == (
        "pager",
        30,
    )
    quiet = settings([alert(labels={"severity": "info"})], routes=(info, paging))
    assert timing("OcsAgentDown", quiet).group_wait == 10


def test_a_route_on_a_label_only_the_series_have_cannot_be_decided():
    by_agent = {"receiver": "x", "matchers": ['agent_address="observatory.a"']}
    with pytest.raises(ValueError, match="agent_address"):
        timing("OcsAgentDown", settings([alert()], routes=(by_agent,)))


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "-"), (2.5, "2.5s"), (60, "1m"), (125, "2m5s"), (645, "10m45s"), (3900, "1h5m")],
)
def test_durations_read_as_prometheus_writes_them(seconds, shown):
    assert text(seconds) == shown
