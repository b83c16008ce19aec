"""WebSocket ASGI apps the tests serve."""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """``/echo`` echoes every message (accepting the first subprotocol
    offered); ``/close/CODE`` accepts then closes with CODE; ``/deny``
    answers 401 with a body; ``/reject`` closes before accepting;
    ``/boom`` raises after accepting. HTTP requests get 200 "http"."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"http"})
        return
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    protocols = scope["subprotocols"]
    await send({"type": "websocket.accept",
                "subprotocol": protocols[0] if protocols else None})
    if path.startswith("/close/"):
        await send({"type": "websocket.close", "code": int(path.rsplit("/", 1)[1]),
                    "reason": "bye"})
        return
    if path == "/boom":
        raise RuntimeError("boom")
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
