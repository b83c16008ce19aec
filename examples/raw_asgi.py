"""A plain ASGI 3 application: no framework, only the ``scope``/``receive``/``send`` protocol.

``GET /`` answers a line of text; ``POST /echo`` streams the request body back
as it arrives, chunk by chunk, without holding the whole body in memory.

Run from the repository root::

    python -m trio_h2 examples.raw_asgi:app
    curl --http2-prior-knowledge http://127.0.0.1:8000/
    curl --http2-prior-knowledge --data-binary @README.md http://127.0.0.1:8000/echo
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # no lifespan events to handle: trio_h2 carries on without them
    if scope["method"] == "POST" and scope["path"] == "/echo":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            more_body = message.get("more_body", False)
            # Each send returns once the chunk is written (or buffered within
            # the client's flow-control window): a slow reader slows this loop.
            await send({"type": "http.response.body", "body": message.get("body", b""),
                        "more_body": more_body})
        return
    if scope["method"] == "GET" and scope["path"] == "/":
        body = f"Hello from trio_h2 over HTTP/{scope['http_version']}\n".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b"not found\n"})
