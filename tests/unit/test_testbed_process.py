"""testbed.Process: children in their own group, waited for, and always stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import testbed


class Shell(testbed.Process):
    """``sh -c SCRIPT``, ready once it creates ``ready_file`` (removed before each start)."""

    name = "shell"

    def __init__(self, workdir, script: str) -> None:
        super().__init__(workdir)
        self.script = script
        self.ready_file = self.workdir / "ready"

    def command(self) -> list[str]:
        return ["sh", "-c", self.script]

    def _prepare(self) -> None:
        self.ready_file.unlink(missing_ok=True)

    def _ready(self) -> bool:
        return self.ready_file.exists()


def gone(pid: int) -> bool:
    """No such process, or only its exit status left (a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_start_waits_for_ready_and_stop_ends_the_whole_group(tmp_path):
    # A grandchild in the background: stopping the child alone would leave it running.
    shell = Shell(tmp_path, "sleep 60 & echo $! > grandchild; sleep 0.3; touch ready; wait")
    started = time.monotonic()
    shell.start(timeout=10)
    assert shell.ready_file.exists() and time.monotonic() - started >= 0.3
    grandchild = int((tmp_path / "grandchild").read_text())
    assert not gone(grandchild)
    shell.stop()
    assert not shell.alive()
    testbed.wait_for(lambda: gone(grandchild), 5, "the grandchild to be reaped")


def test_a_child_deaf_to_sigterm_is_killed_after_the_timeout(tmp_path):
    shell = Shell(tmp_path, "trap '' TERM; touch ready; while :; do sleep 0.1; done")
    shell.start(timeout=10)
    started = time.monotonic()
    shell.stop(timeout=0.5)
    assert not shell.alive() and shell.exit_code() == -9
    assert time.monotonic() - started < 5


def test_a_child_that_exits_fails_the_wait_at_once_with_its_log(tmp_path):
    shell = Shell(tmp_path, "echo config is broken; exit 3")
    started = time.monotonic()
    with pytest.raises(testbed.ProcessExited, match=r"exited with 3(.|\n)*config is broken"):
        shell.start(timeout=30)
    assert time.monotonic() - started < 10


def test_restart_runs_the_same_command_and_appends_to_the_log(tmp_path):
    shell = Shell(tmp_path, "echo started; touch ready; sleep 60")
    shell.start(timeout=10)
    first = shell.pid
    shell.restart(timeout=10)
    assert shell.pid != first and gone(first)
    assert shell.log().count("started") == 2
    shell.stop()


def test_what_is_left_running_is_stopped_when_the_interpreter_exits(tmp_path):
    script = (
        "import sys, testbed\n"
        "from testbed.process import Process\n"
        "class Sleep(Process):\n"
        "    def command(self): return ['sleep', '60']\n"
        f"print(Sleep({str(tmp_path)!r}).start().pid, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "PYTHONPATH": str(testbed.ROOT)},
    )
    testbed.wait_for(lambda: gone(int(done.stdout)), 5, "the leftover child to be stopped")
