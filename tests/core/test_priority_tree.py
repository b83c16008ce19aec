"""The RFC 7540 priority tree under every sequence of signals a client can
send (issue 11): it stays a tree, every stream reaches the root, the
scheduler and the tree agree on which streams exist, and a decision is
still made, in bounded work. First on the scheduler alone, then over a
socket, with bystanders (:mod:`tests.support.attack_harness`).

``priority`` 2.0.0 alone fails this: making a stream depend on one of its
own dependents moves that dependent without its dependents while leaving
them listed under it too; a later exclusive move then makes a stream its
own parent, and removing that stream loops for ever, allocating.

``TRIO_H2_FUZZ_EXAMPLES`` sets the examples (as in tests/attacks/test_fuzz.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import hypothesis.strategies as st
import pytest
from h2.settings import SettingCodes
from hypothesis import given, settings
from priority.priority import PriorityTree

from tests.support.attack_client import Attacker
from tests.support.attack_harness import (
    CALM,
    FLOOD_LIMIT,
    App,
    assert_stopped,
    handlers_finish,
    start,
    still_serves,
    watched,
)
from tests.support.frames import MAX_WINDOW, headers, priority, rst_stream, window_update
from tests.support.fuzzing import EXAMPLES, FUZZ_SETTINGS
from tests.support.requests import request_block
from trio_h2._core import scheduler as scheduler_module
from trio_h2._core.priority_field import ExtensiblePriority
from trio_h2._core.scheduler import MAX_DEPTH, Scheduler
from trio_h2.testing import H2ServerFactory

MAX_STREAMS = 8
MAX_IDLE = 4
IDS = range(1, 40, 2)
"""Client stream ids the sequences use: few, so that signals meet the same streams."""


def check_tree(scheduler: Scheduler) -> None:
    """The invariants, read from the scheduler's private state and from the
    package's: a tree, rooted, consistent with its heaps, agreeing with the
    scheduler on its streams, shallow enough for the package's recursion."""
    known = set(scheduler._entries) | set(scheduler._idle)
    assert len(scheduler._idle) <= scheduler._max_idle
    assert not set(scheduler._entries) & set(scheduler._idle)
    shape = scheduler._shape
    if shape is not None:
        children = shape.children()
        assert set(children) - {0} == known
        for stream_id, dependents in children.items():
            assert shape.child_count(stream_id) == len(dependents)
            assert all(shape.parent(child) == stream_id for child in dependents)
            assert not stream_id or shape.ancestry(stream_id, 0, len(shape)), (
                f"{stream_id} misses the root")
    tree = scheduler._tree
    if tree is None:
        return
    streams = tree._streams  # priority's private table: {id: Stream}, 0 the root
    assert set(streams) - {0} == known
    listed = []
    for node in streams.values():
        assert sorted(c.stream_id for c in node.children) == sorted(
            s.stream_id for _, s in node.child_queue), f"{node}'s heap disagrees"
        for child in node.children:
            assert child.parent is node, f"{child} is listed under {node}, not its parent"
            listed.append(child.stream_id)
    assert sorted(listed) == sorted(known), "a stream listed under two parents, or none"
    for stream_id, node in streams.items():
        depth = 0
        while node.stream_id != 0:
            node = node.parent
            depth += 1
            assert depth <= MAX_DEPTH, f"stream {stream_id} deeper than {MAX_DEPTH} (or a loop)"
        if shape is not None and stream_id and not scheduler._view_flattened:
            assert streams[stream_id].parent.stream_id == shape.parent(stream_id)
            assert streams[stream_id].weight == shape.weight[stream_id]


# ------------------------------------------------------------- the model


@dataclass(frozen=True)
class Op:
    kind: str
    stream_id: int
    depends_on: int = 0
    weight: int = 16
    exclusive: bool = False
    flag: bool = False
    urgency: int = 3


OPS = st.one_of(
    st.builds(Op, st.just("add"), st.sampled_from(IDS), st.sampled_from([0, *IDS]),
              st.integers(1, 256), st.booleans(), st.booleans()),
    st.builds(Op, st.just("priority"), st.sampled_from(IDS), st.sampled_from([0, *IDS]),
              st.integers(1, 256), st.booleans()),
    st.builds(Op, st.just("priority"), st.sampled_from(IDS), st.sampled_from([0, *IDS]),
              st.integers(1, 256), st.booleans()),
    st.builds(Op, st.just("ready"), st.sampled_from(IDS), flag=st.booleans()),
    st.builds(Op, st.just("ready"), st.sampled_from(IDS), flag=st.just(True)),
    st.builds(Op, st.just("extensible"), st.sampled_from(IDS), flag=st.booleans(),
              urgency=st.integers(0, 7)),
    st.builds(Op, st.just("remove"), st.sampled_from(IDS)),
    st.builds(Op, st.just("next"), st.integers(0, 16384), flag=st.booleans()),
)


class Client:
    """What a client can make the scheduler do, through H2Core's
    calls: open a stream once (HEADERS, with or without a dependency),
    reprioritize any stream (open, idle, closed, unknown; onto any stream,
    itself included: the scheduler must survive what h2 would reject),
    readiness, RFC 9218 signals, close, decisions."""

    def __init__(self) -> None:
        self.scheduler = Scheduler(max_streams=MAX_STREAMS, max_idle=MAX_IDLE)
        self.ready: dict[int, bool] = {}
        self.used: set[int] = set()

    def apply(self, op: Op) -> None:
        scheduler, ready = self.scheduler, self.ready
        open_id = op.stream_id in ready
        if op.kind == "add":
            if op.stream_id in self.used or len(ready) >= MAX_STREAMS:
                return
            extensible = ExtensiblePriority(op.urgency, True) if op.flag else None
            scheduler.add(op.stream_id, depends_on=op.depends_on, weight=op.weight,
                          exclusive=op.exclusive, extensible=extensible)
            self.used.add(op.stream_id)
            ready[op.stream_id] = False
        elif op.kind == "priority":
            scheduler.reprioritize(op.stream_id, depends_on=op.depends_on, weight=op.weight,
                                   exclusive=op.exclusive)
        elif op.kind == "ready" and open_id:
            scheduler.set_ready(op.stream_id, op.flag)
            ready[op.stream_id] = op.flag
        elif op.kind == "extensible" and open_id:
            scheduler.set_extensible(op.stream_id, ExtensiblePriority(op.urgency, op.flag))
        elif op.kind == "remove" and open_id:
            scheduler.remove(op.stream_id)
            del ready[op.stream_id]
        elif op.kind == "next":
            chosen = scheduler.next()
            if any(ready.values()):
                assert chosen is not None and ready[chosen], f"chose {chosen}"
                scheduler.charge(chosen, op.stream_id, drained=op.flag)
            else:
                assert chosen is None

    def close_all(self) -> None:
        """The connection ends: every open stream is removed."""
        for stream_id in list(self.ready):
            self.scheduler.remove(stream_id)
            del self.ready[stream_id]


@settings(FUZZ_SETTINGS, max_examples=EXAMPLES * 10)  # no sockets: cheap
@given(ops=st.lists(OPS, max_size=60))
def test_random_signals_keep_the_tree_a_tree(ops: list[Op]) -> None:
    client = Client()
    for op in ops:
        client.apply(op)
        check_tree(client.scheduler)
        assert client.scheduler.ready_count == sum(client.ready.values())
    client.close_all()
    check_tree(client.scheduler)



def test_the_four_frames_that_made_a_stream_its_own_parent() -> None:
    """Streams 1, 3 and 5 open; PRIORITY 1 on 0 exclusive, 3 on 1 exclusive,
    1 on 3 (a dependent: 3 moves up first, with 5), 5 on 3 exclusive. RFC
    9113 section 5.3.3 gives 0 -> 3 -> 5 -> 1; then 5 is reset and the
    connection closes."""
    client = Client()
    for stream_id in (1, 3, 5):
        client.apply(Op("add", stream_id))
    for stream_id, depends_on, exclusive in ((1, 0, True), (3, 1, True), (1, 3, False),
                                             (5, 3, True)):
        client.apply(Op("priority", stream_id, depends_on, exclusive=exclusive))
        check_tree(client.scheduler)
    shape = client.scheduler._shape
    assert shape is not None
    assert {s: shape.parent(s) for s in (1, 3, 5)} == {3: 0, 5: 3, 1: 5}
    for stream_id in (1, 3):
        client.apply(Op("ready", stream_id, flag=True))
    assert client.scheduler.next() == 3  # the root of the chain: a decision, and the right one
    client.apply(Op("remove", 5))
    assert 5 not in shape and {s: shape.parent(s) for s in (1, 3)} == {3: 0, 1: 3}
    check_tree(client.scheduler)
    client.close_all()
    check_tree(client.scheduler)


class CountingTree(PriorityTree):
    """The package's tree, counting the calls that change it (all that cost
    more than O(1): each re-heaps a parent's dependents)."""

    changes = 0

    def insert_stream(self, stream_id: int, depends_on: int | None = None, weight: int = 16,
                      exclusive: bool = False) -> None:
        CountingTree.changes += 1
        super().insert_stream(stream_id, depends_on, weight, exclusive)

    def reprioritize(self, stream_id: int, depends_on: int | None = None, weight: int = 16,
                     exclusive: bool = False) -> None:
        CountingTree.changes += 1
        super().reprioritize(stream_id, depends_on, weight, exclusive)

    def remove_stream(self, stream_id: int) -> None:
        CountingTree.changes += 1
        super().remove_stream(stream_id)


def test_work_between_decisions_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever signals arrive between two decisions (one read can hold
    4,681 PRIORITY frames), the package's tree changes at most EAGER_CHANGES
    times; a decision rebuilds it at most once, one insert per stream."""
    monkeypatch.setattr(scheduler_module, "PriorityTree", CountingTree)
    scheduler = Scheduler(max_streams=100, max_idle=100)
    for stream_id in range(1, 200, 2):
        scheduler.add(stream_id, depends_on=stream_id - 2 if stream_id > 1 else 0)
        scheduler.set_ready(stream_id, True)
    rng = random.Random(3)
    for _ in range(20):
        scheduler.next()
        CountingTree.changes = 0
        for _ in range(4681):
            stream_id = rng.randrange(1, 400, 2)
            scheduler.reprioritize(stream_id, depends_on=rng.randrange(0, 400),
                                   weight=rng.randrange(1, 257), exclusive=rng.random() < 0.5)
        assert CountingTree.changes <= scheduler_module.EAGER_CHANGES * 2
        CountingTree.changes = 0
        assert scheduler.next() is not None
        assert CountingTree.changes <= 100 + 100 + 2  # one rebuild: the tree's bound
        check_tree(scheduler)


# ------------------------------------------------------------ over a socket


@pytest.fixture
def app() -> App:
    return App()


UPLOAD = request_block("POST", "/echo")


async def open_uploads(attacker: Attacker, streams: range) -> None:
    """Uploads whose body never comes: their handlers wait, their streams stay open."""
    await attacker.send(b"".join(headers(s, UPLOAD, end_stream=False) for s in streams))


async def test_the_four_frames_over_a_socket(h2_server: H2ServerFactory, app: App) -> None:
    """The four PRIORITY frames that made stream 5 its own parent, then
    RST_STREAM 5 (before the fix: 100% CPU and unbounded memory, the whole
    server stopped), a request on the same connection, and the close
    (which removes every stream from the tree)."""
    server = await start(h2_server, app)
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await open_uploads(attacker, range(1, 7, 2))
        await attacker.send(priority(1, 0, exclusive=True) + priority(3, 1, exclusive=True)
                            + priority(1, 3) + priority(5, 3, exclusive=True) + rst_stream(5))
        assert await still_serves(attacker, 7), attacker.ending.describe()
        await attacker.aclose()
        assert await handlers_finish(app), f"{app.running} handlers still running"


def churn(streams: list[int], count: int, seed: int) -> Iterator[bytes]:
    """Random PRIORITY frames among ``streams``: onto each other (dependents
    included), the root, idle and unknown streams, any weight, exclusive or not."""
    rng = random.Random(seed)
    targets = [0, *streams, 10_001, 10_003, 2**31 - 1]
    for _ in range(count):
        stream_id = rng.choice(streams)
        depends_on = rng.choice([t for t in targets if t != stream_id])
        yield priority(stream_id, depends_on, rng.randrange(1, 257), rng.random() < 0.5)


async def test_priority_churn_among_open_streams(h2_server: H2ServerFactory, app: App) -> None:
    """99 open uploads and 8000 random PRIORITY frames among them (under the
    control-frame budget), resets among them: the connection goes on and
    answers, and closes cleanly."""
    server = await start(h2_server, app)
    streams = list(range(1, 199, 2))
    async with watched(server, app) as watch:
        attacker = await watch.connect()
        await open_uploads(attacker, range(1, 199, 2))

        def frames() -> Iterator[bytes]:
            for i, frame in enumerate(churn(streams, 8000, seed=11)):
                yield frame
                if i % 1000 == 999:  # a reset now and then, within the reset budget
                    yield rst_stream(streams.pop(len(streams) // 2))

        await attacker.flood(frames(), seconds=FLOOD_LIMIT, reading=True)
        assert await still_serves(attacker, 199), attacker.ending.describe()
        await attacker.aclose()
        assert await handlers_finish(app), f"{app.running} handlers still running"


async def test_data_dribble_with_priority_shuffling(h2_server: H2ServerFactory,
                                                   app: App) -> None:
    """CVE-2019-9511 with the tree in play: 50 streams of ``/big`` at a zero
    window, opened one byte at a time, while PRIORITY frames reshuffle them,
    so that every 1-byte DATA frame is a decision in a changed tree. The
    server never sends more than the windows allow, keeps answering (or ends
    the connection with ENHANCE_YOUR_CALM), and closes cleanly."""
    server = await start(h2_server, app)
    streams = list(range(1, 101, 2))
    async with watched(server, app) as watch:
        attacker = await watch.connect(initial_settings=[(SettingCodes.INITIAL_WINDOW_SIZE, 0)])
        await attacker.send(window_update(0, MAX_WINDOW - 65535) + b"".join(
            headers(s, request_block("GET", "/big")) for s in streams))
        shuffle = churn(streams, 4000, seed=12)

        def frames() -> Iterator[bytes]:
            for round_ in range(100):
                for s in streams:
                    yield window_update(s, 1)
                    if s % 5 == round_ % 5:
                        yield next(shuffle)

        await attacker.flood(frames(), seconds=FLOOD_LIMIT, reading=True)
        ending = attacker.ending
        if not await still_serves(attacker, None):
            assert_stopped(ending, CALM, what="data dribble with priority shuffling")
        granted = 100 * len(streams)  # at most: the flood may have stopped early
        assert ending.data_bytes <= granted, (
            f"{ending.data_bytes} bytes of DATA for {granted} bytes of window")
        assert ending.data_bytes > 0
        await attacker.aclose()
        assert await handlers_finish(app), f"{app.running} handlers still running"
