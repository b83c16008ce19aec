"""ASGI semantics over real HTTP/2 connections, with trio_h2's own test client."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes

import trio_h2
from tests.support.apps import http_only, read_body
from trio_h2._core.h2 import H2Core
from trio_h2.testing import (
    ConnectionClosed,
    H2ServerFactory,
    StreamReset,
    open_h2_client,
)

Message = dict[str, Any]


async def respond(send: Any, body: bytes = b"ok", status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_receive_returns_disconnect_when_the_client_resets(
    h2_server: H2ServerFactory,
) -> None:
    got: list[Message] = []
    receiving = trio.Event()
    done = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())  # the first chunk
        receiving.set()
        got.append(await receive())  # blocks until the reset
        done.set()

    async def body() -> AsyncIterator[bytes]:
        yield b"first"
        await trio.sleep_forever()

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(client.request, "POST", "/", body=body()))
                await receiving.wait()
                nursery.cancel_scope.cancel()  # the client resets the stream (CANCEL)
            with trio.fail_after(10):  # liveness, not speed: holds on a loaded machine
                await done.wait()
    assert got == [{"type": "http.request", "body": b"first", "more_body": True},
                   {"type": "http.disconnect"}]


async def test_receive_in_one_task_while_sending_in_another(
    h2_server: H2ServerFactory,
) -> None:
    """An application that waits for http.disconnect in a background task
    while it streams (sse-starlette, Starlette before ASGI spec 2.4) has two
    tasks asleep on one exchange; both must be served."""
    watched: list[str] = []

    @http_only
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the (empty) request body

        async def watch() -> None:
            watched.append((await receive())["type"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await trio.testing.wait_all_tasks_blocked()  # watch() asleep in receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(3):
                await send({"type": "http.response.body", "body": b"x" * 100_000,
                            "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            # The response is complete: the exchange is over for receive() too.
    server = await h2_server(app)
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            response = await client.get("/")
    assert (response.status, len(response.body)) == (200, 300_000)
    assert watched == ["http.disconnect"]


async def test_send_after_the_client_left_raises_oserror(h2_server: H2ServerFactory) -> None:
    raised: list[BaseException] = []
    done = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 1000,
                            "more_body": True})
        except OSError as exc:
            raised.append(exc)
            raise
        finally:
            done.set()

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            async with client.stream("GET", "/") as response:
                async for _ in response:
                    break  # leaving the block resets the stream
            await done.wait()
    assert len(raised) == 1 and isinstance(raised[0], trio_h2.ClientDisconnected)


async def test_app_error_after_start_resets_only_that_stream(
    h2_server: H2ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/fail":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise RuntimeError("failed mid-response")
        await respond(send)

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            with pytest.raises(StreamReset) as reset:
                await client.get("/fail")
            assert reset.value.error_code == ErrorCodes.INTERNAL_ERROR
            assert (await client.get("/fine")).body == b"ok"  # same connection
    assert any("application raised RuntimeError" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("misbehaviour", ["raise", "return early", "bad header"])
async def test_app_failure_before_the_response_gives_500(
    h2_server: H2ServerFactory, misbehaviour: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if misbehaviour == "raise":
            raise ValueError("nope")
        if misbehaviour == "bad header":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"x-bad", b"line\r\nbreak")]})

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            response = await client.get("/")
            assert response.status == 500
            assert (await client.get("/")).status == 500  # the connection is fine


async def test_response_headers_are_prepared_for_http2(h2_server: H2ServerFactory) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [
            (b"Content-Type", b"text/plain"), (b"Connection", b"keep-alive"),
            (b"transfer-encoding", b"chunked"), (b"X-Thing", b"1")]})
        await send({"type": "http.response.body", "body": b"body!"})

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            response = await client.get("/")
            head = await client.request("HEAD", "/")
    assert response.status == 201
    names = [name for name, _ in response.headers]
    assert names[:2] == [b"content-type", b"x-thing"]
    assert response.header("content-length") == b"5" and response.header("date")
    assert b"connection" not in names and b"transfer-encoding" not in names
    assert head.status == 201 and head.body == b""
    assert head.header("content-length") == b"5"  # what GET says (RFC 9110 9.3.2)


async def test_trailers(h2_server: H2ServerFactory) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": [],
                    "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as client:
        with trio.fail_after(5):
            response = await client.get("/")
    assert response.body == b"data" and response.trailers == [(b"x-checksum", b"abc")]


async def test_fifty_concurrent_streams_on_one_connection(h2_server: H2ServerFactory) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        await trio.sleep(0.01)
        await respond(send, scope["path"].encode() + body)

    server = await h2_server(http_only(app))
    results: dict[int, bytes] = {}
    async with open_h2_client(server.host, server.port) as client:

        async def one(i: int) -> None:
            results[i] = (await client.request("POST", f"/{i}", body=b"!" * i)).body

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(one, i)
    assert results == {i: f"/{i}".encode() + b"!" * i for i in range(50)}


async def test_send_waits_for_the_clients_window(h2_server: H2ServerFactory) -> None:
    """With the client's window closed, at most one chunk beyond the window
    gets past ``send``; once the client reads, the rest follows intact."""
    chunk, count = 16 * 1024, 80
    passed = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal passed
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            await send({"type": "http.response.body", "body": bytes([i]) * chunk,
                        "more_body": True})
            passed += chunk
        await send({"type": "http.response.body", "body": b""})

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port, initial_window_size=65535,
                              auto_window=False) as client:
        with trio.fail_after(5):
            async with client.stream("GET", "/") as response:
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert 0 < passed <= 65535 + chunk
                await client.open_window(count * chunk)  # connection
                await client.open_window(count * chunk, response.stream_id)
                body = await response.read()
    assert body == b"".join(bytes([i]) * chunk for i in range(count))
    assert passed == count * chunk


async def test_lifespan_runs_around_the_server(nursery: trio.Nursery) -> None:
    events: list[str] = []
    seen_state: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen_state.append(scope["state"]["db"])
        await respond(send)

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as inner:
            (host, port), = await inner.start(functools.partial(
                trio_h2.serve, app, host="127.0.0.1", port=0))
            assert events == ["lifespan.startup"]
            async with open_h2_client(host, port) as client:
                assert (await client.get("/")).status == 200
            scope.cancel()
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert seen_state == ["connected"]


async def test_lifespan_startup_failure_stops_the_server() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(trio_h2.LifespanFailure, match="no database"):
        await trio_h2.serve(app, host="127.0.0.1", port=0)


async def test_cancelling_serve_finishes_in_flight_streams(nursery: trio.Nursery) -> None:
    started = trio.Event()
    release = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await release.wait()
        await respond(send, b"finished")

    server_scope = trio.CancelScope()
    stopped = trio.Event()

    async def run_server(task_status: Any) -> None:
        with server_scope:
            await trio_h2.serve(app, host="127.0.0.1", port=0, task_status=task_status)
        stopped.set()

    (host, port), = await nursery.start(run_server)
    async with open_h2_client(host, port) as client:
        with trio.fail_after(5):
            async with trio.open_nursery() as requests:
                result: list[bytes] = []

                async def slow() -> None:
                    result.append((await client.get("/slow")).body)

                requests.start_soon(slow)
                await started.wait()
                server_scope.cancel()  # graceful: GOAWAY, the stream may finish
                await trio.sleep(0.1)
                assert not stopped.is_set()
                with pytest.raises(OSError):  # the listener is closed
                    await trio.open_tcp_stream(host, port)
                release.set()
            await stopped.wait()
    assert result == [b"finished"]
    assert client.goaway_error_code == ErrorCodes.NO_ERROR


async def test_shutdown_timeout_cuts_off_stuck_streams(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await trio.sleep_forever()

    server_scope = trio.CancelScope()
    stopped_at: list[float] = []

    async def run_server(task_status: Any) -> None:
        with server_scope:
            await trio_h2.serve(app, host="127.0.0.1", port=0, task_status=task_status,
                                config=trio_h2.Config(shutdown_timeout=7))
        stopped_at.append(trio.current_time())

    (host, port), = await nursery.start(run_server)
    async with open_h2_client(host, port) as client, trio.open_nursery() as requests:
        errors: list[BaseException] = []

        async def stuck() -> None:
            try:
                await client.get("/")
            except (StreamReset, ConnectionClosed) as exc:
                errors.append(exc)

        requests.start_soon(stuck)
        await trio.sleep(1)
        cancelled_at = trio.current_time()
        server_scope.cancel()
    assert errors and stopped_at
    assert 7 <= stopped_at[0] - cancelled_at < 8


async def test_tls_handshake_timeout(
    autojump_clock: trio.abc.Clock, h2_server: H2ServerFactory
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    server = await h2_server(http_only(app), tls=True, tls_handshake_timeout=3)
    silent = await trio.open_tcp_stream(server.host, server.port)
    start = trio.current_time()
    assert await silent.receive_some(100) == b""  # closed by the server...
    assert 3 <= trio.current_time() - start < 4  # ...after the timeout
    await silent.aclose()


async def test_root_path_prefixes_path(h2_server: H2ServerFactory) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send, f"{scope['root_path']}|{scope['path']}".encode())

    server = await h2_server(http_only(app), root_path="/api")
    async with open_h2_client(server.host, server.port) as client:
        assert (await client.get("/items")).body == b"/api|/api/items"


async def test_a_failing_connection_does_not_reach_the_server(
    h2_server: H2ServerFactory, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug inside one connection (simulated in the sender's core call) ends
    that connection with GOAWAY INTERNAL_ERROR; other connections go on."""
    original = H2Core.pull

    def pull(self: H2Core, budget: int) -> Any:
        if any(s.head.path == b"/explode" for s in self.streams.values()):
            raise KeyError("simulated bug")
        return original(self, budget)

    monkeypatch.setattr(H2Core, "pull", pull)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await respond(send)

    server = await h2_server(http_only(app))
    async with open_h2_client(server.host, server.port) as good, \
            open_h2_client(server.host, server.port) as bad:
        with trio.fail_after(5):
            assert (await good.get("/")).status == 200
            with pytest.raises(ConnectionClosed):
                await bad.get("/explode")
            assert bad.goaway_error_code == ErrorCodes.INTERNAL_ERROR
            assert (await good.get("/")).status == 200
    async with open_h2_client(server.host, server.port) as fresh:
        assert (await fresh.get("/")).status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "internal error, closing connection" in errors[0].getMessage()
