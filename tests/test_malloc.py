"""The allocator thresholds: set on glibc, and what they are for, measured in a child."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys
from exporter.malloc import fix_thresholds
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
    from exporter.malloc import fix_thresholds

    assert fix_thresholds()


def test_the_environment_wins(monkeypatch):
    from exporter.malloc import fix_thresholds

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert not fix_thresholds()


def test_freed_scrape_buffers_go_back_to_the_system():
    fixed, default = kept_after_buffers("fixed"), kept_after_buffers("default")
    assert fixed <= 3 << 20  # what the loop keeps, and little else
    assert default >= fixed + (4 << 20)  # glibc's own thresholds keep the buffers' memory
