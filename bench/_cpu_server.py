"""trio_h2 on ``bench._apps:app`` with a trio instrument, for ``bench/cpu_cost.py``.

Usage: ``python bench/_cpu_server.py PORT [CERTFILE KEYFILE]``. Prints
``ready`` once it accepts connections; on SIGINT prints one JSON line (task
steps, event-loop iterations, tasks spawned, and which trio_h2 it imported)
and exits. With :data:`ACCESS_LOG_VARIABLE` set to a file name, the access
log (default format) is written there. ``PYTHONPATH`` must name the trio_h2
tree to measure, then this checkout (for ``bench``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

import trio

import trio_h2
from bench._apps import app

ACCESS_LOG_VARIABLE = "TRIO_H2_BENCH_ACCESS_LOG"


class Counts(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps = self.iterations = self.spawned = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1

    def before_io_wait(self, timeout: float) -> None:
        self.iterations += 1  # one pass of trio's loop: one epoll_wait

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1


async def main(port: int, ssl_files: list[str]) -> None:
    counts = Counts()
    context = trio_h2.server_ssl_context(*ssl_files) if ssl_files else None
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: trio_h2.serve(
                app, host="127.0.0.1", port=port, ssl_context=context,
                task_status=task_status))
            trio.lowlevel.add_instrument(counts)
            print("ready", flush=True)
            async for _ in signals:
                trio.lowlevel.remove_instrument(counts)
                print(json.dumps({"steps": counts.steps, "iterations": counts.iterations,
                                  "spawned": counts.spawned, "trio_h2": trio_h2.__file__}),
                      flush=True)
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    if ACCESS_LOG_VARIABLE in os.environ:
        access = logging.getLogger("trio_h2.access")
        access.addHandler(logging.FileHandler(os.environ[ACCESS_LOG_VARIABLE]))
        access.setLevel(logging.INFO)
        access.propagate = False
    trio.run(main, int(sys.argv[1]), sys.argv[2:])
