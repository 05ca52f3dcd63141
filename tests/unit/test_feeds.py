"""exporter.feeds: what a feed message says about its feed, and every way it is refused."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.feeds import FEED_REASONS, FeedInfo, FeedMessage, InvalidFeed, parse_feed
from exporter.heartbeat import MAX_NAME_LENGTH
from tests.support.strategies import json_like, scalars

PREFIX = "observatory."
SESSION = "1795518440.6412797"

# FakeDataAgent's false_temperatures as it comes off the wire (record=True, buffer_time 1 s):
# a message of blocks by block name, then the feed's description (ocs.ocs_feed.Feed.encoded).
FALSE_TEMPERATURES = [
    {
        "temps": {
            "block_name": "temps",
            "data": {"channel_00": [0.1013, 0.0998], "channel_01": [0.0987, 0.1002]},
            "influxdb_tags": {
                "channel_00": {"channel": 0, "_field": "temperature"},
                "channel_01": {"channel": 1, "_field": "temperature"},
            },
            "timestamps": [1795518441.0, 1795518441.1],
        }
    },
    {
        "agent_address": "observatory.fake1",
        "agg_params": {"frame_length": 60},
        "feed_name": "false_temperatures",
        "address": "observatory.fake1.feeds.false_temperatures",
        "record": True,
        "session_id": SESSION,
        "agent_class": "FakeDataAgent",
    },
]


def spoilt(**changes):
    """FALSE_TEMPERATURES with ``changes`` in its feed (``...`` removes the field)."""
    message, feed = copy.deepcopy(FALSE_TEMPERATURES)
    feed.update(changes)
    return [message, {k: v for k, v in feed.items() if v is not ...}]


def reason(payload, prefix=PREFIX):
    with pytest.raises(InvalidFeed) as caught:
        parse_feed(payload, prefix)
    assert caught.value.reason in FEED_REASONS
    assert caught.value.detail == str(caught.value)
    return caught.value.reason


def test_false_temperatures_as_fake_data_agent_publishes_it():
    assert parse_feed(FALSE_TEMPERATURES, PREFIX) == FeedMessage(
        agent_address="observatory.fake1",
        feed_name="false_temperatures",
        record=True,
        fresh_time=None,
        session_id=SESSION,
        agent_class="FakeDataAgent",
    )


def test_a_tuple_payload_and_the_heartbeat_feed_parse_too():
    heartbeat = spoilt(
        feed_name="heartbeat",
        address="observatory.fake1.feeds.heartbeat",
        record=False,
        agg_params={},
    )
    heartbeat[0] = {"acq": 3}
    parsed = parse_feed(tuple(heartbeat), PREFIX)
    assert (parsed.feed_name, parsed.record, parsed.fresh_time) == ("heartbeat", False, None)


def test_the_message_is_never_looked_at():
    for message in (None, 0, "x", [1, 2], {"a": object()}):
        assert parse_feed([message, FALSE_TEMPERATURES[1]], PREFIX).feed_name == (
            "false_temperatures"
        )


@pytest.mark.parametrize(
    ("declared", "expected"),
    [(10, 10.0), (2.5, 2.5), (1e-3, 1e-3), (3600, 3600.0), (2**64 - 1, float(2**64 - 1))],
)
def test_fresh_time_a_positive_number_is_seconds_as_a_float(declared, expected):
    parsed = parse_feed(spoilt(agg_params={"frame_length": 60, "fresh_time": declared}), PREFIX)
    assert parsed.fresh_time == expected
    assert type(parsed.fresh_time) is float


def test_fresh_time_absent_is_none():
    assert parse_feed(spoilt(agg_params={}), PREFIX).fresh_time is None
    assert parse_feed(spoilt(agg_params={"exclude_influx": True}), PREFIX).fresh_time is None


@pytest.mark.parametrize(
    "declared",
    ["10", 0, 0.0, -5, -0.1, math.nan, math.inf, -math.inf, True, False, None, [10], {}, 10**400],
    ids=repr,
)
def test_fresh_time_not_a_finite_number_above_zero_is_a_bad_field(declared):
    agg_params = {"fresh_time": declared}
    if declared is None:  # a null fresh_time is one declared as nothing
        assert parse_feed(spoilt(agg_params=agg_params), PREFIX).fresh_time is None
    else:
        assert reason(spoilt(agg_params=agg_params)) == "bad_field"


def test_optional_fields_as_heartbeats_have_them():
    parsed = parse_feed(spoilt(session_id=..., agent_class=...), PREFIX)
    assert (parsed.session_id, parsed.agent_class) == (None, "")


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "nonsense",
        3,
        [],
        [{}],
        [{}, FALSE_TEMPERATURES[1], "extra"],
        [{}, "feed"],
        [{}, None],
        [{}, [("agent_address", "observatory.fake1")]],
        {"message": {}, "feed": FALSE_TEMPERATURES[1]},
    ],
    ids=repr,
)
def test_malformed(payload):
    assert reason(payload) == "malformed"


@pytest.mark.parametrize(
    "address",
    [..., None, 42, "", "observatory.", "elsewhere.fake1", "observatory.evil\nname",
     "observatory.sp ace", "observatory." + "y" * MAX_NAME_LENGTH, b"observatory.fake1"],
    ids=repr,
)  # fmt: skip
def test_bad_agent_address(address):
    assert reason(spoilt(agent_address=address)) == "bad_agent_address"


def test_agent_address_must_be_under_the_given_root():
    assert reason(FALSE_TEMPERATURES, prefix="elsewhere.") == "bad_agent_address"


@pytest.mark.parametrize(
    "changes",
    [
        {"feed_name": ...},
        {"feed_name": None},
        {"feed_name": ""},
        {"feed_name": 7},
        {"feed_name": "a\x07b"},
        {"feed_name": "two words"},
        {"feed_name": "x" * (MAX_NAME_LENGTH + 1)},
        {"feed_name": b"false_temperatures"},
        {"address": ...},
        {"address": None},
        {"address": "observatory.fake1.feeds.other"},
        {"address": "observatory.fake2.feeds.false_temperatures"},
        {"address": "observatory.fake1.false_temperatures"},
        {"feed_name": "other"},  # the address no longer names it
    ],
    ids=repr,
)
def test_bad_feed_name(changes):
    assert reason(spoilt(**changes)) == "bad_feed_name"


@pytest.mark.parametrize(
    "changes",
    [
        {"record": ...},
        {"record": None},
        {"record": 1},
        {"record": "true"},
        {"agg_params": ...},
        {"agg_params": None},
        {"agg_params": [["fresh_time", 10]]},
        {"session_id": 42},
        {"session_id": "s" * (MAX_NAME_LENGTH + 1)},
        {"session_id": "a\nb"},
        {"agent_class": None},
        {"agent_class": ["x"]},
        {"agent_class": "line\nbreak"},
    ],
    ids=repr,
)
def test_bad_field(changes):
    assert reason(spoilt(**changes)) == "bad_field"


def test_checks_run_in_reason_order():
    """A message wrong in several ways is refused for the first in FEED_REASONS' order."""
    assert reason(spoilt(agent_address=None, feed_name=None, record=None)) == "bad_agent_address"
    assert reason(spoilt(feed_name=None, record=None)) == "bad_feed_name"


def test_feed_info_is_what_a_record_keeps():
    parsed = parse_feed(spoilt(agg_params={"fresh_time": 30}), PREFIX)
    assert FeedInfo(parsed.record, parsed.fresh_time) == FeedInfo(record=True, fresh_time=30.0)
    assert FeedInfo(True, None) != FeedInfo(False, None)


# Near-real messages: FakeDataAgent's, with any message and at most two feed fields spoilt
# (replaced by anything, or removed), so every check is reached and some pass.
removed = st.just(...)
spoilers = {
    "agent_address": st.one_of(removed, st.just("observatory.fake2"), st.text(max_size=20)),
    "feed_name": st.one_of(removed, st.just("other"), st.text(max_size=20)),
    "address": st.one_of(removed, st.text(max_size=40)),
    "record": st.one_of(removed, st.booleans()),
    "agg_params": st.one_of(
        removed,
        st.fixed_dictionaries({}, optional={"fresh_time": scalars, "frame_length": scalars}),
    ),
    "session_id": st.one_of(removed, st.text(max_size=20)),
    "agent_class": st.one_of(removed, st.text(max_size=20)),
}
near_real = st.builds(
    lambda message, changes: [message, spoilt(**changes)[1]],
    json_like,
    st.lists(st.sampled_from(sorted(spoilers)), max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.one_of(spoilers[k], json_like) for k in keys})
    ),
)
payloads = st.one_of(json_like, st.tuples(json_like, json_like).map(list), near_real, near_real)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_arbitrary_payloads_parse_or_raise_invalid_feed(payload):
    try:
        parsed = parse_feed(payload, PREFIX)
    except InvalidFeed as exc:
        assert exc.reason in FEED_REASONS
        return
    assert parsed.agent_address.startswith(PREFIX)
    assert payload[1]["address"] == f"{parsed.agent_address}.feeds.{parsed.feed_name}"
    assert type(parsed.record) is bool
    assert parsed.fresh_time is None or 0 < parsed.fresh_time < math.inf
