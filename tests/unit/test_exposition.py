"""The fast agent renderer against the reference collector, and the metrics page body."""

from __future__ import annotations

import ast
import gc
import gzip
import inspect
import random
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from twisted.internet import defer
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from exporter.render.exposition import BLOCK_SIZE, AgentExposition
from exporter.render.families import families
from exporter.render.lines import INDEX
from exporter.state import AgentState, ExpectedAgent
from testbed.feedflood import feed_payload
from testbed.reference import AgentCollector
from tests.support.fakes import FakeClock, heartbeat, session_answer
from tests.support.metrics import make_state, one_member, page, reference, samples


def test_same_samples_as_the_reference_collector_while_agents_change():
    clock = FakeClock()
    state = make_state(clock)
    exposition = AgentExposition(state)
    for step in range(6):
        assert samples(exposition.render().decode()) == samples(reference(state)), step
        clock.advance(2)  # some agents expire on the way
        state.ingest(heartbeat(f"agent-{step}", {"new": 6}, session_id=f"s{step}"))
        state.ingest(heartbeat(f"extra-{step}", {"acq": 3}))


def test_forgotten_agents_leave_the_output_and_their_block():
    clock = FakeClock()
    state = make_state(clock, 5)
    exposition = AgentExposition(state)
    assert b'instance_id="agent-0"' in exposition.render()
    clock.advance(99)
    state.ingest(heartbeat("agent-0"))
    clock.advance(2)
    text = exposition.render().decode()
    assert 'instance_id="agent-0"' in text and 'instance_id="agent-1"' not in text
    assert list(exposition._block_of) == ["observatory.agent-0"]
    assert sum(block.size for block in exposition._blocks) == 1


def pieces_by_block(exposition: AgentExposition) -> list[dict]:
    return [dict(block.pieces) for block in exposition._blocks]


def test_only_the_changed_families_of_a_changed_agents_block_are_made_again():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    n = 3 * BLOCK_SIZE
    for i in range(n):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state)
    exposition.render()
    assert len(exposition._blocks) == 3
    before = pieces_by_block(exposition)
    clock.advance(1)
    for i in range(n):  # heartbeats that change nothing but the time
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    state.ingest(heartbeat(f"agent-{BLOCK_SIZE + 1}", {"acq": 6}))  # block 1 changes
    exposition.render()
    after = pieces_by_block(exposition)
    for index in (0, 2):
        assert all(after[index][f] is before[index][f] for f in before[index])
    remade = {f for f in after[1] if after[1][f] is not before[1].get(f)}
    moved = ("ocs_op_code", "ocs_op_last_change_timestamp_seconds", "ocs_op_transitions")
    assert remade == {INDEX[name] for name in moved}  # not ocs_agent_info, _up, ...
    assert samples(exposition.render().decode()) == samples(reference(state))


def test_an_agent_going_down_remakes_its_block_only():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state)
    exposition.render()
    before = pieces_by_block(exposition)
    clock.advance(4)
    for i in range(1, 2 * BLOCK_SIZE):  # all but agent-0 keep heartbeating
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    clock.advance(2)
    text = exposition.render().decode()
    assert 'ocs_op_code{agent_address="observatory.agent-0",instance_id="agent-0",' in text
    assert samples(text) == samples(reference(state))
    after = pieces_by_block(exposition)
    assert after[0][INDEX["ocs_agent_up"]] is not before[0][INDEX["ocs_agent_up"]]
    assert all(after[1][f] is before[1][f] for f in before[1])


def test_freed_room_in_blocks_is_reused():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=10)
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"old-{i}"))
    exposition = AgentExposition(state)
    exposition.render()
    clock.advance(11)  # every old agent is forgotten
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"new-{i}"))
    assert samples(exposition.render().decode()) == samples(reference(state))
    assert len(exposition._blocks) == 2  # the freed room, not new blocks
    assert sorted(block.size for block in exposition._blocks) == [BLOCK_SIZE, BLOCK_SIZE]


def a_session(state: AgentState, rng: random.Random, instance_id: str) -> None:
    """A random answer to status for one of the agent's operations, if it has any: runs
    start, end in every way, come again (or late) and carry data timestamps or none."""
    views = {view.instance_id: view for view in state.snapshot().agents}
    agent = views.get(instance_id)
    if agent is None or not agent.record.op_codes:
        return
    op = rng.choice(sorted(agent.record.op_codes))
    if op in agent.record.sessions and rng.random() < 0.3:  # asked again: only data moved
        latest = agent.record.sessions[op]
        answer = session_answer(op, latest.session_id, latest.status, latest.success)
        answer[2].update(start_time=latest.start_time, end_time=latest.end_time)
        answer[2]["messages"] = [list(message) for message in latest.messages]
        answer[2]["data"] = {"timestamp": rng.uniform(1e9, 2e9)}
        state.set_session(agent.address, agent.session_id, op, answer)
        return
    status = rng.choice(["starting", "running", "stopping", "done", "done"])
    answer = session_answer(
        op,
        rng.randint(0, 6),
        status,
        rng.choice([True, False, None]) if status == "done" else None,
        rng.choice(["", "CRASH: boom", "ERROR: bad param", "gave up"]),
        rng.choice([{}, {"timestamp": rng.uniform(1e9, 2e9)}, {"f": {"last_update": 5}}]),
        start_time=1_800_000_000.0 + rng.randint(0, 100),
        end_time=rng.choice([None, 1_800_000_200.0]),
    )
    state.set_session(agent.address, agent.session_id, op, answer)


def test_many_agents_with_churn_match_the_reference():
    clock = FakeClock()
    state = make_state(clock, 5 * BLOCK_SIZE + 3)
    exposition = AgentExposition(state, op_state=True)
    rng = random.Random(3)
    for step in range(8):
        for _ in range(10):
            i = rng.randrange(6 * BLOCK_SIZE)
            state.ingest(heartbeat(f"agent-{i}", {"op1": rng.randint(1, 8)}, session_id=f"s{step}"))
            a_session(state, rng, f"agent-{rng.randrange(6 * BLOCK_SIZE)}")
        clock.advance(rng.choice([0.5, 3, 40]))  # expiry and forgetting on the way
        registry = CollectorRegistry()
        registry.register(AgentCollector(state, op_state=True))
        want = samples(generate_latest(registry).decode())
        assert samples(exposition.render().decode()) == want, step
        om = exposition.render(openmetrics=True).decode() + "# EOF\n"
        assert samples(om, parse_om) >= {s for s in want if not s[0].startswith("ocs_op_state")}
    names = {name for name, _, _ in want}
    assert {"ocs_op_runs_total", "ocs_op_session_start_timestamp_seconds"} <= names


def test_text_body_passes_promtool():
    metrics = page(FakeClock())
    state = metrics.agents.state
    for agent in state.snapshot().agents[:3]:
        address, session = agent.address, agent.session_id
        state.ingest_feed(feed_payload(address, "readings", [], True, {"fresh_time": 9}, session))
        state.ingest_feed(feed_payload(address, "chatter", [], session_id=session))
    body = metrics.body(openmetrics=False, compress=False)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    names = {f.name for f in parse_text(body.decode())}
    assert {"ocs_agent_up", "ocs_op_code", "ocs_exporter_heartbeats"} <= names
    assert {
        "ocs_feed_messages",
        "ocs_feed_fresh_time_seconds",
        "ocs_exporter_feed_messages",
    } <= names


def test_openmetrics_body_is_valid_and_ends_once_with_eof():
    body = page(FakeClock()).body(openmetrics=True, compress=False).decode()
    assert body.endswith("# EOF\n") and body.count("# EOF") == 1
    text_samples = samples(page(FakeClock()).body(openmetrics=False, compress=False).decode())
    om_samples = samples(body, parse_om)
    agent_names = ("ocs_agent_up", "ocs_op_code", "ocs_agent_last_heartbeat_timestamp_seconds")
    assert {s for s in om_samples if s[0] in agent_names} == {
        s for s in text_samples if s[0] in agent_names
    }


def test_gzip_body_is_one_member_of_the_same_text_in_both_formats():
    clock = FakeClock()
    metrics = page(clock)
    for openmetrics in (False, True):
        plain = metrics.body(openmetrics=openmetrics, compress=False)
        body = metrics.body(openmetrics=openmetrics, compress=True)
        assert one_member(body) == plain
        assert gzip.decompress(body) == plain


def test_spliced_blocks_match_blocks_made_afresh_byte_for_byte():
    """A few agents of a block change at a time or many do (their lines are spliced in),
    or agents come and go (the block is made again), in every way an agent can change,
    sessions answered among them; after each step the output equals that of a renderer
    that never saw the earlier steps."""
    clock = FakeClock()
    durations = (1.0, 60.0, 1e6)
    state = AgentState(
        "observatory", 5.0, clock.monotonic, clock.time, forget_after=60, durations=durations
    )
    rng = random.Random(11)
    n = 2 * BLOCK_SIZE + 5
    ops = ["acq", "count", "set_heartbeat", 'we"ird\\', "delay_task"]
    expected = [ExpectedAgent(f"agent-{i}", "Listed", "host-a", i % 2 == 0) for i in range(4)]
    quiet = [ExpectedAgent(f"quiet-{i}", "Listed", "host-b", True) for i in range(3)]
    state.set_expected(expected + quiet)
    for i in range(n):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state, op_state=True)
    kept = [True] * n  # agents that keep heartbeating
    for step in range(60):
        moved = rng.sample(range(n), rng.choice([1, 1, 2, 4, 7, n]))
        for i in moved:
            kept[i] = change(state, rng, i, step, ops, kept[i])
        if step % 7 == 0:
            state.set_expected(expected[: rng.randint(0, len(expected))] + quiet)
        if step % 9 == 4:  # a listed agent never heard so far is heard
            state.ingest(heartbeat(f"quiet-{step // 9}", {"acq": 3}))
        clock.advance(rng.choice([0.5, 1.0, 3.0]))
        for i in range(n):
            if kept[i]:
                state.ingest(again(state, i))
            if i % 3 == step % 3:
                feed_again(state, i)
        assert exposition.render() == AgentExposition(state, op_state=True).render(), step
    assert samples(exposition.render().decode()) == samples(reference(state, op_state=True))
    text = exposition.render(openmetrics=True).decode() + "# EOF\n"
    histograms = [f for f in parse_om(text) if f.name == "ocs_op_session_duration_seconds"]
    assert histograms and any(s.value > 0 for s in histograms[0].samples)
    counts = [f for f in parse_om(text) if f.name == "ocs_feed_messages"]
    assert counts and any(s.value > 1 for s in counts[0].samples)


def ask_acq(state: AgentState, i: int, t: float, op: str = "acq", **data: float) -> None:
    """agent-``i``'s running ``op`` (session 0) asked: its data says ``t`` (and ``data``)."""
    address = f"observatory.agent-{i}"
    answer = session_answer(op, 0, data={"timestamp": t, **data})
    state.set_session(address, state.session_of(address), op, answer)


def test_a_running_session_asked_again_remakes_nothing():
    """Every interval the sessions of running processes are asked again: only their data
    time moves, formatted at the scrape as the heartbeat times are, and no block makes any
    of its lines again, however many moved."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3, "delay_task": 1}))
        ask_acq(state, i, 1_800_000_000.0 + i)
    exposition = AgentExposition(state)
    exposition.render()
    before = pieces_by_block(exposition)
    keys = [block.key for block in exposition._blocks]
    for i in range(BLOCK_SIZE):  # every agent of block 0
        ask_acq(state, i, 1_800_000_100.0 + i)
    text = exposition.render()
    after = pieces_by_block(exposition)
    for block in (0, 1):
        assert all(after[block][f] is before[block][f] for f in before[block])
    assert all(block.key is key for block, key in zip(exposition._blocks, keys, strict=True))
    assert text == AgentExposition(state).render()
    assert b'operation="acq"} 1800000100.0\n' in text
    shown = data_lines(text)
    assert shown["agent-0", "acq"] == 1_800_000_100.0
    assert shown["agent-40", "acq"] == 1_800_000_040.0


def data_lines(text: bytes) -> dict[tuple[str, str], float]:
    """The data time samples: (instance id, operation) -> value."""
    return {
        (labels["instance_id"], labels["operation"]): value
        for name, items, value in samples(text.decode())
        if name == "ocs_op_data_timestamp_seconds"
        for labels in [dict(items)]
    }


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_data_times_moving_alone_or_among_changes_are_shown_as_read(share):
    """Agents with two or three running processes each, some data times moving between
    scrapes (``share`` of them, in any order) while other agents change for real (a data
    time appears or goes, a run ends, an operation goes, an agent restarts or goes down):
    every data time shown is the last one read, in its operation's line, and the output
    equals a fresh renderer's and the reference's."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    rng = random.Random(5)
    n, ops = 3 * BLOCK_SIZE + 7, ("acq", "count", 'o%d"d\\')
    want: dict[tuple[str, str], float] = {}  # (instance id, op) -> its data time
    running: set[tuple[int, str]] = set()  # (agent, op) asked again every interval
    session = dict.fromkeys(range(n), "1")

    def start(i: int) -> None:
        state.ingest(heartbeat(f"agent-{i}", dict.fromkeys(ops, 3), session_id=session[i]))
        for op in ops[: 2 + i % 2]:
            ask(i, op, 1_800_000_000.0 + rng.random())

    def ask(i: int, op: str, t: float) -> None:
        ask_acq(state, i, t, op, counter=1)
        want[f"agent-{i}", op] = t
        running.add((i, op))

    def gone(i: int, op: str) -> None:
        want.pop((f"agent-{i}", op), None)
        running.discard((i, op))

    for i in range(n):
        start(i)
    exposition = AgentExposition(state)
    for step in range(12):
        for i, op in rng.sample(sorted(running), int(len(running) * share)):
            ask(i, op, want[f"agent-{i}", op] + rng.uniform(0, 60))
        i = rng.randrange(n)
        address = f"observatory.agent-{i}"
        kind = step % 4
        if kind == 0:  # a data time goes: the line goes
            state.set_session(address, state.session_of(address), "acq", session_answer())
            gone(i, "acq")
        elif kind == 1 and (i, "count") in running:  # a run ends, its last data time kept
            t = 1_800_001_000.0 + step
            done = session_answer("count", 0, "done", True, data={"timestamp": t})
            state.set_session(address, state.session_of(address), "count", done)
            want[f"agent-{i}", "count"] = t
            running.discard((i, "count"))
        elif kind == 2:  # the agent restarts
            session[i] = f"{step}.5"
            for op in ops:
                gone(i, op)
            start(i)
        elif kind == 3:  # operations go
            state.ingest(heartbeat(f"agent-{i}", {"acq": 3}, session_id=session[i]))
            for op in ops[1:]:
                gone(i, op)
        clock.advance(1)
        for j, agent in enumerate(state.snapshot().agents):
            if j != 7:  # one agent goes down on the way, its lines staying
                record = agent.record
                state.ingest(heartbeat(f"agent-{j}", record.op_codes, record.session_id))
        text = exposition.render()
        assert data_lines(text) == want, step
        assert text == AgentExposition(state).render(), step
    assert samples(text.decode()) == samples(reference(state))
    assert b'operation="o%d\\"d\\\\"} ' in text


def test_a_session_answer_remakes_only_the_session_families_of_its_block():
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, durations=(1.0, 60.0))
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3, "delay_task": 1}))
    exposition = AgentExposition(state)
    exposition.render()
    before = pieces_by_block(exposition)
    sid = state.session_of("observatory.agent-1")
    crashed = session_answer("delay_task", 1, "done", False, "CRASH: boom")
    state.set_session("observatory.agent-1", sid, "delay_task", crashed)
    text = exposition.render().decode()
    after = pieces_by_block(exposition)
    assert all(after[1][f] is before[1][f] for f in before[1])
    remade = {f for f in after[0] if after[0][f] is not before[0].get(f)}
    assert remade == {
        INDEX[name]
        for name in (
            "ocs_op_session_start_timestamp_seconds",
            "ocs_op_session_end_timestamp_seconds",
            "ocs_op_runs",
            "ocs_op_session_last_message_timestamp_seconds",
            "ocs_op_session_duration_seconds",
        )
    }
    crashes = 'ocs_op_runs_total{agent_address="observatory.agent-1",instance_id="agent-1",'
    crashes += 'agent_class="FakeDataAgent",operation="delay_task",outcome="crashed"} 1.0'
    assert crashes in text.splitlines()
    assert samples(text) == samples(reference(state))


def change(state: AgentState, rng: random.Random, i: int, step: int, ops: list, kept: bool) -> bool:
    """Changes agent-``i`` in one of the ways an agent changes; returns whether it keeps
    heartbeating from now on."""
    kind = rng.randrange(8)
    if kind == 0:  # operations come, go and change state
        chosen = rng.sample(ops, rng.randint(0, len(ops)))
        state.ingest(heartbeat(f"agent-{i}", {op: rng.randint(1, 8) for op in chosen}))
    elif kind == 1:  # a restart, with another class
        state.ingest(heartbeat(f"agent-{i}", {"acq": 1}, f"{step}.5", f"C{step % 3}"))
    elif kind == 2:
        session = state.session_of(f"observatory.agent-{i}")
        types = {op: rng.choice(["task", "process"]) for op in ops}
        state.set_op_types(f"observatory.agent-{i}", session, types)
    elif kind == 3:  # goes silent, later expires
        return False
    elif kind == 4:  # a feed heard first, or declaring something else
        fresh_time = rng.choice([None, 5, 180.5])
        feed(
            state,
            i,
            rng.choice(["readings", 'we"ird%s\\', "chatter"]),
            rng.random() < 0.5,
            fresh_time,
        )
    elif kind >= 6:  # a session starts, ends, or is seen again
        a_session(state, rng, f"agent-{i}")
    else:
        return True
    return kept


def feed(state: AgentState, i: int, name: str, record: bool = True, fresh_time=None) -> None:
    """A message of agent-``i``'s feed ``name`` in its current session."""
    address = f"observatory.agent-{i}"
    params = {} if fresh_time is None else {"fresh_time": fresh_time}
    state.ingest_feed(feed_payload(address, name, [1], record, params, state.session_of(address)))


def feed_again(state: AgentState, i: int) -> None:
    """A message of each of agent-``i``'s feeds, declaring what it did: counts and times
    move, nothing else."""
    for agent in state.snapshot().agents:
        if agent.address == f"observatory.agent-{i}":
            for name, (record, fresh_time) in agent.record.feeds.items():
                feed(state, i, name, record, fresh_time)


def again(state: AgentState, i: int) -> list:
    """The agent's last heartbeat again: it changes nothing but the time."""
    views = {view.address: view for view in state.snapshot().agents}
    agent = views.get(f"observatory.agent-{i}")
    if agent is None or not agent.heard:
        return heartbeat(f"agent-{i}", {"acq": 3})
    record = agent.record  # its op codes as heard, not EXPIRED while down
    return heartbeat(f"agent-{i}", dict(record.op_codes), record.session_id, record.agent_class)


def test_the_cyclic_collector_is_paused_while_views_live_and_resumed_after(monkeypatch):
    state = make_state(FakeClock(), 3)
    exposition = AgentExposition(state)
    seen = []
    snapshot = state.snapshot

    def watched_snapshot():
        seen.append(gc.isenabled())
        return snapshot()

    monkeypatch.setattr(state, "snapshot", watched_snapshot)
    assert gc.isenabled()
    exposition.render()
    assert seen == [False] and gc.isenabled()

    def failing_snapshot():
        raise RuntimeError("boom")

    monkeypatch.setattr(state, "snapshot", failing_snapshot)
    with pytest.raises(RuntimeError):
        exposition.render()
    assert gc.isenabled()
    gc.disable()  # a process that turned it off itself keeps it off
    try:
        monkeypatch.setattr(state, "snapshot", snapshot)
        exposition.render()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_listed_agent_first_heard_gets_its_time_lines_in_place():
    """Its heartbeat time and gap lines are spliced in between its neighbours', and later
    splices in the same block still find every agent's lines."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time)
    state.ingest(heartbeat("agent-0", {"acq": 3}))
    state.set_expected([ExpectedAgent("quiet", "Listed", "host-b", True)])
    for i in range(1, 6):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state)
    timed = [line for line in exposition.render().splitlines() if b"heartbeat_" in line]
    assert timed and not [line for line in timed if b'instance_id="quiet"' in line]
    clock.advance(1)
    state.ingest(heartbeat("quiet", {"acq": 3}))  # heard: spliced
    assert exposition.render() == AgentExposition(state).render()
    for i in (3, 0, 5):  # later splices around it
        clock.advance(1)
        state.ingest(heartbeat(f"agent-{i}", {"acq": 6}))
        assert exposition.render() == AgentExposition(state).render(), i
    assert len(exposition._blocks) == 1


def _code_strings(module) -> set[str]:
    """The string literals of a module's code, docstrings left out."""
    tree = ast.parse(inspect.getsource(module))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    }


def test_both_renderers_take_every_family_from_the_table():
    """A family is added in one place: neither renderer names one, and both render the
    table's families in its order."""
    from exporter.render import exposition, lines
    from testbed import reference as collector

    for module in (exposition, lines, collector):
        assert not [s for s in _code_strings(module) if "ocs_" in s], module.__name__
    state = make_state(FakeClock(), 5)
    for durations in (False, True):
        state.durations = (1.0, 10.0) if durations else None
        for op_state in (False, True):
            table = [family.name for family in families(op_state, durations)]
            fast = AgentExposition(state, op_state=op_state).render(openmetrics=True).decode()
            assert [f.name for f in parse_om(fast + "# EOF\n")] == table
            slow = reference(state, op_state=op_state)
            assert [f.name for f in parse_text(slow)] == table
    assert "ocs_op_session_duration_seconds" in table and "ocs_op_runs" in table


def test_after_runs_on_the_render_thread_once_each_response_is_handed_over():
    """``after`` (the service hands freed heap pages back there) follows every scrape, on the
    same ``run`` as the rendering, after the response, and also after a failed one."""
    calls = []

    def run(fn, *args):
        calls.append(getattr(fn, "__name__", "after"))
        return defer.maybeDeferred(fn, *args)

    metrics = page(FakeClock())
    metrics.run, metrics.after = run, lambda: calls.append("trimmed")
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"accept-encoding", [b"gzip"])
    assert metrics.render_GET(request) is server.NOT_DONE_YET
    assert request.finished and one_member(b"".join(request.written)).startswith(b"# HELP")
    assert calls == ["body", "<lambda>", "trimmed"]

    def broken(openmetrics, compress):
        raise RuntimeError("boom")

    calls.clear()
    metrics.body = broken
    failing = DummyRequest([b""])
    metrics.render_GET(failing)
    assert failing.responseCode == 500 and calls == ["broken", "<lambda>", "trimmed"]


def feed_lines(text: bytes) -> dict[tuple[str, str, str], float]:
    """The feed samples: (family, instance id, feed) -> value."""
    return {
        (name, labels["instance_id"], labels["feed"]): value
        for name, items, value in samples(text.decode())
        if name.startswith("ocs_feed_")
        for labels in [dict(items)]
    }


def test_feeds_coming_changing_moving_and_going_remake_only_the_feed_families():
    """Feeds heard first and declaring something else remake the feed families of their
    block only; messages alone (counts and times moving) remake nothing; a restart without
    a feed and a forgotten agent take their feeds' lines. After each step the output equals a
    fresh renderer's and the reference's."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=30)
    for i in range(2 * BLOCK_SIZE):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    exposition = AgentExposition(state)

    def render() -> bytes:
        text = exposition.render()
        assert text == AgentExposition(state).render()
        assert samples(text.decode()) == samples(reference(state))
        return text

    render()
    before = pieces_by_block(exposition)
    feed(state, 1, "readings", True, 5)
    feed(state, 1, "chatter", False)
    text = render()
    after = pieces_by_block(exposition)
    assert all(after[1][f] is before[1][f] for f in before[1])
    remade = {f for f in after[0] if after[0][f] is not before[0].get(f)}
    assert remade == {INDEX["ocs_feed_info"], INDEX["ocs_feed_fresh_time_seconds"]}
    start = clock.wall
    assert feed_lines(text) == {
        ("ocs_feed_info", "agent-1", "readings"): 1.0,
        ("ocs_feed_info", "agent-1", "chatter"): 1.0,
        ("ocs_feed_fresh_time_seconds", "agent-1", "readings"): 5.0,
        ("ocs_feed_messages_total", "agent-1", "readings"): 1.0,
        ("ocs_feed_messages_total", "agent-1", "chatter"): 1.0,
        ("ocs_feed_last_message_timestamp_seconds", "agent-1", "readings"): start,
        ("ocs_feed_last_message_timestamp_seconds", "agent-1", "chatter"): start,
    }
    assert b'feed="chatter",record="false"} 1.0\n' in text

    # Messages alone: counts and times move between scrapes, no block makes a line again.
    before, keys = pieces_by_block(exposition), [block.key for block in exposition._blocks]
    clock.advance(1.25)
    for _ in range(3):
        feed(state, 1, "readings", True, 5.0)
    lines = feed_lines(render())
    assert all(block.key is key for block, key in zip(exposition._blocks, keys, strict=True))
    assert pieces_by_block(exposition) == before
    assert lines["ocs_feed_messages_total", "agent-1", "readings"] == 4.0
    assert lines["ocs_feed_last_message_timestamp_seconds", "agent-1", "readings"] == clock.wall
    assert lines["ocs_feed_last_message_timestamp_seconds", "agent-1", "chatter"] == start

    # Another declaration: the same count, other info and fresh time lines.
    feed(state, 1, "readings", False)
    lines = feed_lines(text := render())
    assert lines["ocs_feed_messages_total", "agent-1", "readings"] == 5.0
    assert ("ocs_feed_fresh_time_seconds", "agent-1", "readings") not in lines
    assert b'feed="readings",record="false"} 1.0\n' in text

    # Another agent's feed in the other block, then agent-1 restarts without its feeds.
    feed(state, BLOCK_SIZE + 2, "readings")
    render()
    state.ingest(heartbeat("agent-1", {"acq": 3}, session_id="2.5"))
    feed(state, 1, "chatter", False)
    lines = feed_lines(render())
    assert {key for key in lines if key[1] == "agent-1"} == {
        ("ocs_feed_info", "agent-1", "chatter"),
        ("ocs_feed_messages_total", "agent-1", "chatter"),
        ("ocs_feed_last_message_timestamp_seconds", "agent-1", "chatter"),
    }
    assert lines["ocs_feed_messages_total", "agent-1", "chatter"] == 1.0
    assert lines["ocs_feed_messages_total", f"agent-{BLOCK_SIZE + 2}", "readings"] == 1.0

    # Everyone but agent-1 is forgotten: their feeds go with them.
    clock.advance(31)
    state.ingest(heartbeat("agent-1", {"acq": 3}, session_id="2.5"))
    feed(state, 1, "chatter", False)
    lines = feed_lines(render())
    assert {key[1] for key in lines} == {"agent-1"}
    assert lines["ocs_feed_messages_total", "agent-1", "chatter"] == 2.0


def hm_answer(children: list, files: dict | None = None, orphans: int = 0) -> list:
    """A HostManager's manager process's status answer listing ``children``."""
    answer = session_answer("manager", 1, data={})
    answer[2]["data"] = {
        "child_states": children,
        "config_parse_status": files or {"[SCF]": [True, 1_800_000_000.5, ""]},
        "orphans": {f"c{i}": {} for i in range(orphans)},
    }
    return answer


def hm_child(instance_id: str, target: str, stability: float = 1.0) -> dict:
    return {
        "instance_id": instance_id,
        "agent_class": "FakeDataAgent[d]",
        "target_state": target,
        "next_action": "up",
        "stability": stability,
    }


def test_managed_agents_and_hostmanagers_spliced_match_fresh_and_the_reference():
    """HostManagers list agents (heard, configured, never heard), flip targets, move
    stabilities, claim the same agent, restart and end their sessions; the hostname comes
    from get_api. Spliced output equals a fresh renderer's byte for byte after each step,
    and the reference's samples."""
    clock = FakeClock()
    state = AgentState("observatory", 5.0, clock.monotonic, clock.time, forget_after=60)
    state.set_expected([ExpectedAgent("agent-1", "Listed", "host-a", True)])
    n = BLOCK_SIZE + 3
    for i in range(n):
        state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
    hms = {"hm-a": "1795518400.5", "hm-b": "1795518401.5"}

    def hm_heard(name: str) -> None:
        state.ingest(heartbeat(name, {"manager": 3}, hms[name], agent_class="HostManager"))

    for name in hms:
        hm_heard(name)
    state.set_op_types("observatory.agent-2", "1795518440.6412797", {"acq": "process"}, 'h"1')
    exposition = AgentExposition(state)
    rng = random.Random(5)
    targets = ["up", "down", "passive"]
    for step in range(30):
        for name, sid in hms.items():
            children = [
                hm_child(f"agent-{i}", rng.choice(targets), rng.choice([1.0, 1.0, 0.5]))
                for i in rng.sample(range(n), 4)
            ]
            children.append(hm_child(f"ghost-{name}", rng.choice(targets)))
            files = {"[SCF]": [rng.random() < 0.8, 1_800_000_000.0 + step, ""]}
            address = f"observatory.{name}"
            if step % 11 == 10:  # its session ends
                state.set_session(address, sid, "manager", hm_answer([]))
                ended = session_answer("manager", 1, "done", True)
                state.set_session(address, sid, "manager", ended)
            else:
                answer = hm_answer(children, files, rng.randint(0, 2))
                state.set_session(address, sid, "manager", answer)
        if step % 7 == 3:  # hm-b restarts
            hms["hm-b"] = f"17955185{step:02d}.5"
            hm_heard("hm-b")
        clock.advance(1.0)
        for i in range(n):
            state.ingest(heartbeat(f"agent-{i}", {"acq": 3}))
        for name in hms:
            hm_heard(name)
        assert exposition.render() == AgentExposition(state).render(), step
        assert samples(exposition.render().decode()) == samples(reference(state)), step
    names = {name for name, _, _ in samples(reference(state))}
    assert {"ocs_agent_target_up", "ocs_agent_stability", "ocs_agent_managers"} <= names
    assert {
        "ocs_hostmanager_config_parse_success",
        "ocs_hostmanager_config_parse_timestamp_seconds",
        "ocs_hostmanager_orphans",
    } <= names
    info = [s for s in samples(reference(state)) if s[0] == "ocs_agent_info"]
    assert any(("hostname", 'h"1') in labels for _, labels, _ in info)


def test_a_body_with_hostmanager_series_passes_promtool():
    metrics = page(FakeClock())
    state = metrics.agents.state
    agent = state.snapshot().agents[0]
    state.ingest(heartbeat("hm1", {"manager": 3}, "1795518400.5", agent_class="HostManager"))
    files = {"[SCF]": [True, 1.0, ""], "/srv/docker-compose.yml": [False, 2.0, "bad"]}
    children = [hm_child(agent.instance_id, "down", 0.25), hm_child("ghost", "up")]
    state.set_session("observatory.hm1", "1795518400.5", "manager", hm_answer(children, files, 1))
    state.set_session("observatory.hm1", "1795518400.5", "manager", hm_answer([{}]))  # invalid
    body = metrics.body(openmetrics=False, compress=False)
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    text = body.decode()
    assert (
        'ocs_agent_target_up{agent_address="observatory.ghost",instance_id="ghost",'
        'agent_class="FakeDataAgent",manager="hm1"} 1.0'
    ) in text
    assert 'ocs_hostmanager_config_parse_success{agent_address="observatory.hm1"' in text
    assert 'ocs_exporter_manager_data_invalid_total{reason="bad_child"} 1.0' in text
