"""Scraping the exporter as Prometheus does, and reading the few samples the harness needs.

The exposition at 10,000 agents is megabytes: it is searched with regular expressions,
not parsed into objects, to keep the harness's own CPU small.
"""

from __future__ import annotations

import gzip
import re
import time
import urllib.request
import zlib
from dataclasses import dataclass

TIMEOUT = 30.0  # seconds a scrape may take under the benchmark's load
# Prometheus asks for gzip; prometheus_client then compresses every scrape.
PROMETHEUS_HEADERS = {"Accept-Encoding": "gzip", "User-Agent": "ocs-exporter-benchmark"}

_UP = re.compile(r'^ocs_agent_up\{[^}]*instance_id="([^"]*)"[^}]*\} (\S+)$', re.MULTILINE)
_HEARTBEATS = re.compile(r"^ocs_exporter_heartbeats_total (\S+)$", re.MULTILINE)
_CONNECTED = re.compile(r"^ocs_exporter_crossbar_connected (\S+)$", re.MULTILINE)
_QUERIES = re.compile(r"^ocs_exporter_op_type_queries_total\{[^}]*\} (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Scrape:
    started: float  # Unix time the request was sent
    finished: float  # Unix time the whole body had arrived
    wire_bytes: int  # body as sent (gzip-compressed if asked for)
    text: str

    @property
    def latency(self) -> float:
        return self.finished - self.started

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode())

    def heartbeats_total(self) -> float | None:
        match = _HEARTBEATS.search(self.text)
        return float(match.group(1)) if match else None

    def op_type_queries(self) -> float:
        """get_api calls answered or failed, for every agent heard so far."""
        return sum(float(value) for value in _QUERIES.findall(self.text))

    def connected(self) -> bool:
        match = _CONNECTED.search(self.text)
        return bool(match) and float(match.group(1)) == 1.0

    def agents_up(self) -> dict[str, float]:
        """``ocs_agent_up`` by instance id."""
        return {iid: float(value) for iid, value in _UP.findall(self.text)}

    def series(self) -> int:
        return sum(1 for line in self.text.splitlines() if line and not line.startswith("#"))


# Where the agent families after ocs_agent_info and ocs_agent_up begin: a detection poll
# reads up to here only.
AFTER_UP = b"\n# HELP ocs_agent_last_heartbeat_timestamp_seconds "


def scrape(
    url: str,
    compressed: bool = True,
    timeout: float = 60.0,
    until: bytes | None = None,
    accept: str | None = None,
) -> Scrape:
    """GET ``url`` (``.../metrics``); raise on anything but 200. With ``until``, the text
    stops where ``until`` begins (all of it if it never does): at 10,000 agents inflating
    and searching all 30 MB takes the harness longer than the scrape, and a detection
    poll needs only the first families. ``accept``: the Accept header (Prometheus prefers
    OpenMetrics)."""
    headers = PROMETHEUS_HEADERS if compressed else {"User-Agent": "ocs-exporter-benchmark"}
    if accept:
        headers = {**headers, "Accept": accept}
    request = urllib.request.Request(url, headers=headers)
    started = time.time()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
        encoding = response.headers.get("Content-Encoding", "")
    finished = time.time()
    if until is None:
        raw = gzip.decompress(body) if encoding == "gzip" else body
    else:
        raw = _prefix(body, encoding == "gzip", until)
    return Scrape(started, finished, len(body), raw.decode())


def _prefix(body: bytes, gzipped: bool, until: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    text = b""
    for at in range(0, len(body), 1 << 16):
        chunk = body[at : at + (1 << 16)]
        searched = max(len(text) - len(until), 0)
        text += inflater.decompress(chunk) if inflater else chunk
        end = text.find(until, searched)
        if end >= 0:
            return text[: end + 1]
    return text


def ready(base_url: str) -> bool:
    """True once the exporter's ``/-/ready`` answers 200."""
    try:
        with urllib.request.urlopen(base_url + "/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def sleep_until(when: float) -> None:
    """Sleep until Unix time ``when`` (not at all if it has passed): paces scrapes."""
    delay = when - time.time()
    if delay > 0:
        time.sleep(delay)
