"""testbed.feeder on the real router: the feeds it declares, as a plain subscriber hears them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

import testbed
from exporter.feeds import FeedMessage, InvalidFeed, parse_feed
from testbed import feedflood
from tests.support.agents import start_feeder
from tests.support.feedwatch import FeedWatch

INSTANCE = "feeder1"
ADDRESS = f"{testbed.ADDRESS_ROOT}.{INSTANCE}"
PREFIX = f"{testbed.ADDRESS_ROOT}."


@pytest.fixture(scope="module")
def feeder(bed):
    watch = FeedWatch(bed.router.url, bed.workdir).start(timeout=30)
    agent = start_feeder(bed, INSTANCE, "--fresh-time", "7.5", "--rate", "4")
    try:
        # The client asks the agent for its operations: it answers once it has joined.
        yield testbed.wait_for(lambda: bed.client(INSTANCE), 30, f"{INSTANCE} answering"), watch
    finally:
        testbed.stop_processes([watch, agent])


def heard(watch, feed):
    return watch.events(f"{ADDRESS}.feeds.{feed}")


def heartbeats_after(watch, count):
    """Wait until the feeder's heartbeat was heard ``count`` more times: time passes at the
    agent's own pace, so a feed that stayed silent meanwhile did not publish."""
    seen = len(heard(watch, "heartbeat"))
    testbed.wait_for(
        lambda: len(heard(watch, "heartbeat")) >= seen + count, 30, f"{count} more heartbeats"
    )


def test_its_feeds_parse_into_what_it_declares(feeder):
    client, watch = feeder
    assert client.publish.start().status == 0
    try:
        testbed.wait_for(
            lambda: len(heard(watch, "readings")) >= 2 and len(heard(watch, "chatter")) >= 2,
            30,
            "messages of both feeds",
        )
    finally:
        client.publish.stop()
        client.publish.wait(timeout=20)
    (readings, *_), (chatter, *_) = heard(watch, "readings"), heard(watch, "chatter")
    (heartbeat, *_) = heard(watch, "heartbeat")
    session_id = heartbeat.args[0][1]["session_id"]
    for event in (readings, chatter, heartbeat):
        assert len(event.args) == 1 and not event.kwargs  # one positional [message, feed]
    common = {"agent_address": ADDRESS, "session_id": session_id, "agent_class": "FeederAgent"}
    assert parse_feed(readings.args[0], PREFIX) == FeedMessage(
        feed_name="readings", record=True, fresh_time=7.5, **common
    )
    assert parse_feed(chatter.args[0], PREFIX) == FeedMessage(
        feed_name="chatter", record=False, fresh_time=None, **common
    )
    assert readings.args[0][0]["level"]["data"]["level"] == [0.0]  # a recorded block
    assert chatter.args[0][0] == {"count": 0}


def test_stopping_publish_stops_both_feeds_and_a_stall_pauses_them(feeder):
    client, watch = feeder
    assert client.publish.start().status == 0
    try:
        more = len(heard(watch, "readings")) + 2
        testbed.wait_for(lambda: len(heard(watch, "readings")) >= more, 30, "readings flowing")
        assert client.stall().status == 0
        heartbeats_after(watch, 1)  # a message published before the stall may still arrive
        stalled = len(heard(watch, "readings")), len(heard(watch, "chatter"))
        heartbeats_after(watch, 2)
        assert (len(heard(watch, "readings")), len(heard(watch, "chatter"))) == stalled
        assert client.publish.status().session["status"] == "running"
        assert client.resume().status == 0
        testbed.wait_for(lambda: len(heard(watch, "readings")) > stalled[0], 30, "resumed")
    finally:
        client.publish.stop()
        assert client.publish.wait(timeout=20).session["status"] == "done"
    heartbeats_after(watch, 1)  # the stopper lets the loop's last sleep end
    stopped = len(heard(watch, "readings")), len(heard(watch, "chatter"))
    heartbeats_after(watch, 2)
    assert (len(heard(watch, "readings")), len(heard(watch, "chatter"))) == stopped


def test_the_feed_flood_tool_reaches_a_feeds_wildcard_subscriber(bed, feeder):
    """testbed.feedflood publishes every event it counts, oversize ones too, where the
    exporter's ``<root>..feeds.`` subscription hears them."""
    _, watch = feeder
    command = [sys.executable, "-m", "testbed.feedflood", "--url", bed.router.url]
    command += ["--realm", testbed.REALM, "--victim", "floodcheck", "--strangers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    sent = json.loads(result.stdout.splitlines()[-1])
    expected = {k: len(v) for k, v in feedflood.malformed(victim="floodcheck").items()}
    assert sent == {**expected, "unknown_agent": 3}
    total = sum(sent.values())
    prefix = f"{testbed.ADDRESS_ROOT}.floodcheck"
    testbed.wait_for(lambda: len(watch.events(prefix)) >= total, 30, f"{total} flood events")
    # As delivered, each is refused for the reason it was sent under (strangers parse).
    reasons = Counter()
    for event in watch.events(prefix):
        payload = feedflood.Event(event.topic, tuple(event.args), event.kwargs).payload()
        try:
            parse_feed(payload, PREFIX)
            reasons["unknown_agent"] += 1
        except InvalidFeed as exc:
            reasons[exc.reason] += 1
    assert reasons == sent
