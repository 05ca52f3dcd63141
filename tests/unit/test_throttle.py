"""LogThrottle: at most one log line per key and interval, with bounded memory."""

from exporter.wamp.throttle import LogThrottle
from tests.support.fakes import FakeClock


def test_log_throttle_allows_once_per_interval_per_key():
    clock = FakeClock()
    throttle = LogThrottle(60.0, monotonic=clock.monotonic)
    assert throttle.allow("a")
    assert throttle.allow("b")
    assert not throttle.allow("a")
    clock.advance(59.9)
    assert not throttle.allow("a")
    clock.advance(0.1)
    assert throttle.allow("a")
    assert throttle.suppressed == 2


def test_log_throttle_memory_is_bounded():
    clock = FakeClock()
    throttle = LogThrottle(60.0, monotonic=clock.monotonic, max_keys=3)
    assert all(throttle.allow(k) for k in "abc")
    assert not throttle.allow("d")  # full of recent keys
    clock.advance(61)
    assert throttle.allow("d")  # old keys pruned
