"""Priority decisions of the sans-IO core: RFC 7540 weights and RFC 9218 urgency."""

from __future__ import annotations

import struct

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import PriorityFrame

from tests.support.requests import GET
from tests.support.sansio import Pair
from trio_h2 import Config
from trio_h2._core.exchange import Exchange
from trio_h2._core.priority_field import ExtensiblePriority, parse_priority
from trio_h2._core.scheduler import Scheduler
from trio_h2._core.sendlog import MAX_SENDS


def open_pair(config: Config | None = None) -> Pair:
    """A pair whose client windows never limit the server."""
    pair = Pair(config, client_window=2**31 - 1)
    pair.client.increment_flow_control_window(2**31 - 1 - 65535)
    pair.pump()
    return pair


def run(pair: Pair, producers: dict[Exchange, int], total: int,
        budget: int = 16393) -> dict[int, int]:
    """Producers that refill at once with ``chunk`` bytes whenever their last
    chunk is taken; frame ``total`` bytes; return bytes per stream."""
    for stream, chunk in producers.items():
        if not stream.headers_sent:
            pair.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
        if not stream.in_flight:
            pair.server.offer(stream, b"x" * chunk, end_stream=False)
    sent = {stream.stream_id: 0 for stream in producers}
    while sum(sent.values()) < total:
        done = pair.server.pull(budget)
        pair.server.taken(done)
        for event in pair.client.receive_data(pair.server.data_to_send()):
            if isinstance(event, h2.events.DataReceived):
                sent[event.stream_id] += event.flow_controlled_length
        for stream in done:
            pair.server.offer(stream, b"x" * producers[stream], end_stream=False)
    return sent


def request(pair: Pair, *extra: tuple[bytes, bytes], **priority: int | bool) -> Exchange:
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(
        stream_id, [*GET, *extra], end_stream=True,
        priority_weight=priority.get("weight"), priority_depends_on=priority.get("depends_on"),
        priority_exclusive=priority.get("exclusive"))
    pair.pump()
    return pair.server.streams[stream_id]


def priority_update(pair: Pair, stream_id: int, value: bytes, on_stream: int = 0) -> None:
    payload = struct.pack(">I", stream_id) + value
    frame = struct.pack(">I", len(payload))[1:] + bytes([0x10, 0]) + struct.pack(">I", on_stream)
    pair.pump()
    pair.server.receive_data(frame + payload)


@pytest.mark.parametrize("chunk", [100_000, 16384, 5000])
def test_weights_share_bytes_whatever_the_chunk_size(chunk: int) -> None:
    # A producer whose chunks are smaller than a frame must not lose its
    # share: turns are charged by bytes (RFC 7540 section 5.3.2).
    pair = open_pair()
    heavy = request(pair, weight=256)
    light = request(pair, weight=32)
    sent = run(pair, {heavy: chunk, light: chunk}, total=9 * 16384 * 40)
    share = sent[heavy.stream_id] / (sent[heavy.stream_id] + sent[light.stream_id])
    assert share == pytest.approx(8 / 9, abs=0.02)


def test_three_weights() -> None:
    pair = open_pair()
    streams = [request(pair, weight=w) for w in (200, 100, 50)]
    sent = run(pair, {s: 16384 for s in streams}, total=16384 * 350)
    total = sum(sent.values())
    for stream, ideal in zip(streams, (4 / 7, 2 / 7, 1 / 7), strict=True):
        assert sent[stream.stream_id] / total == pytest.approx(ideal, abs=0.02)


def test_dependency_on_an_idle_stream() -> None:
    pair = open_pair()
    for stream_id, weight in ((101, 200), (103, 50)):
        frame = PriorityFrame(stream_id, depends_on=0, stream_weight=weight - 1)
        pair.server.receive_data(frame.serialize())
    a = request(pair, depends_on=101, weight=16)
    b = request(pair, depends_on=103, weight=16)
    sent = run(pair, {a: 16384, b: 16384}, total=16384 * 100)
    assert sent[a.stream_id] / sum(sent.values()) == pytest.approx(0.8, abs=0.02)


def test_urgency_is_strict() -> None:
    pair = open_pair()
    low = request(pair, (b"priority", b"u=4"))
    high = request(pair, (b"priority", b"u=1"))
    plain = request(pair)  # no signal: the RFC 7540 tree, at urgency 3
    sent = run(pair, {low: 16384, high: 16384, plain: 16384}, total=16384 * 20)
    assert sent == {high.stream_id: 16384 * 20, low.stream_id: 0, plain.stream_id: 0}


def test_same_urgency_non_incremental_in_stream_order_incremental_shared() -> None:
    pair = open_pair()
    first, second = request(pair, (b"priority", b"u=5")), request(pair, (b"priority", b"u=5"))
    sent = run(pair, {second: 16384, first: 16384}, total=16384 * 10)
    assert sent == {first.stream_id: 16384 * 10, second.stream_id: 0}
    pair = open_pair()
    shared = [request(pair, (b"priority", b"u=5, i")) for _ in range(3)]
    sent = run(pair, {s: 16384 for s in shared}, total=16384 * 30)
    assert sorted(sent.values()) == [16384 * 10] * 3


def test_ignoring_priorities_is_round_robin_and_can_be_undone() -> None:
    # The demo's comparison (trio_h2.scheduler): every stream as u=3, i.
    pair = open_pair()
    urgent = request(pair, (b"priority", b"u=0"))
    plain = request(pair, weight=256)  # the RFC 7540 tree
    late = request(pair, (b"priority", b"u=7"))
    producers = {urgent: 16384, plain: 16384, late: 16384}
    pair.server.scheduler_control.ignore_priorities()
    sent = run(pair, producers, total=16384 * 30)
    assert sorted(sent.values()) == [16384 * 10] * 3
    # Back to the signals, with the streams ready as they are: strict urgency.
    pair.server.scheduler_control.ignore_priorities(False)
    again = run(pair, producers, total=16384 * 10)
    assert again == {urgent.stream_id: 16384 * 10, plain.stream_id: 0, late.stream_id: 0}


def test_the_send_log_is_bounded_and_notes_each_frames_priority() -> None:
    pair = open_pair()
    control = pair.server.scheduler_control
    assert control.record() is None  # off until the app asks
    control.start_recording()
    stream = request(pair, (b"priority", b"u=5"))
    run(pair, {stream: 16384}, total=16384 * 2)
    priority_update(pair, stream.stream_id, b"u=1, i")
    run(pair, {stream: 16384}, total=16384 * (MAX_SENDS + 10))
    record = control.record()
    assert record is not None
    assert len(record.sends) == MAX_SENDS and record.frames_left_out >= 10
    assert [s.signal for s in record.sends[:2]] == [ExtensiblePriority(5, False)] * 2
    assert record.sends[-1].signal == ExtensiblePriority(1, True)
    assert {s.size for s in record.sends} == {16384}
    assert [(n.stream_id, n.priority_field) for n in record.streams] == [
        (stream.stream_id, "u=5")]
    control.stop_recording()
    assert control.record() is None


def test_priority_update_overrides_and_may_come_first() -> None:
    pair = open_pair()
    priority_update(pair, 3, b"u=0")  # names stream 3 before it opens
    a = request(pair, (b"priority", b"u=2"))
    b = request(pair, (b"priority", b"u=2"))
    assert b.stream_id == 3 and b.priority["urgency"] == 0
    sent = run(pair, {a: 16384, b: 16384}, total=16384 * 5)
    assert sent[b.stream_id] == 16384 * 5
    priority_update(pair, b.stream_id, b"u=6")  # mid-flight: now a goes first
    sent = run(pair, {a: 16384, b: 16384}, total=16384 * 5)
    assert sent == {a.stream_id: 16384 * 5, b.stream_id: 0}


@pytest.mark.parametrize(("payload_stream", "on_stream", "extra", "code"), [
    (1, 5, b"u=1", ErrorCodes.PROTOCOL_ERROR),  # not on stream 0
    (0, 0, b"u=1", ErrorCodes.PROTOCOL_ERROR),  # names stream 0
])
def test_bad_priority_update_is_a_connection_error(
    payload_stream: int, on_stream: int, extra: bytes, code: ErrorCodes
) -> None:
    pair = open_pair()
    request(pair)
    priority_update(pair, payload_stream, extra, on_stream=on_stream)
    assert pair.server.terminated and pair.server.error is not None
    assert pair.server.error.error_code == code


def test_short_priority_update_is_frame_size_error() -> None:
    pair = open_pair()
    pair.server.receive_data(b"\x00\x00\x02\x10\x00\x00\x00\x00\x00\x00\x01")
    assert pair.server.error is not None
    assert pair.server.error.error_code == ErrorCodes.FRAME_SIZE_ERROR


def test_response_header_overrides_the_request_priority() -> None:
    pair = open_pair()
    a = request(pair, (b"priority", b"u=1"))
    b = request(pair, (b"priority", b"u=2"))
    pair.server.send_headers(a, [(b":status", b"200"), (b"priority", b"u=6")], end_stream=False)
    sent = run(pair, {a: 16384, b: 16384}, total=16384 * 5)
    assert sent == {a.stream_id: 0, b.stream_id: 16384 * 5}
    assert pair.server.scheduler.extensible(a.stream_id) == ExtensiblePriority(6, False)


def test_priority_frames_for_idle_streams_stay_bounded() -> None:
    # Placeholders for idle streams are evicted past max(max_concurrent_streams,
    # 16), as nghttp2 does, so a flood of PRIORITY frames cannot grow the tree.
    pair = Pair(Config(max_concurrent_streams=20))
    for stream_id in range(101, 101 + 2 * 5000, 2):
        frame = PriorityFrame(stream_id, depends_on=stream_id - 2, stream_weight=15)
        pair.server.receive_data(frame.serialize())
    assert not pair.server.terminated
    assert len(pair.server.scheduler._idle) == 20
    stream = pair.request(GET)
    pair.respond(stream, b"ok")
    pair.drain_output()
    assert stream.closed and not stream.disconnected


def test_a_deep_dependency_chain_is_served_not_fatal() -> None:
    # priority raises PriorityLoop past 100 levels (falsely) and recurses;
    # the stream still gets served, at the root.
    pair = open_pair(Config(max_concurrent_streams=200))
    streams = []
    for _ in range(150):
        parent = streams[-1].stream_id if streams else 0
        streams.append(request(pair, depends_on=parent, weight=16, exclusive=True))
    assert not pair.server.terminated
    sent = run(pair, {streams[-1]: 16384}, total=16384 * 2)
    assert sent[streams[-1].stream_id] == 16384 * 2


def test_rfc7540_signals_can_be_turned_off() -> None:
    pair = Pair(Config(rfc7540_priorities=False))
    changed = next(e for e in pair.events if isinstance(e, h2.events.RemoteSettingsChanged))
    assert changed.changed_settings[0x9].new_value == 1  # SETTINGS_NO_RFC7540_PRIORITIES
    stream = request(pair, weight=256, depends_on=0, exclusive=True)
    assert stream.priority == {"scheme": "rfc7540", "weight": 16, "depends_on": 0,
                               "exclusive": False}


def test_scope_extension_describes_the_request_priority() -> None:
    pair = open_pair()
    assert request(pair, (b"priority", b"u=2, i")).priority == {
        "scheme": "rfc9218", "urgency": 2, "incremental": True}
    assert request(pair, weight=200, depends_on=1).priority == {
        "scheme": "rfc7540", "weight": 200, "depends_on": 1, "exclusive": False}


@pytest.mark.parametrize(("value", "expected"), [
    ("u=1, i", (1, True)), ("u=5", (5, False)), ("i", (3, True)), ("u=9", (3, False)),
    ("u=2;x=1, i=?0", (2, False)), ("nonsense, u=0", (0, False)), ("u=a", (3, False)),
    (b"u=7,i=?1", (7, True)), ("", (3, False)),
])
def test_parse_priority_field(value: str | bytes, expected: tuple[int, bool]) -> None:
    assert parse_priority(value) == ExtensiblePriority(*expected)


def test_flat_fast_path_keeps_its_heap_bounded() -> None:
    # Streams that turn ready and blocked again without being chosen leave
    # stale heap entries; they are compacted away.
    scheduler = Scheduler(max_streams=10, max_idle=16)
    for stream_id in (1, 3):
        scheduler.add(stream_id)
    scheduler.set_ready(1, True)
    for _ in range(10_000):
        scheduler.set_ready(3, True)
        scheduler.set_ready(3, False)
    assert len(scheduler._flat_heap) <= 4 * 1 + 64
    assert [scheduler.next() for _ in range(3)] == [1, 1, 1]


def test_a_dependency_leaves_the_fast_path_with_the_same_shares() -> None:
    pair = open_pair()
    a = request(pair, weight=256)
    b = request(pair, weight=32)
    assert pair.server.scheduler._shape is None  # the flat fast path
    c = request(pair, depends_on=a.stream_id, weight=16)  # a's child: waits for a
    assert pair.server.scheduler._shape is not None
    sent = run(pair, {a: 16384, b: 16384, c: 16384}, total=9 * 16384 * 20)
    assert sent[c.stream_id] == 0
    assert sent[a.stream_id] / (sent[a.stream_id] + sent[b.stream_id]) == pytest.approx(
        8 / 9, abs=0.02)


@pytest.mark.parametrize("seed", range(5))
def test_random_signals_keep_the_ready_count_and_decisions_consistent(seed: int) -> None:
    """Whatever mix of RFC 7540 and RFC 9218 signals, readiness changes,
    removals and switches of the round-robin mode: the ready count is the
    number of ready streams, and a decision names a ready stream exactly when
    there is one."""
    import random

    rng = random.Random(seed)
    scheduler = Scheduler(max_streams=50, max_idle=16)
    ready: dict[int, bool] = {}
    next_id = 1
    for _ in range(3000):
        action = rng.random()
        if action < 0.15 and len(ready) < 50:
            depends = rng.choice([0, *ready]) if rng.random() < 0.3 else 0
            extensible = (ExtensiblePriority(rng.randrange(8), rng.random() < 0.5)
                          if rng.random() < 0.5 else None)
            scheduler.add(next_id, depends_on=depends, weight=rng.randrange(1, 257),
                          extensible=extensible)
            ready[next_id] = False
            next_id += 2
        elif action < 0.25 and ready:
            stream_id = rng.choice(list(ready))
            scheduler.remove(stream_id)
            del ready[stream_id]
        elif action < 0.3 and ready:
            stream_id = rng.choice(list(ready))
            scheduler.set_extensible(stream_id, ExtensiblePriority(rng.randrange(8), True))
        elif action < 0.31:
            scheduler.ignore_priorities(not scheduler.priorities_ignored)
        elif ready:
            stream_id = rng.choice(list(ready))
            ready[stream_id] = rng.random() < 0.6
            scheduler.set_ready(stream_id, ready[stream_id])
        assert scheduler.ready_count == sum(ready.values())
        chosen = scheduler.next()
        if any(ready.values()):
            assert chosen is not None and ready[chosen]
            scheduler.charge(chosen, rng.randrange(1, 16385), drained=rng.random() < 0.2)
        else:
            assert chosen is None


def test_a_refilling_stream_is_waited_for_only_when_its_turn_comes() -> None:
    """Equal weights: after A's chunk runs out, B and C take their turns as
    they would anyway; then A would be chosen, so the sender must wait for it."""
    scheduler = Scheduler(max_streams=10, max_idle=16)
    for stream_id in (1, 3, 5):
        scheduler.add(stream_id)
        scheduler.set_ready(stream_id, True)
    assert scheduler.next() == 1
    scheduler.charge(1, 16384, drained=True)  # a full turn: nothing owed
    scheduler.set_ready(1, False)
    assert not scheduler.would_choose(1)
    assert scheduler.next() == 3
    scheduler.charge(3, 16384, drained=False)
    assert not scheduler.would_choose(1)
    assert scheduler.next() == 5
    scheduler.charge(5, 16384, drained=False)
    assert scheduler.would_choose(1)  # 1, 3, 5 have had one turn each: 1 is next


def test_a_stream_cut_short_mid_turn_is_always_waited_for() -> None:
    scheduler = Scheduler(max_streams=10, max_idle=16)
    for stream_id in (1, 3, 5):
        scheduler.add(stream_id)
        scheduler.set_ready(stream_id, True)
    assert scheduler.next() == 1
    scheduler.charge(1, 5000, drained=True)  # owed the rest of its turn
    scheduler.set_ready(1, False)
    assert scheduler.would_choose(1)


def test_with_one_other_stream_the_refilling_one_is_always_waited_for() -> None:
    # A single ready stream is served without its virtual time moving, so
    # letting it run on would give it turns it has not paid for.
    scheduler = Scheduler(max_streams=10, max_idle=16)
    for stream_id in (1, 3):
        scheduler.add(stream_id, weight=1)
        scheduler.set_ready(stream_id, True)
    assert scheduler.next() == 1
    scheduler.charge(1, 16384, drained=True)
    scheduler.set_ready(1, False)
    assert scheduler.would_choose(1)
