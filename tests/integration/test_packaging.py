"""The Dockerfile, the compose stack and the Python package, checked without a Docker engine."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from exporter.config import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), " ".join(args.split())))
    return pairs


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


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
    (check,) = instructions("HEALTHCHECK")
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command == ["python", "-m", "exporter.http.healthcheck"]


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


def test_the_package_builds_with_its_entry_point_and_dependencies(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("ocs_exporter-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "exporter/cli.py" in names and "exporter/http/healthcheck.py" in names
        assert not any(n.startswith("tests/") for n in names)
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in zf.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
        entry_points = zf.read(meta.replace("METADATA", "entry_points.txt")).decode()
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
