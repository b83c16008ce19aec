"""Small raw ASGI apps the tests serve."""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


async def read_body(receive: Any) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """``/echo`` echoes the body, ``/stream?n=K`` streams K chunks,
    ``/scope`` describes the request, ``/boom`` raises, anything else says hello."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = await read_body(receive)
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/stream":
        count = int(scope["query_string"].decode().partition("=")[2] or 10)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(count):
            await send({"type": "http.response.body", "body": f"chunk {i}\n".encode(),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/echo":
        out, kind = body, b"application/octet-stream"
    elif path.startswith("/scope"):
        described = {k: v for k, v in scope.items()
                     if k in ("http_version", "scheme", "method", "path", "raw_path",
                              "query_string", "root_path", "server", "client")}
        described["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        out = json.dumps(described, default=lambda b: b.decode()).encode()
        kind = b"application/json"
    else:
        out, kind = b"hello from trio_h2\n", b"text/plain"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": out})


def http_only(app: Any) -> Any:
    """Wrap an app that knows only ``http`` scopes (lifespan: return at once,
    which ASGI servers take as 'lifespan not supported')."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await app(scope, receive, send)

    return wrapped
