"""Memory settings: fixed allocator thresholds, so that the memory of a large scrape goes
back to the system, the free pages inside the heap given back after each scrape, the
startup objects frozen out of the cyclic garbage collector, and pyOpenSSL left out when
nothing uses TLS.

glibc's malloc serves blocks of at least its mmap threshold with mmap and returns them on
free, but it raises that threshold to the size of the largest such block freed (up to
32 MB) and trims the heap only past twice the threshold. After one uncompressed scrape of
tens of MB at 10,000 agents, every later multi-MB scrape buffer would come from the heap
and stay there (about 10 MB kept in a test of 10,000 agents). Setting both thresholds
turns that adjustment off.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections.abc import Callable
from typing import Any

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MiB and more: mmap, returned on free
TRIM_THRESHOLD = 4 << 20  # free memory at the top of the heap past 4 MiB: returned
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def _glibc(name: str) -> Any:
    """glibc's function ``name``; None where the C library has none, or where the
    environment sets glibc's own thresholds (the operator's choice)."""
    if any(variable in os.environ for variable in ENVIRONMENT):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def fix_thresholds() -> bool:
    """Set both thresholds, unless the environment sets glibc's own; True when set. A no-op
    where the C library is not glibc."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def leave_out_tls() -> None:
    """Keep pyOpenSSL from loading. Twisted's reactor imports it whenever it is installed,
    and with it cryptography's bindings (~4.4 MiB of the idle process), though only a
    wss:// router or a web config file uses TLS here. Call before the reactor is imported,
    and only when neither is configured: TLS is then unavailable in this process."""
    sys.modules.setdefault("OpenSSL", None)  # None: ``import OpenSSL`` raises ImportError


def heap_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, which hands back the free pages anywhere in the heap, not
    only at its top: a scrape at 10,000 agents leaves several MiB of free chunks between
    live ones (61 MiB against 66 MiB in a test), and trimming costs ~1 ms. None where the
    C library is not glibc, or where the environment sets glibc's own thresholds."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is None:
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return lambda: malloc_trim(0)


def freeze_startup_objects() -> int:
    """Move every object the cyclic collector tracks now (the modules, classes and functions
    of Twisted, autobahn, prometheus_client and the exporter: ~60,000, a 30 ms walk) out of
    its reach for good: they live as long as the process, and every full collection would
    walk them again. Call once, after startup. Returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
