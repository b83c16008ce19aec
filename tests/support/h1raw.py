"""HTTP/1.1 on the wire for tests: responses read by h11 as a client reads
them, and a raw socket that sends exactly the bytes a test gives it."""

from __future__ import annotations

from dataclasses import dataclass

import h11
import trio


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    trailers: dict[bytes, bytes]
    head: bytes
    """The raw response head, as received."""


def parse(raw: bytes, methods: list[bytes], *, closed: bool = False) -> list[Response] | None:
    """The responses in ``raw`` to requests with ``methods`` (one each), or
    None while one of them is incomplete. Fails on bytes past the last one."""
    out = []
    for method in methods:
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        if raw:
            client.receive_data(raw)  # (b"" would mean EOF to h11)
        if closed:
            client.receive_data(b"")
        status, headers, body, trailers = 0, {}, b"", {}
        head = raw[:raw.find(b"\r\n\r\n") + 4]
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                trailers = dict(event.headers)
                break
        out.append(Response(status, headers, body, trailers, head))
        raw = client.trailing_data[0]
    assert raw == b"", f"bytes after the responses: {raw!r}"
    return out


class RawClient:
    """One TCP connection that sends what the test says and reads responses."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.received = b""
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        return cls(await trio.open_tcp_stream(host, port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _read(self) -> None:
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:  # reset by the server
            data = b""
        if not data:
            self.closed = True
        self.received += data

    async def responses(self, *methods: bytes) -> list[Response]:
        """Read until the responses to ``methods`` are complete (or EOF);
        consumes them."""
        while True:
            found = parse(self.received, list(methods), closed=self.closed)
            if found is not None:
                self.received = b""
                return found
            assert not self.closed, f"closed before the responses: {self.received!r}"
            await self._read()

    async def response(self, method: bytes = b"GET") -> Response:
        [response] = await self.responses(method)
        return response

    async def eof(self) -> bytes:
        """Read until the server closes; what arrived."""
        while not self.closed:
            await self._read()
        return self.received

    async def aclose(self) -> None:
        await self.stream.aclose()
