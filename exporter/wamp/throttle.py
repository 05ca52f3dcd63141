"""Keeping log lines about what the network sends from flooding the log."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable


class LogThrottle:
    """Says whether a message about ``key`` may be logged: at most once per ``interval``."""

    def __init__(
        self,
        interval: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.interval = interval
        self._monotonic = monotonic
        self._max_keys = max_keys
        self._last: dict[Hashable, float] = {}
        self.suppressed = 0

    def allow(self, key: Hashable) -> bool:
        now = self._monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        if len(self._last) >= self._max_keys:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            if len(self._last) >= self._max_keys:
                self.suppressed += 1
                return False
        self._last[key] = now
        return True
