"""Tests for trio_h2.testing, the HTTP/2 test client, over real sockets.

Most tests run against ``MiniServer``, a small h2 server defined here, so the
client is tested independently of trio_h2's own server; a few at the end run
against ``trio_h2.serve``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
import trio
import trustme
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

import trio_h2
from trio_h2.testing import (
    ConnectionClosed,
    H2Client,
    H2ClientError,
    Priority,
    StreamReset,
    open_h2_client,
)

HeaderList = list[tuple[bytes, bytes]]


def payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@dataclass
class ServerRequest:
    stream_id: int
    headers: dict[bytes, bytes]
    priority: h2.events.PriorityUpdated | None
    body: bytearray = field(default_factory=bytearray)

    @property
    def path(self) -> str:
        return urlsplit(self.headers[b":path"].decode()).path

    def query(self, name: str) -> int:
        return int(parse_qs(urlsplit(self.headers[b":path"].decode()).query)[name][0])


class ServerConnection:
    """One connection of MiniServer: an h2 server loop in one task."""

    def __init__(self, server: MiniServer, stream: trio.abc.Stream) -> None:
        self.server = server
        self.stream = stream
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                SettingCodes.INITIAL_WINDOW_SIZE: server.initial_window_size,
                SettingCodes.MAX_CONCURRENT_STREAMS: server.max_concurrent_streams,
            },
        )
        self.events: list[h2.events.Event] = []
        self.requests: dict[int, ServerRequest] = {}
        self.pending: dict[int, tuple[bytearray, HeaderList | None]] = {}
        self.stalled: set[int] = set()  # streams with data left and no window
        self.held: list[int] = []
        self.gathered: list[int] = []
        self.outbox = bytearray()
        self.send_lock = trio.Lock()
        self.closing = False
        self.finished = False
        self.error: BaseException | None = None

    def events_of(self, kind: type[h2.events.Event]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    async def run(self) -> None:
        self.conn.initiate_connection()
        try:
            async with trio.open_nursery() as self.nursery:
                try:
                    await self.flush()
                    while not self.closing:
                        data = await self.stream.receive_some(65536)
                        if not data:
                            break
                        for event in self.conn.receive_data(data):
                            self.handle(event)
                        self.pump()
                        await self.flush()
                        self.server.notify()
                except (
                    trio.BrokenResourceError,
                    trio.ClosedResourceError,
                    h2.exceptions.ProtocolError,
                ) as exc:
                    self.error = exc
                self.nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(self.stream)
            self.finished = True
            self.server.notify()

    def handle(self, event: h2.events.Event) -> None:
        self.events.append(event)
        if isinstance(event, h2.events.RequestReceived):
            headers = {bytes(n): bytes(v) for n, v in event.headers}
            request = ServerRequest(event.stream_id, headers, event.priority_updated)
            self.requests[event.stream_id] = request
        elif isinstance(event, h2.events.DataReceived):
            self.requests[event.stream_id].body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.respond(self.requests[event.stream_id])
        elif isinstance(event, h2.events.StreamReset):
            self.pending.pop(event.stream_id, None)
            self.stalled.discard(event.stream_id)

    def respond(self, request: ServerRequest) -> None:
        sid, path = request.stream_id, request.path
        if path in ("/hello", "/priority"):
            self.send_response(sid, b"hello", [(b"content-type", b"text/plain")])
        elif path == "/echo":
            self.send_response(sid, bytes(request.body))
        elif path == "/big":
            self.send_response(sid, payload(request.query("n")))
        elif path == "/trailers":
            self.send_response(sid, b"body", trailers=[(b"x-checksum", b"abc")])
        elif path == "/scheme":
            self.send_response(sid, request.headers[b":scheme"])
        elif path == "/partial-reset":
            self.conn.send_headers(sid, [(b":status", b"200")])
            self.conn.send_data(sid, b"abc")
            self.conn.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
        elif path == "/reset":
            self.conn.reset_stream(sid, request.query("code"))
        elif path == "/goaway":
            self.conn.close_connection(error_code=request.query("code"))
            self.closing = True
        elif path == "/close":
            self.closing = True
        elif path == "/hold":
            self.held.append(sid)
        elif path == "/drain":
            # h2 cannot send after its own GOAWAY, so write the frame raw.
            goaway = GoAwayFrame(0, last_stream_id=max(self.held), error_code=0)
            self.outbox += self.conn.data_to_send() + goaway.serialize()
            for held in self.held:
                self.send_response(held, b"drained")
            self.closing = True
        elif path == "/gather":
            self.gathered.append(sid)
            if len(self.gathered) == request.query("n"):
                for gathered in self.gathered:
                    self.send_response(gathered, str(gathered).encode())
        elif path == "/gated":
            self.conn.send_headers(sid, [(b":status", b"200")])
            self.conn.send_data(sid, b"part1")
            self.nursery.start_soon(self.finish_gated, sid)
        else:
            self.conn.send_headers(sid, [(b":status", b"404")], end_stream=True)

    def send_response(
        self,
        sid: int,
        body: bytes,
        headers: Sequence[tuple[bytes, bytes]] = (),
        trailers: HeaderList | None = None,
    ) -> None:
        self.conn.send_headers(sid, [(b":status", b"200"), *headers])
        self.pending[sid] = (bytearray(body), trailers)

    def pump(self) -> None:
        """Send what the flow control windows allow."""
        for sid, (body, trailers) in list(self.pending.items()):
            while body:
                window = self.conn.local_flow_control_window(sid)
                size = min(window, self.conn.max_outbound_frame_size, len(body))
                if size == 0:
                    break
                self.conn.send_data(sid, bytes(body[:size]))
                del body[:size]
            if body:
                self.stalled.add(sid)
                continue
            self.stalled.discard(sid)
            del self.pending[sid]
            if trailers:
                self.conn.send_headers(sid, trailers, end_stream=True)
            else:
                self.conn.end_stream(sid)

    async def finish_gated(self, sid: int) -> None:
        await self.server.gate.wait()
        self.conn.send_data(sid, b"part2", end_stream=True)
        with pytest.raises(trio.BrokenResourceError) if self.closing else _nothing():
            await self.flush()

    async def flush(self) -> None:
        async with self.send_lock:
            data = bytes(self.outbox) + self.conn.data_to_send()
            self.outbox.clear()
            if data:
                await self.stream.send_all(data)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


class MiniServer:
    """A tiny HTTP/2 server with fixed routes, recording what it receives."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        initial_window_size: int = 65535,
        max_concurrent_streams: int = 100,
    ) -> None:
        self.ssl_context = ssl_context
        self.initial_window_size = initial_window_size
        self.max_concurrent_streams = max_concurrent_streams
        self.connections: list[ServerConnection] = []
        self.gate = trio.Event()
        self.port = 0
        self._changed = trio.Event()

    @property
    def connection(self) -> ServerConnection:
        assert len(self.connections) == 1
        return self.connections[0]

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        if self.ssl_context is not None:
            stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
        connection = ServerConnection(self, stream)
        self.connections.append(connection)
        self.notify()
        await connection.run()


StartServer = Callable[..., Awaitable[MiniServer]]


@pytest.fixture
async def start_server(nursery: trio.Nursery) -> StartServer:
    async def start(**kwargs: Any) -> MiniServer:
        server = MiniServer(**kwargs)
        await nursery.start(server.serve)
        return server

    return start


@pytest.fixture
async def server(start_server: StartServer) -> MiniServer:
    return await start_server()


def connect(server: MiniServer, **kwargs: Any) -> Any:
    return open_h2_client("127.0.0.1", server.port, **kwargs)


async def test_get(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            response = await client.get("/hello", headers=[("X-Test", "yes")])
    assert response.status == 200
    assert response.body == b"hello"
    assert response.text == "hello"
    assert response.header("Content-Type") == b"text/plain"
    assert response.header("missing") is None
    assert all(not name.startswith(b":") for name, _ in response.headers)
    assert response.stream_id == 1
    headers = server.connection.requests[1].headers
    assert headers[b":method"] == b"GET"
    assert headers[b":scheme"] == b"http"
    assert headers[b":authority"] == f"127.0.0.1:{server.port}".encode()
    assert headers[b"x-test"] == b"yes"


async def test_post_body_is_echoed(server: MiniServer) -> None:
    body = payload(300_000)  # beyond the 65535-byte initial windows both ways
    with trio.fail_after(10):
        async with connect(server) as client:
            response = await client.request("POST", "/echo", body=body)
    assert response.status == 200
    assert response.body == body


async def test_streamed_request_body_respects_small_server_window(
    start_server: StartServer,
) -> None:
    server = await start_server(initial_window_size=1000)
    chunks = [payload(30_000), b"", b"tail" * 1000, payload(5)]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    with trio.fail_after(10):
        async with connect(server) as client:
            assert client.remote_settings[SettingCodes.INITIAL_WINDOW_SIZE] == 1000
            response = await client.request("PUT", "/echo", body=body())
    assert response.body == b"".join(chunks)
    data_frames = server.connection.events_of(h2.events.DataReceived)
    assert max(len(event.data) for event in data_frames) <= 1000


async def test_incremental_response_read(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client, client.stream("GET", "/gated") as response:
            assert response.status == 200
            chunks = aiter(response)
            assert await anext(chunks) == b"part1"  # part2 is not sent yet
            server.gate.set()
            assert await response.read() == b"part2"
            assert response.trailers == []


async def test_trailers(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            response = await client.get("/trailers")
    assert response.body == b"body"
    assert response.trailers == [(b"x-checksum", b"abc")]


async def test_50_concurrent_requests_share_one_connection(server: MiniServer) -> None:
    responses = []

    async def one(client: H2Client) -> None:
        responses.append(await client.get("/gather?n=50"))

    with trio.fail_after(10):
        async with connect(server) as client, trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one, client)
    # The server answers only once all 50 streams are open at the same time.
    assert len(server.connections) == 1
    assert len({response.stream_id for response in responses}) == 50
    for response in responses:
        assert response.status == 200
        assert response.body == str(response.stream_id).encode()


async def test_max_concurrent_streams_is_respected(start_server: StartServer) -> None:
    server = await start_server(max_concurrent_streams=3)
    with trio.fail_after(10):
        async with connect(server) as client, trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(functools.partial(client.request, "POST", "/echo", body=b"x"))
    assert server.connection.error is None
    assert len(server.connection.requests) == 20


async def test_server_reset_raises_stream_reset(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            with pytest.raises(StreamReset) as info:
                await client.get(f"/reset?code={ErrorCodes.ENHANCE_YOUR_CALM}")
            assert info.value.error_code == ErrorCodes.ENHANCE_YOUR_CALM
            assert info.value.stream_id == 1
            assert (await client.get("/hello")).status == 200  # the connection survives


async def test_reset_after_partial_body_while_streaming(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            async with client.stream("GET", "/partial-reset") as response:
                assert response.status == 200
                assert await anext(aiter(response)) == b"abc"  # data before the reset
                with pytest.raises(StreamReset) as info:
                    await response.read()
            assert info.value.error_code == ErrorCodes.INTERNAL_ERROR
            with pytest.raises(StreamReset):
                await client.get("/partial-reset")


async def test_goaway_fails_pending_requests(server: MiniServer) -> None:
    errors: list[ConnectionClosed] = []

    async def held(client: H2Client) -> None:
        with pytest.raises(ConnectionClosed) as info:
            await client.get("/hold")
        errors.append(info.value)

    with trio.fail_after(10):
        async with connect(server) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held, client)
                await server.wait_for(lambda: bool(server.connections[0].held))
                with pytest.raises(ConnectionClosed) as info:
                    await client.get(f"/goaway?code={ErrorCodes.ENHANCE_YOUR_CALM}")
                errors.append(info.value)
            assert client.goaway_error_code == ErrorCodes.ENHANCE_YOUR_CALM
            assert client.closed
            with pytest.raises(ConnectionClosed):
                await client.get("/hello")
    assert [error.error_code for error in errors] == [ErrorCodes.ENHANCE_YOUR_CALM] * 2


async def test_graceful_goaway_lets_earlier_streams_finish(server: MiniServer) -> None:
    responses = []

    async def held(client: H2Client) -> None:
        responses.append(await client.get("/hold"))

    with trio.fail_after(10):
        async with connect(server) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held, client)
                await server.wait_for(lambda: bool(server.connections[0].held))
                with pytest.raises(ConnectionClosed) as info:
                    await client.get("/drain")
            assert client.goaway_last_stream_id == 1
    assert info.value.error_code == ErrorCodes.NO_ERROR
    assert info.value.last_stream_id == 1
    assert [(r.stream_id, r.body) for r in responses] == [(1, b"drained")]


async def test_eof_fails_pending_request(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            with pytest.raises(ConnectionClosed) as info:
                await client.get("/close")
    assert info.value.error_code is None


async def test_priority_signals_reach_the_wire(server: MiniServer) -> None:
    signals = Priority(urgency=2, incremental=True, weight=200, exclusive=True)
    with trio.fail_after(10):
        async with connect(server) as client:
            await client.get("/priority", priority=signals)
            await client.get("/priority", priority=Priority(urgency=6))
            await client.send_priority(1, weight=32, depends_on=3)
            await client.send_priority_update(3, "u=5")
            await client.send_priority_update(1, Priority(urgency=0, incremental=True))
            await client.ping()  # the server has handled everything before the PING
    connection = server.connection
    first, second = connection.requests[1], connection.requests[3]
    assert first.headers[b"priority"] == b"u=2, i"
    assert first.priority is not None
    assert (first.priority.weight, first.priority.depends_on) == (200, 0)
    assert first.priority.exclusive is True
    assert second.headers[b"priority"] == b"u=6"
    assert second.priority is None  # no RFC 7540 signal asked for
    updates = [e for e in connection.events_of(h2.events.PriorityUpdated) if e.stream_id == 1]
    assert [(e.weight, e.depends_on, e.exclusive) for e in updates[1:]] == [(32, 3, False)]
    frames = [event.frame for event in connection.events_of(h2.events.UnknownFrameReceived)]
    assert [(frame.type, frame.stream_id, frame.body) for frame in frames] == [
        (0x10, 0, b"\x00\x00\x00\x03u=5"),
        (0x10, 0, b"\x00\x00\x00\x01u=0, i"),
    ]


def test_priority_values() -> None:
    assert Priority().field_value is None
    assert Priority(incremental=True).field_value == "i"
    assert Priority(urgency=7).field_value == "u=7"
    assert not Priority(urgency=1).has_stream_dependency
    assert Priority(weight=16).has_stream_dependency
    bad_values: list[dict[str, Any]] = [
        {"urgency": 8},
        {"urgency": -1},
        {"weight": 0},
        {"weight": 257},
        {"depends_on": -1},
    ]
    for bad in bad_values:
        with pytest.raises(ValueError):
            Priority(**bad)


async def test_window_hold_stalls_server_until_opened(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server, initial_window_size=1000, auto_window=False) as client:
            async with client.stream("GET", "/big?n=5000") as response:
                sid = response.stream_id
                received = b""
                async for chunk in response:
                    received += chunk
                    if len(received) >= 1000:
                        break
                connection = server.connection
                await server.wait_for(lambda: sid in connection.stalled)
                assert received == payload(1000)
                assert connection.conn.local_flow_control_window(sid) == 0
                await client.open_window(4000, stream_id=sid)
                received += await response.read()
            assert received == payload(5000)
            # Nothing was acknowledged on the connection either ...
            assert connection.conn.outbound_flow_control_window == 65535 - 5000
            await client.open_window(5000)
            await client.ping()
            # ... until asked.
            assert connection.conn.outbound_flow_control_window == 65535


async def test_unread_streaming_response_keeps_window_closed(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with (
            connect(server, initial_window_size=1000) as client,
            client.stream("GET", "/big?n=5000") as response,
        ):
            connection = server.connection
            await server.wait_for(lambda: response.stream_id in connection.stalled)
            assert connection.conn.local_flow_control_window(response.stream_id) == 0
            assert await response.read() == payload(5000)


async def test_leaving_stream_early_resets_and_returns_window(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            async with client.stream("GET", "/big?n=200000") as response:
                assert len(await anext(aiter(response))) > 0
            # Unread data went back to the connection window: this fits only then.
            assert len((await client.get("/big?n=200000")).body) == 200_000
            await client.ping()
    resets = server.connection.events_of(h2.events.StreamReset)
    assert [(e.stream_id, e.error_code) for e in resets] == [(1, ErrorCodes.CANCEL)]


async def test_cancelled_request_resets_stream(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.get, "/hold")
                    await server.wait_for(lambda: bool(server.connections[0].held))
                    scope.cancel()
            await client.ping()
            resets = server.connection.events_of(h2.events.StreamReset)
            assert [(e.stream_id, e.error_code) for e in resets] == [(1, ErrorCodes.CANCEL)]


async def test_ping(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            assert await client.ping() >= 0


async def test_aclose_sends_goaway_and_is_idempotent(server: MiniServer) -> None:
    with trio.fail_after(10):
        async with connect(server) as client:
            await client.aclose()
            await client.aclose()
            assert client.closed
            with pytest.raises(ConnectionClosed):
                await client.get("/hello")
            connection = server.connection
            await server.wait_for(
                lambda: bool(connection.events_of(h2.events.ConnectionTerminated))
            )
    (goaway,) = connection.events_of(h2.events.ConnectionTerminated)
    assert goaway.error_code == ErrorCodes.NO_ERROR


async def test_body_exception_propagates_unwrapped(server: MiniServer) -> None:
    with trio.fail_after(10), pytest.raises(KeyError):
        async with connect(server):
            raise KeyError("boom")


async def test_not_an_http2_server_fails_clearly(nursery: trio.Nursery) -> None:
    async def http1(stream: trio.SocketStream) -> None:
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, http1, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    with trio.fail_after(10), pytest.raises(ConnectionClosed):
        async with open_h2_client("127.0.0.1", port):
            pass  # pragma: no cover


@pytest.fixture
def tls_certificate() -> tuple[trustme.CA, trustme.LeafCert]:
    ca = trustme.CA()
    return ca, ca.issue_cert("localhost", "127.0.0.1")


def server_context(cert: trustme.LeafCert, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.set_alpn_protocols(alpn)
    return context


async def test_tls(
    start_server: StartServer, tls_certificate: tuple[trustme.CA, trustme.LeafCert]
) -> None:
    ca, cert = tls_certificate
    server = await start_server(ssl_context=server_context(cert, ["h2"]))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with trio.fail_after(10):
        async with connect(server, ssl_context=client_context) as client:
            assert (await client.get("/scheme")).body == b"https"
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        async with open_h2_client("localhost", server.port, ssl_context=client_context) as client:
            assert (await client.get("/hello")).status == 200
        # The client closed TLS cleanly (close_notify), so the server saw a plain EOF.
        await server.wait_for(lambda: all(c.finished for c in server.connections))
    assert [c.error for c in server.connections] == [None, None]


async def test_tls_without_h2_alpn_fails_clearly(
    start_server: StartServer, tls_certificate: tuple[trustme.CA, trustme.LeafCert]
) -> None:
    ca, cert = tls_certificate
    server = await start_server(ssl_context=server_context(cert, ["http/1.1"]))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with trio.fail_after(10), pytest.raises(H2ClientError, match="ALPN"):
        async with connect(server, ssl_context=client_context):
            pass  # pragma: no cover


# -- against trio_h2's own server ----------------------------------------------


Message = MutableMapping[str, Any]


async def asgi_app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/client":
        body = repr(scope["client"]).encode()
    elif scope["path"] != "/echo":
        body = b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def trio_h2_port(nursery: trio.Nursery) -> int:
    serve = functools.partial(trio_h2.serve, asgi_app, host="127.0.0.1", port=0)
    addresses = await nursery.start(serve)
    return int(addresses[0][1])


async def test_trio_h2_get(trio_h2_port: int) -> None:
    with trio.fail_after(10):
        async with open_h2_client("127.0.0.1", trio_h2_port) as client:
            response = await client.get("/")
    assert (response.status, response.body) == (200, b"hello")


async def test_trio_h2_post_echo_1mb(trio_h2_port: int) -> None:
    body = payload(1024 * 1024)
    with trio.fail_after(10):
        async with open_h2_client("127.0.0.1", trio_h2_port) as client:
            response = await client.request("POST", "/echo", body=body)
    assert response.status == 200
    assert response.body == body


async def test_trio_h2_50_concurrent_requests_on_one_connection(trio_h2_port: int) -> None:
    bodies = []

    async def one(client: H2Client) -> None:
        response = await client.get("/client")
        assert response.status == 200
        bodies.append(response.body)

    with trio.fail_after(10):
        async with (
            open_h2_client("127.0.0.1", trio_h2_port) as client,
            trio.open_nursery() as nursery,
        ):
            for _ in range(50):
                nursery.start_soon(one, client)
    assert len(bodies) == 50
    assert len(set(bodies)) == 1  # every request came from the same client address
