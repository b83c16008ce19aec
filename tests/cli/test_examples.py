"""Every program in examples/ started and spoken to over a real socket.

Apps run in-process under the ``h2_server`` fixture and are driven by curl,
trio_h2.testing's HTTP/2 and WebSocket clients; programs (and one app per
kind, as the README says to run them) run as subprocesses through
tests/support/processes.py's ``run_server``. The last test runs
examples/test_with_plugin.py with pytest, as its docstring says to.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from examples import (
    checked_upload,
    fastapi_app,
    flask_app,
    large_download,
    quart_trio_app,
    raw_asgi,
    sse,
    starlette_app,
    websocket_chat,
)
from tests.support.processes import SOURCE_ROOT, TIMEOUT, curl, environment, h2c_get, run_server
from trio_h2.testing import H2ClientFactory, H2ServerFactory, open_websocket

# A liveness bound for a polled outcome (a background task's effect), generous
# for a loaded 2-core machine.
LIVENESS = 10.0


async def run_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(partial(curl, *args))


async def test_raw_asgi_get_and_streamed_echo(h2_server: H2ServerFactory,
                                              tmp_path: Path) -> None:
    server = await h2_server(raw_asgi.app)
    hello = await run_curl("--http2-prior-knowledge", "--fail", server.url + "/")
    assert hello.stdout == "Hello from trio_h2 over HTTP/2\n", hello.stderr
    upload = tmp_path / "upload"
    upload.write_bytes(bytes(range(256)) * 4096)  # 1 MiB: many DATA frames each way
    echo = await trio.to_thread.run_sync(partial(
        subprocess.run, ["curl", "--silent", "--http2-prior-knowledge", "--fail",
                         "--data-binary", f"@{upload}", server.url + "/echo"],
        capture_output=True, timeout=TIMEOUT))
    assert echo.returncode == 0, echo.stderr
    assert echo.stdout == upload.read_bytes()
    http1 = await run_curl("--http1.1", "--fail", server.url + "/")
    assert http1.stdout == "Hello from trio_h2 over HTTP/1.1\n"


def test_raw_asgi_runs_as_the_readme_says(tmp_path: Path) -> None:
    with run_server("examples.raw_asgi:app", "--bind", "127.0.0.1:0", cwd=tmp_path) as server:
        assert h2c_get(server.url + "/") == "Hello from trio_h2 over HTTP/2\n"


async def test_starlette_routes_and_websocket(h2_server: H2ServerFactory,
                                              h2_client: H2ClientFactory) -> None:
    server = await h2_server(starlette_app.app)
    client = await h2_client(server)
    assert (await client.get("/")).text == "Hello from Starlette over HTTP/2\n"
    user = await client.get("/users/ada")
    assert (user.status, json.loads(user.body)) == (200, {"name": "ada"})
    for http2 in (False, True):
        async with open_websocket(server.url + "/shout", http2=http2) as ws:
            await ws.send("hello")
            assert await ws.receive() == "HELLO"


async def test_quart_trio_json_stream_and_websocket(h2_server: H2ServerFactory,
                                                    h2_client: H2ClientFactory) -> None:
    server = await h2_server(quart_trio_app.app)
    client = await h2_client(server)
    hello = await client.get("/hello/ada")
    assert (hello.status, json.loads(hello.body)) == (200, {"hello": "ada"})
    chunks = []
    async with client.stream("GET", "/countdown") as response:
        async for chunk in response:
            chunks.append(chunk)
    assert b"".join(chunks) == b"3\n2\n1\nliftoff\n"
    assert len(chunks) > 1  # streamed as produced
    h2c = await run_curl("--http2-prior-knowledge", "--fail", server.url + "/hello/grace")
    assert json.loads(h2c.stdout) == {"hello": "grace"}, h2c.stderr
    http1 = await run_curl("--http1.1", "--fail", server.url + "/hello/grace")
    assert json.loads(http1.stdout) == {"hello": "grace"}, http1.stderr
    streamed = await run_curl("--http1.1", "--fail", "--include", server.url + "/countdown")
    assert "transfer-encoding: chunked" in streamed.stdout.lower(), streamed.stdout
    assert streamed.stdout.endswith("3\n2\n1\nliftoff\n")
    for http2 in (False, True):
        async with open_websocket(server.url + "/echo", http2=http2) as ws:
            await ws.send("trio")
            assert await ws.receive() == "oirt"


async def test_fastapi_model_stream_and_background_task(
        h2_server: H2ServerFactory, h2_client: H2ClientFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastapi_app, "ledger", [])
    server = await h2_server(fastapi_app.app)
    client = await h2_client(server)
    order = json.dumps({"name": "tea", "price": 2.5, "quantity": 4}).encode()
    json_type = [("content-type", "application/json")]
    created = await client.request("POST", "/orders", headers=json_type, body=order)
    assert (created.status, json.loads(created.body)) == (200, {"total": 10.0})
    invalid = await client.request("POST", "/orders", headers=json_type,
                                   body=b'{"name": "tea", "price": -1}')
    assert invalid.status == 422  # pydantic refused it
    with trio.fail_after(LIVENESS):  # the background task runs after the response
        while True:  # polled over HTTP, as a client would
            if json.loads((await client.get("/orders")).body) == ["4 x tea"]:
                break
            await trio.sleep(0.01)
    chunks = []
    async with client.stream("GET", "/countdown") as response:
        assert response.header("content-type") == b"text/plain; charset=utf-8"
        async for chunk in response:
            chunks.append(chunk)
    assert b"".join(chunks) == b"5\n4\n3\n2\n1\nliftoff\n"
    assert len(chunks) > 1  # streamed as produced, not gathered into one frame


def test_trio_native_serves_beside_its_worker_and_drains_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "examples.trio_native", "0"]
    with run_server(cwd=tmp_path, command=command) as server:
        for job in ("one", "two", "three"):
            queued = curl("--http2-prior-knowledge", "--fail", "-d", job, server.url + "/jobs")
            assert queued.stdout == "queued\n", queued.stderr
        assert h2c_get(server.url + "/").endswith(" jobs done\n")
        assert server.signal_and_wait(signal.SIGTERM) == 0
        output = server.stdout.rest()
    assert "got SIGTERM, stopping" in output
    assert output.endswith("stopped; 3 jobs done\n")  # the queue drained after the server


async def test_sse_events_and_a_slow_client_stalls_the_generator(
        h2_server: H2ServerFactory, h2_client: H2ClientFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = await h2_server(sse.app)
    client = await h2_client(server)
    received = b""
    async with client.stream("GET", "/events") as response:
        assert response.header("content-type") == b"text/event-stream"
        async for chunk in response:
            received += chunk
            if received.count(b"\n\n") >= 3:
                break
    assert received.startswith(b"id: 0\ndata: 0\n\nid: 1\ndata: 1\n\nid: 2\ndata: 2\n\n")

    # Without the pause between events, the client's 100-byte window is all
    # that lets the generator run: it stops at about 100 / 15 events.
    monkeypatch.setattr(sse, "INTERVAL", 0)
    generated = []
    counter = sse.counter

    async def counting() -> AsyncIterator[bytes]:
        async for event in counter():
            generated.append(event)
            yield event

    monkeypatch.setattr(sse, "counter", counting)
    slow = await h2_client(server, initial_window_size=100, auto_window=False)
    async with slow.stream("GET", "/events") as response:
        first = await anext(response)
        await trio.testing.wait_all_tasks_blocked()
        stalled_at = len(generated)
        assert stalled_at <= 100 // len(b"id: 0\ndata: 0\n\n") + 2, stalled_at
        assert len(first) <= 100
        await slow.open_window(10_000, stream_id=response.stream_id)
        await slow.open_window(10_000)
        while len(generated) < stalled_at + 100:  # once credit arrives it goes on
            await anext(response)


async def test_websocket_chat_broadcasts_over_http1_and_http2(
        h2_server: H2ServerFactory) -> None:
    server = await h2_server(websocket_chat.app)
    url = server.url + "/chat"
    async with open_websocket(url, http2=True) as alice, \
            open_websocket(url, http2=True) as bob, \
            open_websocket(url, http2=False) as carol:
        await alice.send("hi from alice")
        await carol.send("hi from carol")
        for member in (alice, bob, carol):
            # Each connection is read on its own: the two may arrive in either order.
            assert sorted([await member.receive(), await member.receive()]) == [
                "hi from alice", "hi from carol"]
    page = await run_curl("--http2-prior-knowledge", "--fail", server.url + "/")
    assert "new WebSocket(" in page.stdout


async def test_flask_through_wsgi(h2_server: H2ServerFactory,
                                  h2_client: H2ClientFactory) -> None:
    server = await h2_server(flask_app.app)
    client = await h2_client(server)
    assert (await client.get("/")).text == "Hello from Flask over HTTP/2\n"
    echoed = await client.request("POST", "/json", headers=[("content-type", "application/json")],
                                  body=b'{"a": 1, "b": 2}')
    assert json.loads(echoed.body) == {"received": {"a": 1, "b": 2}, "keys": 2}


def test_flask_detected_by_the_runner(tmp_path: Path) -> None:
    with run_server("examples.flask_app:flask_app", "--bind", "127.0.0.1:0",
                    cwd=tmp_path) as server:
        assert "wsgi" in server.line.lower(), server.line
        result = curl("--http1.1", "--fail", server.url + "/")
        assert result.stdout == "Hello from Flask over HTTP/1.1\n", result.stderr


async def test_large_download_complete_and_paced_by_the_client(
        h2_server: H2ServerFactory, h2_client: H2ClientFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    size = 8 * 1024 * 1024 + 5  # not a whole number of chunks
    expected = hashlib.sha256()
    async for chunk in large_download.generate(size):
        expected.update(chunk)
    server = await h2_server(large_download.app)
    result = await trio.to_thread.run_sync(partial(
        subprocess.run, ["curl", "--silent", "--http2-prior-knowledge", "--fail",
                         f"{server.url}/download?size={size}"],
        capture_output=True, timeout=TIMEOUT))
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).hexdigest() == expected.hexdigest()

    produced = []
    generate = large_download.generate

    async def counting(size: int) -> AsyncIterator[bytes]:
        async for chunk in generate(size):
            produced.append(len(chunk))
            yield chunk

    monkeypatch.setattr(large_download, "generate", counting)
    client = await h2_client(server, initial_window_size=large_download.CHUNK,
                             auto_window=False)
    async with client.stream("GET", f"/download?size={size}") as response:
        received = len(await anext(response))
        await trio.testing.wait_all_tasks_blocked()
        # One chunk in the window, at most one more waiting in send: not the
        # 129 chunks of the whole download.
        assert len(produced) <= 2, produced
        await client.open_window(size, stream_id=response.stream_id)
        await client.open_window(size)
        received += len(await response.read())
    assert received == size
    assert sum(produced) == size


async def test_checked_upload_hashes_and_refuses_early(
        h2_server: H2ServerFactory, h2_client: H2ClientFactory, tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(b"trio_h2 " * 200_000)
    server = await h2_server(checked_upload.app)
    accepted = await run_curl("--http2-prior-knowledge", "--fail", "--data-binary",
                              f"@{upload}", server.url + "/upload")
    assert json.loads(accepted.stdout) == {
        "size": 1_600_000, "sha256": hashlib.sha256(upload.read_bytes()).hexdigest()}

    limit = 100_000
    small = await h2_server(checked_upload.make_app(limit))
    client = await h2_client(small)
    # (curl 7.88 reports an early 413 followed by RST_STREAM(NO_ERROR) as
    # error 92 instead of showing it, although RFC 9113 section 8.1 allows it.)
    declared = await client.request("POST", "/upload", body=b"x" * (limit + 1),
                                    headers=[("content-length", str(limit + 1))])
    assert declared.status == 413
    http1 = await run_curl("--http1.1", "--data-binary", f"@{upload}", "--write-out",
                           "%{http_code}", "--output", "/dev/null", small.url + "/upload")
    assert http1.stdout == "413", http1.stderr

    # No content-length: refused once the running size passes the limit,
    # and the client is stopped long before it has sent 64 MiB.
    total = 64 * 1024 * 1024
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += 16384
            yield b"x" * 16384

    refused = await client.request("POST", "/upload", body=body())
    assert refused.status == 413
    assert json.loads(refused.body) == {"error": f"more than {limit} bytes"}
    # At most the limit plus the server's windows (256 KiB stream, the
    # connection's) went out; the point is that it is bounded, not the total.
    assert sent < limit + 4 * 1024 * 1024, sent


def test_plugin_example_passes_under_pytest(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "examples/test_with_plugin.py"],
        cwd=SOURCE_ROOT, env=environment(tmp_path), capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout
