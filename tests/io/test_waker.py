"""The Waker the connection's tasks sleep in."""

from __future__ import annotations

import trio
import trio.testing

from trio_h2._io.waker import Waker


async def test_wake_reaches_the_sleeper_and_is_not_remembered() -> None:
    waker = Waker()
    woken: list[int] = []

    async def sleeper() -> None:
        for n in range(2):
            await waker.sleep()
            woken.append(n)

    waker.wake()  # nobody asleep: forgotten
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        waker.wake()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == [0]
        waker.wake()
    assert woken == [0, 1]


async def test_a_cancelled_sleeper_leaves_the_waker_usable() -> None:
    waker = Waker()
    with trio.move_on_after(0.01) as scope:
        await waker.sleep()
    assert scope.cancelled_caught
    waker.wake()  # nobody asleep any more: a no-op, not a reschedule of a dead task
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waker.sleep)
        await trio.testing.wait_all_tasks_blocked()
        waker.wake()
