"""A large generated download, written at the pace the client reads it.

``GET /download?size=N`` streams N bytes (default 100 MiB) made on the fly in
64 KiB chunks, with a ``content-length``. ``send`` returns only once the
chunk is written within the client's flow-control window, so the generator
never runs ahead of the client by more than about one window: memory stays
at a chunk or two per download, however slow the client and however large
the file. (Serving a file from disk is the same loop with
``await trio.Path(...).open("rb")`` and ``await f.read(CHUNK)``.)

Run from the repository root::

    python -m trio_h2 examples.large_download:app
    curl --http2-prior-knowledge --limit-rate 1M -o /dev/null \\
        'http://127.0.0.1:8000/download?size=50000000'
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import parse_qs

CHUNK = 64 * 1024
DEFAULT_SIZE = 100 * 1024 * 1024


async def generate(size: int) -> AsyncIterator[bytes]:
    """``size`` bytes of a repeating pattern, a chunk at a time."""
    pattern = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < size:
        chunk = pattern[: min(CHUNK, size - sent)]
        sent += len(chunk)
        yield chunk


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode())
    try:
        size = int(query.get("size", [DEFAULT_SIZE])[0])
    except ValueError:
        size = -1
    if scope["path"] != "/download" or size < 0:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(size).encode())]})
    async for chunk in generate(size):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
