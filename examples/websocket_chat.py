"""A WebSocket chat room: every message a client sends goes to every connected client.

Plain ASGI and trio: each connection has a task that forwards the room's
messages to it, next to the loop that reads what it says. Works over
HTTP/1.1 (Upgrade) and HTTP/2 (RFC 8441 extended CONNECT, which trio_h2
announces with SETTINGS_ENABLE_CONNECT_PROTOCOL). A client that cannot keep
up with the room is disconnected (close code 1008) instead of making the room
wait for it or queueing messages for it without bound.

Run from the repository root, then open http://127.0.0.1:8000/ in two tabs::

    python -m trio_h2 examples.websocket_chat:app
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import trio

# Messages queued for one client before it counts as too slow.
BACKLOG = 64

PAGE = b"""<!doctype html>
<title>trio_h2 chat</title>
<form id="f"><input id="m" autocomplete="off"><button>send</button></form>
<pre id="log"></pre>
<script>
const ws = new WebSocket(location.href.replace(/^http/, "ws") + "chat");
ws.onmessage = (e) => { document.getElementById("log").textContent += e.data + "\\n"; };
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault(); ws.send(document.getElementById("m").value);
  document.getElementById("m").value = "";
};
</script>
"""


class Room:
    def __init__(self) -> None:
        self.members: set[trio.MemorySendChannel[str]] = set()

    def broadcast(self, text: str) -> None:
        for member in list(self.members):
            try:
                member.send_nowait(text)
            except trio.WouldBlock:  # too slow: its forwarder sees the channel close
                self.members.discard(member)
                member.close()


room = Room()


async def chat(receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    outbox, inbox = trio.open_memory_channel[str](BACKLOG)
    room.members.add(outbox)  # before accepting: once accepted, the client hears the room

    async def forward() -> None:
        async for text in inbox:
            await send({"type": "websocket.send", "text": text})
        await send({"type": "websocket.close", "code": 1008, "reason": "too slow"})

    try:
        await send({"type": "websocket.accept"})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward)
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text") or message.get("bytes", b"").decode(errors="replace")
                room.broadcast(text)
            nursery.cancel_scope.cancel()
    finally:
        room.members.discard(outbox)
        outbox.close()


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket" and scope["path"] == "/chat":
        await chat(receive, send)
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": PAGE})
