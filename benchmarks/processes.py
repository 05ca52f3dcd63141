"""The processes of a benchmark: the subjects (the exporter, the RegistryAgent, the bare
subscriber) and the load generators, all :class:`testbed.Process` children, with the
counters they share with the harness (:mod:`benchmarks.shm`)."""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import testbed
from benchmarks import procstat, shm
from testbed import ROOT

REGISTRY_ID = "registry"
# The exporter's runtime dependencies only (`make bench-env`), as deployed: the test
# environment's ocs brings numpy, which autobahn loads when it finds it (megabytes of RSS).
RUNTIME_PYTHON = ROOT / ".venv-runtime" / "bin" / "python"


def add_exporter_python(parser: argparse.ArgumentParser) -> None:
    default = str(RUNTIME_PYTHON) if RUNTIME_PYTHON.exists() else sys.executable
    parser.add_argument(
        "--exporter-python",
        default=default,
        help="the interpreter the exporter runs with (default: .venv-runtime's, as deployed, "
        "if `make bench-env` made it; else this one)",
    )


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def snapshot_exporter(dest: Path) -> dict[str, Any]:
    """Copy ``exporter/`` to ``dest`` so that every N of a run measures the same code (the
    working tree may change meanwhile); what was copied, to tell runs apart."""
    target = dest / "exporter"
    shutil.copytree(ROOT / "exporter", target, ignore=shutil.ignore_patterns("__pycache__"))
    digest = hashlib.sha256()
    for path in sorted(target.rglob("*.py")):
        digest.update(path.relative_to(target).as_posix().encode() + b"\0" + path.read_bytes())
    changed = _git("status", "--porcelain", "--", "exporter")
    return {
        "path": str(dest),
        "sha256": digest.hexdigest(),
        "git_head": _git("rev-parse", "HEAD"),
        "uncommitted_changes": changed.splitlines() if changed else [],
    }


def registry_entry() -> dict:
    """The SCF entry of the RegistryAgent (``--wait-time`` left at OCS's default, 30 s)."""
    return {"agent-class": "RegistryAgent", "instance-id": REGISTRY_ID, "arguments": []}


def deployed_env() -> dict[str, str]:
    """The allocator settings the Docker image gives the exporter (its ``ENV MALLOC_*``), so
    that the exporter measured here runs as deployed."""
    env = {}
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        words = line.split()
        if words[:1] == ["ENV"]:
            pairs = (word.partition("=") for word in words[1:])
            env.update((name, value) for name, _, value in pairs if name.startswith("MALLOC_"))
    return env


def exporter(
    site_file: Path,
    workdir: Path,
    serializer: str,
    agent_timeout: float,
    snapshot: Path | None = None,
    python: str = sys.executable,
) -> testbed.Exporter:
    """The exporter subject (not started): from ``snapshot`` (see :func:`snapshot_exporter`),
    else as installed, run by ``python``."""
    flags = ("--agent-timeout", str(agent_timeout), "--wamp.serializers", serializer)
    return testbed.Exporter(
        site_file,
        workdir,
        *flags,
        python=python,
        source=snapshot,
        log_path=workdir / "exporter.log",
        env=deployed_env(),
    )


class Counted:
    """A subject that counts into a shared block (:mod:`benchmarks.shm`): ready once it
    has joined and subscribed."""

    block: shm.SharedBlock

    @property
    def received(self) -> int:
        return self.block.ints[shm.RECEIVED]

    @property
    def joins(self) -> int:
        return self.block.ints[shm.JOINS]

    @property
    def losses(self) -> int:
        return self.block.ints[shm.LOSSES]

    def _ready(self) -> bool:
        return self.joins >= 1

    def serializer(self) -> str:
        path = self.block.path.with_suffix(".serializer")
        return path.read_text() if path.exists() else "?"


class Registry(Counted, testbed.Agent):
    """OCS's RegistryAgent, through ``benchmarks.registry_launcher``, which counts."""

    def __init__(self, site_file: Path, workdir: Path, niceness: int = 0) -> None:
        block_path = workdir / "registry.counts"
        self.block = shm.SharedBlock.subscriber(block_path)
        launcher = [sys.executable, "-m", "benchmarks.registry_launcher"]
        super().__init__(
            site_file,
            REGISTRY_ID,
            workdir,
            launcher=[*launcher, "--block", str(block_path), "--"],
            log_path=workdir / "registry.log",
            python_path=[ROOT],
            niceness=niceness,
        )


class Bare(Counted, testbed.Process):
    """The bare autobahn subscriber: the floor for any Python WAMP client."""

    name = "bare"

    def __init__(self, router_url: str, workdir: Path, serializer: str) -> None:
        super().__init__(workdir, python_path=[ROOT])
        self.block = shm.SharedBlock.subscriber(workdir / "bare.counts")
        self.router_url = router_url
        self.serializer_name = serializer

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "benchmarks.bare_subscriber"),
            *("--url", self.router_url, "--realm", testbed.REALM),
            *("--topic", f"{testbed.ADDRESS_ROOT}..feeds.heartbeat"),
            *("--serializer", self.serializer_name, "--block", str(self.block.path)),
        ]


class Generator(testbed.Process):
    """One load generator process (``benchmarks.loadgen``): the agents ``range(shard,
    n_agents, shards)`` of N; its counters in ``workdir/<name>.counts``."""

    def __init__(
        self,
        router_url: str,
        workdir: Path,
        n_agents: int,
        shard: int,
        shards: int,
        n_ops: int,
        serializer: str,
        change_every: int,
        period: float = 1.0,
        name: str | None = None,
    ) -> None:
        self.name = name or f"generator-{shard}"
        super().__init__(workdir, python_path=[ROOT])
        self.indices = range(shard, n_agents, shards)
        self.block = shm.SharedBlock.generator(
            self.workdir / f"{self.name}.counts", len(self.indices)
        )
        self.arguments = [
            *("--url", router_url, "--realm", testbed.REALM),
            *("--address-root", testbed.ADDRESS_ROOT, "--serializer", serializer),
            *("--agents", str(n_agents), "--shard", str(shard), "--shards", str(shards)),
            *("--ops", str(n_ops), "--change-every", str(change_every)),
            *("--period", str(period), "--block", str(self.block.path)),
        ]

    def command(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.loadgen", *self.arguments]

    def _ready(self) -> bool:
        return self.block.ints[shm.READY] == 1

    def go(self, at: float) -> None:
        """Start the schedule: agent i's heartbeats are due at ``at + i / N + k``."""
        self.block.floats[shm.GO_TIME] = at

    def pause(self, agent: int, paused: bool = True) -> None:
        """Stop (or resume) the heartbeats of ``agent`` (an index of N)."""
        self.block.flags[self.indices.index(agent)] = int(paused)

    def last_sent(self, agent: int) -> float:
        """Unix time ``agent``'s last heartbeat was published (0 if never)."""
        return self.block.floats[1 + self.indices.index(agent)]


class Load:
    """N simulated agents over ``ceil(N / per_generator)`` generator processes."""

    def __init__(
        self,
        router_url: str,
        workdir: Path,
        n_agents: int,
        n_ops: int,
        serializer: str,
        per_generator: int,
        change_every: int,
        period: float = 1.0,
    ) -> None:
        shards = max(1, -(-n_agents // per_generator))
        self.generators = [
            Generator(
                router_url,
                workdir,
                n_agents,
                shard,
                shards,
                n_ops,
                serializer,
                change_every,
                period,
            )
            for shard in range(shards)
        ]
        self.n_agents = n_agents

    def __iter__(self) -> Iterator[Generator]:
        return iter(self.generators)

    def start(self) -> Load:
        """Start every generator; wait for none (see :func:`testbed.wait_for`)."""
        for g in self.generators:
            g.start(wait=False)
        return self

    def ready(self) -> bool:
        return all(g.ready() for g in self.generators)

    def go(self, at: float) -> None:
        for g in self.generators:
            g.go(at)

    def total(self, slot: int) -> int:
        return sum(g.block.ints[slot] for g in self.generators)

    @property
    def sent(self) -> int:
        return self.total(shm.SENT)

    def max_lag(self) -> float:
        return max((g.block.ints[shm.MAX_LAG_US] for g in self.generators), default=0) / 1e6

    def reset_max_lag(self) -> None:
        for g in self.generators:
            g.block.ints[shm.MAX_LAG_US] = 0

    def generator(self, agent: int) -> Generator:
        """The generator that simulates ``agent`` (an index of N)."""
        return self.generators[agent % len(self.generators)]

    def pause(self, agents: Sequence[int], paused: bool = True) -> None:
        """Stop (or resume) the heartbeats of these agents; the rest go on."""
        for i in agents:
            self.generator(i).pause(i, paused)

    def last_sent(self, agent: int) -> float:
        return self.generator(agent).last_sent(agent)

    def quit(self) -> None:
        for g in self.generators:
            g.block.ints[shm.QUIT] = 1

    def cpu_seconds(self) -> float:
        return sum(procstat.cpu_seconds(g.pid) or 0.0 for g in self.generators)

    def stop(self) -> None:
        testbed.stop_processes(self.generators)
