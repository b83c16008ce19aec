"""Backpressure through the hand-off, for WSGI apps: bounds in bytes.

A WSGI app runs in a thread, which ``trio.testing.wait_all_tasks_blocked``
does not see. So where a test must know the app can go no further, it waits
until the count of bytes the app produced stops changing (checked across
several idle points of the event loop). A server that buffered the app's
output would let that count run on towards 1 GiB, and the bound would fail.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import trio
import trio.testing

from tests.support.windows import open_window_and_read
from trio_h2 import WSGIApp
from trio_h2.testing import H2ServerFactory, open_h2_client

KiB = 1024
WINDOW = 65535  # the RFC 9113 default for both stream and connection windows
PIECE = 16 * KiB
PIECES = 65536  # 1 GiB of 16 KiB pieces


async def settled(count: Callable[[], int]) -> int:
    """``count()`` once it has stayed the same over five idle points of the
    event loop, 50 ms apart (the app's thread runs meanwhile)."""
    last, same = count(), 0
    while same < 5:
        await trio.testing.wait_all_tasks_blocked(0.01)
        await trio.sleep(0.05)
        now = count()
        same = same + 1 if now == last else 0
        last = now
    return last


def generator_app(produced: list[int]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def pieces() -> Iterator[bytes]:
            for _ in range(PIECES):
                produced[0] += PIECE  # counted as it is yielded
                yield b"g" * PIECE
        return pieces()
    return app


def write_app(produced: list[int]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(PIECES):
            produced[0] += PIECE  # counted as it is passed to write()
            write(b"g" * PIECE)
        return []
    return app


async def check_closed_window_bound(
    h2_server: H2ServerFactory, make_app: Callable[[list[int]], Callable[..., Iterable[bytes]]]
) -> None:
    produced = [0]
    server = await h2_server(WSGIApp(make_app(produced)))
    async with open_h2_client(server.host, server.port, initial_window_size=WINDOW,
                              auto_window=False) as client:
        with trio.fail_after(30):
            async with client.stream("GET", "/") as response:
                passed = await settled(lambda: produced[0])
                assert WINDOW <= passed <= WINDOW + PIECE
                # Opening the window resumes exactly where it stopped.
                await open_window_and_read(client, response, more=3 * PIECE,
                                           through=WINDOW + 3 * PIECE)
                passed = await settled(lambda: produced[0])
                assert WINDOW + 3 * PIECE <= passed <= WINDOW + 4 * PIECE


async def test_generator_to_a_closed_window_gets_one_window_and_one_piece(
    h2_server: H2ServerFactory,
) -> None:
    """A generator yielding 1 GiB to a client whose window stays closed has
    yielded at most one window plus the piece its thread waits to hand over."""
    await check_closed_window_bound(h2_server, generator_app)


async def test_write_to_a_closed_window_gets_one_window_and_one_piece(
    h2_server: H2ServerFactory,
) -> None:
    """The same for ``write()``: the thread blocks in the call."""
    await check_closed_window_bound(h2_server, write_app)


async def test_an_upload_is_read_from_the_client_as_the_app_reads_it(
    h2_server: H2ServerFactory,
) -> None:
    """``wsgi.input`` takes body only as the app reads: an app that read 100
    bytes and waits lets the client send at most what it took plus the
    stream window; once it reads on, the whole upload arrives."""
    window = 64 * KiB
    chunk = 16 * KiB
    total = 200 * chunk
    read_some = threading.Event()
    go_on = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        size = len(stream.read(100))
        read_some.set()
        go_on.wait(30)
        while data := stream.read(chunk):
            size += len(data)
        start_response("200 OK", [])
        return [json.dumps({"size": size}).encode()]

    server = await h2_server(WSGIApp(app), initial_window_size=window)
    sent = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(total // chunk):
            sent += chunk  # counted as the client hands it over
            yield b"u" * chunk

    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                answer: list[bytes] = []

                async def post() -> None:
                    answer.append((await client.request(
                        "POST", "/", body=upload())).body)

                nursery.start_soon(post)
                await trio.to_thread.run_sync(read_some.wait, 10)
                await trio.testing.wait_all_tasks_blocked(0.05)
                # At most one window taken by wsgi.input (100 bytes read, the
                # rest held for the next read), one window buffered by the
                # server, and the chunk the client could not send.
                assert window <= sent <= 2 * window + chunk
                go_on.set()
    assert json.loads(answer[0]) == {"size": total}


async def test_threads_do_not_block_the_event_loop_while_held_by_a_window(
    h2_server: H2ServerFactory,
) -> None:
    """Threads stuck at closed windows are the app's; the event loop still
    answers the same server's other clients."""
    produced = [0]
    server = await h2_server(WSGIApp(generator_app(produced), threads=4))
    async with open_h2_client(server.host, server.port, initial_window_size=WINDOW,
                              auto_window=False) as stuck, \
            open_h2_client(server.host, server.port) as bystander:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(functools.partial(stuck.request, "GET", "/"))
                await settled(lambda: produced[0])
                # One connection window between them, one piece waiting in each.
                assert produced[0] <= WINDOW + 3 * PIECE
                async with bystander.stream("GET", "/") as response:
                    assert await response.__anext__()
                nursery.cancel_scope.cancel()
