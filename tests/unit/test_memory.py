"""The memory settings: glibc's allocator thresholds, set in the environment by the Docker
image and the systemd unit, and the startup objects frozen out of the cyclic collector;
each behaviour checked in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["ENV"]:
            env.update(word.split("=", 1) for word in words[1:])
    return env


def unit_env() -> dict[str, str]:
    unit = ROOT / "deploy" / "systemd" / "ocs-exporter.service"
    return dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in unit.read_text().splitlines()
        if line.startswith("Environment=")
    )


def allocator(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith("MALLOC_")}


def test_the_image_and_the_unit_fix_the_mmap_threshold_alike():
    assert "MALLOC_MMAP_THRESHOLD_" in allocator(dockerfile_env())
    assert allocator(unit_env()) == allocator(dockerfile_env())


def test_the_benchmarks_run_the_exporter_with_the_images_allocator_settings():
    from benchmarks.processes import deployed_env

    assert deployed_env() == allocator(dockerfile_env())


CHILD = """
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
big = bytes(30 << 20)  # one large uncompressed scrape, freed
del big
before = rss()
keep = []
for i in range(30):  # then scrapes: MB-sized texts and bodies, and cache pieces kept
    buffers = [bytes((1 + (i + k) % 3) << 20) for k in range(3)]
    keep.extend(bytes(20000) for _ in range(4))  # 2.4 MB kept in all
    del buffers
print(rss() - before)
"""


def kept_after_buffers(malloc_env: dict[str, str]) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **malloc_env},
    )
    return int(out.stdout)


def test_freed_scrape_buffers_go_back_to_the_system_with_the_images_thresholds():
    fixed, default = kept_after_buffers(allocator(dockerfile_env())), kept_after_buffers({})
    assert fixed <= 3 << 20  # what the loop keeps, and little else
    assert default >= fixed + (4 << 20)  # glibc's own thresholds keep the buffers' memory


FREEZE_CHILD = """
import gc, weakref
import exporter.service
from exporter.render.memory import freeze_startup_objects
frozen = freeze_startup_objects()
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after startup
gone = weakref.ref(a)
del a, b
collected = gc.collect()
print(frozen, gc.get_freeze_count(), len(gc.get_objects(generation=2)), gone() is None)
"""


def test_startup_objects_are_frozen_and_later_cycles_still_collected():
    out = subprocess.run(
        [sys.executable, "-c", FREEZE_CHILD], capture_output=True, text=True, check=True
    )
    frozen, count, old, collected = out.stdout.split()
    assert int(frozen) == int(count) > 20_000  # Twisted, autobahn, prometheus_client, ours
    assert int(old) < 1_000  # what a full collection still walks
    assert collected == "True"


def test_the_heap_trimmer_hands_free_heap_pages_back():
    """After a scrape's many small buffers are freed, ``malloc_trim`` returns the pages
    between live chunks that glibc keeps otherwise (checked in a child process)."""
    child = """
from exporter.render.memory import heap_trimmer
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
trim = heap_trimmer()
assert trim is not None
chunks = [bytes(2000) for _ in range(20000)]  # 40 MB of small blocks on the heap
keep = chunks[::50]  # a few stay alive, scattered among the freed ones
del chunks
before = rss()
trim()
print(before - rss())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=True, env=env
    )
    assert int(out.stdout) > 10 << 20, out.stdout
