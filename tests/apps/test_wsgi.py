"""WSGI (PEP 3333) apps in worker threads, over real sockets: curl, nghttp,
httpx and trio_h2's test client, on h2c, TLS and HTTP/1.1.

``wsgi_app`` (tests/support/wsgiapps.py) is a plain PEP 3333 application.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes

from tests.support.h1raw import RawClient
from tests.support.requests import H1_GET, h1_request
from tests.support.tools import CURL_TRANSPORTS, curl_for, run
from tests.support.wsgiapps import Arrivals, Environ, wsgi_app
from trio_h2 import WSGIApp
from trio_h2._apps.wsgi import detect_interface
from trio_h2.testing import H2ServerFactory, H2TestServer, StreamReset

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture(params=CURL_TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def serve_wsgi(h2_server: H2ServerFactory, transport: str, app: Any = wsgi_app,
                     **options: object) -> H2TestServer:
    threads = options.pop("threads", 40)
    assert isinstance(threads, int)
    return await h2_server(WSGIApp(app, threads=threads), tls=transport == "tls", **options)


async def test_environ(h2_server: H2ServerFactory, transport: str, tmp_path: Path) -> None:
    # A proxy stripped /mount: trio_h2 puts root_path back in front of path.
    server = await serve_wsgi(h2_server, transport, root_path="/mount")
    curl = curl_for(server, transport, tmp_path)
    out = await run(*curl, "-H", "X-Multi: one", "-H", "X-Multi: two", "-H", "Cookie: a=1",
                    "-H", "X_Multi: spoofed", "-H", "Content-Type: text/x-thing",
                    "--data-binary", "12345",
                    server.url + "/caf%C3%A9/environ?x=1&y=%20")
    environ = json.loads(out)
    version = {"h2c": "HTTP/2", "tls": "HTTP/2", "http1": "HTTP/1.1"}[transport]
    host = "localhost" if server.tls else "127.0.0.1"
    expected = {
        "REQUEST_METHOD": "POST", "SERVER_PROTOCOL": version,
        "wsgi.url_scheme": "https" if server.tls else "http",
        "SCRIPT_NAME": "/mount",
        # Percent-decoded, and the UTF-8 bytes as ISO-8859-1 (PEP 3333).
        "PATH_INFO": "/caf\u00c3\u00a9/environ",
        "QUERY_STRING": "x=1&y=%20", "CONTENT_TYPE": "text/x-thing", "CONTENT_LENGTH": "5",
        "HTTP_X_MULTI": "one,two", "HTTP_COOKIE": "a=1",
        "HTTP_HOST": f"{host}:{server.port}", "SERVER_NAME": host,
        "SERVER_PORT": str(server.port), "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": [1, 0], "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.input_terminated": True,
    }
    assert {key: environ.get(key) for key in expected} == expected
    assert int(environ["REMOTE_PORT"]) > 0
    assert "HTTP_X_MULTI" in environ and "spoofed" not in environ["HTTP_X_MULTI"]


async def test_five_megabyte_upload_read_through_wsgi_input(
    h2_server: H2ServerFactory, transport: str, tmp_path: Path
) -> None:
    server = await serve_wsgi(h2_server, transport)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(5 * MiB))
    out = await run(*curl_for(server, transport, tmp_path), "--data-binary", f"@{payload}",
                    server.url + "/upload")
    assert json.loads(out) == {"size": 5 * MiB,
                               "sha256": hashlib.sha256(payload.read_bytes()).hexdigest()}


async def test_streamed_generator_write_and_file_wrapper(
    h2_server: H2ServerFactory, transport: str, tmp_path: Path
) -> None:
    server = await serve_wsgi(h2_server, transport)
    curl = curl_for(server, transport, tmp_path)
    assert await run(*curl, server.url + "/gen?n=300") == "".join(
        f"chunk {i}\n" for i in range(300))
    # write() data goes first, then what the returned iterable yields.
    assert await run(*curl, server.url + "/write?n=50") == "".join(
        f"written {i}\n" for i in range(50)) + "returned\n"
    out = tmp_path / "file.bin"
    await run(*curl, "-o", str(out), server.url + "/file")
    assert out.read_bytes() == bytes(range(256)) * 1000


async def test_nghttp_streams_and_uploads(h2_server: H2ServerFactory, tmp_path: Path) -> None:
    from tests.support.tools import require_tool

    nghttp = require_tool("nghttp")
    server = await serve_wsgi(h2_server, "h2c")
    assert await run(nghttp, server.url + "/gen?n=100") == "".join(
        f"chunk {i}\n" for i in range(100))
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(MiB))
    out = await run(nghttp, "-d", str(payload), server.url + "/upload")
    assert json.loads(out)["sha256"] == hashlib.sha256(payload.read_bytes()).hexdigest()


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1"])
async def test_httpx(h2_server: H2ServerFactory, http2: bool) -> None:
    server = await serve_wsgi(h2_server, "tls")
    payload = os.urandom(5 * MiB)

    def fetch() -> list[httpx.Response]:
        with httpx.Client(http1=not http2, http2=http2, verify=server.client_ssl_context(),
                          timeout=30) as client:
            return [client.get(server.url + "/gen?n=20"),
                    client.post(server.url + "/upload", content=payload),
                    client.post(server.url + "/upload", content=iter([payload[:MiB],
                                                                       payload[MiB:]])),
                    client.get(server.url + "/write?n=3"),
                    client.get(server.url + "/boom")]

    with trio.fail_after(60):
        responses = await trio.to_thread.run_sync(fetch)
    assert {r.http_version for r in responses} == {"HTTP/2" if http2 else "HTTP/1.1"}
    assert responses[0].text == "".join(f"chunk {i}\n" for i in range(20))
    digest = hashlib.sha256(payload).hexdigest()
    # The second upload has no Content-Length (HTTP/1.1: chunked): the app
    # reads to the end of wsgi.input all the same.
    assert [r.json() for r in responses[1:3]] == [{"size": 5 * MiB, "sha256": digest}] * 2
    assert responses[3].text == "written 0\nwritten 1\nwritten 2\nreturned\n"
    assert responses[4].status_code == 500


async def test_input_methods(h2_server: H2ServerFactory, h2_client: Any) -> None:
    server = await serve_wsgi(h2_server, "h2c")
    client = await h2_client(server)
    body = b"first line\nsecond\nthird\nfourth\nfifth\nthe rest, no newline"

    async def pieces() -> Any:  # split across DATA frames at odd places
        for start in range(0, len(body), 7):
            yield body[start:start + 7]

    response = await client.request("POST", "/lines", body=pieces())
    assert json.loads(response.body) == {
        "first": ["first", " line\n"], "hinted": ["second\n"],
        "iterated": ["third\n", "fourth\n"], "remaining": "fifth\nthe rest, no newline",
        "after_end": ""}


async def test_exception_before_the_response_is_a_500_with_a_traceback(
    h2_server: H2ServerFactory, transport: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await serve_wsgi(h2_server, transport)
    curl = curl_for(server, transport, tmp_path)
    out = await run(*curl, "-w", "%{http_code}", server.url + "/boom")
    assert out == "Internal Server Error\n500"
    [record] = [r for r in caplog.records if "application raised" in r.getMessage()]
    assert record.exc_info is not None and "boom before the response" in str(record.exc_info[1])
    # A bad header is an error in the app's start_response call: also 500.
    assert await run(*curl, "-o", "/dev/null", "-w", "%{http_code}",
                     server.url + "/hop") == "500"
    assert any("hop-by-hop header 'Connection'" in str(r.exc_info[1])
               for r in caplog.records if r.exc_info)


async def test_exception_after_the_response_started_resets_the_stream(
    h2_server: H2ServerFactory, h2_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve_wsgi(h2_server, "h2c")
    client = await h2_client(server)
    for path in ("/boom-late", "/exc-info-late", "/too-short"):
        with pytest.raises(StreamReset) as reset:
            await client.get(path)
        assert reset.value.error_code == ErrorCodes.INTERNAL_ERROR
    messages = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert messages == ["boom after the response started", "too late to change the status",
                        "the WSGI application sent 6 bytes of its Content-Length 100"]
    assert (await client.get("/gen?n=2")).body == b"chunk 0\nchunk 1\n"  # still serving


async def test_exception_after_the_response_started_closes_http1(
    h2_server: H2ServerFactory,
) -> None:
    server = await serve_wsgi(h2_server, "http1")
    raw = await RawClient.connect(server.host, server.port)
    await raw.send(h1_request("GET", "/boom-late"))
    with trio.fail_after(10):
        received = await raw.eof()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"first piece\n" in received and not received.endswith(b"0\r\n\r\n")


async def test_exc_info_replaces_the_response_before_it_is_sent(
    h2_server: H2ServerFactory, transport: str, tmp_path: Path
) -> None:
    server = await serve_wsgi(h2_server, transport)
    out = await run(*curl_for(server, transport, tmp_path), "-w", "%{http_code}",
                    server.url + "/exc-info")
    assert out == "sorry\n503"


async def test_content_length_bounds_what_is_sent(
    h2_server: H2ServerFactory, transport: str, tmp_path: Path
) -> None:
    server = await serve_wsgi(h2_server, transport)
    assert await run(*curl_for(server, transport, tmp_path),
                     server.url + "/too-long") == "01234"


async def test_wsgi_errors_lines_go_to_the_log(
    h2_server: H2ServerFactory, h2_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve_wsgi(h2_server, "h2c")
    client = await h2_client(server)
    assert (await client.get("/errors")).body == b"logged\n"
    lines = [r.getMessage() for r in caplog.records
             if r.name == "trio_h2" and "wsgi.errors" in r.getMessage()]
    assert lines == ["GET /errors: wsgi.errors: first line",
                     "GET /errors: wsgi.errors: second line",
                     "GET /errors: wsgi.errors: unterminated"]


async def test_twenty_slow_requests_on_one_connection_and_a_bystander(
    h2_server: H2ServerFactory, h2_client: Any
) -> None:
    """The app's threads block (as a slow database call would); all 20 are in
    the app at once, and the event loop answers others meanwhile."""
    inside = Arrivals()
    release = threading.Event()

    def slow_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            inside.arrive()
            release.wait(30)
        return wsgi_app({**environ, "PATH_INFO": "/gen"}, start_response)

    wsgi = WSGIApp(slow_app)
    server = await h2_server(wsgi)
    client = await h2_client(server)
    bodies: list[bytes] = []

    async def slow() -> None:
        bodies.append((await client.get("/slow?n=3")).body)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(slow)
            await inside.wait_for(20)
            assert wsgi.statistics().borrowed_tokens == 20
            # 20 threads wait in the app: the same connection and another
            # are answered (by a 21st thread) all the same.
            assert (await client.get("/gen?n=1")).body == b"chunk 0\n"
            other = await h2_client(server)
            assert (await other.get("/gen?n=1")).body == b"chunk 0\n"
            assert bodies == []
            release.set()
    assert bodies == [b"chunk 0\nchunk 1\nchunk 2\n"] * 20


async def test_threads_bounds_requests_in_the_app(
    h2_server: H2ServerFactory, h2_client: Any
) -> None:
    """``WSGIApp(threads=2)``: a third request waits for a thread, and its
    response comes once one of the first two is answered."""
    arrivals = Arrivals()
    entered = arrivals.names
    release = {name: threading.Event() for name in ("a", "b", "c")}

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        name = environ["QUERY_STRING"]
        arrivals.arrive(name)
        release[name].wait(30)
        start_response("200 OK", [])
        return [name.encode()]

    wsgi = WSGIApp(app, threads=2)
    server = await h2_server(wsgi)
    client = await h2_client(server)
    answered: list[bytes] = []

    async def get(name: str) -> None:
        answered.append((await client.get(f"/?{name}")).body)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for name in ("a", "b", "c"):
                nursery.start_soon(get, name)
            await arrivals.wait_for(2)
            await trio.testing.wait_all_tasks_blocked(0.05)
            # Two in the app, one waiting for a thread, no answer yet.
            assert len(entered) == 2 and wsgi.statistics().borrowed_tokens == 2
            assert wsgi.statistics().tasks_waiting == 1
            assert answered == []
            first = entered[0]
            waiting = next(name for name in "abc" if name not in entered)
            release[first].set()
            await arrivals.wait_for(3)
            assert entered[2] == waiting
            for event in release.values():
                event.set()
    assert sorted(answered) == [b"a", b"b", b"c"]


@pytest.mark.parametrize("how", ["h2 connection closed", "h2 RST_STREAM",
                                 "http1 connection closed"])
@pytest.mark.parametrize("style", ["generator", "write"])
async def test_client_that_disconnects_mid_response(
    h2_server: H2ServerFactory, h2_client: Any, how: str, style: str
) -> None:
    """The app's next write raises ClientDisconnected (an OSError) in its
    thread, and the iterable's close() is called."""
    events: list[str] = []
    done = threading.Event()

    class Body:
        def __init__(self, pieces: Iterator[bytes]) -> None:
            self._pieces = pieces

        def __iter__(self) -> Iterator[bytes]:
            return self._pieces

        def close(self) -> None:
            close = getattr(self._pieces, "close", None)
            if close is not None:  # a generator: GeneratorExit at its yield
                close()
            events.append("close")
            done.set()

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        if style == "write":
            try:
                while True:
                    write(b"w" * 16 * KiB)
            except OSError as exc:
                events.append(type(exc).__name__)
            return Body(iter([]))

        def pieces() -> Iterator[bytes]:
            try:
                while True:
                    yield b"g" * 16 * KiB
            except GeneratorExit:
                events.append("GeneratorExit")
                raise
        return Body(pieces())

    server = await serve_wsgi(h2_server, "http1" if how.startswith("http1") else "h2c", app)
    with trio.fail_after(20):
        if how == "http1 connection closed":
            raw = await RawClient.connect(server.host, server.port)
            await raw.send(H1_GET)
            received = 0
            while received < 64 * KiB:
                received += len(await raw.stream.receive_some(65536))
            await raw.aclose()
        else:
            client = await h2_client(server)
            async with client.stream("GET", "/") as response:
                await response.__anext__()
                if how == "h2 connection closed":
                    await client.aclose()
            # Leaving the block without reading it all resets the stream (CANCEL).
        await trio.to_thread.run_sync(done.wait, 15)
    expected = ["ClientDisconnected", "close"] if style == "write" else ["GeneratorExit", "close"]
    assert events == expected


async def test_lifespan_is_answered(h2_server: H2ServerFactory, h2_client: Any) -> None:
    # lifespan="on" fails to start unless the app completes startup.
    server = await h2_server(WSGIApp(wsgi_app), lifespan="on")
    client = await h2_client(server)
    assert (await client.get("/gen?n=1")).body == b"chunk 0\n"


def test_wsgiapp_checks_threads() -> None:
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="threads must be an int >= 1"):
            WSGIApp(wsgi_app, threads=bad)  # type: ignore[arg-type]


class _WSGIClass:
    def __call__(self, environ: Environ, start_response: Any) -> list[bytes]:
        return []


class _ASGIClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


def _asgi_sync(scope: Any, receive: Any, send: Any) -> Any:
    return _ASGIClass()(scope, receive, send)


def _either(*args: Any) -> None:
    pass


def test_detect_interface() -> None:
    assert detect_interface(wsgi_app) == "wsgi"
    assert detect_interface(_WSGIClass()) == "wsgi"
    assert detect_interface(_ASGIClass()) == "asgi"
    assert detect_interface(_ASGIClass().__call__) == "asgi"
    assert detect_interface(_asgi_sync) == "asgi"
    assert detect_interface(functools.partial(wsgi_app)) == "wsgi"
    assert detect_interface(_either) is None
    assert detect_interface("not callable") is None
