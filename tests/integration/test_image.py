"""The Dockerfile, unchanged, built and run with podman as docs/deployment.md's quick start
says, against the tests' router with a real OCS agent. Skipped, with the reason, where no
container engine can run."""

from __future__ import annotations

import json
import os
import re
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
def built(request, tmp_path_factory) -> str:
    """The image's ID, built from the quick start's ``docker build`` on the stand-in base."""
    base = image.base_image()
    reason = image.engine_unavailable(base)
    if reason:
        pytest.skip(f"no container engine: {reason}")
    workdir = tmp_path_factory.mktemp("image")
    took = image.ensure_base(base, workdir)
    report(request, f"stand-in {base}: " + ("cached" if took is None else f"built in {took:.0f} s"))
    args = quickstart().build
    previous = image.image_id(args[args.index("-t") + 1])
    started = time.monotonic()
    image_id = image.build(args, workdir)
    report(request, f"podman build: {time.monotonic() - started:.0f} s")
    if previous not in (None, image_id):  # the tag moved: drop the old image and its layers
        image.podman("rmi", previous, check=False)
    return image_id


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
def running(request, built, config_dir, agent):
    """The quick start's ``docker run`` on a free port; removed however the tests end."""
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
    (check,) = [args for name, args in image.dockerfile_instructions() if name == "HEALTHCHECK"]
    command = json.loads(check.split(" CMD ", 1)[1])
    inspected = json.loads(image.podman("image", "inspect", built).stdout)[0]
    assert inspected["Healthcheck"]["Test"] == ["CMD", *command]
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
    assert quickstart_block() in (ROOT / "README.md").read_text()
