"""``Expect: 100-continue`` (RFC 9110 section 10.1.1) on both protocols, over
sockets: ``100`` goes out when the application first waits for the body,
never before it asks and never when it answers without reading. HTTP/1.1
then closes after the response (the client's next bytes may be the body it
held back or not), HTTP/2 resets the stream with NO_ERROR as for any unread
body. Then curl, which holds a large body back until it sees the 100."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import trio
from h2.errors import ErrorCodes
from hyperframe.frame import PingFrame, RstStreamFrame

from tests.support.apps import app, read_body
from tests.support.rawh2 import H2Client, HeaderBlock
from tests.support.requests import Header, h1_request, request
from tests.support.tools import require_tool, run
from trio_h2.testing import H2ServerFactory, H2TestServer

KiB = 1024
# How long a test listens for a 100 that must not come (HTTP/1.1 has no
# PING to fence with). A slow machine can only make a wrong 100 arrive
# later, so this bound can let a bug through, never fail a correct server.
QUIET = 0.5


class Gate:
    """``/gated``: waits until the test opens the gate, then reads the body
    and echoes it. ``/refuse``: answers 413 at once without reading."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self.gate = trio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.started.set()
        if scope["path"] == "/refuse":
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": b"too large\n"})
            return
        await self.gate.wait()
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def gate() -> Gate:
    return Gate()


def post(path: str, length: int) -> bytes:
    return h1_request("POST", path, ("Content-Length", str(length)), ("Expect", "100-continue"))


async def receive_for(stream: trio.abc.Stream, seconds: float) -> bytes:
    received = b""
    with trio.move_on_after(seconds):
        while data := await stream.receive_some(65536):
            received += data
    return received


async def receive_until(stream: trio.abc.Stream, marker: bytes, received: bytes = b"") -> bytes:
    with trio.fail_after(10):
        while marker not in received:
            data = await stream.receive_some(65536)
            assert data, f"closed; received {received!r}"
            received += data
    return received


# ------------------------------------------------------------------ HTTP/1.1


async def test_http11_100_comes_when_the_app_receives(h2_server: H2ServerFactory,
                                                      gate: Gate) -> None:
    server = await h2_server(gate)
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(post("/gated", 5))
    with trio.fail_after(10):
        await gate.started.wait()
    assert await receive_for(stream, QUIET) == b"", "100 before the application asked"
    gate.gate.set()
    received = await receive_until(stream, b"\r\n\r\n")
    assert received == b"HTTP/1.1 100 Continue\r\n\r\n"
    await stream.send_all(b"hello")
    received = await receive_until(stream, b"hello")
    assert received.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in received
    await stream.aclose()


async def test_http11_answer_without_reading_sends_no_100_and_closes(
        h2_server: H2ServerFactory, gate: Gate) -> None:
    """The body the client then sends anyway (as curl does after its timeout)
    is never read as a request, even one that looks like a request."""
    server = await h2_server(gate)
    smuggled = h1_request("GET", "/smuggled")
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(post("/refuse", len(smuggled)))
    received = await receive_until(stream, b"too large\n")
    assert received.startswith(b"HTTP/1.1 413 "), received
    assert b"connection: close" in received.lower() and b" 100 " not in received
    with suppress(trio.BrokenResourceError):  # (already closed: as good)
        await stream.send_all(smuggled)
    rest = b""
    with trio.fail_after(10), suppress(trio.BrokenResourceError):  # EOF or reset, in time
        while data := await stream.receive_some(65536):
            rest += data
    assert rest == b"", f"the held-back body was answered: {rest!r}"
    await stream.aclose()


async def test_http11_body_sent_without_waiting_gets_no_100(
        h2_server: H2ServerFactory) -> None:
    """A client that sends its body at once: the body has arrived when the
    app asks, so no 100 (h11 knows the client no longer waits)."""
    server = await h2_server(app)
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(post("/echo", 5) + b"hello")
    received = await receive_until(stream, b"hello")
    assert received.startswith(b"HTTP/1.1 200 "), received
    await stream.aclose()


# -------------------------------------------------------------------- HTTP/2


def expecting(path: str) -> list[Header]:
    return request("POST", path, ("expect", "100-continue"))


async def test_http2_100_comes_when_the_app_receives(h2_server: H2ServerFactory,
                                                     gate: Gate) -> None:
    """Fenced by PING: frames are written in the order they were queued, so a
    100 queued before the application asked would come before the PING ACK."""
    server = await h2_server(gate)
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, expecting("/gated"))
    with trio.fail_after(10):
        await gate.started.wait()
    await client.send_ping(b"fence!!!")
    await client.next_frame(lambda f: isinstance(f, PingFrame) and "ACK" in f.flags)
    assert not [f for f in client.kept if isinstance(f, HeaderBlock)], client.kept
    gate.gate.set()
    interim = await client.next_frame(lambda f: isinstance(f, HeaderBlock))
    assert isinstance(interim, HeaderBlock) and interim.stream_id == 1
    assert interim.headers == [(b":status", b"100")] and not interim.end_stream
    await client.send_data(1, b"hello", end_stream=True)
    response = await client.read_response(1)
    assert response.status == 200 and response.body == b"hello"
    await client.aclose()


async def test_http2_answer_without_reading_sends_no_100(h2_server: H2ServerFactory,
                                                         gate: Gate) -> None:
    server = await h2_server(gate)
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, expecting("/refuse"))
    response = await client.read_response(1)
    assert response.status == 413 and response.body == b"too large\n"
    assert await client.expect_rst(1) == ErrorCodes.NO_ERROR
    assert not [f for f in client.kept if isinstance(f, HeaderBlock)], client.kept
    assert not [f for f in client.kept if isinstance(f, RstStreamFrame) and f.error_code]
    await client.aclose()


# -------------------------------------------------------------------- curl


@pytest.mark.parametrize("protocol", ["http1.1", "h2c"])
async def test_curl_large_upload_gets_100(server_app: H2TestServer, tmp_path: Path,
                                          protocol: str) -> None:
    """curl holds a large body back (HTTP/1.1 past 1 MiB; HTTP/2 when told
    to expect) until the 100, or for ``--expect100-timeout``: 30 s here, so
    the 100 in its trace is ours, not its timeout's."""
    curl = require_tool("curl")
    body = tmp_path / "body"
    body.write_bytes(bytes(range(256)) * (8 * KiB))  # 2 MiB
    args = (["--http1.1"] if protocol == "http1.1"
            else ["--http2-prior-knowledge", "-H", "Expect: 100-continue"])
    with trio.fail_after(60):
        out = await run(curl, "-sS", "-v", "--stderr", "-", "--expect100-timeout", "30",
                        *args, "--data-binary", f"@{body}", "-o", str(tmp_path / "out"),
                        server_app.url + "/echo")
    interim = "< HTTP/1.1 100 Continue" if protocol == "http1.1" else "< HTTP/2 100"
    assert interim in out, out
    assert (tmp_path / "out").read_bytes() == body.read_bytes()


@pytest.fixture
async def server_app(h2_server: H2ServerFactory) -> H2TestServer:
    return await h2_server(app)
