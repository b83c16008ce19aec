"""The ASGI extensions on the wire: early hints, pathsend, zerocopysend,
server push and tls, each seen by a real client over a socket."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame

from tests.support.frames import MAX_WINDOW
from tests.support.h1raw import RawClient
from tests.support.rawh2 import H2Client, HeaderBlock
from tests.support.requests import GET, h1_request, request
from tests.support.tools import require_tool
from trio_h2 import Config, serve
from trio_h2._apps.asgi import FILE_PIECE
from trio_h2.testing import H2ServerFactory

KiB = 1024
MiB = 1024 * KiB


def make_file(path: Path, size: int) -> str:
    """A file of ``size`` bytes that differ from piece to piece; its sha256."""
    block = hashlib.sha256(str(size).encode()).digest() * 2048  # 64 KiB
    with path.open("wb") as f:
        for start in range(0, size, len(block)):
            f.write(block[:size - start])
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_app(path: Path) -> Any:
    """``/path`` pathsend; ``/zerocopy`` zerocopysend of the whole file from
    its position; ``/range?o,c`` of ``c`` bytes from ``o``; ``/bad?x``
    pathsend of ``x``; ``/memory?n`` a body of ``n`` bytes in one message;
    ``/hint`` two early hints, then 200; anything else says which extensions
    its scope has."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode()
        extensions = ",".join(sorted(scope["extensions"]))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-extensions", extensions.encode())]})
        route = scope["path"]
        if route == "/path":
            await send({"type": "http.response.pathsend", "path": str(path)})
        elif route == "/bad":
            await send({"type": "http.response.pathsend", "path": query})
        elif route in ("/zerocopy", "/range"):
            with path.open("rb") as f:
                message: dict[str, Any] = {"type": "http.response.zerocopysend", "file": f}
                if route == "/range":
                    offset, count = map(int, query.split(","))
                    message.update(offset=offset, count=count, more_body=True)
                await send(message)
                if route == "/range":
                    await send({"type": "http.response.body", "body": b"<end>"})
        elif route == "/memory":
            await send({"type": "http.response.body", "body": b"m" * int(query)})
        else:
            await send({"type": "http.response.body", "body": extensions.encode()})

    async def hinting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path") != "/hint":
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})
        await send({"type": "http.response.early_hint", "links": [b"</a.js>; rel=preload",
                                                                    b"</b.js>; rel=preload"]})
        await send({"type": "http.response.body", "body": b"final"})
        # Once the head has gone out, a hint is dropped (no 1xx after 200).
        await send({"type": "http.response.early_hint", "links": [b"</late>"]})

    return hinting


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "big.bin"
    return path, make_file(path, 3 * MiB + 12345)


# --------------------------------------------------------------- early hints


async def test_early_hints_on_h2_are_103_headers_before_the_200(
        h2_server: H2ServerFactory, big_file: tuple[Path, str]) -> None:
    server = await h2_server(file_app(big_file[0]))
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, request("GET", "/hint"), end_stream=True)
    blocks = []
    while len(blocks) < 3:
        frame = await client.next_frame(lambda f: isinstance(f, HeaderBlock))
        assert isinstance(frame, HeaderBlock)
        blocks.append(frame)
    assert [dict(b.headers)[b":status"] for b in blocks] == [b"103", b"103", b"200"]
    assert [b.end_stream for b in blocks[:2]] == [False, False]
    assert [v for n, v in blocks[0].headers if n == b"link"] == [b"</style.css>; rel=preload"]
    assert [v for n, v in blocks[1].headers if n == b"link"] == [b"</a.js>; rel=preload",
                                                                 b"</b.js>; rel=preload"]
    response = await client.read_response(1)
    assert response.body == b"final"
    await client.aclose()


async def test_early_hints_on_http11_and_none_on_http10(
        h2_server: H2ServerFactory, big_file: tuple[Path, str]) -> None:
    server = await h2_server(file_app(big_file[0]))
    client = await RawClient.connect(server.host, server.port)
    await client.send(h1_request("GET", "/hint"))
    response = await client.response()
    assert response.head == b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    assert (response.status, response.body) == (200, b"final")
    await client.send(h1_request("GET", "/hint", ("connection", "close")))
    raw = await client.eof()
    heads = [part.split(b"\r\n")[0] for part in raw.split(b"\r\n\r\n")[:3]]
    assert heads == [b"HTTP/1.1 103 Early Hints"] * 2 + [b"HTTP/1.1 200 OK"]
    assert raw.count(b"link: ") == 3
    # HTTP/1.0: no 1xx may go to it (RFC 9110 section 15.2), nor the extension.
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET /hint HTTP/1.0\r\n\r\n")
    raw = await client.eof()
    assert raw.startswith(b"HTTP/1.1 200 ") and b" 103 " not in raw and raw.endswith(b"final")
    client = await RawClient.connect(server.host, server.port)
    await client.send(b"GET / HTTP/1.0\r\n\r\n")
    assert (await client.eof()).endswith(b"\r\n\r\nhttp.response.pathsend,"
                                         b"http.response.zerocopysend")


@pytest.mark.parametrize("version", ["--http2-prior-knowledge", "--http1.1"])
async def test_curl_shows_the_103_then_the_200(
        h2_server: H2ServerFactory, big_file: tuple[Path, str], version: str) -> None:
    curl = require_tool("curl")
    server = await h2_server(file_app(big_file[0]))
    result = await trio.run_process([curl, "-sv", version, server.url + "/hint"],
                                    capture_stdout=True, capture_stderr=True)
    err = result.stderr.decode()
    status = "HTTP/2" if "http2" in version else "HTTP/1.1"
    assert f"< {status} 103" in err and f"< {status} 200" in err, err
    assert err.index(f"< {status} 103") < err.index(f"< {status} 200")
    assert "< link: </style.css>; rel=preload" in err
    assert result.stdout == b"final"


# ----------------------------------------------------- pathsend, zerocopysend


@pytest.mark.parametrize("route", ["/path", "/zerocopy"])
async def test_a_file_arrives_intact_over_h2_and_http11(
        h2_server: H2ServerFactory, big_file: tuple[Path, str], route: str) -> None:
    path, digest = big_file
    server = await h2_server(file_app(path))
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, request("GET", route), end_stream=True)
    response = await client.read_response(1)
    assert response.status == 200
    assert dict(response.headers)[b"content-length"] == str(path.stat().st_size).encode()
    assert hashlib.sha256(response.body).hexdigest() == digest
    assert max(response.data_frame_sizes) <= 16384
    await client.aclose()
    h1 = await RawClient.connect(server.host, server.port)
    await h1.send(h1_request("GET", route))
    answer = await h1.response()
    assert answer.headers[b"content-length"] == str(path.stat().st_size).encode()
    assert hashlib.sha256(answer.body).hexdigest() == digest
    await h1.send(h1_request("HEAD", route))
    head = await h1.response(b"HEAD")
    assert head.body == b"" and head.headers[b"content-length"] == answer.headers[
        b"content-length"]
    await h1.aclose()


async def test_zerocopysend_offset_and_count_then_more_body(
        h2_server: H2ServerFactory, big_file: tuple[Path, str]) -> None:
    path, _ = big_file
    data = path.read_bytes()
    server = await h2_server(file_app(path))
    client = await H2Client.connect(server.host, server.port)
    for stream_id, (offset, count) in zip((1, 3, 5), [(0, 0), (1, 200000), (70000, 2 * MiB)],
                                          strict=True):
        await client.send_headers(stream_id, request("GET", f"/range?{offset},{count}"),
                                  end_stream=True)
        response = await client.read_response(stream_id)
        assert response.body == data[offset:offset + count] + b"<end>"
    await client.aclose()


@pytest.mark.parametrize("bad", ["relative/file", "/does/not/exist", "/"])
async def test_pathsend_of_a_bad_path_is_a_500(
        h2_server: H2ServerFactory, big_file: tuple[Path, str], bad: str,
        caplog: pytest.LogCaptureFixture) -> None:
    server = await h2_server(file_app(big_file[0]))
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, request("GET", f"/bad?{bad}"), end_stream=True)
    response = await client.read_response(1)
    assert response.status == 500
    raised = [r for r in caplog.records if "application raised" in r.getMessage()]
    expected = "FileNotFoundError" if bad == "/does/not/exist" else "LocalProtocolError"
    assert [r.getMessage().split()[-1] for r in raised] == [expected]
    # The connection goes on.
    await client.send_headers(3, request("GET", "/"), end_stream=True)
    assert (await client.read_response(3)).status == 200
    await client.aclose()


async def test_a_high_urgency_stream_overtakes_a_low_urgency_pathsend(
        h2_server: H2ServerFactory, tmp_path: Path) -> None:
    """RFC 9218: stream 3 (u=0) arrives while stream 1 (u=7) sends a file;
    stream 3's DATA goes out in one run (but for the end of a turn of stream
    1's already begun), before stream 1 ends."""
    path = tmp_path / "low.bin"
    digest = make_file(path, 16 * MiB)
    server = await h2_server(file_app(path))
    client = await H2Client.connect(server.host, server.port,
                                    settings={SettingCodes.INITIAL_WINDOW_SIZE: MiB})
    await client.send_window_update(0, MAX_WINDOW - 65535)
    await client.send_headers(1, request("GET", "/path", ("priority", "u=7")), end_stream=True)
    order: list[tuple[int, int, bool]] = []  # (stream, bytes, END_STREAM)
    low = bytearray()

    async def read_data() -> None:
        frame = await client.next_frame(lambda f: isinstance(f, DataFrame))
        assert isinstance(frame, DataFrame)
        order.append((frame.stream_id, len(frame.data), "END_STREAM" in frame.flags))
        if frame.stream_id == 1:
            low.extend(frame.data)
            if frame.data and "END_STREAM" not in frame.flags:
                await client.send_window_update(1, len(frame.data))

    while len(low) < 256 * KiB:
        await read_data()
    await client.send_headers(3, request("GET", "/memory?262144", ("priority", "u=0")),
                              end_stream=True)
    while order[-1][0] != 1 or not order[-1][2]:
        await read_data()
    high = [i for i, (stream_id, _, _) in enumerate(order) if stream_id == 3]
    assert sum(order[i][1] for i in high) == 256 * KiB
    # Between stream 3's first and last DATA, stream 1 may only finish the
    # turn (one 16 KiB quantum, Scheduler.next's "owed" turn) that a batch's
    # end interrupted while its next piece was being read.
    between = [n for stream_id, n, _ in order[high[0]:high[-1] + 1] if stream_id == 1]
    assert sum(between) < 16384 and len(between) <= 1, order[high[0]:high[-1] + 1]
    assert high[-1] < len(order) - 1
    # Stream 1's DATA after stream 3's request and before its first DATA: what
    # the sender had framed or written already (a batch, a piece, the window).
    assert hashlib.sha256(low).hexdigest() == digest
    await client.aclose()


def file_position(path: Path) -> int:
    """Where this process's open descriptor of ``path`` reads next
    (/proc/self/fdinfo): how far the server has read the file."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                info = Path(f"/proc/self/fdinfo/{fd}").read_text()
                return int(info.split("pos:")[1].split()[0])
        except OSError:
            continue
    raise AssertionError(f"{path} is not open")


@pytest.mark.parametrize("route", ["/path", "/zerocopy"])
async def test_a_closed_window_stops_the_file_being_read(
        h2_server: H2ServerFactory, big_file: tuple[Path, str], route: str) -> None:
    """The client reads nothing past its first stream window: the server has
    read at most that window and one piece of the file, however long it waits."""
    path, _ = big_file
    server = await h2_server(file_app(path))
    client = await H2Client.connect(server.host, server.port)
    await client.send_headers(1, request("GET", route), end_stream=True)
    received = 0
    while received < 65535:
        frame = await client.next_frame(lambda f: isinstance(f, DataFrame))
        assert isinstance(frame, DataFrame)
        received += len(frame.data)
    assert received == 65535
    await trio.sleep(1)
    assert 65535 <= file_position(path) <= 65535 + FILE_PIECE
    # Open the window: the rest comes, and the file is read to its end.
    for stream_id in (0, 1):
        await client.send_window_update(stream_id, received)
    response = await client.read_response(1)
    assert received + len(response.body) == path.stat().st_size
    await client.aclose()


# ----------------------------------------------------------------- push


def push_app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
    async def app() -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for pushed in ("/style.css", "/app.js"):
                await send({"type": "http.response.push", "path": pushed,
                            "headers": [(b"accept", b"*/*")]})
            await send({"type": "http.response.body",
                        "body": ",".join(sorted(scope["extensions"])).encode()})
        else:
            body = (path * 5000).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"x-pushed-by", scope["extensions"].get(
                            "http.response.push", "none").__class__.__name__.encode())]})
            await send({"type": "http.response.body", "body": body})

    return app()


@pytest.mark.parametrize("enable_push", [0, 1])
async def test_push_only_when_the_client_enables_it(
        h2_server: H2ServerFactory, enable_push: int) -> None:
    server = await h2_server(push_app)
    client = await H2Client.connect(server.host, server.port,
                                    settings={SettingCodes.ENABLE_PUSH: enable_push})
    await client.send_headers(1, GET, end_stream=True)
    response = await client.read_response(1)
    promises = response.promises
    if not enable_push:
        assert b"http.response.push" not in response.body
        assert promises == []
        await client.aclose()
        return
    assert b"http.response.push" in response.body
    assert [(p.stream_id, p.promised_stream_id) for p in promises] == [(1, 2), (1, 4)]
    assert dict(promises[0].headers) == {b":method": b"GET", b":scheme": b"http",
                                         b":authority": b"localhost", b":path": b"/style.css",
                                         b"accept": b"*/*"}
    for promise, path in zip(promises, (b"/style.css", b"/app.js"), strict=True):
        pushed = await client.read_response(promise.promised_stream_id)
        assert pushed.status == 200 and pushed.body == path * 5000
        # A pushed stream cannot push (RFC 9113 section 8.4).
        assert dict(pushed.headers)[b"x-pushed-by"] == b"str"
    await client.aclose()


async def test_push_respects_the_clients_max_concurrent_streams_and_its_resets(
        h2_server: H2ServerFactory) -> None:
    server = await h2_server(push_app)
    client = await H2Client.connect(server.host, server.port,
                                    settings={SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    await client.send_headers(1, GET, end_stream=True)
    promises = (await client.read_response(1)).promises
    assert [p.promised_stream_id for p in promises] == [2]  # the second refused
    await client.send_rst(2, 8)  # CANCEL
    # Push turned off later: no promise, and the connection serves on.
    await client.send_settings({SettingCodes.ENABLE_PUSH: 0})
    await client.send_headers(3, GET, end_stream=True)
    response = await client.read_response(3)
    assert b"http.response.push" not in response.body and response.promises == []
    await client.aclose()


async def test_nghttp_receives_the_pushed_responses(h2_server: H2ServerFactory) -> None:
    nghttp = require_tool("nghttp", "nghttp2-client")
    server = await h2_server(push_app)
    result = await trio.run_process([nghttp, "-nv", server.url + "/"], capture_stdout=True)
    out = result.stdout.decode()
    assert out.count("recv PUSH_PROMISE frame") == 2, out
    assert "promised_stream_id=2)" in out and "promised_stream_id=4)" in out
    assert out.count("recv DATA frame <length=") >= 3


# ------------------------------------------------------------------ tls


async def tls_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps(scope["extensions"].get("tls")).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_the_tls_extension_with_a_client_certificate(
        nursery: trio.Nursery, h2_ca: trustme.CA, h2_server: H2ServerFactory) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["h2", "http/1.1"])
    h2_ca.issue_cert("localhost").configure_cert(context)
    client_ca = trustme.CA()
    client_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    [listener] = await nursery.start(functools.partial(
        serve, tls_app, host="127.0.0.1", port=0, ssl_context=context, config=Config()))
    port = listener[1]
    client_cert = client_ca.issue_cert("client@example.org", common_name="Client, Inc.")
    client_context = ssl.create_default_context()
    h2_ca.configure_trust(client_context)
    client_cert.configure_cert(client_context)
    async with httpx.AsyncClient(verify=client_context, http2=True) as http:
        response = await http.get(f"https://localhost:{port}/")
    assert response.http_version == "HTTP/2"
    tls = response.json()
    assert tls["tls_version"] in (0x0303, 0x0304)
    cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    assert tls["cipher_suite"] in cipher_ids.values()
    assert tls["client_cert_chain"] == [client_cert.cert_chain_pems[0].bytes().decode()]
    assert tls["client_cert_name"].startswith("CN=Client\\, Inc.,")
    assert tls["client_cert_error"] is None and tls["server_cert"] is None
    # Plain TCP: no tls extension.
    plain = await h2_server(tls_app)
    client = await H2Client.connect(plain.host, plain.port)
    await client.send_headers(1, GET, end_stream=True)
    assert (await client.read_response(1)).body == b"null"
    await client.aclose()
