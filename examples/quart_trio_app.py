"""A Quart application on trio (Quart-Trio): JSON, a streamed response and a
WebSocket route.

Quart-Trio is Quart running its request handling on trio, so its handlers
may use trio directly (``trio.sleep`` below). Its apps are ASGI 3 and need
nothing special under trio_h2; the WebSocket route works over HTTP/1.1
(Upgrade) and over HTTP/2 (RFC 8441 extended CONNECT). Needs
``pip install quart-trio``.

Run from the repository root::

    python -m trio_h2 examples.quart_trio_app:app
    curl --http2-prior-knowledge http://127.0.0.1:8000/hello/ada
    curl --http2-prior-knowledge http://127.0.0.1:8000/countdown
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from quart import Response, jsonify, websocket
from quart_trio import QuartTrio

app = QuartTrio(__name__)


@app.route("/hello/<name>")
async def hello(name: str) -> Response:
    return jsonify({"hello": name})


@app.route("/countdown")
async def countdown() -> Response:
    """A body sent as it is produced, one line every 10 ms."""

    async def lines() -> AsyncIterator[bytes]:
        for n in range(3, 0, -1):
            yield f"{n}\n".encode()
            await trio.sleep(0.01)
        yield b"liftoff\n"

    return Response(lines(), content_type="text/plain")


@app.websocket("/echo")
async def echo() -> None:
    """Answers every message with the same text reversed."""
    while True:
        message = await websocket.receive()
        text = message if isinstance(message, str) else message.decode()
        await websocket.send(text[::-1])
