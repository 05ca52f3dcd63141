"""The registry drop-in as OCS clients read it, and agents taken off the shared router."""

from __future__ import annotations

import testbed

# What /api/agents adds to each entry of the RegistryAgent's data: operations and their
# sessions, feeds, and who expects the agent to run (HostManager or site config).
API_ONLY_KEYS = ("operations", "feeds", "expected", "expected_by", "hostname", "managers")
API_ONLY_KEYS += ("hostmanager",)


def api_only(entry: dict) -> dict:
    """Takes /api/agents' own keys out of ``entry`` (all must be there); returns them."""
    return {key: entry.pop(key) for key in API_ONLY_KEYS}


def address(instance_id: str) -> str:
    return f"{testbed.ADDRESS_ROOT}.{instance_id}"


def data_of(bed, instance_id: str) -> dict:
    """What socs' MultiSlotController reads: ``main.status().session['data']``."""
    return bed.client(instance_id).main.status().session["data"]


def leave(bed, procs: list, *instance_ids: str) -> None:
    """Stop these processes and agents, and take the agents out of the site file."""
    testbed.stop_processes(procs + [bed.agents[i] for i in instance_ids if i in bed.agents])
    bed.entries[:] = [e for e in bed.entries if e["instance-id"] not in instance_ids]
    bed.write_site_file()
