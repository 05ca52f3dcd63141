"""A real HostManager (the ``ocs`` package's) and the FakeDataAgents it runs as its children.

The HostManager has a site file of its own, on the same router as the rest of the bed: one
host block listing the HostManager and its children (their ``manage`` field says which
start up and which down). It launches each child as ``python -m ocs.agent_cli
--site-file F --site-host H --working-dir D``, so the children find the same file, host
and router with nothing passed through the environment. The HostManager's
``reactor.spawnProcess`` keeps them in its process group, which :meth:`stop` signals as a
whole; any child still alive after that (one that left the group) is killed by its pid,
taken before: the HostManager's children, and whatever was started with its site file.
Each child logs to ``<workdir>/logs/<agent address>.log`` (the host's ``log-dir``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import yaml

from testbed.agents import Agent, site_config
from testbed.process import stop_processes, wait_for

HOST = "hm-testbed"  # the host block of the HostManager's own site file
MANAGE = {"up": "host/up", "down": "host/down"}


def child_entry(instance_id: str, target: str = "up", agent_class: str = "FakeDataAgent") -> dict:
    """The site config entry of a child the HostManager runs (``target`` up or down: what
    it starts with). An ``agent_class`` no OCS plugin provides is listed and never runs."""
    return {
        "agent-class": agent_class,
        "instance-id": instance_id,
        "manage": MANAGE[target],
        "arguments": [],
    }


def manager_entry(instance_id: str) -> dict:
    """The HostManager's own entry (it never manages itself)."""
    return {"agent-class": "HostManager", "instance-id": instance_id, "arguments": []}


class HostManager(Agent):
    """A HostManager ``instance_id`` run by ``ocs-agent-cli`` from its own site file in
    ``workdir``, with ``children`` ({instance_id: "up" | "down"}) as FakeDataAgents, or of
    the class ``classes`` gives."""

    def __init__(
        self,
        router_port: int,
        instance_id: str,
        children: Mapping[str, str],
        workdir: Path,
        classes: Mapping[str, str] | None = None,
    ) -> None:
        workdir = Path(workdir)
        self.router_port = router_port
        self.children = dict(children)
        self.classes = dict(classes or {})
        self.log_dir = workdir / "logs"
        super().__init__(workdir / "site.yaml", instance_id, workdir, host=HOST)
        self.env["PYTHONUNBUFFERED"] = "1"

    def site_config(self) -> dict:
        entries = [manager_entry(self.instance_id)]
        entries += [
            child_entry(iid, target, self.classes.get(iid, "FakeDataAgent"))
            for iid, target in self.children.items()
        ]
        config = site_config(self.router_port, entries, host=HOST)
        config["hosts"][HOST]["log-dir"] = str(self.log_dir)
        return config

    def write_site_file(self, text: str | None = None) -> None:
        """Write the site file (``text`` as it is, if given: a broken one, say)."""
        self.site_file.write_text(
            text if text is not None else yaml.safe_dump(self.site_config(), sort_keys=False)
        )

    def _prepare(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.write_site_file()

    def _ready(self) -> bool:
        # OCS logs this once the agent has joined the router and started `manager`.
        return "startup-op: launching manager" in self.log()

    def child_log(self, instance_id: str, address_root: str = "observatory") -> str:
        """What child ``instance_id`` logged so far ("" before it started)."""
        path = self.log_dir / f"{address_root}.{instance_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def child_pids(self) -> dict[int, str]:
        """{pid: command line} of the live children: the processes the HostManager started
        (while it runs), and any process started with its site file, in its group or not.
        A child's command line becomes ``ocs-agent:<instance_id>`` once ocs-agent-cli
        renames it."""
        manager = self.proc.pid if self.alive() else None
        needle = str(self.site_file)
        return {
            pid: info.cmdline
            for pid, info in _processes().items()
            if info.state != "Z"  # a zombie is dead, only unreaped
            and pid != manager
            and (info.ppid == manager or needle in info.cmdline)
        }

    def running(self, instance_id: str) -> list[int]:
        """The pids of child ``instance_id``'s processes."""
        return [
            pid
            for pid, cmdline in self.child_pids().items()
            if cmdline.strip() == f"ocs-agent:{instance_id}"
            or f"--instance-id {instance_id} " in cmdline + " "
        ]

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the HostManager's process group (itself and its children), then kill any
        child still alive outside it. The timeout is short: on SIGTERM the HostManager
        takes about 6 s to stop its manager session and reactor, and its children have
        been signalled with it."""
        children = {pid: _processes().get(pid) for pid in self.child_pids()}
        stop_processes([self], timeout)

        def left() -> list[int]:
            now = _processes()
            found = [
                pid
                for pid, info in children.items()
                if info and pid in now and now[pid].started == info.started
            ]
            return [pid for pid in {*found, *self.child_pids()} if now[pid].state != "Z"]

        for pid in left():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not left(), 10, f"{self.name}'s children to exit")


class _Info(NamedTuple):
    ppid: int
    state: str
    started: int  # clock ticks after boot: tells a reused pid from the one seen before
    cmdline: str


def _processes() -> dict[int, _Info]:
    """Every process of the machine this user may read, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        text = cmdline.replace(b"\0", b" ").decode(errors="replace")
        found[int(entry.name)] = _Info(int(fields[1]), fields[0], int(fields[19]), text)
    return found
