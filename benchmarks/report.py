"""Readable tables of the numbers a run collected, and the ratios that matter."""

from __future__ import annotations

import itertools
from typing import Any

SUBJECTS = ("exporter", "registry", "bare")
LABELS = {
    "exporter": "exporter",
    "registry": "RegistryAgent*",
    "bare": "bare autobahn",
}
FOOTNOTE = (
    "* RegistryAgent from ocs, run with ocs-agent-cli through benchmarks/registry_launcher.py,\n"
    "  which counts heartbeats by wrapping Registry._register_heartbeat and switches the\n"
    "  registry's own heartbeat off (OCSAgent._heartbeat_on) so that only the load is heard."
)


def fmt(value: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def mib(value: float | None) -> str:
    return fmt(None if value is None else value / 2**20, ".1f", " MiB")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(step: dict[str, Any]) -> dict[str, float | None]:
    """Exporter CPU per heartbeat over the bare subscriber's and over the registry's."""
    subjects = step.get("subjects", {})
    cost = {name: subjects.get(name, {}).get("us_per_heartbeat") for name in SUBJECTS}
    return {
        "exporter_over_bare": ratio(cost["exporter"], cost["bare"]),
        "exporter_over_registry": ratio(cost["exporter"], cost["registry"]),
    }


def step_table(step: dict[str, Any], serializer: str) -> str:
    """The table for one N."""
    lines = []
    load = step.get("load", {})
    lines.append(
        f"== N = {step['agents']} agents x {step['ops']} operations "
        f"({step['operations_tracked']} tracked), window {fmt(step.get('window_s'))} s, "
        f"{serializer} =="
    )
    if load:
        lines.append(
            f"load: {load['generators']} generator(s) sent {load['sent_per_s']:.0f}/s of "
            f"{load['expected_per_s']}/s expected "
            f"({load['sent_fraction_of_expected']:.1%}), max lag {load['max_lag_s']:.3f} s"
        )
    header = (
        f"{'subject':<15} {'recv/sent (window)':>24} {'recv/sent (total)':>24} "
        f"{'CPU s/1k hb':>11} {'us/hb':>7} {'cores':>6}  connected"
    )
    lines.append(header)
    for name in SUBJECTS:
        entry = step.get("subjects", {}).get(name)
        if not entry:
            continue
        window = "-"
        if "received_in_window" in entry and load:
            window = (
                f"{entry['received_in_window']}/{load['sent_in_window']} "
                f"{fmt(_pct(entry.get('received_fraction_of_sent')), '.1f', '%')}"
            )
        total = "-"
        if "received_total" in entry:
            total = (
                f"{entry['received_total']}/{entry['sent_total']} "
                f"{fmt(_pct(entry.get('received_fraction_of_sent_total')), '.1f', '%')}"
            )
        connected = {True: "yes", False: "NO", None: "?"}[entry.get("stayed_connected")]
        if entry.get("alive") is False:
            connected += f" (exited {entry.get('exit_code')})"
        lines.append(
            f"{LABELS[name]:<15} {window:>24} {total:>24} "
            f"{fmt(entry.get('cpu_s_per_1k_heartbeats'), '.4f'):>11} "
            f"{fmt(entry.get('us_per_heartbeat')):>7} {fmt(entry.get('cpu_cores'), '.2f'):>6}  "
            f"{connected}"
        )
    others = step.get("others")
    if others:
        lines.append(
            f"others: crossbar {others['crossbar']['cpu_cores']:.2f} cores "
            f"({others['crossbar']['processes']} processes), generators "
            f"{others['generators']['cpu_cores']:.2f} cores, harness "
            f"{others['harness']['cpu_cores']:.2f} cores; machine "
            f"{others['machine_busy_fraction']:.0%} busy of {others['machine_cores']} cores, "
            f"{others['unaccounted_cores']:.2f} cores of it by processes not ours"
        )
    exporter = step.get("exporter", {})
    scrape = exporter.get("scrape")
    if scrape:
        lines.append(
            f"exporter /metrics under load: median {fmt(_ms(scrape['median_s']))} ms, "
            f"p99 {fmt(_ms(scrape['p99_s']))} ms, max {fmt(_ms(scrape['max_s']))} ms over "
            f"{scrape['count']} scrapes (gzip, 1/s then a burst); "
            f"{scrape.get('bytes_gzip', 0) / 1024:.0f} KiB gzip, "
            f"{scrape.get('bytes_text', 0) / 1024:.0f} KiB text, {scrape.get('series')} series, "
            f"~{fmt(_ms(scrape.get('cpu_s_per_scrape_estimate')))} ms CPU per scrape"
        )
    if "rss_bytes" in exporter:
        lines.append(
            f"exporter RSS: {mib(exporter['rss_idle_bytes'])} before the load, "
            f"{mib(exporter['rss_bytes'])} under it = "
            f"{fmt(exporter['rss_per_operation_bytes'], '.0f')} B per tracked operation "
            f"({fmt(exporter['rss_growth_per_operation_bytes'], '.0f')} B/op above idle); "
            f"peak {mib(exporter.get('rss_peak_bytes'))}"
        )
    detection = exporter.get("detection")
    if detection:
        lines.append(
            f"exporter detection (--agent-timeout {detection['agent_timeout_s']:g}): "
            f"{detection['detected']}/{detection['stopped']} stopped agents shown down; last "
            f"heartbeat sent -> scrape showing ocs_agent_up 0: median "
            f"{fmt(detection['median_s'], '.2f')} s, min {fmt(detection['min_s'], '.2f')} s, "
            f"max {fmt(detection['max_s'], '.2f')} s"
            + ("" if detection["valid"] else f" -- NOT VALID: {detection['invalid_because']}")
            + (
                " -- includes the router's delivery backlog (heartbeats arrived late)"
                if detection.get("includes_delivery_backlog")
                else ""
            )
        )
    r = ratios(step)
    lines.append(
        f"ratios (CPU per heartbeat): exporter / bare = {fmt(r['exporter_over_bare'], '.2f')}x, "
        f"exporter / RegistryAgent = {fmt(r['exporter_over_registry'], '.2f')}x"
    )
    for warning in step.get("warnings", []):
        lines.append(f"WARNING: {warning}")
    for error in step.get("errors", []):
        lines.append(f"ERROR: {error}")
    return "\n".join(lines)


def summary_table(steps: list[dict[str, Any]]) -> str:
    """One line per N, the headline numbers."""
    header = (
        f"{'N':>6} {'sent%':>6} {'exp us/hb':>9} {'reg us/hb':>9} {'bare us/hb':>10} "
        f"{'exp/bare':>8} {'exp/reg':>7} {'recv% e/r/b':>17} {'scrape p50/p99 ms':>18} "
        f"{'RSS MiB':>8} {'B/op':>6} {'detect s':>8} {'xbar':>5}"
    )
    lines = [header]
    for step in steps:
        subjects = step.get("subjects", {})
        load = step.get("load", {})
        exporter = step.get("exporter", {})
        scrape = exporter.get("scrape", {})
        r = ratios(step)
        received = "/".join(
            fmt(_pct(subjects.get(n, {}).get("received_fraction_of_sent")), ".0f") for n in SUBJECTS
        )
        rss = exporter.get("rss_bytes")
        detection = exporter.get("detection", {})
        detect = fmt(detection.get("median_s"), ".2f")
        if detection and not detection["valid"]:
            detect += "!"
        elif detection.get("includes_delivery_backlog"):
            detect += "^"
        latency = (
            f"{fmt(_ms(scrape.get('median_s')), '.0f')}/{fmt(_ms(scrape.get('p99_s')), '.0f')}"
        )
        lines.append(
            f"{step['agents']:>6} "
            f"{fmt(_pct(load.get('sent_fraction_of_expected')), '.0f'):>6} "
            f"{fmt(subjects.get('exporter', {}).get('us_per_heartbeat')):>9} "
            f"{fmt(subjects.get('registry', {}).get('us_per_heartbeat')):>9} "
            f"{fmt(subjects.get('bare', {}).get('us_per_heartbeat')):>10} "
            f"{fmt(r['exporter_over_bare'], '.2f'):>8} "
            f"{fmt(r['exporter_over_registry'], '.2f'):>7} {received:>17} "
            f"{latency:>18} "
            f"{fmt(None if rss is None else rss / 2**20):>8} "
            f"{fmt(exporter.get('rss_per_operation_bytes'), '.0f'):>6} "
            f"{detect:>8} "
            f"{fmt(step.get('others', {}).get('crossbar', {}).get('cpu_cores'), '.2f'):>5}"
        )
    lines.append(
        "sent% = heartbeats the generators sent / those due (N / period a second); recv% = "
        "received / sent in the window (exporter/registry/bare); xbar = crossbar CPU cores; "
        "us/hb = CPU microseconds per heartbeat received; detect ! = not valid (agents still "
        "heartbeating were down "
        "too, or the exporter was disconnected), ^ = includes a delivery backlog"
    )
    return "\n".join(lines)


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def warnings(result: dict[str, Any]) -> list[str]:
    """What looked wrong in one step, as sentences for the table."""
    found = []
    load = result.get("load", {})
    if load.get("behind"):
        found.append(
            f"load generators fell behind: sent {load['sent_per_s']:.0f}/s of "
            f"{load['expected_per_s']}/s ({load['sent_fraction_of_expected']:.1%}), max lag "
            f"{load['max_lag_s']:.2f} s, {load['skipped_in_window']} dropped"
        )
    if load.get("drain_timed_out"):
        found.append(
            f"heartbeats were still arriving {load['drain_s']:.0f} s after the load stopped: "
            "a backlog had built up between the generators and the subscribers"
        )
    found.extend(subject_warnings(result.get("subjects", {})))
    others = result.get("others", {})
    if others.get("crossbar", {}).get("cpu_cores", 0) > 0.85:
        found.append(
            f"crossbar used {others['crossbar']['cpu_cores']:.2f} cores: its router worker is "
            "one single-threaded process, likely the bottleneck"
        )
    if others.get("machine_busy_fraction", 0) > 0.9:
        found.append(
            f"the machine was {others['machine_busy_fraction']:.0%} busy: every process "
            "competed for CPU"
        )
    if others.get("unaccounted_cores", 0) > 0.25:
        found.append(
            f"{others['unaccounted_cores']:.2f} cores were busy with processes outside this "
            "benchmark (a shared machine): the numbers are noisier than usual"
        )
    detection = result.get("exporter", {}).get("detection", {})
    if detection and detection["detected"] < detection["stopped"]:
        found.append(
            f"the exporter showed only {detection['detected']} of {detection['stopped']} "
            f"stopped agents down within {detection['gave_up_after_s']:.0f} s"
        )
    false_down = result.get("exporter", {}).get("false_down_agents")
    if false_down:
        found.append(
            f"the exporter showed {len(false_down)} still-heartbeating agents down during "
            "detection (their heartbeats arrived more than the agent timeout apart)"
        )
    return found


def subject_warnings(subjects: dict[str, Any]) -> list[str]:
    found = []
    floor = subjects.get("bare", {}).get("received_fraction_of_sent")
    if floor is not None and floor < 0.98:
        found.append(
            f"even the bare subscriber received only {floor:.1%} of the heartbeats sent in the "
            "window: the router or the machine limits delivery at this N, not the subjects"
        )
    for name, entry in subjects.items():
        fraction = entry.get("received_fraction_of_sent")
        if fraction is not None and fraction < 0.98:
            found.append(
                f"{name} received only {fraction:.1%} of the heartbeats sent in the window"
            )
        total = entry.get("received_fraction_of_sent_total")
        if total is not None and total < 0.99:
            found.append(f"{name} received only {total:.1%} of all heartbeats sent, after drain")
        if entry.get("alive") is False:
            found.append(f"{name} EXITED (code {entry.get('exit_code')})")
        if entry.get("session_losses"):
            found.append(f"{name} lost its router session {entry['session_losses']} time(s)")
        elif entry.get("stayed_connected") is False and entry.get("alive"):
            found.append(f"{name} was seen disconnected")
    return found


def timeline(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-second rates in the window: heartbeats sent and received, CPU cores per process."""
    pairs = list(itertools.pairwise(samples))
    found: dict[str, Any] = {
        "t_s": [round(b["t"] - samples[0]["t"], 2) for _, b in pairs],
        "sent_per_s": [round((b["sent"] - a["sent"]) / (b["t"] - a["t"])) for a, b in pairs],
    }
    for name in samples[0]["received"]:
        found[f"{name}_received_per_s"] = [
            round((b["received"][name] - a["received"][name]) / (b["t"] - a["t"])) for a, b in pairs
        ]
    for name in samples[0]["cpu"]:
        found[f"{name}_cores"] = [
            round((b["cpu"][name] - a["cpu"][name]) / (b["t"] - a["t"]), 3) for a, b in pairs
        ]
    return found
