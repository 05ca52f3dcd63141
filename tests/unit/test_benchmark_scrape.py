"""The harness' detection polls read only the first families of the exposition."""

from __future__ import annotations

import random

from benchmarks import scrape
from exporter.render import deflate
from tests.support.fakes import FakeClock
from tests.support.metrics import page


def test_a_prefix_up_to_the_heartbeat_times_holds_every_agent_up_sample():
    metrics = page(FakeClock())
    text = metrics.body(openmetrics=False, compress=False)
    cut = text.index(scrape.AFTER_UP) + 1
    full = scrape.Scrape(0, 0, 0, text.decode())
    for body, gzipped in ((metrics.body(False, True), True), (text, False)):
        prefix = scrape._prefix(body, gzipped, scrape.AFTER_UP)
        assert prefix == text[:cut]
        part = scrape.Scrape(0, 0, 0, prefix.decode())
        assert part.agents_up() == full.agents_up() and len(part.agents_up()) == 20
        assert part.connected() == full.connected()


def test_the_marker_is_found_across_chunks_and_when_missing_all_is_read():
    filler = bytes(random.Random(3).randbytes(200_000)).hex().encode()  # > 64 kB chunks
    text = filler + scrape.AFTER_UP + b"rest\n"
    body = deflate.gzip_member([text])
    assert scrape._prefix(body, True, scrape.AFTER_UP) == filler + b"\n"
    assert scrape._prefix(body, True, b"\n# HELP absent ") == text
