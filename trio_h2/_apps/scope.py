"""The ASGI HTTP connection scope for one request (ASGI spec 2.4). Pure."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from .._core.exchange import Address
from .._core.headers import RequestHead

# (host, port), or (path, None) for a Unix socket, as the ASGI spec has it.

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


def build_scope(
    head: RequestHead,
    *,
    http_version: str,
    scheme: str,
    server: Address | None,
    client: Address | None,
    root_path: str,
    state: dict[str, Any] | None,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The ``http`` scope for ``head``.

    ``path`` is percent-decoded UTF-8 (undecodable bytes survive as
    surrogates) and, as uvicorn and Starlette expect, includes ``root_path``;
    ``raw_path`` is the path exactly as received. ``:authority`` becomes the
    first ``host`` header, as the ASGI spec asks for HTTP/2 (and, over
    HTTP/1.1, so does the authority of an absolute-form request-target, which
    RFC 9112 section 3.2.2 puts before Host). ``http_version`` is ``"2"``,
    ``"1.1"`` or ``"1.0"``.
    """
    raw_path, _, query = head.path.partition(b"?")
    path = unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
    headers = [[name, value] for name, value in head.headers if name != b"host"]
    host = head.authority or next((v for n, v in head.headers if n == b"host"), None)
    if host is not None:
        headers.insert(0, [b"host", host])
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": http_version,
        "method": head.method.decode("ascii", "surrogateescape"),
        "scheme": head.scheme.decode("ascii", "surrogateescape") if head.scheme else scheme,
        "path": root_path + path,
        "raw_path": root_path.encode() + raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "server": server,
        "client": client,
        "extensions": extensions,
    }
    if state is not None:
        # ASGI lifespan state: each request gets a shallow copy.
        scope["state"] = dict(state)
    return scope
