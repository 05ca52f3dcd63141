"""The Dockerfile, the compose stack and the Python package, checked without a Docker engine."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from exporter.flags import DEFAULT_PORT
from testbed.image import healthcheck_command, instructions

ROOT = Path(__file__).resolve().parents[2]


def test_base_image_is_a_pinned_slim_python():
    (base,) = instructions("FROM")
    image, _, tag = base.partition(":")
    assert image == "python"
    version = tag.split("-")[0]
    assert version.count(".") == 2, "pin the patch release"
    assert "slim" in tag


def test_runs_as_uid_9000_with_ocs_config_dir():
    assert instructions("USER")[-1].split(":")[0] == "9000"
    assert any("OCS_CONFIG_DIR=/config" in env for env in instructions("ENV"))


def test_exposes_the_default_port():
    assert instructions("EXPOSE") == [str(DEFAULT_PORT)]


def test_exec_form_entrypoint_and_python_healthcheck():
    (entrypoint,) = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["ocs-exporter"]
    assert healthcheck_command() == ["python", "-m", "exporter.http.healthcheck"]


def _dockerignored(path: str) -> bool:
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.strip().lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_copied_files_exist_and_are_not_dockerignored():
    for copy in instructions("COPY"):
        *sources, _dest = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not _dockerignored(source.rstrip("/")), source
    assert _dockerignored("tests/test_state.py") and _dockerignored(".venv")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid():
    client = shutil.which("docker-compose")
    assert client, "docker-compose (Debian) is installed by the test command"
    result = subprocess.run(
        [client, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_paths_exist_and_images_are_pinned():
    services = compose()["services"]
    for name, service in services.items():
        image = service.get("image", "")
        assert "build" in service or (":" in image and not image.endswith(":latest")), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
    assert services["ocs-exporter"]["build"] == "."
    assert {"crossbar", "prometheus", "alertmanager", "grafana"} <= services.keys()
    assert sum(s.get("image") == "ocs-exporter:local" for s in services.values()) == 2


@pytest.mark.parametrize("name", ["prometheus.yml", "global.yml"])
def test_compose_prometheus_configs_pass_promtool(name):
    result = subprocess.run(
        ["promtool", "check", "config", str(ROOT / "deploy" / "prometheus" / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_global_view_federates_the_site_prometheus():
    services = compose()["services"]
    assert services["prometheus-global"]["profiles"] == ["global"]
    site = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert site["global"]["external_labels"]["site"]
    federate = yaml.safe_load((ROOT / "deploy" / "prometheus" / "global.yml").read_text())
    (job,) = federate["scrape_configs"]
    assert job["metrics_path"] == "/federate" and job["honor_labels"] is True
    assert job["static_configs"][0]["targets"] == ["prometheus:9090"]


def test_compose_site_config_lists_the_compose_agents():
    site = yaml.safe_load((ROOT / "deploy" / "site" / "default.yaml").read_text())
    services = compose()["services"]
    hostnames = {s.get("hostname") for s in services.values()}
    for host, entry in site["hosts"].items():
        assert host in hostnames
        for instance in entry["agent-instances"]:
            assert any(
                s.get("environment", {}).get("INSTANCE_ID") == instance["instance-id"]
                for s in services.values()
            )


# What a fresh clone does not have: the wheel is built from a copy without them, so that
# a stale build/ directory (setuptools copies into it and never empties it) cannot hide or
# add a module.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "_build",
    ".*_cache",
    ".hypothesis",
    "test-output",
    ".demo",
)
# Test and demo code, and what only the test extra installs.
NOT_RUNTIME = {"ocs", "pytest", "_pytest", "hypothesis", "testbed", "tests", "benchmarks"}
# A path segment that leaves the package or names what only the repository has.
OUTSIDE = re.compile(r"(?:^|[/\\])(?:\.\.|grafana|\.venv[\w.-]*)(?:[/\\]|$)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel ``pip wheel`` builds from a copy of the tree as a fresh clone has it."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE, symlinks=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (path,) = tmp.glob("ocs_exporter-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def runtime_modules() -> set[str]:
    """Every module of the package in the source tree, as wheel paths."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "exporter").rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_the_wheel_holds_exactly_the_runtime_modules(wheel):
    names = set(wheel.namelist())
    dist_info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
    assert len({n.split("/")[0] for n in dist_info}) == 1, sorted(dist_info)
    assert sorted(names - dist_info) == sorted(runtime_modules())
    info = next(iter(dist_info)).split("/")[0]
    assert {"METADATA", "WHEEL", "RECORD", "entry_points.txt"} <= {
        n.removeprefix(info + "/") for n in dist_info
    }


def test_the_package_declares_its_entry_point_and_runtime_dependencies(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in wheel.read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    entry_points = wheel.read(meta.replace("METADATA", "entry_points.txt")).decode()
    assert {r.split(">")[0].split("[")[0] for r in requires} == {
        "prometheus-client",
        "autobahn",
        "twisted",
        "pyyaml",
        "pyopenssl",
        "cryptography",
        "bcrypt",
    }
    assert "ocs-exporter = exporter.cli:main" in entry_points


def _hops_up(node: ast.AST) -> int | None:
    """How many directories up from the module file ``node`` points, if it is a path built
    on ``__file__`` (``Path(__file__).parent`` is 1: the module's own folder)."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _hops_up(node.value)
        return None if inner is None else inner + 1
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
        inner = _hops_up(node.value.value) if node.value.attr == "parents" else None
        if inner is None:
            return None
        index = node.slice.value if isinstance(node.slice, ast.Constant) else None
        return inner + 1 + (index if isinstance(index, int) else 99)  # unknown: assume far
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("resolve", "absolute", "expanduser") and isinstance(func, ast.Attribute):
            return _hops_up(func.value)
        if node.args and name in ("Path", "PurePath", "abspath", "realpath", "normpath", "str"):
            return _hops_up(node.args[0])
        if node.args and name == "dirname":
            inner = _hops_up(node.args[0])
            return None if inner is None else inner + 1
    return None


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        return [node.module or ""]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _attribute(node: ast.AST | None) -> str | None:
    return node.attr if isinstance(node, ast.Attribute) else None


def _outside(text: str) -> bool:
    return "://" not in text and OUTSIDE.search(text) is not None


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def module_problems(name: str, source: str) -> list[str]:
    """What in the module ``name`` (a path in the wheel) imports test or demo code or
    reaches outside the package for files."""
    tree = ast.parse(source, name)
    depth = name.count("/")  # folders from the wheel's root down to the module
    docstrings = _docstrings(tree)
    problems = []
    for node in ast.walk(tree):
        at = f"{name}:{getattr(node, 'lineno', '?')}"
        problems += [f"{at} imports {m}" for m in _imported(node) if m.split(".")[0] in NOT_RUNTIME]
        if isinstance(node, ast.ImportFrom) and node.level > depth:
            problems.append(f"{at} imports from {node.level} packages up, outside the package")
        if _attribute(node) == _attribute(getattr(node, "value", None)) == "parent":
            problems.append(f"{at} goes .parent.parent")
        hops = _hops_up(node)
        if hops is not None and hops > depth:
            problems.append(f"{at} reaches {hops} folders up from __file__, outside the package")
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in docstrings and _outside(text):
            problems.append(f"{at} names a path outside the package: {text!r}")
    return sorted(set(problems))


def test_no_shipped_module_imports_test_code_or_reaches_outside_the_package(wheel):
    modules = [n for n in wheel.namelist() if n.endswith(".py")]
    assert modules
    problems = [p for n in modules for p in module_problems(n, wheel.read(n).decode())]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import ocs.ocs_client",
        "from pytest import fixture",
        "import testbed",
        "from tests.support import bed",
        "import importlib\nimportlib.import_module('benchmarks.run')",
        "from ... import x",
        "from pathlib import Path\nROOT = Path(__file__).resolve().parent.parent",
        "from pathlib import Path\nROOT = Path(__file__).parents[2]",
        "import os\nROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))",
        "from pathlib import Path\nRULES = Path(__file__).parent / '..' / 'x.yml'",
        "RULES = 'grafana/alerts/ocs-rules.yml'",
        "from pathlib import Path\nCROSSBAR = Path.cwd() / '.venv-crossbar' / 'bin'",
    ],
)
def test_the_module_check_finds_what_must_not_ship(source):
    assert module_problems("exporter/http/mod.py", source)


def test_the_module_check_lets_the_package_read_its_own_files():
    source = (
        '"""Reads templates/ next to it; see grafana/ for dashboards."""\n'
        "from pathlib import Path\n"
        "from . import web\n"
        "from .. import state\n"
        "HERE = Path(__file__).resolve().parent\n"
        "PAGE = Path(__file__).parents[1] / 'http' / 'page.html'\n"
        "TOPIC = 'observatory..feeds.heartbeat'\n"
        "HELP = 'manage: .../down entries'\n"
        "URL = 'https://example.org/grafana/runbook'\n"
    )
    assert module_problems("exporter/http/mod.py", source) == []
