"""WebSocket ASGI apps the tests serve, the transports they are served over,
and raw client frames."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
import trio

Scope = dict[str, Any]
TRANSPORTS = [pytest.param(False, id="http1"), pytest.param(True, id="http2")]
"""``http2``: WebSocket over HTTP/1.1 (RFC 6455) or over HTTP/2 (RFC 8441)."""


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
    await echo_messages(receive, send)


async def echo_messages(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


PAGE = b"""<!doctype html><meta charset="utf-8"><title>ws</title>
<p id="result">pending</p>
<!-- Held until the page has written the echo into #result (and said so):
the load event, on which Chromium's --dump-dom dumps, waits for it. -->
<img src="/wait" alt="">
<script>
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/version`);
const result = document.getElementById("result");
ws.onmessage = (event) => {
  if (event.data.startsWith("version ")) { ws.send("ping from the browser"); return; }
  result.textContent = `${ws.protocol}|${result.dataset.version}|${event.data}`;
  ws.send("written");
};
ws.addEventListener("message", (event) => {
  if (event.data.startsWith("version ")) result.dataset.version = event.data.slice(8);
});
ws.onerror = () => { result.textContent = "error"; };
</script>
"""


async def browser_app(scope: Scope, receive: Any, send: Any) -> None:
    """``/`` is a page that opens a WebSocket to ``/version``, which says
    which HTTP version carries it and then echoes; the page writes
    ``subprotocol|version|echo`` into ``#result``."""
    if scope["type"] == "http":
        body = PAGE
        if scope["path"] == "/wait":
            with trio.move_on_after(10):
                await _echoed.wait()
            body = b""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": f"version {scope['http_version']}"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["text"]})
    if (await receive()).get("text") == "written":  # into the page's DOM
        _echoed.set()
    await send({"type": "websocket.close"})


_echoed = trio.Event()
"""Set once ``browser_app`` has echoed (one server process per browser test)."""


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False,
          length: int | None = None) -> bytes:
    """A masked client frame, as broken as a test needs (``length``: declared)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
