"""Cost of one scheduling decision, with many streams.

Measures ``Scheduler.next()`` plus ``charge()`` (what the sender does per
DATA frame) for N streams of which K are ready, with RFC 7540 weights and
with RFC 9218 urgencies, and the same for the bare ``priority.PriorityTree``
for comparison. Run: ``python bench/scheduler_cost.py``.
"""

from __future__ import annotations

import random
import timeit

from priority.priority import PriorityTree

from trio_h2._core.priority_field import ExtensiblePriority
from trio_h2._core.scheduler import Scheduler


def scheduler(streams: int, ready: int, extensible: bool) -> Scheduler:
    sched = Scheduler(max_streams=streams, max_idle=16)
    rng = random.Random(1)
    for i in range(streams):
        stream_id = 2 * i + 1
        value = ExtensiblePriority(rng.randrange(8), rng.random() < 0.5) if extensible else None
        sched.add(stream_id, weight=rng.randrange(1, 257), extensible=value)
    for i in rng.sample(range(streams), ready):
        sched.set_ready(2 * i + 1, True)
    return sched


def decision(sched: Scheduler) -> None:
    stream_id = sched.next()
    assert stream_id is not None
    sched.charge(stream_id, 16384, drained=False)


def bare_tree(streams: int, ready: int) -> PriorityTree:
    tree = PriorityTree(maximum_streams=streams + 1)
    rng = random.Random(1)
    for i in range(streams):
        tree.insert_stream(2 * i + 1, weight=rng.randrange(1, 257))
        tree.block(2 * i + 1)
    for i in rng.sample(range(streams), ready):
        tree.unblock(2 * i + 1)
    return tree


def main() -> None:
    print(f"{'streams':>8} {'ready':>6} {'RFC 7540 (us)':>14} {'RFC 9218 (us)':>14} "
          f"{'bare tree (us)':>15}")
    for streams, ready in ((1, 1), (10, 2), (100, 1), (100, 2), (100, 10), (100, 100),
                           (1000, 10)):
        row = []
        for extensible in (False, True):
            sched = scheduler(streams, ready, extensible)
            number = 20000
            seconds = min(timeit.repeat(lambda s=sched: decision(s), number=number, repeat=3))
            row.append(seconds / number * 1e6)
        tree = bare_tree(streams, ready)
        seconds = min(timeit.repeat(tree.next, number=20000, repeat=3))
        row.append(seconds / 20000 * 1e6)
        print(f"{streams:>8} {ready:>6} {row[0]:>14.2f} {row[1]:>14.2f} {row[2]:>15.2f}")


if __name__ == "__main__":
    main()
