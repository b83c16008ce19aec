"""Server-sent events: a counter every 0.1 s as ``text/event-stream``.

Each ``send`` returns only once trio_h2 has written the event (within the
client's flow-control window), so a client that reads slowly slows the
generator down: events are not piled up in server memory.

Run from the repository root::

    python -m trio_h2 examples.sse:app
    curl --no-buffer --http2-prior-knowledge http://127.0.0.1:8000/events

or open http://127.0.0.1:8000/ in a browser (over HTTP/1.1), which uses
``EventSource``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import trio

INTERVAL = 0.1  # seconds between events

PAGE = b"""<!doctype html>
<title>trio_h2 SSE</title>
<pre id="log"></pre>
<script>
new EventSource("/events").onmessage = (e) => {
  document.getElementById("log").textContent = "count: " + e.data;
};
</script>
"""


async def counter() -> AsyncIterator[bytes]:
    """The events: ``id: n`` and ``data: n``, forever."""
    for n in itertools.count():
        yield f"id: {n}\ndata: {n}\n\n".encode()
        await trio.sleep(INTERVAL)


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] != "/events":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": PAGE})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache")]})
    # When the client goes away, send raises trio_h2.ClientDisconnected (an
    # OSError), which ends this handler and the generator with it.
    async for event in counter():
        await send({"type": "http.response.body", "body": event, "more_body": True})
