"""Agents for live tests of operation sessions, on a test bed and stopped with it: a real
OCS agent whose tasks crash or are called badly (testbed.crashy), a FakeDataAgent whose
log shows every start and stop at once, an agent that never answers (testbed.mute), and a
real HostManager running FakeDataAgents as its children (testbed.hostmanager)."""

from __future__ import annotations

import re

import testbed
from testbed import crashy, feeder
from testbed.hostmanager import HostManager
from testbed.mute import MuteAgent
from tests.support.bed import Testbed

_ACTION = re.compile(r"\b(?:start|stop|abort) called for \S+")


def _start(bed: Testbed, entry: dict, **options: object) -> testbed.Agent:
    """The agent of site config ``entry``, listed in the bed's site file, with its output
    unbuffered: OCS prints ``start called for OP`` and ``stop called for OP`` as it acts."""
    bed.entries.append(entry)
    bed.write_site_file()
    instance_id = entry["instance-id"]
    agent = testbed.Agent(bed.site_file, instance_id, bed.workdir, **options)
    agent.env["PYTHONUNBUFFERED"] = "1"
    bed.agents[instance_id] = agent
    return agent.start()


def start_crashy(bed: Testbed, instance_id: str) -> testbed.Agent:
    """A CrashyAgent, run by ocs-agent-cli from its file."""
    return _start(bed, crashy.site_entry(instance_id), launcher=crashy.launcher())


def start_feeder(bed: Testbed, instance_id: str, *arguments: str) -> testbed.Agent:
    """A FeederAgent (testbed.feeder), run by ocs-agent-cli from its file; ``arguments``:
    ``--fresh-time S``, ``--rate HZ``, ``--startup``."""
    return _start(bed, feeder.site_entry(instance_id, *arguments), launcher=feeder.launcher())


def start_watched(bed: Testbed, instance_id: str, *arguments: str) -> testbed.Agent:
    """A FakeDataAgent whose log tells every operation started or stopped (see
    :func:`actions`)."""
    return _start(bed, testbed.fake_agent_entry(instance_id, *arguments))


def actions(agent: testbed.Agent) -> list[str]:
    """What the agent was asked to do to its operations, as OCS prints it, in order:
    ``start called for acq``, ``stop called for acq``, ``abort called for ...``."""
    return [found.group(0) for found in _ACTION.finditer(agent.log())]


def start_mute(bed: Testbed, instance_id: str, op_codes: dict[str, int]) -> MuteAgent:
    """An agent at ``<root>.<instance_id>`` that heartbeats ``op_codes`` and never
    answers a call to its ``.ops``."""
    address = f"{testbed.ADDRESS_ROOT}.{instance_id}"
    agent = MuteAgent(bed.router.url, testbed.REALM, address, op_codes, bed.workdir)
    bed.agents[instance_id] = agent  # stopped with the bed
    return agent.start(timeout=30)


def start_hostmanager(
    bed: Testbed,
    instance_id: str,
    children: dict[str, str],
    classes: dict[str, str] | None = None,
    timeout: float = 30,
) -> HostManager:
    """A HostManager on the bed's router, with a site file of its own listing it and
    ``children`` ({instance_id: "up" | "down"}, FakeDataAgents it starts up or down, or of
    the agent class ``classes`` gives); returned once its ``manager`` process runs. Stopped
    with the bed at the latest; its :meth:`~testbed.hostmanager.HostManager.stop` also
    ends its children."""
    workdir = bed.workdir / f"hm-{instance_id}"
    manager = HostManager(bed.router.port, instance_id, children, workdir, classes)
    bed.agents[instance_id] = manager  # stopped with the bed, if nothing stops it before
    try:
        return manager.start(timeout=timeout)
    except BaseException:
        manager.stop()
        raise


def manager_data(bed: Testbed, instance_id: str) -> dict:
    """The ``session.data`` of HostManager ``instance_id``'s ``manager`` process, asked
    with OCS's own client."""
    return bed.client(instance_id).manager.status().session["data"]


def child_states(bed: Testbed, instance_id: str) -> dict[str, dict]:
    """{child instance_id: its child_states entry} of HostManager ``instance_id``."""
    return {c["instance_id"]: c for c in manager_data(bed, instance_id)["child_states"]}
