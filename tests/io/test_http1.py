"""HTTP/1.1 over sockets, beside HTTP/2 on the same port: raw bytes for each
rule, then real clients (curl, httpx, wrk) and the HTTP/2 ones on the same port."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trustme

from tests.support.apps import app, http_only, read_body
from tests.support.h1raw import RawClient
from tests.support.requests import H1_GET, h1_request
from tests.support.tools import curl_args, require_tool, run
from trio_h2 import Config, configure_h2_context
from trio_h2._apps.asgi import asgi_handler
from trio_h2._core.h1 import MAX_TARGET, H1Core
from trio_h2._core.protocol import READ_SIZE
from trio_h2._io.connection import SEND_BATCH, Connection
from trio_h2.testing import H2ServerFactory, H2TestServer

KiB = 1024


async def connect(server: H2TestServer) -> RawClient:
    return await RawClient.connect(server.host, server.port)


@pytest.fixture
async def server(h2_server: H2ServerFactory) -> H2TestServer:
    return await h2_server(app)


class Recorder:
    """An app that notes which requests started and holds each until the test
    releases it (``/hold/N``), or answers at once."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, trio.Event] = {}
        self.messages: list[dict[str, Any]] = []
        self._changed = trio.Event()

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, condition: Any) -> None:
        while not condition():
            await self._changed.wait()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.started.append(path)
        self._note()
        if path.startswith("/hold/"):
            await self.release.setdefault(path, trio.Event()).wait()
        if path in ("/listen", "/wait-body"):
            if path == "/listen":  # read the body, then wait for the end
                await read_body(receive)
            # (/wait-body: waits for body that never comes)
            while not self.messages or self.messages[-1]["type"] != "http.disconnect":
                self.messages.append(await receive())
                self._note()
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": path.encode()})


# ------------------------------------------------------------------ bad input


BAD = [
    pytest.param(b"GARBAGE GARBAGE GARBAGE\r\n\r\n", 400, "", id="garbage"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, "Host", id="no host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, "", id="bad name"),
    pytest.param(b"GET /" + b"a" * MAX_TARGET + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
                 "request-target", id="long target"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n"
                 + b"X-A: 1\r\n" * Config().max_header_fields + b"\r\n", 431,
                 "max_header_fields", id="too many fields"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (64 * KiB) + b"\r\n\r\n", 431,
                 "", id="head too large"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                 "Transfer-Encoding", id="TE gzip"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0", id="HTTP/2.0"),
    pytest.param(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, "HTTP/3.0", id="HTTP/3.0"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 505, "HTTP/2.0", id="not the preface"),
]


@pytest.mark.parametrize(("request_bytes", "status", "says"), BAD)
async def test_bad_request_gets_its_status_a_line_and_a_close(
    server: H2TestServer, caplog: pytest.LogCaptureFixture, request_bytes: bytes,
    status: int, says: str,
) -> None:
    caplog.set_level(logging.INFO, logger="trio_h2")
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(request_bytes)
        response = await client.response()
        assert await client.eof() == b""  # closed, nothing more
    assert response.status == status
    assert response.headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert response.headers[b"connection"] == b"close"
    assert response.body.startswith(b"%d " % status) and says.encode() in response.body
    lines = [r.getMessage() for r in caplog.records if "bad request" in r.getMessage()]
    assert len(lines) == 1 and f"answered {status}" in lines[0]


@pytest.mark.parametrize(("fields", "status"), [(5, 200), (6, 431)])
async def test_max_header_fields(h2_server: H2ServerFactory, fields: int, status: int) -> None:
    server = await h2_server(app, max_header_fields=5)
    client = await connect(server)
    extra = b"".join(b"X-%d: 1\r\n" % n for n in range(fields - 1))  # and Host
    with trio.fail_after(10):
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
        assert (await client.response()).status == status


async def test_content_length_with_transfer_encoding_is_never_two_requests(
    h2_server: H2ServerFactory,
) -> None:
    # RFC 9112 section 6.3. Read as Content-Length, the chunked body holds
    # a second request ("GET /smuggled"); read as chunked, the bytes after
    # the body are one. Either way it must not reach the app.
    recorder = Recorder()
    server = await h2_server(recorder)
    client = await connect(server)
    smuggled = h1_request("GET", "/smuggled")
    with trio.fail_after(10):
        await client.send(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
        response = await client.response(b"POST")
        await client.eof()
    assert response.status == 400 and b"Content-Length and Transfer-Encoding" in response.body
    assert recorder.started == []


async def test_slow_head_gets_408_at_header_timeout(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory,
) -> None:
    server = await h2_server(app, header_timeout=7)
    client = await connect(server)
    await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    start = trio.current_time()
    response = await client.response()
    assert response.status == 408
    assert 7 <= trio.current_time() - start < 8


async def test_idle_keep_alive_connection_is_closed_at_idle_timeout(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory,
) -> None:
    server = await h2_server(app, idle_timeout=30)
    client = await connect(server)
    await client.send(H1_GET)
    assert (await client.response()).status == 200
    done = trio.current_time()
    assert await client.eof() == b""
    assert 30 <= trio.current_time() - done < 31


# ------------------------------------------------------------ the exchanges


async def test_keep_alive_serves_many_requests_on_one_connection(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        for n in range(5):
            await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
                              b"%02d" % n)
            response = await client.response(b"POST")
            assert (response.status, response.body) == (200, b"%02d" % n)
            assert b"date" in response.headers and b"connection" not in response.headers


REQUEST_VAR: ContextVar[str] = ContextVar("REQUEST_VAR", default="unset")


async def test_each_exchange_starts_with_a_fresh_context(h2_server: H2ServerFactory) -> None:
    """A keep-alive connection's exchanges run one after another in one
    handler task, yet a context variable one request's application sets is
    not seen by the next, as if each had a task of its own; and an
    application still running after its response (a background task) does
    not hold up the next request."""
    release = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen = REQUEST_VAR.get()
        REQUEST_VAR.set(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": seen.encode()})
        if scope["path"] == "/linger":
            await release.wait()

    server = await h2_server(app)
    client = await connect(server)
    with trio.fail_after(10):
        for path in (b"/a", b"/b", b"/linger", b"/c", b"/d"):
            await client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            assert (await client.response()).body == b"unset", path
        release.set()
        await client.send(b"GET /e HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await client.response()).body == b"unset"


async def test_pipelined_requests_are_answered_in_order_and_read_one_at_a_time(
    h2_server: H2ServerFactory,
) -> None:
    recorder = Recorder()
    server = await h2_server(recorder)
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(h1_request("GET", "/hold/1") + h1_request("GET", "/second")
                          + h1_request("GET", "/third"))
        await trio.sleep(0.5)
        # The next request is not read until the response before it is done.
        assert recorder.started == ["/hold/1"]
        recorder.release.setdefault("/hold/1", trio.Event()).set()
        responses = await client.responses(b"GET", b"GET", b"GET")
    assert [r.body for r in responses] == [b"/hold/1", b"/second", b"/third"]
    assert recorder.started == ["/hold/1", "/second", "/third"]


async def test_chunked_upload_and_chunked_download(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n")
        await trio.sleep(0.1)
        await client.send(b"6\r\n world\r\n0\r\n\r\n")
        echoed = await client.response(b"POST")
        await client.send(h1_request("GET", "/stream?n=3"))
        streamed = await client.response()
    assert echoed.body == b"hello world"
    assert echoed.headers[b"content-length"] == b"11"
    assert streamed.headers[b"transfer-encoding"] == b"chunked"
    assert b"content-length" not in streamed.headers
    assert streamed.body == b"chunk 0\nchunk 1\nchunk 2\n"


async def test_http10_streaming_is_close_delimited(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(b"GET /stream?n=2 HTTP/1.0\r\n\r\n")
        raw = await client.eof()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in head and b"chunked" not in head.lower()
    assert body == b"chunk 0\nchunk 1\n"


async def test_http10_keep_alive_only_when_asked(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        for _ in range(2):
            await client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = await client.response()
            assert response.headers[b"connection"] == b"keep-alive"
            assert response.body == b"hello from trio_h2\n"
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        assert (await client.response()).headers[b"connection"] == b"close"
        assert await client.eof() == b""


async def test_pipelined_http10_keep_alive_requests_are_all_answered(
        server: H2TestServer) -> None:
    """HTTP/1.0 keep-alive requests sent in one write (ab -k, old proxies):
    each is answered, in order. The second used to wait in the server's
    buffer for ever (until idle_timeout) while the reader waited for bytes
    the client had already sent."""
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 3)
        responses = await client.responses(b"GET", b"GET", b"GET")
    assert [r.headers[b"connection"] for r in responses] == [b"keep-alive"] * 3
    assert [r.body for r in responses] == [b"hello from trio_h2\n"] * 3


async def test_connection_close_closes_after_the_response(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(h1_request("GET", "/", ("Connection", "close")) + H1_GET)
        response = await client.response()
        assert await client.eof() == b""  # the pipelined GET is not answered
    assert response.headers[b"connection"] == b"close"


async def test_head_has_headers_and_no_body(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(h1_request("HEAD", "/") + H1_GET)
        head, get = await client.responses(b"HEAD", b"GET")
    assert head.status == 200 and head.body == b""
    assert head.headers[b"content-type"] == b"text/plain"
    assert head.headers[b"content-length"] == b"19"  # what GET says (RFC 9110 9.3.2)
    assert get.body == b"hello from trio_h2\n"


async def test_scope_says_http_version_and_headers(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(b"GET /scope/a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\n"
                          b"X-Two: 2\r\n\r\n")
        scope = json.loads((await client.response()).body)
        await client.send(b"GET /scope HTTP/1.0\r\n\r\n")
        scope10 = json.loads((await client.response()).body)
    assert scope["http_version"] == "1.1" and scope10["http_version"] == "1.0"
    assert scope["path"] == "/scope/a b" and scope["query_string"] == "x=1"
    assert scope["headers"] == [["host", "example.com"], ["x-two", "2"]]
    assert scope["scheme"] == "http"


async def test_app_error_is_500_and_the_connection_goes_on(server: H2TestServer) -> None:
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(h1_request("GET", "/boom") + H1_GET)
        boom, hello = await client.responses(b"GET", b"GET")
    assert boom.status == 500 and hello.status == 200


async def trailers_app(scope: Any, receive: Any, send: Any) -> None:
    extensions = sorted(scope["extensions"])
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"x-extensions", ",".join(extensions).encode())]})
    await send({"type": "http.response.body", "body": b"data", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"42")]})


async def test_trailers_go_in_the_last_chunk_on_11_and_are_dropped_on_10(
    h2_server: H2ServerFactory,
) -> None:
    server = await h2_server(http_only(trailers_app))
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(H1_GET)
        response = await client.response()
        await client.send(b"GET / HTTP/1.0\r\n\r\n")
        raw10 = await client.eof()
    assert response.headers[b"x-extensions"] == (
        b"http.response.early_hint,http.response.pathsend,http.response.trailers,"
        b"http.response.zerocopysend")
    assert response.headers[b"transfer-encoding"] == b"chunked"
    assert (response.body, response.trailers) == (b"data", {b"x-checksum": b"42"})
    head10, _, body10 = raw10.partition(b"\r\n\r\n")
    # No trailers and no 1xx (RFC 9110 section 15.2) for HTTP/1.0.
    assert b"x-extensions: http.response.pathsend,http.response.zerocopysend\r\n" in head10
    assert body10 == b"data"


# --------------------------------------------------------------- disconnects


@pytest.mark.parametrize(("path", "request_bytes", "seen"), [
    pytest.param("/listen", b"POST /listen HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
                 ["http.disconnect"], id="body read"),
    pytest.param("/wait-body",
                 b"POST /wait-body HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nhi",
                 ["http.request", "http.disconnect"], id="waiting for body"),
])
async def test_client_gone_is_http_disconnect(
    h2_server: H2ServerFactory, path: str, request_bytes: bytes, seen: list[str],
) -> None:
    recorder = Recorder()
    server = await h2_server(recorder)
    client = await connect(server)
    with trio.fail_after(10):
        await client.send(request_bytes)
        await recorder.until(lambda: recorder.started == [path])
        await trio.sleep(0.1)
        await client.aclose()
        await recorder.until(lambda: recorder.messages
                             and recorder.messages[-1]["type"] == "http.disconnect")
    assert [m["type"] for m in recorder.messages] == seen


# -------------------------------------------------------------- backpressure


async def run_connection(nursery: trio.Nursery, app_: Any, config: Config,
                         ) -> trio.testing.LockstepStream:
    """A real Connection with the HTTP/1.1 core and the ASGI handler, over an
    unbuffered in-memory stream: every byte the client sends is a byte the
    server took, so the counts are exact."""
    client, server = trio.testing.lockstep_stream_pair()
    handler = asgi_handler(http_only(app_), config, scheme="http", server=None, client=None,
                           state=None)
    conn = Connection(server, H1Core(config, clock=trio.current_time), handler, peer="test")
    nursery.start_soon(conn.run)
    return client


async def test_an_app_that_never_reads_bounds_what_is_taken_off_the_socket(
    nursery: trio.Nursery,
) -> None:
    window = 64 * KiB

    async def never_reads(scope: Any, receive: Any, send: Any) -> None:
        await trio.sleep_forever()

    client = await run_connection(nursery, never_reads, Config(initial_window_size=window))
    await client.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    sent = 0
    with trio.move_on_after(1):
        while True:
            await client.send_all(b"x" * 4096)
            sent += 4096
    # The body buffer's bound, plus the read that crossed it.
    assert window <= sent <= window + READ_SIZE, sent


async def test_pipelined_bytes_held_are_one_read(nursery: trio.Nursery) -> None:
    release = trio.Event()

    async def held(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()

    client = await run_connection(nursery, held, Config())
    sent = 0
    with trio.move_on_after(1):
        while True:
            await client.send_all(H1_GET)
            sent += len(H1_GET)
    assert sent <= READ_SIZE + len(H1_GET), sent


async def test_send_to_a_client_that_never_reads_blocks(nursery: trio.Nursery) -> None:
    passed = 0
    chunk = 16 * KiB

    async def endless(scope: Any, receive: Any, send: Any) -> None:
        nonlocal passed
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"x" * chunk, "more_body": True})
            passed += chunk

    client = await run_connection(nursery, endless, Config())
    await client.send_all(H1_GET)
    await trio.sleep(1)
    assert passed <= SEND_BATCH + chunk, passed  # in the one write under way, and one more


async def test_send_timeout_ends_a_download_nobody_reads(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory,
) -> None:
    outcome: list[str] = []
    done = trio.Event()

    async def endless(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536,
                            "more_body": True})
        except OSError as exc:  # ClientDisconnected
            outcome.append(type(exc).__name__)
            outcome.append(str(trio.current_time()))
            done.set()

    server = await h2_server(http_only(endless), send_timeout=20)
    sock = socket.create_connection((server.host, server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(H1_GET)
    start = trio.current_time()
    await done.wait()
    assert outcome[0] == "ClientDisconnected"
    assert 20 <= float(outcome[1]) - start < 40
    sock.close()


# -------------------------------------------------------------- real clients


async def test_curl_without_flags_keeps_the_connection(server: H2TestServer) -> None:
    curl = require_tool("curl")
    out = await run(curl, "-sS", "-w", "%{http_code} %{http_version} %{num_connects}\\n",
                    "-o", "/dev/null", server.url + "/", "-o", "/dev/null",
                    server.url + "/stream?n=5", "-o", "/dev/null", "-d", "hi",
                    server.url + "/echo")
    assert out.splitlines() == ["200 1.1 1", "200 1.1 0", "200 1.1 0"]


async def test_curl_http11_over_tls(h2_server: H2ServerFactory, tmp_path: Path) -> None:
    server = await h2_server(app, tls=True)
    curl = curl_args(server, tmp_path)  # [curl, -sS, --http2, --cacert, FILE]
    out = await run(curl[0], "-sS", "--http1.1", *curl[3:], server.url + "/scope")
    scope = json.loads(out)
    assert scope["http_version"] == "1.1" and scope["scheme"] == "https"
    out = await run(*curl, server.url + "/scope")  # the same port, ALPN h2
    assert json.loads(out)["http_version"] == "2"


@pytest.mark.parametrize("tls", [False, True])
async def test_httpx_http1(h2_server: H2ServerFactory, tls: bool) -> None:
    server = await h2_server(app, tls=tls)
    verify: Any = server.client_ssl_context() if tls else False

    def fetch() -> list[tuple[int, str, bytes]]:
        with httpx.Client(http1=True, http2=False, verify=verify) as client:
            out = []
            for path, body in (("/", None), ("/echo", b"x" * 300000), ("/stream?n=3", None)):
                response = client.request("POST" if body else "GET", server.url + path,
                                          content=body)
                out.append((response.status_code, response.http_version, response.content))
            return out

    with trio.fail_after(30):
        results = await trio.to_thread.run_sync(fetch)
    assert [r[:2] for r in results] == [(200, "HTTP/1.1")] * 3
    assert results[1][2] == b"x" * 300000
    assert results[2][2] == b"chunk 0\nchunk 1\nchunk 2\n"


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello\n"})


async def test_wrk_against_a_hello_app(h2_server: H2ServerFactory) -> None:
    wrk = require_tool("wrk")
    server = await h2_server(http_only(hello))
    out = await run(wrk, "-t1", "-c8", "-d2s", server.url + "/")
    requests = re.search(r"(\d+) requests in", out)
    assert requests is not None and int(requests[1]) > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out


async def test_h2_clients_on_the_same_port(server: H2TestServer) -> None:
    nghttp, h2load = require_tool("nghttp"), require_tool("h2load")
    out = await run(nghttp, "-nv", server.url + "/")
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    out = await run(h2load, "-n", "200", "-c", "2", "-m", "4", server.url + "/")
    assert "200 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
    curl = require_tool("curl")
    out = await run(curl, "-sS", "--http2-prior-knowledge", server.url + "/scope")
    assert json.loads(out)["http_version"] == "2"
    client = await connect(server)  # and HTTP/1.1 beside them
    await client.send(H1_GET)
    assert (await client.response()).status == 200


async def test_http1_off_is_http2_only(h2_server: H2ServerFactory) -> None:
    server = await h2_server(app, http1=False)
    client = await connect(server)
    await client.send(H1_GET)
    with trio.fail_after(10):
        raw = await client.eof()
    assert not raw.startswith(b"HTTP/1.1")  # h2's SETTINGS and GOAWAY, not a response


@pytest.mark.parametrize(("http1", "offered", "selected"), [
    (True, ["http/1.1"], "http/1.1"), (False, ["http/1.1"], None),
    (True, ["http/1.1", "h2"], "h2"),  # the server's preference
])
async def test_alpn_offers_http11_unless_told_not_to(
    h2_ca: trustme.CA, http1: bool, offered: list[str], selected: str | None,
) -> None:
    server_context = configure_h2_context(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), http1=http1)
    h2_ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    h2_ca.configure_trust(client_context)
    client_context.set_alpn_protocols(offered)
    near, far = trio.testing.memory_stream_pair()
    server = trio.SSLStream(near, server_context, server_side=True)
    client = trio.SSLStream(far, client_context, server_hostname="localhost")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            nursery.start_soon(client.do_handshake)
    assert client.selected_alpn_protocol() == selected
