"""The memory settings: allocator thresholds, heap trimming, frozen startup objects and
pyOpenSSL left out, each checked in a child process."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

CHILD = """
import sys
from exporter.render.memory import fix_thresholds
if sys.argv[1] == "fixed":
    assert fix_thresholds()
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


def kept_after_buffers(mode: str, env: dict | None = None) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(out.stdout)


def test_thresholds_are_set_on_glibc():
    from exporter.render.memory import fix_thresholds

    assert fix_thresholds()


def test_the_environment_wins(monkeypatch):
    from exporter.render.memory import fix_thresholds

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert not fix_thresholds()


def test_freed_scrape_buffers_go_back_to_the_system():
    fixed, default = kept_after_buffers("fixed"), kept_after_buffers("default")
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


TRIM_CHILD = """
import sys
from exporter.render.memory import heap_trimmer
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
trim = heap_trimmer()
assert trim is not None
chunks = [bytes(1000) + bytes([i % 256]) for i in range(60_000)]  # 60 MB in the heap
kept = chunks[::16]  # every 16th stays: the free ones lie between live ones
del chunks
before = rss()
trim()
print(before - rss())
"""


def test_the_heap_trimmer_gives_back_free_pages_between_live_chunks():
    out = subprocess.run(
        [sys.executable, "-c", TRIM_CHILD], capture_output=True, text=True, check=True
    )
    assert int(out.stdout) > 30 << 20  # of ~56 MB freed in the middle of the heap


def test_the_heap_trimmer_leaves_it_to_the_environment(monkeypatch):
    from exporter.render.memory import heap_trimmer

    assert heap_trimmer() is not None
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert heap_trimmer() is None


TLS_CHILD = """
import atexit, sys
def report():
    print(sys.modules.get("OpenSSL") is not None, "twisted.internet.reactor" in sys.modules)
atexit.register(report)
from exporter import cli
cli.main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    ("extra", "loaded"),
    [([], False), (["--web.config.file", "WEB"], True), (["--site-hub", "wss://h:1/ws"], True)],
)
def test_pyopenssl_is_left_out_unless_tls_may_be_used(tmp_path, extra, loaded):
    """The exporter stops at its busy port, after the reactor and the service are loaded."""
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = [
            *("--site-hub", "ws://127.0.0.1:1/ws", "--site-realm", "r"),
            *("--address-root", "observatory"),
            *("--web.listen-address", f"127.0.0.1:{busy.getsockname()[1]}"),
            *[str(web) if arg == "WEB" else arg for arg in extra],
        ]
        out = subprocess.run(
            [sys.executable, "-c", TLS_CHILD, *args], capture_output=True, text=True, check=False
        )
    assert out.returncode == 2 and "cannot listen" in out.stderr, out.stderr
    assert out.stdout.split() == [str(loaded), "True"]
