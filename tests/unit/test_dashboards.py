"""The Grafana provisioning bundle: datasource, dashboard provider and the three dashboards.

No Grafana server runs in the tests, so the dashboards' JSON model is checked for structure
here; tests/integration/test_dashboard_queries.py runs their queries through promtool.

`dashboard_queries()` and `substitute()` are meant for running every query against a real
Prometheus, e.g.::

    for uid, title, expr in dashboard_queries():
        query(substitute(expr, ALL_VARIABLES))
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

import pytest
import yaml

from tests.support.dashboards import (
    AGENT_DASHBOARDS,
    AGENT_METRICS,
    ALL_VARIABLES,
    BUILTINS,
    DASHBOARDS,
    DATASOURCE_REFS,
    DATASOURCE_UID,
    FILES,
    MOUNT,
    OPCODES,
    PROVISIONING,
    UIDS,
    VARIABLE,
    dashboard_queries,
    dashboards,
    panel_queries,
    panels,
    substitute,
    variable_query,
    variables,
)


def value_mappings(panel: dict) -> list[dict[str, dict]]:
    """The value-to-text options of every value mapping of a panel, overrides included."""
    field_config = panel.get("fieldConfig", {})
    mappings = list(field_config.get("defaults", {}).get("mappings", []))
    for override in field_config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "mappings":
                mappings.extend(prop["value"])
    return [mapping["options"] for mapping in mappings if mapping["type"] == "value"]


def shows_op_codes(panel: dict) -> bool:
    """Whether the panel displays op code values (a count of operations does not)."""
    return any(
        "ocs_op_code" in target["expr"] and not target["expr"].lstrip().startswith("count")
        for target in panel.get("targets", [])
    )


# ---------------------------------------------------------------------------- dashboards


def test_dashboard_files_parse_with_expected_uids():
    # The provider loads every JSON file of the folder: nothing else may be there.
    assert sorted(path.name for path in DASHBOARDS.glob("*.json")) == sorted(FILES)
    for name, uid in FILES.items():
        dashboard = json.loads((DASHBOARDS / name).read_text())
        assert dashboard["uid"] == uid
        assert dashboard["title"]
    assert sorted(dashboards()) == sorted(UIDS)


def test_dashboards_are_ready_for_file_provisioning():
    for name in FILES:
        text = (DASHBOARDS / name).read_text()
        dashboard = json.loads(text)
        assert "id" in dashboard, name
        assert dashboard["id"] is None, name
        assert "__inputs" not in dashboard, name
        assert "__requires" not in dashboard, name
        assert "${DS_" not in text, name
        assert dashboard["schemaVersion"] >= 36, name


def test_datasource_variable():
    for uid, dashboard in dashboards().items():
        found = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert len(found) == 1, uid
        (variable,) = found
        assert variable["type"] == "datasource", uid
        assert variable["query"] == "prometheus", uid
        current = variable.get("current", {}).get("value")
        assert current in (None, DATASOURCE_UID), uid


def test_every_panel_target_and_query_variable_uses_the_datasource_variable():
    for uid, dashboard in dashboards().items():
        for panel in panels(dashboard):
            assert panel.get("datasource") in DATASOURCE_REFS, (uid, panel.get("title"))
            if panel["type"] == "row":
                continue
            assert panel["targets"], (uid, panel["title"])
            for target in panel["targets"]:
                assert target.get("datasource") in DATASOURCE_REFS, (uid, panel["title"])
                assert target["expr"].strip(), (uid, panel["title"])
        for name, variable in variables(dashboard).items():
            if variable["type"] == "query":
                assert variable.get("datasource") in DATASOURCE_REFS, (uid, name)


def test_panels_have_titles_descriptions_ids_and_fit_the_grid():
    for uid, dashboard in dashboards().items():
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), uid
        for panel in panels(dashboard):
            assert isinstance(panel.get("title"), str), (uid, panel)
            assert panel["title"].strip(), (uid, panel)
            if panel["type"] != "row":
                assert panel.get("description", "").strip(), (uid, panel["title"])
            grid = panel["gridPos"]
            assert grid["w"] > 0, (uid, panel["title"])
            assert grid["h"] > 0, (uid, panel["title"])
            assert grid["x"] >= 0, (uid, panel["title"])
            assert grid["x"] + grid["w"] <= 24, (uid, panel["title"])


def test_op_code_panels_map_all_eight_op_codes():
    shown = {uid: 0 for uid in AGENT_DASHBOARDS}
    for uid, dashboard in dashboards().items():
        for panel in panels(dashboard):
            mapped = [options for options in value_mappings(panel) if set(OPCODES) <= set(options)]
            if not shows_op_codes(panel):
                # A count of operations must not read as a state ("6" -> "FAILED").
                assert not mapped, (uid, panel["title"])
                continue
            shown[uid] = shown.get(uid, 0) + 1
            assert mapped, (uid, panel["title"])
            options = mapped[0]
            assert {code: options[code]["text"] for code in OPCODES} == OPCODES
            colors = [options[code].get("color") for code in OPCODES]
            assert all(colors), (uid, panel["title"])
            assert len(set(colors)) == len(OPCODES), (uid, panel["title"])
    assert all(shown[uid] for uid in AGENT_DASHBOARDS), shown


def test_overview_shows_operation_states_over_time():
    timelines = [
        panel
        for panel in panels(dashboards()["ocs-overview"])
        if panel["type"] in ("state-timeline", "status-history") and shows_op_codes(panel)
    ]
    assert timelines
    for panel in timelines:
        for target in panel["targets"]:
            assert target["expr"].startswith("max without (instance) (ocs_op_code{")
            assert target["legendFormat"] == "{{instance_id}} {{operation}}"


def test_overview_agent_table_links_to_the_agent_dashboard():
    tables = [p for p in panels(dashboards()["ocs-overview"]) if p["type"] == "table"]
    assert len(tables) == 1
    (table,) = tables
    for target in table["targets"]:
        assert target["instant"] is True
        assert target.get("range") is False
        assert target["format"] == "table"
    kinds = [transformation["id"] for transformation in table["transformations"]]
    assert "merge" in kinds or "joinByField" in kinds
    renamed = {"instance_id": "instance_id"}
    for transformation in table["transformations"]:
        if transformation["id"] == "organize":
            renamed.update(transformation["options"].get("renameByName", {}))
    linked = [
        link["url"]
        for override in table["fieldConfig"]["overrides"]
        if override["matcher"] == {"id": "byName", "options": renamed["instance_id"]}
        for prop in override["properties"]
        if prop["id"] == "links"
        for link in prop["value"]
    ]
    assert linked
    for url in linked:
        assert url.startswith("/d/ocs-agent/")
        assert "var-agent=${__value.text}" in url
        assert "${datasource:queryparam}" in url or "var-datasource=${datasource}" in url
    # The up/down column reads as text.
    assert any(
        options.get("0", {}).get("text") == "DOWN" and options.get("1", {}).get("text") == "UP"
        for options in value_mappings(table)
    )


def panel(uid: str, title: str) -> dict:
    (found,) = [p for p in panels(dashboards()[uid]) if p.get("title") == title]
    return found


def exprs(found: dict) -> list[str]:
    return [" ".join(target["expr"].split()) for target in found["targets"]]


def renamed_columns(table: dict) -> dict[str, str]:
    columns = {}
    for transformation in table["transformations"]:
        if transformation["id"] == "organize":
            columns.update(transformation["options"].get("renameByName", {}))
    return columns


def test_overview_counts_expected_agents_missing_and_failed_entries():
    (missing,) = exprs(panel("ocs-overview", "Expected agents missing"))
    assert 'ocs_agent_info{expected="true", ' in missing
    assert "ocs_agent_up{" in missing and "== 0" in missing
    (failed,) = exprs(panel("ocs-overview", "FAILED entries (range)"))
    assert 'increase(ocs_op_transitions_total{to="FAILED", ' in failed
    assert failed.endswith("[$__range])))) or vector(0)")
    for found in (missing, failed):
        assert found.endswith("or vector(0)"), found  # a number, never "No data"


def test_overview_agent_table_shows_site_config_restarts_and_uptime():
    table = panel("ocs-overview", "Agents")
    columns = renamed_columns(table)
    assert {"host": "Host", "expected": "Expected"}.items() <= columns.items()
    by_ref = {target["refId"]: " ".join(target["expr"].split()) for target in table["targets"]}
    shown = {
        columns[f"Value #{ref}"]: expr for ref, expr in by_ref.items() if f"Value #{ref}" in columns
    }
    assert "increase(ocs_agent_restarts_total{" in shown["Restarts (24h)"]
    assert shown["Restarts (24h)"].endswith("[24h])))")
    assert shown["Uptime"].startswith("(time() - max without (instance) (ocs_agent_start_")
    # The site config's labels come from their own query, merged by Grafana: no group_left,
    # which would fail outright if two replicas read different site config files.
    assert any(
        expr.startswith("max without (instance) (ocs_agent_info{") for expr in by_ref.values()
    )


def test_agent_dashboard_operations_table():
    table = panel("ocs-agent", "Operations")
    assert table["type"] == "table"
    joined = " ".join(exprs(table))
    for metric in ("ocs_op_code", "ocs_op_info", "ocs_op_last_change_timestamp_seconds"):
        assert f"{metric}{{" in joined, metric
    # A replica that started later first saw every change later: the earliest time counts.
    assert "min without (instance) (ocs_op_last_change_timestamp_seconds{" in joined
    columns = renamed_columns(table)
    assert {"operation": "Operation", "op_type": "Type"}.items() <= columns.items()
    assert {"State", "Since last change"} <= set(columns.values())
    for target in table["targets"]:
        assert target["instant"] is True
        assert target["format"] == "table"


def test_agent_dashboard_shows_restarts_uptime_transitions_and_heartbeat_gaps():
    (restarts,) = exprs(panel("ocs-agent", "Restarts in range"))
    assert "increase(ocs_agent_restarts_total{" in restarts
    (uptime,) = exprs(panel("ocs-agent", "Uptime"))
    assert "ocs_agent_start_timestamp_seconds{" in uptime
    transitions = panel("ocs-agent", "Operation transitions")
    (expr,) = exprs(transitions)
    assert "increase(ocs_op_transitions_total{" in expr
    assert expr.endswith("[$__rate_interval]))")
    assert "{{to}}" in transitions["targets"][0]["legendFormat"]
    gap = panel("ocs-agent", "Heartbeat gap")
    # The replica that hears the agent best (one cut off from the router measures the
    # outage), to 0.1 s: finer is scheduling noise, which differs between replicas.
    assert exprs(gap) == [
        'round(min without (instance) (ocs_agent_heartbeat_gap_seconds{agent_class=~"$agent_class",'
        ' instance_id=~"$agent"}), 0.1)'
    ]
    assert gap["fieldConfig"]["defaults"]["unit"] == "s"


def test_exporter_dashboard_shows_its_self_metrics():
    queries = " ".join(expr for _, _, expr in panel_queries(("ocs-exporter",)))
    for metric in (
        "rate(ocs_exporter_op_type_queries_total{",
        "ocs_exporter_agents{",
        "rate(ocs_exporter_heartbeats_refused_total{",
        "rate(ocs_exporter_agents_forgotten_total{",
    ):
        assert metric in queries, metric


def test_queries_join_no_series_one_to_many_and_ignore_the_state_set():
    for uid, title, expr in dashboard_queries():
        assert "group_left" not in expr and "group_right" not in expr, (uid, title)
        assert "ocs_op_state" not in expr, (uid, title)  # off by default in the exporter


def test_agent_filter_variables():
    for uid in AGENT_DASHBOARDS:
        found = variables(dashboards()[uid])
        agent_class = found["agent_class"]
        assert agent_class["type"] == "query"
        assert variable_query(agent_class) == "label_values(ocs_agent_up, agent_class)"
        assert agent_class["multi"] is True
        assert agent_class["includeAll"] is True
        assert agent_class["allValue"] == ".*"
        assert agent_class["current"]["value"] == ["$__all"]
        agent = found["agent"]
        assert agent["type"] == "query"
        assert re.fullmatch(
            r'label_values\(ocs_agent_up\{agent_class=~"\$agent_class"\}, instance_id\)',
            variable_query(agent),
        ), uid
    overview_agent = variables(dashboards()["ocs-overview"])["agent"]
    assert overview_agent["multi"] is True
    assert overview_agent["includeAll"] is True
    assert overview_agent["allValue"] == ".*"
    assert overview_agent["current"]["value"] == ["$__all"]
    single_agent = variables(dashboards()["ocs-agent"])["agent"]
    assert single_agent["multi"] is False
    assert single_agent["includeAll"] is False


def test_agent_queries_are_filtered_by_the_variables():
    selector = re.compile(r"\b(" + "|".join(AGENT_METRICS) + r")\b(\{[^}]*\})?")
    for uid, title, expr in panel_queries(AGENT_DASHBOARDS):
        found = selector.findall(expr)
        for metric, matchers in found:
            assert 'agent_class=~"$agent_class"' in matchers, (uid, title, metric)
            assert 'instance_id=~"$agent"' in matchers, (uid, title, metric)
            assert "instance=" not in matchers, (uid, title, metric)


def test_queries_use_only_defined_variables():
    for uid, title, expr in dashboard_queries():
        defined = set(variables(dashboards()[uid])) | BUILTINS
        used = {m["braced"] or m["old"] or m["bare"] for m in VARIABLE.finditer(expr)}
        assert used <= defined, (uid, title, used - defined)


# ---------------------------------------------------------------------------- provisioning


def test_datasource_provisioning():
    config = yaml.safe_load((PROVISIONING / "datasources" / "ocs-prometheus.yml").read_text())
    assert config["apiVersion"] == 1
    (datasource,) = config["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["name"] == "OCS Prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["isDefault"] is True


def test_dashboard_provider_points_at_the_dashboards_folder():
    config = yaml.safe_load((PROVISIONING / "dashboards" / "ocs.yml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "OCS"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["foldersFromFilesStructure"] is False
    path = PurePosixPath(provider["options"]["path"])
    assert path.name == DASHBOARDS.name
    assert path.relative_to(MOUNT) == PurePosixPath(DASHBOARDS.relative_to(PROVISIONING))


# ---------------------------------------------------------------------------- query helpers


def test_substitute():
    expr = (
        'rate(x{a=~"$agent", b=~"$agent_class", c="${agent}", d=~"${agent_class:regex}",'
        ' e="[[agent]]"}[$__rate_interval]) * $__range_s'
    )
    values = {"agent": "fake1", "agent_class": "A|B", "__rate_interval": "1m", "__range_s": "60"}
    assert substitute(expr, values) == (
        'rate(x{a=~"fake1", b=~"A|B", c="fake1", d=~"A|B", e="fake1"}[1m]) * 60'
    )
    assert substitute('label_replace(x, "y", "$1", "z", "(.*)")', {}) == (
        'label_replace(x, "y", "$1", "z", "(.*)")'
    )
    with pytest.raises(KeyError, match="agent"):
        substitute('x{a=~"$agent"}', {"agent_class": ".*"})


def test_dashboard_queries():
    queries = dashboard_queries()
    targets = sum(
        len(panel.get("targets", []))
        for dashboard in dashboards().values()
        for panel in panels(dashboard)
    )
    assert len(panel_queries()) == targets
    assert ("ocs-overview", "variable agent_class", "ocs_agent_up") in queries
    assert ("ocs-agent", "variable agent", 'ocs_agent_up{agent_class=~"$agent_class"}') in queries
    assert ("ocs-exporter", "variable instance", 'up{job="ocs-exporter"}') in queries
    assert not [q for q in queries if q[1] == "variable datasource"]
    for _, _, expr in queries:
        assert "$" not in substitute(expr, ALL_VARIABLES)
