"""Server push (``http.response.push``) against clients that change their
mind, and requests that give it nothing to copy: every PUSH_PROMISE and
pushed response must still be valid HTTP/2 (RFC 9113 sections 5.1.2 and
8.4), and whatever goes wrong for a pushed stream ends at most that stream."""

from __future__ import annotations

from typing import Any

import trio
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.support.rawh2 import H2Client, StreamReset
from trio_h2.testing import H2ServerFactory


def push_app(*, hint: bool = False, opened: trio.Event | None = None) -> Any:
    """``/`` pushes ``/pushed`` and answers ``page``; ``/pushed`` sends an
    early hint (with ``hint``) if the scope offers it, waits for ``opened``
    if given, then answers its path, as anything else does."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.push", "path": "/pushed", "headers": []})
            await send({"type": "http.response.body", "body": b"page"})
            return
        if path == "/pushed":
            if hint and "http.response.early_hint" in scope["extensions"]:
                await send({"type": "http.response.early_hint",
                            "links": [b"</x.css>; rel=preload; as=style"]})
            if opened is not None:
                await opened.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": path.encode()})

    return app


def get(path: str, *authority: tuple[str, str]) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":path", path), *authority]


async def test_a_promise_names_the_authority_of_a_request_that_sent_host_only(
        h2_server: H2ServerFactory) -> None:
    """An HTTP/2 request may carry its authority in ``host`` instead of
    ``:authority`` (RFC 9113 section 8.3.1). The promise copied
    ``:authority`` and sent it empty, which RFC 9113 section 8.4.1 forbids
    (clients reset such a promise). With neither, nothing is promised."""
    server = await h2_server(push_app())
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, get("/", ("host", "example.com")), end_stream=True)
    response = await client.read_response(1)
    assert response.status == 200 and response.body == b"page"
    [promise] = response.promises
    assert dict(promise.headers)[b":authority"] == b"example.com"
    assert (await client.read_response(promise.promised_stream_id)).status == 200
    await client.send_headers(3, get("/"), end_stream=True)
    response = await client.read_response(3)
    assert response.status == 200 and response.promises == []
    await client.aclose()


async def test_a_pushed_stream_is_offered_no_early_hints_and_the_connection_lives(
        h2_server: H2ServerFactory) -> None:
    """The pushed stream's scope offered ``http.response.early_hint``; h2
    refuses a 1xx in the promised stream's reserved state and closes it, and
    the pushed response's HEADERS then ended the connection (GOAWAY
    INTERNAL_ERROR), the page's own response with it. Now no early hint is
    offered there, and page and pushed response arrive."""
    server = await h2_server(push_app(hint=True))
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, get("/", (":authority", "t")), end_stream=True)
    response = await client.read_response(1)
    assert response.status == 200 and response.body == b"page"
    [promise] = response.promises
    pushed = await client.read_response(promise.promised_stream_id)
    assert pushed.status == 200 and pushed.body == b"/pushed"
    await client.send_headers(3, get("/after", (":authority", "t")), end_stream=True)
    assert (await client.read_response(3)).body == b"/after"
    await client.aclose()


async def test_a_promised_stream_is_refused_once_the_client_lowered_its_limit(
        h2_server: H2ServerFactory) -> None:
    """A promised stream counts against the client's
    SETTINGS_MAX_CONCURRENT_STREAMS from its HEADERS on (RFC 9113 section
    5.1.2). A client that set it to 0 after the promise had the pushed
    response opened all the same; now it is reset with REFUSED_STREAM (as
    nghttp2 does), and the connection serves on."""
    opened = trio.Event()
    server = await h2_server(push_app(opened=opened))
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, get("/", (":authority", "t")), end_stream=True)
    response = await client.read_response(1)
    [promise] = response.promises
    await client.send_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 0})
    await client.send_ping(b"settled!")  # the PING's ACK: the SETTINGS were read
    await client.next_frame(lambda f: getattr(f, "opaque_data", None) == b"settled!")
    opened.set()
    try:
        pushed = await client.read_response(promise.promised_stream_id)
    except StreamReset as reset:
        assert reset.error_code == ErrorCodes.REFUSED_STREAM
    else:
        raise AssertionError(f"the pushed response went out: {pushed.status}")
    await client.send_headers(3, get("/after", (":authority", "t")), end_stream=True)
    assert (await client.read_response(3)).body == b"/after"
    await client.aclose()
