"""The app behind the proxies in examples/deploy: it says who it thinks the client is.

``GET /`` answers JSON with what the ASGI scope says about the request:
the client's address (``scope["client"]``), the scheme, the HTTP version the
proxy spoke to trio_h2, and the process id (which backend answered).
``GET /health`` answers ``ok`` for the proxy's health checks. Behind a proxy
that passes the client's address on (PROXY protocol, or X-Forwarded-For
from a trusted peer), ``client`` is the real client's, not the proxy's.

Run from the repository root, as a backend of the configs beside it::

    python -m trio_h2 examples.deploy.whoami:app --bind 127.0.0.1:8001 --proxy-protocol
    python -m trio_h2 examples.deploy.whoami:app --bind 127.0.0.1:8001 \\
        --proxy-headers --forwarded-allow-ips 127.0.0.1
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from typing import Any


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # no lifespan events to handle
    if scope["path"] == "/health":
        body = b"ok\n"
        content_type = b"text/plain"
    else:
        client = scope["client"]
        body = json.dumps({
            "client": None if client is None else list(client),
            "scheme": scope["scheme"],
            "http_version": scope["http_version"],
            "pid": os.getpid(),
        }).encode() + b"\n"
        content_type = b"application/json"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})
