"""A trio program that embeds trio_h2 next to its own tasks, and shuts down gracefully.

The HTTP server is one task in the program's nursery, started with
``nursery.start`` (which returns once the port is bound). Requests to
``POST /jobs`` hand work to a worker task over a trio memory channel; on
SIGINT or SIGTERM the server stops (GOAWAY, in-flight requests finish), then
the worker finishes the queued jobs and the program exits.

Run from the repository root (the port is optional, 0 picks a free one)::

    python -m examples.trio_native 8000
    curl --http2-prior-knowledge -d 'wash the car' http://127.0.0.1:8000/jobs
    curl --http2-prior-knowledge http://127.0.0.1:8000/
"""

from __future__ import annotations

import signal
import sys
from collections.abc import MutableMapping
from functools import partial
from typing import Any

import trio

import trio_h2


class Jobs:
    """The state the HTTP handlers and the worker share (one trio thread: no locks)."""

    def __init__(self) -> None:
        # Up to 100 queued jobs; past that, POST /jobs waits (backpressure
        # on the client) rather than queueing without bound.
        self.send, self.receive = trio.open_memory_channel[str](100)
        self.done: list[str] = []

    async def worker(self) -> None:
        async with self.receive:
            async for job in self.receive:
                await trio.sleep(0.01)  # the work
                self.done.append(job)

    async def app(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST" and scope["path"] == "/jobs":
            job = b""
            while True:
                message = await receive()
                job += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await self.send.send(job.decode(errors="replace"))
            status, body = 202, b"queued\n"
        else:
            status, body = 200, f"{len(self.done)} jobs done\n".encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})


async def main(port: int) -> None:
    jobs = Jobs()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(jobs.worker)
        # jobs.send closes once the server has stopped: the worker drains the queue, ends.
        async with jobs.send, trio.open_nursery() as server_nursery:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                config = trio_h2.Config(shutdown_timeout=10)
                addresses = await server_nursery.start(
                    partial(trio_h2.serve, jobs.app, port=port, config=config))
                host, bound_port = addresses[0][:2]
                print(f"trio_h2 serving trio_native on http://{host}:{bound_port} "
                      "(embedded)", flush=True)
                async for signum in signals:
                    print(f"got {signal.Signals(signum).name}, stopping", flush=True)
                    break
            # Cancelling serve is its graceful shutdown: it returns once every
            # connection has finished (or shutdown_timeout has passed).
            server_nursery.cancel_scope.cancel()
    print(f"stopped; {len(jobs.done)} jobs done", flush=True)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
