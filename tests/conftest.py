"""Fixtures that start real processes: a crossbar router, OCS agents, the exporter; and the
one way integration tests are marked: by living in tests/integration/.

Every process is started on free loopback ports and stopped at teardown, pass or fail.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bed import OUTPUT, Testbed
from tests.support.webconfig import Pki

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what lives in tests/integration/; refuse marks by hand and test modules that
    import other test modules (shared helpers belong in tests/support/)."""
    for path in {Path(item.path) for item in items}:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.startswith(("tests.unit", "tests.integration")):
                    raise pytest.UsageError(f"{path}:{node.lineno} imports test module {name}")
    for item in items:
        if item.get_closest_marker("integration"):
            raise pytest.UsageError(f"{item.nodeid}: marked integration by hand, not by folder")
        if INTEGRATION in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what tests recorded with ``record_property("summary", text)`` (a measured alert
    delay beside its bound), pass or fail: pytest prints no test's output when it passes."""
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "summary"
    ]
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def bed(tmp_path_factory):
    """One router for the whole session, shared by every test that allows it."""
    with Testbed(tmp_path_factory.mktemp("shared")) as shared:
        yield shared


@pytest.fixture
def own_bed(tmp_path_factory):
    """A router of the test's own, for tests that stop or restart it."""
    with Testbed(tmp_path_factory.mktemp("own")) as own:
        yield own


@pytest.fixture
def run_exporter():
    """Run the exporter's command line to completion: (returncode, stdout, stderr)."""

    def run(*args: str, env: dict | None = None, timeout: float = 30):
        result = subprocess.run(
            [sys.executable, "-m", "exporter", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode, result.stdout, result.stderr

    return run


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))
