"""The provisioned OCS dashboards as code, built with Grafana's foundation SDK.

`models(job)` gives each dashboard's JSON model by file name; `grafana/generate.py` writes
them into `provisioning/dashboards/ocs/`.
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import agent, exporter, overview
from .common import DEFAULT_JOB

BUILDERS = {
    "ocs-overview.json": overview.build,
    "ocs-agent.json": agent.build,
    "ocs-exporter.json": exporter.build,
}


def model(builder: object) -> dict:
    """The JSON model of a built dashboard, ready for file provisioning."""
    data = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # The SDK leaves an unset id out; a provisioned file says `id: null` so Grafana never
    # mistakes it for a dashboard of its own database. Its `schemaVersion` (36) stays: Grafana
    # migrates from there on load, and options its models lack (the tables' default cell
    # options, the stat panels' wideLayout) keep Grafana's defaults.
    data["id"] = None
    return data


def models(job: str = DEFAULT_JOB) -> dict[str, dict]:
    """Every dashboard's JSON model by file name, `job` the default of its `job` variable."""
    return {name: model(build(job)) for name, build in BUILDERS.items()}


def render(data: dict) -> str:
    """Stable JSON text: keys sorted, two-space indents, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
