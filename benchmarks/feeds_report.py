"""The tables of ``python -m benchmarks.feeds`` (also ``--report FILE``), and the facts a
reader needs beside them (who received less than was sent). Nothing here judges a number."""

from __future__ import annotations

from typing import Any

NAMES = {
    "feeds": "exporter, feeds on",
    "heartbeats_only": "exporter, --no-collector.feeds",
    "bare": "bare subscriber, <root>..feeds.",
}
EXPORTERS = ("feeds", "heartbeats_only")
MIB = 2**20


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_cpu(cpu: dict[str, Any]) -> None:
    sent = cpu["sent"]
    print(
        f"{cpu['agents']} agents heartbeating at 1 Hz, {cpu['feeds_per_agent']} feeds each "
        f"(one message every {cpu['feed_period_s']:g} s), {cpu['expected_per_s']:g} messages/s "
        f"expected, {sent['per_s']:g}/s sent ({sent['heartbeats']} heartbeats, "
        f"{sent['feeds']} feed messages in {cpu['window_s']:g} s), side by side:"
    )
    print(f"  {'subject':32} {'CPU s':>7} {'cores':>6} {'received':>9} {'of sent':>8} us/message")
    for name, label in NAMES.items():
        row = cpu["subjects"][name]
        print(
            f"  {label:32} {row['cpu_s']:7.2f} {row['cpu_cores']:6.3f} {row['received']:9.0f} "
            f"{_fraction(row['received_fraction_of_sent']):>8} {row['us_per_message']}"
        )
    others = cpu["others"]
    print(
        f"  crossbar {others['crossbar']['cpu_cores']} cores, generators "
        f"{others['generators']['cpu_cores']} cores, machine {cpu['machine_busy_cores']} cores busy"
    )
    print(
        f"  exporter/bare per message: {cpu['exporter_over_bare']}; a feed message costs the "
        f"exporter {cpu['feed_message_extra_us']} us (its CPU above the heartbeats-only one's, "
        "per feed message)"
    )
    counts = cpu["subjects"]["feeds"]["counts"]
    print(
        f"  feeds tracked {counts['feeds_tracked']}, invalid {_nonzero(counts['invalid'])}, "
        f"ignored {_nonzero(counts['ignored'])}; {_settle(cpu['settle'])}; lost router: "
        + ", ".join(f"{name} {cpu['subjects'][name]['lost_router']}" for name in EXPORTERS)
        + f", bare {cpu['subjects']['bare']['session_losses']}"
    )
    total = cpu["totals"]
    print(
        f"  in all, after a {total['drain_s']:g} s drain: sent {total['sent']['heartbeats']} "
        f"heartbeats + {total['sent']['feeds']} feed messages; received: feeds on "
        f"{total['feeds']['heartbeats']:.0f} + {total['feeds']['feeds']:.0f}, heartbeats only "
        f"{total['heartbeats_only']['heartbeats']:.0f} + "
        f"{total['heartbeats_only']['feeds']:.0f}, bare {total['bare']}"
    )


def _nonzero(by_reason: dict[str, float]) -> dict[str, float]:
    return {reason: n for reason, n in by_reason.items() if n}


def _settle(settle: dict[str, Any]) -> str:
    state = "settled" if settle["settled"] else "NOT settled"
    return f"{state} after {settle['after_s']:g} s (operation types asked, feeds tracked)"


def print_scale(scale: dict[str, Any]) -> None:
    print(
        f"{scale['agents']} agents x {scale['feeds_per_agent']} feeds, heartbeats every "
        f"{scale['period_s']:g} s, one message per feed every {scale['feed_period_s']:g} s "
        f"({scale['expected_per_s']:g} messages/s), side by side, scraped in turn (gzip, "
        "OpenMetrics):"
    )
    for name in EXPORTERS:
        row = scale[name]
        print(
            f"  {NAMES[name]:32} /metrics p50 {row['scrape_ms_p50']} ms, p99 "
            f"{row['scrape_ms_p99']} ms ({row['scrape_wire_bytes']} B); RSS "
            f"{row['rss_bytes'] / MIB:.1f} MiB (idle {(row['rss_idle_bytes'] or 0) / MIB:.1f} "
            f"MiB); feeds tracked {row['counts']['feeds_tracked']}; received "
            f"{_fraction(row['received_fraction_of_sent'])} of what was sent to it, lost "
            f"router {row['lost_router']}"
        )
    print(f"  {_settle(scale['settle'])}")
    print(
        f"  p99 feeds on/off {scale['p99_ratio']}; RSS difference "
        f"{scale['rss_difference_bytes'] / MIB:.2f} MiB, {scale['rss_bytes_per_feed']} B per "
        "tracked feed"
    )


def notes(results: dict[str, Any]) -> list[str]:
    """Facts about a run that change how its numbers read: subjects that received less
    than was sent to them (the router, or a saturated machine), lost the router, or a step
    that never settled."""
    found = []
    cpu = results.get("cpu")
    if cpu:
        rows = cpu["subjects"]
        short = {
            name: row["received_fraction_of_sent"]
            for name, row in rows.items()
            if (row["received_fraction_of_sent"] or 0) < 0.99
        }
        if short:
            got = ", ".join(f"{NAMES[name]} {_fraction(v)}" for name, v in short.items())
            found.append(
                f"CPU step: received less than 99% of what was sent in the window ({got}); "
                f"crossbar used {cpu['others']['crossbar']['cpu_cores']} cores and the machine "
                f"{cpu['machine_busy_cores']} of {results['host']['cpus']}: CPU per message is "
                "per message received; read the exporter beside the bare subscriber"
            )
    for step_name in ("cpu", "scale"):
        step = results.get(step_name)
        if not step:
            continue
        rows = step["subjects"] if step_name == "cpu" else step
        lost = {name: rows[name]["lost_router"] for name in EXPORTERS if rows[name]["lost_router"]}
        if lost:
            found.append(
                f"{step_name} step: exporters lost the router (times): {lost}; see their logs"
            )
        short = {
            NAMES[name]: _fraction(step[name]["received_fraction_of_sent"])
            for name in EXPORTERS
            if step_name == "scale" and (step[name]["received_fraction_of_sent"] or 0) < 0.99
        }
        if short:
            found.append(f"scale step: received less than 99% of what was sent: {short}")
        if not step["settle"]["settled"]:
            found.append(
                f"{step_name} step: not settled in {step['settle']['after_s']:g} s (the feed "
                "collector did not track every feed, or an exporter did not ask every agent "
                "its operation types): its numbers are of a partial state"
            )
    for note in found:
        print(f"note: {note}")
    return found


def print_all(results: dict[str, Any]) -> None:
    if "cpu" in results:
        print_cpu(results["cpu"])
    if "scale" in results:
        print_scale(results["scale"])
    for note in results.get("notes", []):
        print(f"note: {note}")
