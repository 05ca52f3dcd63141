"""The one way the tests, the benchmarks and the demo run a child process.

A :class:`Process` starts its command in a process group of its own, with its output in a
log file, waits until its subclass says it is ready, and stops the whole group: SIGTERM,
then SIGKILL after a timeout. What is still running when the interpreter exits is stopped
too, so a crashed harness leaves nothing behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent  # the repository: testbed is not installed

P = TypeVar("P", bound="Process")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError after ``timeout``.

    An exception from ``predicate`` counts as "not yet", except :class:`ProcessExited`,
    which no amount of waiting cures."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except ProcessExited:
            raise
        except Exception as exc:
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(interval)


class ProcessExited(RuntimeError):
    """A child exited while it was expected to run."""


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


_running: set[Process] = set()


class Process:
    """A child process in its own process group, its output appended to ``log_path``.

    Subclasses give :meth:`command` and, if there is something to wait for, :meth:`_ready`;
    :meth:`_prepare` writes what the command reads (config files) before each start.
    ``python_path`` goes first on the child's PYTHONPATH (pass ``[ROOT]`` for
    ``python -m benchmarks.X``, which is not installed). ``niceness`` > 0 runs the child
    (and its scheduler autogroup) at that lower priority.
    """

    name = "process"

    def __init__(
        self,
        workdir: Path,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        python_path: Sequence[Path] = (),
        niceness: int = 0,
    ) -> None:
        self.workdir = Path(workdir)
        self.log_path = Path(log_path) if log_path else self.workdir / f"{self.name}.log"
        self.env = dict(env or {})
        self.python_path = list(python_path)
        self.niceness = niceness
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write what the command reads; called before every start."""

    def _ready(self) -> bool:
        """The condition :meth:`start` waits for (the child is known to be running)."""
        return True

    # -- start ----------------------------------------------------------------------------

    def start(self: P, wait: bool = True, timeout: float = 60.0) -> P:
        """Start the child; with ``wait``, return once it is ready (raise if it exits)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        env = {**os.environ, **self.env}
        if self.python_path:
            paths = [*map(str, self.python_path), *filter(None, [env.get("PYTHONPATH")])]
            env["PYTHONPATH"] = os.pathsep.join(paths)
        prefix = ["nice", "-n", str(self.niceness)] if self.niceness else []  # nice execs
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*prefix, *self.command()],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(self.workdir),
                env=env,
            )
        _running.add(self)
        if self.niceness:
            set_autogroup_nice(self.proc.pid, self.niceness)
        if wait:
            self.wait_ready(timeout)
        return self

    def ready(self) -> bool:
        """True once ready; raises :class:`ProcessExited` if the child has exited."""
        self.check_alive()
        return self._ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for(self.ready, timeout, f"{self.name} to be ready")

    def restart(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop, then start the same command again (same ports, same log)."""
        self.stop()
        self.start(wait, timeout)

    # -- state ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def check_alive(self) -> None:
        if not self.alive():
            raise ProcessExited(
                f"{self.name} exited with {self.exit_code()}; log {self.log_path}:\n"
                + self.log()[-2000:]
            )

    def log(self) -> str:
        """Everything the child wrote so far ("" before it wrote anything)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None, f"{self.name} was never started"
        self.proc.send_signal(signum)

    # -- stop -----------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it if it has not exited after ``timeout``."""
        stop_processes([self], timeout)


def _popen(child: Process | subprocess.Popen) -> subprocess.Popen | None:
    return child.proc if isinstance(child, Process) else child


def stop_processes(
    children: Iterable[Process | subprocess.Popen | None], timeout: float = 10.0
) -> None:
    """SIGTERM every process group at once; SIGKILL those still running after ``timeout``.
    Takes :class:`Process` objects or the ``Popen`` of one; ``None`` is skipped."""
    children = [child for child in children if child is not None]
    for child in children:
        if isinstance(child, Process):
            _running.discard(child)
    running = [p for p in map(_popen, children) if p is not None and p.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def stop_process(child: Process | subprocess.Popen, timeout: float = 10.0) -> None:
    """:func:`stop_processes` for one child."""
    stop_processes([child], timeout)


@atexit.register
def _stop_leftovers() -> None:
    """Whatever a crashed harness or an interrupted test session left running."""
    stop_processes(list(_running))
