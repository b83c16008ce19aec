"""The least an HTTP/1.1 server on trio and h11 can cost: a floor for ``bench/floor.py``.

It serves ``bench._apps:app`` over plain HTTP/1.1 keep-alive with h11 and
trio's lowest-level socket calls, and does nothing else: no limits, no
timeouts, no error pages, no flow of control beyond what keeps it correct for
wrk's well-formed requests. It is not a server to use; it tells how much of
trio_h2's cost is trio and h11, and how much is trio_h2.

Two shapes:

``design``
    the shape of trio_h2's design card: per connection, a reader task, a
    handler task per request, and one sender task that alone writes, fed
    through a zero-buffer memory channel (``send`` returns once the sender
    has taken the bytes). Request bodies come to the app through a
    zero-buffer channel from the reader.
``inline``
    one task per connection that reads, runs the app and writes in turn, as
    uvicorn's protocol callbacks do on asyncio.

Usage: ``python -m bench._floor_server design|inline``; it prints its URL.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio

from bench._apps import app

Message = dict[str, Any]
READ_SIZE = 64 * 1024  # as trio_h2 and Hypercorn read
# The client went away, or its connection is beyond use.
GONE = (OSError, h11.ProtocolError, trio.BrokenResourceError)


def _scope(request: h11.Request) -> Message:
    target = request.target
    path, _, query = target.partition(b"?")
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": request.method.decode(), "scheme": "http", "path": path.decode(),
            "raw_path": path, "query_string": query, "root_path": "",
            "headers": list(request.headers), "server": None, "client": None}


def _response(message: Message) -> h11.Response:
    return h11.Response(status_code=message["status"], headers=message.get("headers", []))


def _event(message: Message) -> list[Any]:
    """The h11 events that one ASGI send message is."""
    if message["type"] == "http.response.start":
        return [_response(message)]
    events: list[Any] = []
    if message.get("body"):
        events.append(h11.Data(data=message["body"]))
    if not message.get("more_body", False):
        events.append(h11.EndOfMessage())
    return events


async def _read(sock: socket.socket) -> bytes:
    while True:
        try:
            return sock.recv(READ_SIZE)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def _write(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)


async def _next_event(conn: h11.Connection, sock: socket.socket) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await _read(sock))


async def serve_inline(sock: socket.socket) -> None:
    conn = h11.Connection(h11.SERVER)
    while True:
        event = await _next_event(conn, sock)
        if not isinstance(event, h11.Request):
            return  # ConnectionClosed, or PAUSED past a close

        async def receive() -> Message:
            event = await _next_event(conn, sock)
            if isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            await _write(sock, b"".join(conn.send(event) or b"" for event in _event(message)))

        await app(_scope(event), receive, send)
        while conn.their_state is h11.SEND_BODY:
            await _next_event(conn, sock)  # a body the app did not read
        conn.start_next_cycle()


async def serve_design(sock: socket.socket) -> None:
    conn = h11.Connection(h11.SERVER)
    to_sender, sender_gets = trio.open_memory_channel[bytes](0)

    async def sender() -> None:
        async for data in sender_gets:
            await _write(sock, data)

    async def handler(request: h11.Request, body: trio.MemoryReceiveChannel[bytes],
                      done: trio.Event) -> None:
        async def receive() -> Message:
            try:
                return {"type": "http.request", "body": await body.receive(), "more_body": True}
            except trio.EndOfChannel:
                return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            await to_sender.send(b"".join(conn.send(event) or b"" for event in _event(message)))

        await app(_scope(request), receive, send)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ending, nursery.cancel_scope, sender)
        with contextlib.suppress(*GONE):
            while isinstance(request := await _next_event(conn, sock), h11.Request):
                to_handler, body = trio.open_memory_channel[bytes](0)
                done = trio.Event()
                nursery.start_soon(_ending, nursery.cancel_scope, handler, request, body, done)
                while isinstance(event := await _next_event(conn, sock), h11.Data):
                    if not done.is_set():  # (an app that answered without reading: dropped)
                        await to_handler.send(bytes(event.data))
                to_handler.close()
                await done.wait()
                conn.start_next_cycle()
        nursery.cancel_scope.cancel()


async def _ending(scope: trio.CancelScope, task: Callable[..., Awaitable[None]],
                  *args: Any) -> None:
    """Run ``task``; if the client goes away under it, end the connection."""
    try:
        await task(*args)
    except GONE:
        scope.cancel()


async def _serve_one(serve: Callable[[socket.socket], Awaitable[None]],
                     sock: socket.socket) -> None:
    with sock, contextlib.suppress(*GONE):
        await serve(sock)


async def main(shape: str) -> None:
    serve = serve_design if shape == "design" else serve_inline
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    print(f"floor ({shape}) on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(_serve_one, serve, sock)


if __name__ == "__main__":
    if sys.argv[1:] not in (["design"], ["inline"]):
        sys.exit(__doc__)
    trio.run(main, sys.argv[1])
