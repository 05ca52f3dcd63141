"""The Dockerfile, unchanged, built and run with podman as docs/deployment.md's quick start
says, against the tests' router with a real OCS agent. Skipped, with the reason, where no
container engine can run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass

import pytest
import yaml

import testbed
from exporter.flags import DEFAULT_PORT, env_name
from testbed import ROOT, image
from tests.support.quickstart import container_args, quickstart, quickstart_block

# The stand-in base and a cold build take minutes; the per-test default is for one process.
pytestmark = pytest.mark.timeout(900)

AGENT = "img-agent"  # started on the session router, listed in the site config
LISTED = "img-listed"  # listed in the site config, never started
SITE_HOST = "image-site"


def report(request, line: str) -> None:
    """A measurement, printed past pytest's capture so the test command shows it."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n[image] {line}", flush=True)


@pytest.fixture(scope="module")
def built(request, tmp_path_factory):
    """The image's ID, built from the quick start's ``docker build`` on the stand-in base.
    Another session's image test waits until this module is done with the tag."""
    base = image.base_image()
    reason = image.engine_unavailable(base)
    if reason:
        pytest.skip(f"no container engine: {reason}")
    workdir = tmp_path_factory.mktemp("image")
    took = image.ensure_base(base, workdir)
    report(request, f"stand-in {base}: " + ("cached" if took is None else f"built in {took:.0f} s"))
    args = quickstart().build
    with image.machine_lock("build"):
        previous = image.image_id(args[args.index("-t") + 1])
        started = time.monotonic()
        image_id = image.build(args, workdir)
        report(request, f"podman build: {time.monotonic() - started:.0f} s")
        if previous not in (None, image_id):  # the tag moved: drop the old image, its layers
            image.podman("rmi", previous, check=False)
        yield image_id


@pytest.fixture(scope="module")
def config_dir(bed, tmp_path_factory):
    """A site config directory for ``/config``, readable by the image's uid 9000."""
    directory = tmp_path_factory.mktemp("config")
    entries = [testbed.fake_agent_entry(AGENT), testbed.fake_agent_entry(LISTED)]
    site = testbed.site_config(bed.router.port, entries, host=SITE_HOST)
    (directory / "default.yaml").write_text(yaml.safe_dump(site))
    directory.chmod(0o755)
    (directory / "default.yaml").chmod(0o644)
    return directory


@pytest.fixture(scope="module")
def agent(bed):
    return bed.start_agent(AGENT)


@dataclass
class Running:
    """The module's container, on its port, and the quick start's scrape of it."""

    container: image.Container
    port: int

    def scrape(self) -> testbed.Metrics:
        """The quick start's ``curl URL | grep RE`` on the test's port: the lines kept."""
        start = quickstart()
        assert f":{DEFAULT_PORT}/" in start.url
        self.container.check_alive()
        status, _, body = testbed.http_get(start.url.replace(f":{DEFAULT_PORT}/", f":{self.port}/"))
        assert status == 200, body
        kept = [line for line in body.decode().splitlines() if re.search(start.pattern, line)]
        return testbed.Metrics("\n".join(kept) + "\n")

    def metrics(self) -> testbed.Metrics:
        status, _, body = testbed.http_get(f"http://127.0.0.1:{self.port}/metrics")
        assert status == 200, body
        return testbed.Metrics(body.decode())


@pytest.fixture(scope="module")
def running(request, built):
    """The quick start's ``docker run`` on a free port; removed however the tests end. The
    router and the agent are asked for once ``built`` has not skipped, so a machine without
    an engine starts neither for this module."""
    config_dir = request.getfixturevalue("config_dir")
    request.getfixturevalue("agent")
    port = testbed.free_port()
    name = f"ocs-exporter-test-{os.getpid()}-{port}"
    env = {env_name("--web.listen-address"): f"127.0.0.1:{port}"}
    args = container_args(quickstart(), name, built, config_dir, env)
    container = image.Container(name)
    started = time.monotonic()
    try:
        container.run(args)
        run = Running(container, port)
        up = lambda: run.scrape().get("ocs_agent_up", instance_id=AGENT) == 1  # noqa: E731
        testbed.wait_for(up, 60, f"{AGENT} up in the container's /metrics")
        report(request, f"podman run to {AGENT} up: {time.monotonic() - started:.1f} s")
        yield run
    finally:
        container.remove()


def test_a_real_agent_reads_up_in_the_containers_metrics(running):
    kept = running.scrape()  # what the quick start's grep keeps
    assert kept.get("ocs_agent_up", instance_id=AGENT) == 1
    assert {sample.name for sample in kept.samples} == {"ocs_agent_up"}


def test_the_site_config_was_read_from_config(running):
    metrics = running.metrics()
    for instance_id in (AGENT, LISTED):
        labels = {"instance_id": instance_id, "host": SITE_HOST, "expected": "true"}
        assert metrics.get("ocs_agent_info", **labels) == 1, instance_id
    assert metrics.get("ocs_agent_up", instance_id=LISTED) == 0


def test_the_exporter_is_pid_1_and_runs_as_uid_9000(running):
    argv = running.container.exec("cat", "/proc/1/cmdline").split("\0")
    assert any(arg.endswith("/ocs-exporter") for arg in argv[:2]), argv
    status = running.container.exec("cat", "/proc/1/status")
    ids = dict(re.findall(r"^(Uid|Gid):\s+(.*)$", status, flags=re.MULTILINE))
    assert set(ids["Uid"].split()) == set(ids["Gid"].split()) == {"9000"}, ids


def test_the_dockerfiles_healthcheck_passes(running, built):
    inspected = json.loads(image.podman("image", "inspect", built).stdout)[0]
    assert inspected["Healthcheck"]["Test"] == ["CMD", *image.healthcheck_command()]
    result = running.container.healthcheck()
    assert result.returncode == 0, result.stdout + result.stderr
    assert running.container.inspect("{{.State.Health.Status}}") == "healthy"


def test_sigterm_stops_the_container_within_10_s(request, running):
    """Last: it stops the module's container. Exit code 0 is the exporter's own clean exit on
    SIGTERM; 137 would be podman's SIGKILL after the 10 s."""
    container = running.container
    assert container.inspect("{{.Config.StopSignal}}") in ("", "15", "SIGTERM")
    took = container.stop(timeout=10)
    report(request, f"SIGTERM to stopped: {took:.2f} s")
    assert not container.running()
    assert container.exit_code() == 0, container.logs()[-2000:]
    assert took < 10


def test_readme_carries_the_quick_start_block():
    """README.md's Docker section is the block the test runs, copied."""
    block = quickstart_block()
    assert block in (ROOT / "README.md").read_text(), f"README.md lacks, verbatim:\n{block}"


def test_the_quick_start_runs_as_written_but_for_this_runs_name_image_port_and_config(tmp_path):
    start = quickstart()
    assert start.build[-1] == "." and "-t" in start.build
    assert start.url.endswith(f":{DEFAULT_PORT}/metrics") and start.name == "ocs-exporter"
    env = {"OCS_EXPORTER_WEB_LISTEN_ADDRESS": "127.0.0.1:1234"}
    args = container_args(start, "test-1", "sha256:abc", tmp_path, env)
    assert args[-2:] == ["--env=OCS_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:1234", "sha256:abc"]
    assert f"{tmp_path}:/config:ro" in args and "test-1" in args
    changed = {"ocs-exporter", "$OCS_CONFIG_DIR:/config:ro"}
    assert [a for a in start.run if a not in changed] == [a for a in args[:-2] if a in start.run]


def test_without_root_podman_or_a_working_podman_the_image_tests_skip(monkeypatch):
    monkeypatch.setattr(image.os, "geteuid", lambda: 1000)
    assert "root" in image.engine_unavailable()
    monkeypatch.setattr(image.os, "geteuid", lambda: 0)
    monkeypatch.setattr(image.shutil, "which", lambda tool: None if tool == "podman" else tool)
    assert "podman is not installed" in image.engine_unavailable()
    monkeypatch.setattr(image.shutil, "which", lambda tool: tool)
    failed = subprocess.CompletedProcess([], 125, "", "Error: cannot set up namespace")
    monkeypatch.setattr(image, "podman", lambda *args, **kwargs: failed)
    assert "cannot set up namespace" in image.engine_unavailable()


def test_the_build_trusts_the_hosts_ca_bundle_and_carries_its_pip_settings(tmp_path):
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    settings = {
        "cert": "/host/ca.pem",
        "extra-index-url": f"file://{tmp_path}/pypi/simple https://mirror.example/simple",
        "find-links": f"{tmp_path}/wheels",
        "proxy": "http://proxy.example:3128",
    }
    mounts = image.pip_build_mounts(tmp_path, settings)
    volumes = [mounts[i + 1] for i in range(0, len(mounts), 2) if mounts[i] == "-v"]
    assert volumes == [
        f"/host/ca.pem:{image.CA_BUNDLE}:ro",
        f"{tmp_path}/pypi:{tmp_path}/pypi:ro",  # a local index's files sit beside simple/
        f"{tmp_path}/wheels:{tmp_path}/wheels:ro",
        f"{tmp_path}/pip.conf:/etc/pip.conf:ro",
    ]
    config = (tmp_path / "pip.conf").read_text().splitlines()
    assert config[:2] == ["[global]", f"cert = {image.CA_BUNDLE}"]
    assert f"extra-index-url = {settings['extra-index-url']}" in config
    assert "proxy = http://proxy.example:3128" in config
