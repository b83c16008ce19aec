"""An upload checked while it streams: a size limit and a SHA-256, with no
buffering of the body.

``POST /upload`` reads the body chunk by chunk, hashing as it goes, and
answers ``{"size": ..., "sha256": ...}``. A body that declares a
``content-length`` over the limit is refused with 413 before any of it is
read; a body without one is refused with 413 as soon as the running size
passes the limit, and the rest is never read (over HTTP/2 trio_h2 then
resets the stream, so the client stops sending; over HTTP/1.1 it closes the
connection). The server holds at most the flow-control window of unread
body (``Config.initial_window_size``) at any time.

Run from the repository root::

    python -m trio_h2 examples.checked_upload:app
    head -c 5000000 /dev/urandom > /tmp/blob
    curl --http2-prior-knowledge --data-binary @/tmp/blob http://127.0.0.1:8000/upload

(Over HTTP/2, curl 7.88 reports the early 413 and the RST_STREAM(NO_ERROR)
after it, which RFC 9113 section 8.1 allows, as error 92 instead of showing
the response; nghttp and browsers show the 413, as curl does over HTTP/1.1.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import MutableMapping
from typing import Any

LIMIT = 10 * 1024 * 1024  # bytes per upload

ASGIApp = Any


async def respond(send: Any, status: int, document: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(document).encode() + b"\n"})


def make_app(limit: int) -> ASGIApp:
    """The app, refusing uploads of more than ``limit`` bytes."""

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if (scope["method"], scope["path"]) != ("POST", "/upload"):
            await respond(send, 404, {"error": "POST /upload"})
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and int(declared) > limit:
            await respond(send, 413, {"error": f"more than {limit} bytes"})
            return
        digest = hashlib.sha256()
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await respond(send, 413, {"error": f"more than {limit} bytes"})
                return
            digest.update(chunk)
            more_body = message.get("more_body", False)
        await respond(send, 200, {"size": size, "sha256": digest.hexdigest()})

    return app


app = make_app(LIMIT)
