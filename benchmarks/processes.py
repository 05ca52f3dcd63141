"""The processes of one benchmark step: three subjects and the load generators.

Each is a child in its own session (so ``testbed.stop_process`` can stop its whole group),
with its output in a log file in the work directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import testbed
from benchmarks import procstat, scrape, shm

REGISTRY_ID = "registry"
ROOT = Path(__file__).resolve().parent.parent  # the repository: `benchmarks` is not installed
# The exporter's runtime dependencies only (`make bench-env`), as deployed: the test
# environment's ocs brings numpy, which autobahn loads when it finds it (~12 MB of RSS).
RUNTIME_PYTHON = ROOT / ".venv-runtime" / "bin" / "python"


def add_exporter_python(parser: argparse.ArgumentParser) -> None:
    default = str(RUNTIME_PYTHON) if RUNTIME_PYTHON.exists() else sys.executable
    parser.add_argument(
        "--exporter-python",
        default=default,
        help="the interpreter the exporter runs with (default: .venv-runtime's, as deployed, "
        "if `make bench-env` made it; else this one)",
    )


def spawn(
    command: Sequence[str],
    log_path: Path,
    cwd: Path,
    first_path: Path | None = None,
    niceness: int = 0,
) -> subprocess.Popen:
    """Start ``command`` in its own session; ``first_path`` goes first on PYTHONPATH;
    ``niceness`` > 0 runs it (all its threads) at that lower scheduling priority."""
    paths = [str(first_path)] if first_path else []
    paths += [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    prefix = ["nice", "-n", str(niceness)] if niceness else []  # nice execs: same pid
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*prefix, *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(cwd),
            env=env,
        )
    if niceness:
        set_autogroup_nice(proc.pid, niceness)
    return proc


def set_autogroup_nice(pid: int, niceness: int) -> bool:
    """Lower the priority of ``pid``'s scheduler autogroup (Linux). With autogroups on
    (``kernel.sched_autogroup_enabled``), every session is one group sharing the CPU
    fairly with the other groups, whatever the nice value of its processes: a new session
    at nice 19 still takes a whole core from the router's session. Popen returns after the
    child's setsid and exec, so the group is the child's own. False where not supported."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
    except OSError:
        return False
    return True


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


class BenchRouter(testbed.Router):
    """The testbed's router, plus (``rawsocket=True``) a RawSocket listener on a second
    port for the load generators only; the subjects keep the WebSocket path."""

    @property
    def load_url(self) -> str:
        """Where the load generators connect."""
        if self.rawsocket_port is None:
            return self.url
        return f"rs://127.0.0.1:{self.rawsocket_port}"


class Child:
    """A started child process, with a log."""

    def __init__(self, name: str, proc: subprocess.Popen, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def cpu_seconds(self) -> float | None:
        return procstat.cpu_seconds(self.pid)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(
                f"{self.name} exited with {self.exit_code()}; log {self.log_path}:\n"
                + self.log_tail()
            )

    def stop(self) -> None:
        testbed.stop_process(self.proc)


class Subscriber(Child):
    """A subject that counts into a shared block: the bare subscriber or the registry."""

    def __init__(
        self, name: str, proc: subprocess.Popen, log_path: Path, block: shm.SharedBlock
    ) -> None:
        super().__init__(name, proc, log_path)
        self.block = block

    @property
    def received(self) -> int:
        return self.block.ints[shm.RECEIVED]

    @property
    def joins(self) -> int:
        return self.block.ints[shm.JOINS]

    @property
    def losses(self) -> int:
        return self.block.ints[shm.LOSSES]

    def ready(self) -> bool:
        self.check_alive()
        return self.joins >= 1

    def serializer(self) -> str:
        path = self.block.path.with_suffix(".serializer")
        return path.read_text() if path.exists() else "?"


class Exporter(Child):
    """``python -m exporter`` on a free port."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, port: int) -> None:
        super().__init__("exporter", proc, log_path)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.url + "/metrics"

    def ready(self) -> bool:
        self.check_alive()
        return scrape.ready(self.url)

    def lost_router(self) -> int:
        """Times the exporter logged losing its router (its own log line)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return text.count("lost router")


def start_exporter(
    site_file: Path,
    workdir: Path,
    serializer: str,
    agent_timeout: float,
    snapshot: Path | None = None,
    python: str = sys.executable,
) -> Exporter:
    """The exporter from ``snapshot`` (see :func:`snapshot_exporter`), else as installed,
    run by ``python``."""
    port = testbed.free_port()
    log_path = workdir / "exporter.log"
    command = testbed.exporter_command(
        site_file, port, "--agent-timeout", str(agent_timeout), "--wamp.serializers", serializer
    )
    command[0] = python
    return Exporter(spawn(command, log_path, workdir, snapshot), log_path, port)


def start_registry(site_file: Path, workdir: Path, niceness: int = 0) -> Subscriber:
    block_path = workdir / "registry.counts"
    block = shm.SharedBlock.subscriber(block_path)
    command = [
        sys.executable,
        "-m",
        "benchmarks.registry_launcher",
        "--block",
        str(block_path),
        "--",
        "--site-file",
        str(site_file),
        "--site-host",
        testbed.SITE_HOST,
        "--instance-id",
        REGISTRY_ID,
    ]
    log_path = workdir / "registry.log"
    proc = spawn(command, log_path, workdir, niceness=niceness)
    return Subscriber("registry", proc, log_path, block)


def start_bare(router_url: str, workdir: Path, serializer: str) -> Subscriber:
    block_path = workdir / "bare.counts"
    block = shm.SharedBlock.subscriber(block_path)
    command = [
        sys.executable,
        "-m",
        "benchmarks.bare_subscriber",
        "--url",
        router_url,
        "--realm",
        testbed.REALM,
        "--topic",
        f"{testbed.ADDRESS_ROOT}..feeds.heartbeat",
        "--serializer",
        serializer,
        "--block",
        str(block_path),
    ]
    log_path = workdir / "bare.log"
    return Subscriber("bare", spawn(command, log_path, workdir), log_path, block)


class Generator(Child):
    """One load generator process: a shard of the simulated agents."""

    def __init__(
        self,
        proc: subprocess.Popen,
        log_path: Path,
        block: shm.SharedBlock,
        indices: range,
    ) -> None:
        super().__init__(f"generator-{indices.start}", proc, log_path)
        self.block = block
        self.indices = indices

    def ready(self) -> bool:
        self.check_alive()
        return self.block.ints[shm.READY] == 1


class Load:
    """N simulated agents over ``ceil(N / per_generator)`` generator processes."""

    def __init__(self, generators: list[Generator], n_agents: int) -> None:
        self.generators = generators
        self.n_agents = n_agents

    def __iter__(self) -> Iterator[Generator]:
        return iter(self.generators)

    def ready(self) -> bool:
        return all(g.ready() for g in self.generators)

    def go(self, at: float) -> None:
        """Start the schedule: agent i's heartbeats are due at ``at + i / N + k``."""
        for g in self.generators:
            g.block.floats[shm.GO_TIME] = at

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

    def stop_agents(self, agents: Sequence[int]) -> None:
        """Stop the heartbeats of these agents (global indices); the rest go on."""
        for i in agents:
            g = self.generators[i % len(self.generators)]
            g.block.flags[g.indices.index(i)] = 1

    def last_sent(self, i: int) -> float:
        """Unix time agent ``i``'s last heartbeat was published (0 if never)."""
        g = self.generators[i % len(self.generators)]
        return g.block.floats[1 + g.indices.index(i)]

    def quit(self) -> None:
        for g in self.generators:
            g.block.ints[shm.QUIT] = 1

    def cpu_seconds(self) -> float:
        return sum(g.cpu_seconds() or 0.0 for g in self.generators)

    def stop(self) -> None:
        for g in self.generators:
            g.stop()


def start_load(
    router_url: str,
    workdir: Path,
    n_agents: int,
    n_ops: int,
    serializer: str,
    per_generator: int,
    change_every: int,
    period: float = 1.0,
) -> Load:
    shards = max(1, -(-n_agents // per_generator))
    generators = []
    for shard in range(shards):
        indices = range(shard, n_agents, shards)
        block_path = workdir / f"generator-{shard}.counts"
        block = shm.SharedBlock.generator(block_path, len(indices))
        command = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--url",
            router_url,
            "--realm",
            testbed.REALM,
            "--address-root",
            testbed.ADDRESS_ROOT,
            "--serializer",
            serializer,
            "--agents",
            str(n_agents),
            "--shard",
            str(shard),
            "--shards",
            str(shards),
            "--ops",
            str(n_ops),
            "--change-every",
            str(change_every),
            "--period",
            str(period),
            "--block",
            str(block_path),
        ]
        log_path = workdir / f"generator-{shard}.log"
        proc = spawn(command, log_path, workdir)
        generators.append(Generator(proc, log_path, block, indices))
    return Load(generators, n_agents)
