"""The exporter's memory, as far as the process itself has a say in it.

glibc's allocator thresholds are not set here: glibc reads them from the environment at
startup (``MALLOC_MMAP_THRESHOLD_``), and the Docker image and the systemd unit set them.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable


def freeze_startup_objects() -> int:
    """Move every object the cyclic collector tracks now (the modules, classes and functions
    of Twisted, autobahn, prometheus_client and the exporter) out of its reach for good:
    they live as long as the process, and every full collection would otherwise walk them
    again. Call once, after startup. Returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def heap_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, which hands back free pages anywhere in the heap, not only
    at its top: a large scrape leaves free chunks between live ones that nothing else
    returns. glibc has no environment variable for it. None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)
