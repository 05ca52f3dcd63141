"""A real OCS agent whose tasks end badly, for live tests of how runs end; not shipped.

``crash`` raises, so OCS ends its session with a message starting ``CRASH:``; ``bad_param``
reads a missing parameter through ``ocs.ocs_agent.ParamHandler``, whose ParamError OCS
ends the session with as ``ERROR: ...``. (The ``@ocs_agent.param`` decorator would refuse
the start instead, before any session exists.) Both fail with OpCode FAILED (6), like a
task returning False.

``ocs-agent-cli`` runs it as a file outside any OCS plugin: :func:`launcher` is its
command, and the site config file lists the instance with :func:`site_entry`. The module
imports nothing of this repository, since ocs-agent-cli imports it by its file name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import txaio
from ocs import ocs_agent, site_config

AGENT_CLASS = "CrashyAgent"


def site_entry(instance_id: str) -> dict:
    """The site config entry of a CrashyAgent."""
    return {"agent-class": AGENT_CLASS, "instance-id": instance_id, "arguments": []}


def launcher() -> list[str]:
    """``ocs-agent-cli`` running this file's :func:`main` (the site arguments follow)."""
    cli = str(Path(sys.executable).with_name("ocs-agent-cli"))
    return [cli, "--agent", str(Path(__file__).resolve()), "--entrypoint", "main"]


class CrashyAgent:
    """Two tasks that fail the two ways only OCS itself words."""

    def crash(self, session: object, params: dict | None) -> tuple[bool, str]:
        raise RuntimeError("crashy: this task raises on purpose")

    def bad_param(self, session: object, params: dict | None) -> tuple[bool, str]:
        count = ocs_agent.ParamHandler(params).get("count", type=int)  # required
        return True, f"counted to {count}"


def main(args: list[str] | None = None) -> None:
    txaio.use_twisted()
    txaio.start_logging(level="info")
    parsed = site_config.parse_args(agent_class=AGENT_CLASS, args=args)
    agent, runner = ocs_agent.init_site_agent(parsed)
    crashy = CrashyAgent()
    agent.register_task("crash", crashy.crash)
    agent.register_task("bad_param", crashy.bad_param)
    runner.run(agent, auto_reconnect=True)


if __name__ == "__main__":
    main()
