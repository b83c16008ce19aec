"""``Upgrade: h2c`` (RFC 7540 section 3.2) over sockets: an HTTP/1.1 request
that asks is answered ``101``, then the connection speaks HTTP/2 (our
SETTINGS first, the request as stream 1). Its body is read before the switch,
up to ``initial_window_size``; past that, and wherever HTTP/2 cannot follow,
the request is answered over HTTP/1.1. Raw sockets for each rule, then curl
and nghttp, whose ``--http2`` / ``-u`` on ``http://`` still upgrade."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import pytest
import trio
from h2.errors import ErrorCodes
from hyperframe.frame import SettingsFrame

from tests.support.apps import app
from tests.support.frames import PREFACE, headers, settings
from tests.support.h1raw import RawClient
from tests.support.rawh2 import H2Client
from tests.support.requests import H1_GET, request
from tests.support.tools import require_tool, run
from trio_h2 import Config
from trio_h2._core.exchange import Exchange
from trio_h2._core.h1 import H1Core
from trio_h2._core.h2 import H2Core
from trio_h2._core.protocol import ProtocolCore
from trio_h2.testing import H2ServerFactory, H2TestServer

KiB = 1024
BOUND = Config().initial_window_size
# curl's own HTTP2-Settings: MAX_CONCURRENT_STREAMS 100, INITIAL_WINDOW_SIZE
# 32 MiB, ENABLE_PUSH 0.
SETTINGS = b"AAMAAABkAAQCAAAAAAIAAAAA"


def upgrade_request(path: str = "/scope", *, method: str = "GET", body: bytes = b"",
                    extra: bytes = b"", connection: bytes = b"Upgrade, HTTP2-Settings",
                    settings: bytes | None = SETTINGS, version: bytes = b"1.1") -> bytes:
    head = (f"{method} {path} HTTP/".encode() + version + b"\r\nHost: x\r\n"
            + b"Connection: " + connection + b"\r\nUpgrade: h2c\r\n")
    if settings is not None:
        head += b"HTTP2-Settings: " + settings + b"\r\n"
    if body or method == "POST":
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


@pytest.fixture
async def server(h2_server: H2ServerFactory) -> H2TestServer:
    return await h2_server(app)


async def read_interim(stream: trio.abc.Stream, *,
                       until: bytes = b"HTTP/1.1 101 ") -> tuple[list[bytes], bytes]:
    """The heads the server sends up to one that starts with ``until``, and
    the bytes after it."""
    received, heads = b"", []
    with trio.fail_after(10):
        while True:
            while b"\r\n\r\n" not in received:
                data = await stream.receive_some(65536)
                assert data, f"closed after {heads} {received!r}"
                received += data
            head, _, received = received.partition(b"\r\n\r\n")
            heads.append(head)
            if head.startswith(until) or not head.startswith(b"HTTP/1.1 1"):
                return heads, received


async def upgraded(server: H2TestServer, request: bytes) -> tuple[H2Client, list[bytes]]:
    """Send ``request``; expect ``101`` and our SETTINGS as the first frame
    after it; then send the client preface. The HTTP/2 client, and the 1xx heads."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(request)
    heads, rest = await read_interim(stream)
    assert heads[-1].startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), heads
    fields = heads[-1].lower().split(b"\r\n")[1:]
    assert b"upgrade: h2c" in fields and b"connection: upgrade" in fields, heads
    client = H2Client(stream)
    client.feed(rest)
    # (Our preface first: the client acknowledges the server's SETTINGS on reading them.)
    await client.send_raw(PREFACE + settings())
    first = await client.recv_frame()
    assert isinstance(first, SettingsFrame) and "ACK" not in first.flags, first
    return client, heads


async def test_get_upgrades_and_is_answered_as_stream_1(server: H2TestServer) -> None:
    client, _ = await upgraded(server, upgrade_request("/scope"))
    response = await client.read_response(1)
    assert response.status == 200
    scope = json.loads(response.body)
    assert scope["http_version"] == "2" and scope["method"] == "GET"
    names = [name for name, _ in scope["headers"]]
    assert names == ["host"], "the HTTP/1.1 hop's fields reached the HTTP/2 stream"
    # The connection is HTTP/2 now: a new stream is served on it.
    await client.send_headers(3, request(authority="x"), end_stream=True)
    assert (await client.read_response(3)).body == b"hello from trio_h2\n"
    await client.aclose()


async def test_upgrade_body_becomes_stream_1s_body(server: H2TestServer) -> None:
    body = bytes(range(256)) * 256  # 64 KiB
    client, _ = await upgraded(server, upgrade_request("/echo", method="POST", body=body))
    response = await client.read_response(1)
    assert response.status == 200 and response.body == body
    await client.aclose()


async def test_upgrade_body_at_the_bound_upgrades(server: H2TestServer) -> None:
    body = b"b" * BOUND
    client, _ = await upgraded(server, upgrade_request("/echo", method="POST", body=body))
    assert (await client.read_response(1)).body == body
    await client.aclose()


async def test_body_over_the_bound_is_served_over_http11(server: H2TestServer) -> None:
    """Content-Length over initial_window_size: no 101, an HTTP/1.1 answer,
    and the connection stays HTTP/1.1 (keep-alive)."""
    body = b"o" * (BOUND + 1)
    client = await RawClient.connect(server.host, server.port)
    await client.send(upgrade_request("/echo", method="POST", body=body))
    response = await client.response(b"POST")
    assert response.status == 200 and response.body == body
    assert not response.head.startswith(b"HTTP/1.1 101")
    await client.send(H1_GET)
    assert (await client.response()).body == b"hello from trio_h2\n"
    await client.aclose()


async def test_chunked_body_over_the_bound_is_served_over_http11(server: H2TestServer) -> None:
    """No length to judge by: read up to the bound, then give up the upgrade
    and let the application have what arrived and the rest."""
    body = b"c" * (BOUND + 1000)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 8192]), body[i:i + 8192])
                      for i in range(0, len(body), 8192)) + b"0\r\n\r\n"
    request = upgrade_request("/echo", extra=b"Transfer-Encoding: chunked\r\n", method="PUT")
    client = await RawClient.connect(server.host, server.port)
    await client.send(request + chunks)
    response = await client.response(b"PUT")
    assert response.status == 200 and response.body == body
    await client.aclose()


async def test_chunked_body_under_the_bound_upgrades(server: H2TestServer) -> None:
    body = b"u" * 10000
    request = upgrade_request("/echo", extra=b"Transfer-Encoding: chunked\r\n", method="PUT")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    client, _ = await upgraded(server, request + chunked)
    assert (await client.read_response(1)).body == body
    await client.aclose()


async def test_client_preface_in_the_same_write_as_the_request(server: H2TestServer) -> None:
    """Everything at once: request, preface, SETTINGS and stream 3. Both served."""
    client = H2Client(await trio.open_tcp_stream(server.host, server.port))
    stream3 = client.encode(request("GET", "/scope", authority="x"))
    await client.send_raw(upgrade_request("/") + PREFACE + settings()
                          + headers(3, stream3))
    heads, rest = await read_interim(client.stream)
    assert heads[0].startswith(b"HTTP/1.1 101 ")
    client.feed(rest)
    assert (await client.read_response(1)).body == b"hello from trio_h2\n"
    assert json.loads((await client.read_response(3)).body)["http_version"] == "2"
    await client.aclose()


async def test_expect_100_continue_with_upgrade_gets_100_then_101(
        server: H2TestServer) -> None:
    """The server reads an upgrade body itself, so it asks for it at once."""
    body = b"e" * 5000
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(upgrade_request("/echo", method="POST", body=b"",
                                          extra=b"Expect: 100-continue\r\nContent-Length: 5000\r\n"
                                          ).replace(b"Content-Length: 0\r\n", b""))
    heads, rest = await read_interim(stream, until=b"HTTP/1.1 100 ")
    # The 100 came without the body: only then is the body sent.
    assert heads == [b"HTTP/1.1 100 Continue"] and rest == b"", (heads, rest)
    await stream.send_all(body)
    heads, rest = await read_interim(stream)
    assert heads[0].startswith(b"HTTP/1.1 101 "), heads
    client = H2Client(stream)
    client.feed(rest)
    await client.send_raw(PREFACE + settings())
    assert (await client.read_response(1)).body == body
    await client.aclose()


@pytest.mark.parametrize(("settings", "why"), [
    (b"not*base64", b"not base64url"),
    (b"AAMAAABkAAQCAAAAAAIAAAA", b"not 6 per setting"),  # 17 bytes
    (b"AAIAAAAC", b"invalid value"),  # ENABLE_PUSH = 2
    (b"A", b"base64url digits"),
])
async def test_malformed_http2_settings_is_400(server: H2TestServer, settings: bytes,
                                               why: bytes) -> None:
    client = await RawClient.connect(server.host, server.port)
    await client.send(upgrade_request("/", settings=settings))
    response = await client.response()
    assert response.status == 400
    assert response.body.startswith(b"400 Bad Request: HTTP2-Settings") and why in response.body
    assert response.headers[b"content-type"] == b"text/plain; charset=utf-8"
    await client.aclose()


@pytest.mark.parametrize("request_bytes", [
    pytest.param(upgrade_request(connection=b"Upgrade"), id="HTTP2-Settings not in Connection"),
    pytest.param(upgrade_request(connection=b"HTTP2-Settings"), id="Upgrade not in Connection"),
    pytest.param(upgrade_request(settings=None), id="no HTTP2-Settings"),
    pytest.param(upgrade_request(extra=b"HTTP2-Settings: " + SETTINGS + b"\r\n"),
                 id="two HTTP2-Settings"),
    pytest.param(upgrade_request(version=b"1.0"), id="HTTP/1.0"),
])
async def test_improper_upgrade_requests_are_served_over_http11(
        server: H2TestServer, request_bytes: bytes) -> None:
    """RFC 7540 section 3.2.1 (exactly one HTTP2-Settings, named in
    Connection), RFC 9110 section 7.8 (Upgrade named in Connection, ignored
    from HTTP/1.0): the request is answered as if Upgrade were absent."""
    client = await RawClient.connect(server.host, server.port)
    await client.send(request_bytes)
    response = await client.response()
    assert response.status == 200 and response.head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(response.body)["http_version"] in ("1.1", "1.0")
    await client.aclose()


async def test_upgrade_is_ignored_over_tls(h2_server: H2ServerFactory) -> None:
    """RFC 7540 section 3.2: h2c is for cleartext; over TLS, ALPN chooses."""
    server = await h2_server(app, tls=True)
    assert server.ca is not None
    context = ssl.create_default_context()
    server.ca.configure_trust(context)
    context.set_alpn_protocols(["http/1.1"])
    tcp = await trio.open_tcp_stream(server.host, server.port)
    tls = trio.SSLStream(tcp, context, server_hostname="localhost")
    client = RawClient(tls)
    await client.send(upgrade_request("/scope"))
    response = await client.response()
    assert response.status == 200 and json.loads(response.body)["http_version"] == "1.1"
    await client.aclose()


async def test_no_preface_after_the_101_meets_preface_timeout(
        h2_server: H2ServerFactory) -> None:
    """The client's HTTP/2 preface is due after the 101 like any other, and
    the request waits for it: the application never runs without one."""
    started: list[str] = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            started.append(scope["path"])
        await app(scope, receive, send)

    server = await h2_server(recording, preface_timeout=0.5)
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(upgrade_request("/"))
    heads, rest = await read_interim(stream)
    assert heads[0].startswith(b"HTTP/1.1 101 ")
    client = H2Client(stream, ack_settings=False)  # (an ACK would be a broken preface)
    client.feed(rest)
    client.timeout = 10
    code, _ = await client.expect_goaway()
    assert code == ErrorCodes.ENHANCE_YOUR_CALM and await client.closed()
    assert started == []
    await client.aclose()


async def test_upgrade_body_that_stops_coming_gets_408(h2_server: H2ServerFactory) -> None:
    """Nobody but the server reads an upgrade body: body_timeout bounds it."""
    server = await h2_server(app, body_timeout=0.5)
    client = await RawClient.connect(server.host, server.port)
    await client.send(upgrade_request("/echo", method="POST", body=b"x" * 100)[:-90])
    with trio.fail_after(10):
        response = await client.response(b"POST")
    assert response.status == 408 and b"no request body" in response.body
    await client.aclose()


# ------------------------------------------------------------- real clients


@pytest.mark.parametrize(("size", "version"), [(0, "2"), (64 * KiB, "2"), (BOUND + 1, "1.1")])
async def test_curl_http2_upgrades(server: H2TestServer, tmp_path: Path, size: int,
                                   version: str) -> None:
    """``curl --http2 http://``: 101 and HTTP/2, or HTTP/1.1 past the bound."""
    curl = require_tool("curl")
    body = tmp_path / "body"
    body.write_bytes(bytes(range(256)) * (size // 256) + b"z" * (size % 256))
    data = ["--data-binary", f"@{body}"] if size else []
    out = await run(curl, "-sS", "--http2", *data, "-o", str(tmp_path / "out"),
                    "--write-out", "%{http_version} %{response_code}",
                    server.url + ("/echo" if size else "/scope"))
    assert out == f"{version} 200"
    received = (tmp_path / "out").read_bytes()
    if size:
        assert received == body.read_bytes()
    else:
        assert json.loads(received)["http_version"] == "2"


async def test_nghttp_upgrade(server: H2TestServer, tmp_path: Path) -> None:
    nghttp = require_tool("nghttp")
    body = tmp_path / "body"
    body.write_bytes(b"n" * (64 * KiB))
    out = await run(nghttp, "-u", "-v", "-d", str(body), server.url + "/echo")
    assert "HTTP/1.1 101 Switching Protocols" in out
    assert "HTTP Upgrade success" in out
    assert "n" * 1000 in out
    out = await run(nghttp, "-u", server.url + "/scope")
    assert json.loads(out)["http_version"] == "2"


# ---------------------------------------------------------------- sans-IO


def test_hand_over_with_input_split_at_every_byte() -> None:
    """The HTTP/1.1 core and the HTTP/2 core it hands over to, driven as the
    runner drives them, with the request, its body and the client's preface
    cut in two at every byte: always one 101, our SETTINGS right after it,
    and stream 1 with the whole body once the preface is in."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    settings = client.initiate_upgrade_connection()
    assert settings is not None
    body = b"0123456789" * 30
    wire = upgrade_request("/echo", method="POST", body=body, settings=settings) \
        + client.data_to_send()
    config = Config()
    for cut in range(1, len(wire)):
        core: ProtocolCore = H1Core(
            config, upgrade=lambda handover: H2Core(config, handover=handover))
        core.initiate()
        started: list[Exchange] = []
        for piece in (wire[:cut], wire[cut:]):
            started += core.receive_data(piece)
            if core.successor is not None:
                core = core.successor
                core.initiate()
                started += core.receive_buffered()
        assert isinstance(core, H2Core), cut
        out = core.data_to_send()
        head, _, frames = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), cut
        assert frames[3] == 0x4 and frames[4] == 0, "SETTINGS must come first"
        [stream] = started
        assert stream.stream_id == 1 and stream.http_version == "2" and stream.body_ended
        assert core.take_body(stream) == body, cut
        assert [n for n, _ in stream.head.headers] == [b"host", b"content-length"]
