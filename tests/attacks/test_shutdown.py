"""Graceful shutdown against clients that would hold it open: every
connection, however late it arrived, gets at most ``shutdown_timeout`` to
finish once the drain begins (``serve``'s promise), so one client cannot
keep the process from stopping."""

from __future__ import annotations

import socket
from typing import Any

import trio

import trio_h2
from tests.support.attack_harness import LIVENESS_LIMIT

GET = b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"
SHUTDOWN_TIMEOUT = 1.0


async def endless(scope: Any, receive: Any, send: Any) -> None:
    """A response that never ends (a server-sent event stream, say)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    while True:
        await send({"type": "http.response.body", "body": b"data: tick\n\n",
                    "more_body": True})
        await trio.sleep(0.05)


async def test_a_connection_taken_from_the_listen_queue_of_an_idle_server_is_bounded() -> None:
    """The shutdown takes the connections in the listen queue and serves
    them drained. On a server with no other connection, the drain found
    nothing to wait for and was over before their handlers started: nothing
    bounded them, and one endless response kept the process from ever
    stopping. Now they get what is left of ``shutdown_timeout``: the client
    is answered, then cut off, and the server stops."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    stop = trio.CancelScope()
    config = trio_h2.Config(shutdown_timeout=SHUTDOWN_TIMEOUT)

    async def serve(task_status: trio.TaskStatus[None]) -> None:
        with stop:
            await trio_h2.serve_listeners(endless, listeners, config=config,
                                          task_status=task_status)

    hung = False

    async def cut_off_if_hung(client: socket.socket) -> None:
        # The connection's scope is shielded, so no outer deadline can end a
        # server that does not stop; a client that goes away does.
        nonlocal hung
        await trio.sleep(SHUTDOWN_TIMEOUT + LIVENESS_LIMIT)
        hung = True
        client.shutdown(socket.SHUT_RDWR)

    with socket.socket() as client:
        async with trio.open_nursery() as outer:
            outer.start_soon(cut_off_if_hung, client)
            async with trio.open_nursery() as nursery:
                await nursery.start(serve)
                client.connect(("127.0.0.1", port))  # queued: not accepted yet
                client.sendall(GET)
                stop.cancel()  # no checkpoint since the connect
            outer.cancel_scope.cancel()
        assert not hung, "the server did not stop within shutdown_timeout"
        client.settimeout(LIVENESS_LIMIT)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    assert b"connection: close\r\n" in received.lower()
    assert b"data: tick" in received
