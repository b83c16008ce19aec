"""The raw ASGI app that ``bench/compare.py`` serves with both trio_h2 and Hypercorn.

No framework, so the figures are the servers' own cost:

* ``/`` answers 12 bytes of text;
* ``/download`` answers 1 MiB in 64 KiB chunks, as Starlette's ``FileResponse``
  and ``StreamingResponse`` over a file do;
* ``/echo`` reads the whole request body, then answers it in one piece;
* a WebSocket (any path) echoes every message (``bench/websocket.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KiB, MiB = 1024, 1024 * 1024
HELLO = b"Hello, world"  # 12 bytes
DOWNLOAD_SIZE = 1 * MiB
DOWNLOAD_CHUNK = 64 * KiB
_BLOCK = b"d" * DOWNLOAD_CHUNK


def _start(length: int, content_type: bytes) -> Message:
    return {"type": "http.response.start", "status": 200,
            "headers": [(b"content-type", content_type),
                        (b"content-length", str(length).encode())]}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        # Answer the lifespan protocol so neither server logs its absence.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _echo_websocket(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/download":
        await send(_start(DOWNLOAD_SIZE, b"application/octet-stream"))
        for _ in range(DOWNLOAD_SIZE // DOWNLOAD_CHUNK - 1):
            await send({"type": "http.response.body", "body": _BLOCK, "more_body": True})
        await send({"type": "http.response.body", "body": _BLOCK})
        return
    if path == "/echo":
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        await send(_start(len(body), b"application/octet-stream"))
        await send({"type": "http.response.body", "body": body})
        return
    await send(_start(len(HELLO), b"text/plain"))
    await send({"type": "http.response.body", "body": HELLO})


async def _echo_websocket(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})
