"""The soak's report: its summary numbers, and the table and text it prints."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.report import fmt

SLOPE_AFTER = 60.0  # RSS slope over the samples from this many seconds on
REJOIN_UNSEEN = 60.0  # a restart whose rejoin was not seen: its window, seconds
SETTLED_AFTER = 600.0  # and from here: the caches and the allocator's arenas filled


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def losses_by_interval(result: dict[str, Any]) -> dict[str, int]:
    """Heartbeats sent and not counted, summed over the intervals between two samples: those
    overlapping a router restart (from its stop to the exporter's rejoin) and the others.
    Heartbeats still queued in a router that stops count where they were sent."""
    windows = [
        (r["at_s"], r["at_s"] + (r["exporter_rejoined_after_s"] or REJOIN_UNSEEN))
        for r in result.get("router", {}).get("restarts", [])
    ]
    inside = elsewhere = 0
    counted = [s for s in result["samples"] if s.get("received") is not None]
    for before, after in itertools.pairwise(counted):
        gap = (after["sent"] - before["sent"]) - (after["received"] - before["received"])
        if any(before["t_s"] < end and after["t_s"] > start for start, end in windows):
            inside += gap
        else:
            elsewhere += gap
    return {"in_restart_intervals": int(inside), "in_other_intervals": int(elsewhere)}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of the report, from the samples, the restarts and the final counts."""
    samples, final = result["samples"], result.get("final", {})
    rss = [s["rss_bytes"] for s in samples if s.get("rss_bytes")]
    late = [
        (s["t_s"], s["rss_bytes"] / 2**20)
        for s in samples
        if s["t_s"] >= SLOPE_AFTER and s.get("rss_bytes")
    ]
    steady = [int(v * 2**20) for _, v in late]
    latencies = [s["scrape_s"] for s in samples if "scrape_s" in s]
    restarts = result.get("router", {}).get("restarts", [])
    by_design = [r["sent_before_exporter_rejoined"] for r in restarts]
    sent, received = final.get("sent"), final.get("received")
    lost = sent - received if sent is not None and received is not None else None
    outage = sum(v for v in by_design if v is not None)
    cpu = [s for s in samples if s.get("cpu_s") is not None]
    span = cpu[-1]["t_s"] - cpu[0]["t_s"] if len(cpu) > 1 else 0
    return {
        "duration_s": samples[-1]["t_s"] if samples else 0,
        "samples": len(samples),
        "rss": {
            "min_bytes": min(rss, default=None),
            "median_bytes": statistics.median(rss) if rss else None,
            "max_bytes": max(rss, default=None),
            "first_bytes": rss[0] if rss else None,
            "last_bytes": rss[-1] if rss else None,
            "slope_mib_per_hour": slope_per_hour(late),
            "slope_from_s": SLOPE_AFTER,
            "slope_samples": len(late),
            "settled_slope_mib_per_hour": slope_per_hour(
                [(t, v) for t, v in late if t >= SETTLED_AFTER]
            ),
            "settled_from_s": SETTLED_AFTER,
            # From SLOPE_AFTER on: the first samples include the exporter before the load.
            "steady_min_bytes": min(steady, default=None),
            "steady_median_bytes": statistics.median(steady) if steady else None,
            "steady_max_bytes": max(steady, default=None),
        },
        "exporter_cpu_cores_mean": (cpu[-1]["cpu_s"] - cpu[0]["cpu_s"]) / span if span else None,
        "heartbeats": {
            "sent": sent,
            "received": received,
            "lost": lost,
            "lost_fraction": lost / sent if lost is not None and sent else None,
            "sent_while_router_down": sum(r["sent_while_router_down"] for r in restarts),
            "sent_before_exporter_rejoined": outage,
            "sent_before_exporter_rejoined_uncertainty": sum(
                r["sent_before_exporter_rejoined_uncertainty"] or 0 for r in restarts
            ),
            "lost_outside_outages": lost - outage if lost is not None else None,
            "not_counted_by_sample": losses_by_interval(result),
            "skipped": final.get("skipped"),
            "publish_errors": final.get("publish_errors"),
        },
        "router_restarts": len(restarts),
        "exporter_rejoins_missed": sum(r["exporter_rejoined_after_s"] is None for r in restarts),
        "reconnects_seen": final.get("rejoined_lines"),
        "error_lines": final.get("error_lines"),
        "exporter_alive": final.get("exporter_alive"),
        "collectors": collectors(final),
        "scrapes": {
            "count": len(samples),
            "failed": sum("scrape_error" in s for s in samples),
            "disconnected": sum(s.get("connected") is False for s in samples),
            "median_s": statistics.median(latencies) if latencies else None,
            "max_s": max(latencies, default=None),
        },
    }


def collectors(final: dict[str, Any]) -> dict[str, Any]:
    """The sessions, feeds and HostManager collectors' counts at the end (after the drain)."""
    counts = final.get("collectors") or {}
    sent, received = final.get("feeds_sent"), counts.get("feed_messages")
    return {
        "session_queries": counts.get("session_queries", {}),
        "feed_messages_sent": sent,
        "feed_messages_received": received,
        "feed_messages_lost": sent - received
        if sent is not None and received is not None
        else None,
        "feed_messages_invalid": counts.get("feed_invalid", {}),
        "feed_messages_ignored": counts.get("feed_ignored", {}),
        "manager_data_invalid": counts.get("manager_data_invalid", {}),
        "managed_agents": counts.get("managed_agents"),
        "hostmanagers_with_parse_status": counts.get("hostmanagers_parsed"),
    }


ALIVE = {True: "alive", False: "NOT ALIVE", None: "not checked"}
HEADER = (
    f"{'t s':>6} {'RSS MiB':>8} {'cores':>6} {'sent/s':>7} {'recv/s':>7} {'received':>10} "
    f"{'conn':>4} {'up':>5} {'down':>5} {'paused':>6} {'scrape ms':>9} {'status':>7} "
    f"{'feed msgs':>10} {'managed':>7}  events"
)


def table_row(s: dict[str, Any]) -> str:
    rss = s["rss_bytes"] / 2**20 if s.get("rss_bytes") else None
    conn = {True: "1", False: "0"}.get(s.get("connected"), "-")
    scrape_ms = s["scrape_s"] * 1000 if "scrape_s" in s else None
    events = "; ".join(s.get("events", []))
    col = s.get("collectors") or {}
    queries = sum(col["session_queries"].values()) if "session_queries" in col else None
    if "scrape_error" in s:
        events = f"SCRAPE FAILED ({s['scrape_error']}) {events}"
    return (
        f"{s['t_s']:>6.0f} {fmt(rss):>8} {fmt(s.get('cpu_cores'), '.3f'):>6} "
        f"{fmt(s.get('sent_per_s'), '.0f'):>7} {fmt(s.get('received_per_s'), '.0f'):>7} "
        f"{fmt(s.get('received'), '.0f'):>10} {conn:>4} {fmt(s.get('agents_up'), 'd'):>5} "
        f"{fmt(s.get('agents_down'), 'd'):>5} {s['paused']:>6} {fmt(scrape_ms, '.0f'):>9} "
        f"{fmt(queries, '.0f'):>7} {fmt(col.get('feed_messages'), '.0f'):>10} "
        f"{fmt(col.get('managed_agents'), 'd'):>7}  "
        f"{events}"
    ).rstrip()


def summary_text(result: dict[str, Any]) -> str:
    c, s = result["config"], result["summary"]
    r, hb, sc = s["rss"], s["heartbeats"], s["scrapes"]
    churn = result.get("churn", {})
    mib = 2**20

    def m(v: float | None) -> str:
        return fmt(None if v is None else v / mib)

    def n(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    lines = [
        f"== soak: {c['agents']} agents x {c['ops']} ops, {s['duration_s']:.0f} s, "
        f"{c['serializer']}; router restarted every {c['router_restart_every_s']:g} s "
        f"({s['router_restarts']} times); churn every {c['churn_every_s']:g} s "
        f"({churn.get('periods', 0)} times: {churn.get('paused_per_period', 0)} paused, "
        f"{churn.get('restart_group_agents', 0)} restarted) ==",
        f"exporter RSS: min {m(r['min_bytes'])} MiB, median {m(r['median_bytes'])}, max "
        f"{m(r['max_bytes'])} (first {m(r['first_bytes'])}, before the load; last "
        f"{m(r['last_bytes'])})",
        f"  from {r['slope_from_s']:.0f} s on ({r['slope_samples']} samples): min "
        f"{m(r['steady_min_bytes'])} MiB, median {m(r['steady_median_bytes'])}, max "
        f"{m(r['steady_max_bytes'])}; slope {fmt(r['slope_mib_per_hour'], '+.2f')} MiB/h "
        f"(least squares); from {r.get('settled_from_s', SETTLED_AFTER):.0f} s on "
        f"{fmt(r.get('settled_slope_mib_per_hour'), '+.2f')} MiB/h",
        f"exporter CPU: {fmt(s['exporter_cpu_cores_mean'], '.3f')} cores on average",
        f"heartbeats: sent {n(hb['sent'])}, received {n(hb['received'])}, lost {n(hb['lost'])}"
        f" ({fmt(None if hb['lost_fraction'] is None else hb['lost_fraction'] * 100, '.2f')}%)",
        f"  sent between a router stop and the exporter's rejoin (lost by design): "
        f"{n(hb['sent_before_exporter_rejoined'])} "
        f"(+-{n(hb['sent_before_exporter_rejoined_uncertainty'])}); of them while the router "
        f"was down: {n(hb['sent_while_router_down'])}",
        f"  lost otherwise: {n(hb['lost_outside_outages'])} (the windows' ends are known to "
        f"+-{n(hb['sent_before_exporter_rejoined_uncertainty'])}); not sent (generator "
        f"without a router, or > 2 s late): {n(hb['skipped'])}",
        "  sent and not counted, between two samples: "
        f"{n(hb.get('not_counted_by_sample', {}).get('in_restart_intervals'))} where a router "
        f"restart falls, {n(hb.get('not_counted_by_sample', {}).get('in_other_intervals'))} "
        "elsewhere",
        f"reconnects: {n(s['reconnects_seen'])} 'rejoined realm' lines for "
        f"{s['router_restarts']} router restarts ({s['exporter_rejoins_missed']} not seen)",
        f"errors: {n(s['error_lines'])} ERROR/Traceback lines in the exporter log; exporter "
        f"{ALIVE[s['exporter_alive']]} at the end",
        f"scrapes: {sc['count']}, {sc['failed']} failed, {sc['disconnected']} showed "
        f"crossbar_connected 0; median {fmt(_ms(sc['median_s']), '.0f')} ms, max "
        f"{fmt(_ms(sc['max_s']), '.0f')} ms",
    ]
    for restart in result.get("router", {}).get("restarts", []):
        lines.append(
            f"  router restart at {restart['at_s']:.0f} s: down {restart['router_down_s']:.1f} s,"
            f" generators back after {fmt(restart['generators_publishing_after_s'])} s, "
            f"exporter after {fmt(restart['exporter_rejoined_after_s'])} s, "
            f"{n(restart['sent_before_exporter_rejoined'])} heartbeats sent meanwhile"
        )
    lines.extend(collector_lines(result))
    lines.extend(f"ERROR: {e}" for e in result["errors"])
    return "\n".join(lines)


def collector_lines(result: dict[str, Any]) -> list[str]:
    c, col = result["config"], result["summary"].get("collectors")
    if col is None:
        return []  # a run from before the collectors were recorded

    def by(counts: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts.items())) or "none"

    def n(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"

    return [
        f"sessions ({'on' if c.get('sessions', True) else 'off'}): status calls by result: "
        f"{by(col['session_queries'])}",
        f"feeds ({c.get('feeds_per_agent', 0)} per agent, every {c.get('feed_period_s', '-')} "
        f"s): sent {n(col['feed_messages_sent'])}, received {n(col['feed_messages_received'])}"
        f", lost {n(col['feed_messages_lost'])}; invalid: {by(col['feed_messages_invalid'])};"
        f" ignored: {by(col['feed_messages_ignored'])}",
        f"HostManagers ({c.get('hostmanagers', 0)}): {n(col['managed_agents'])} agents listed "
        f"(ocs_agent_managers series), {n(col['hostmanagers_with_parse_status'])} parse status"
        f" series; data refused: {by(col['manager_data_invalid'])}",
    ]


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def print_report(result: dict[str, Any]) -> None:
    print(HEADER)
    for entry in result["samples"]:
        print(table_row(entry))
    print(summary_text(result))
