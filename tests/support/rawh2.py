"""A raw HTTP/2 client for protocol tests: it sends exactly the bytes a test asks for.

This client follows the protocol (an attacker that sends anything is
:class:`tests.support.attack_client.Attacker`). Frames are built by
:mod:`tests.support.frames`, which both clients share (a test may also send a
hyperframe ``Frame``), and header blocks with this client's own HPACK encoder.
Every header block the server sends is decoded on arrival, whichever stream it
belongs to, so the HPACK decoder stays in step with the server's encoder.
Frames a helper is not looking for are kept, in order, for later calls.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import trio
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.support import frames
from tests.support.frames import PREFACE as PREFACE
from tests.support.frames import Field, as_bytes
from tests.support.frames import raw_frame as raw_frame
from tests.support.requests import Header

TIMEOUT = 3.0
"""Default seconds any one wait for the server may take (:attr:`H2Client.timeout`)."""


def _as_bytes(headers: Iterable[Field]) -> list[Header]:
    return [(as_bytes(name), as_bytes(value)) for name, value in headers]


@dataclass
class HeaderBlock:
    """A HEADERS frame and its CONTINUATIONs, decoded."""

    stream_id: int
    headers: list[Header]
    end_stream: bool


@dataclass
class PushPromise:
    """A PUSH_PROMISE frame and its CONTINUATIONs, decoded."""

    stream_id: int
    promised_stream_id: int
    headers: list[Header]


Received = Frame | HeaderBlock | PushPromise
"""What :meth:`H2Client.recv_frame` returns: HEADERS arrive as a
:class:`HeaderBlock`, PUSH_PROMISE as a :class:`PushPromise`."""


@dataclass
class Response:
    status: int
    headers: list[Header]
    body: bytes
    data_frame_sizes: list[int] = field(default_factory=list)
    promises: list[PushPromise] = field(default_factory=list)
    """PUSH_PROMISE frames on this stream, in order."""


class StreamReset(Exception):
    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} reset by the server with error code {error_code}")
        self.error_code = error_code


class ConnectionEnded(Exception):
    """The server sent GOAWAY or closed while a response was awaited."""


class H2Client:
    """One HTTP/2 connection that follows the protocol unless a test sends
    otherwise: SETTINGS acknowledged, header blocks encoded and decoded with
    HPACK state, response DATA given back as window credit."""

    def __init__(self, stream: trio.abc.Stream, *, ack_settings: bool = True) -> None:
        self.stream = stream
        self.ack_settings = ack_settings
        self.timeout = TIMEOUT
        """Seconds one wait for a frame (or for EOF) may take: then trio.TooSlowError."""
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.server_settings: dict[int, int] = {}
        """Every setting the server has sent, latest value wins."""
        self.kept: deque[Received] = deque()
        """Frames read while looking for others; :meth:`recv_frame` returns these first."""
        self._buffer = bytearray()
        self._eof = False

    @classmethod
    async def connect(cls, host: str, port: int, *, preface: bytes = PREFACE,
                      settings: dict[int, int] | None = None, ack_settings: bool = True,
                      wait_for_settings: bool = True,
                      ssl_context: ssl.SSLContext | None = None) -> H2Client:
        """Open a connection (TLS with ALPN h2 if ``ssl_context`` is given) and
        send ``preface`` followed by SETTINGS (unless ``settings`` is None and
        the preface is not the real one). Waits for the server's first
        SETTINGS frame, so ``server_settings`` is filled in."""
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        if ssl_context is not None:
            tls = trio.SSLStream(stream, ssl_context, server_hostname="localhost")
            await tls.do_handshake()
            assert tls.selected_alpn_protocol() == "h2"
            stream = tls
        client = cls(stream, ack_settings=ack_settings)
        data = preface
        if preface == PREFACE or settings is not None:
            data += frames.settings((settings or {}).items())
        await client.send_raw(data)
        if wait_for_settings:
            await client.next_frame(lambda f: isinstance(f, SettingsFrame)
                                    and "ACK" not in f.flags)
        return client

    async def aclose(self) -> None:
        await self.stream.aclose()

    def feed(self, data: bytes) -> None:
        """Bytes of the server's HTTP/2 already read from :attr:`stream` (the
        ones after a ``101 Switching Protocols``): parsed before any more."""
        self._buffer += data

    # ------------------------------------------------------------- sending

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_frame(self, frame: Frame) -> None:
        await self.send_raw(frame.serialize())

    def encode(self, headers: Iterable[Field]) -> bytes:
        """An HPACK block from this client's encoder (its state changes)."""
        return self.encoder.encode(_as_bytes(headers))

    async def send_headers(self, stream_id: int,
                           headers: Iterable[Field], *,
                           end_stream: bool = False, priority: tuple[int, int, bool] | None = None,
                           fragment_size: int | None = None) -> None:
        """HEADERS, split into CONTINUATIONs of ``fragment_size`` bytes if given.
        ``priority`` is ``(depends_on, weight 1-256, exclusive)``."""
        block = self.encode(headers)
        await self.send_raw(frames.split_block(stream_id, block, fragment_size or len(block) or 1,
                                               end_stream=end_stream, priority=priority))

    async def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False,
                        pad_length: int | None = None) -> None:
        await self.send_raw(frames.data(stream_id, data, end_stream=end_stream,
                                        pad_length=pad_length))

    async def send_window_update(self, stream_id: int, increment: int) -> None:
        await self.send_raw(frames.window_update(stream_id, increment))

    async def send_rst(self, stream_id: int, error_code: int) -> None:
        await self.send_raw(frames.rst_stream(stream_id, error_code))

    async def send_ping(self, payload: bytes) -> None:
        await self.send_raw(frames.ping(payload))

    async def send_settings(self, settings: dict[int, int]) -> None:
        await self.send_raw(frames.settings(settings.items()))

    # ------------------------------------------------------------- receiving

    async def recv_frame(self) -> Received | None:
        """The next frame (kept ones first), or None at EOF."""
        if self.kept:
            return self.kept.popleft()
        with trio.fail_after(self.timeout):
            return await self._read_frame()

    async def _read_frame(self) -> Received | None:
        frame = await self._read_one()
        if isinstance(frame, HeadersFrame | PushPromiseFrame):
            block, last = frame.data, frame
            while "END_HEADERS" not in last.flags:
                last = await self._read_one()
                assert isinstance(last, ContinuationFrame), f"{last} inside a header block"
                block += last.data
            headers = _as_bytes(self.decoder.decode(block, raw=True))
            if isinstance(frame, PushPromiseFrame):
                return PushPromise(frame.stream_id, frame.promised_stream_id, headers)
            return HeaderBlock(frame.stream_id, headers, "END_STREAM" in frame.flags)
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.server_settings.update(frame.settings)
            if self.ack_settings:
                await self.send_raw(frames.settings(ack=True))
        return frame

    async def _read_one(self) -> Frame | None:
        if not await self._fill(9):
            return None
        frame, length = Frame.parse_frame_header(memoryview(bytes(self._buffer[:9])))
        if not await self._fill(9 + length):
            raise ConnectionEnded(f"EOF inside a frame ({frame})")
        frame.parse_body(memoryview(bytes(self._buffer[9:9 + length])))
        del self._buffer[:9 + length]
        return frame

    async def _fill(self, n: int) -> bool:
        while len(self._buffer) < n:
            if self._eof:
                return False
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:  # connection reset by the server
                data = b""
            self._eof = not data
            self._buffer += data
        return True

    async def next_frame(self, match: Callable[[Received], bool]) -> Received:
        """The first frame that ``match`` accepts; the others are kept for later."""
        for i, frame in enumerate(self.kept):
            if match(frame):
                del self.kept[i]
                return frame
        with trio.fail_after(self.timeout):
            while True:
                frame = await self._read_frame()
                if frame is None:
                    raise ConnectionEnded(f"EOF; frames seen: {list(self.kept)}")
                if match(frame):
                    return frame
                self.kept.append(frame)

    async def expect_goaway(self) -> tuple[int, int]:
        """``(error_code, last_stream_id)`` of the server's next GOAWAY."""
        frame = await self.next_frame(lambda f: isinstance(f, GoAwayFrame))
        assert isinstance(frame, GoAwayFrame)
        return frame.error_code, frame.last_stream_id

    async def expect_rst(self, stream_id: int) -> int:
        """The error code of the server's RST_STREAM on ``stream_id``."""
        frame = await self.next_frame(
            lambda f: isinstance(f, GoAwayFrame)
            or (isinstance(f, RstStreamFrame) and f.stream_id == stream_id))
        if isinstance(frame, GoAwayFrame):
            raise ConnectionEnded(f"GOAWAY {frame.error_code} instead of RST_STREAM {stream_id}")
        assert isinstance(frame, RstStreamFrame)
        return frame.error_code

    async def read_response(self, stream_id: int, *, flow_control: bool = True) -> Response:
        """Read the response on ``stream_id`` to its end. With ``flow_control``,
        every DATA frame's length is given back at once by WINDOW_UPDATEs."""
        response = Response(0, [], b"")
        body = bytearray()
        while True:
            frame = await self.next_frame(
                lambda f: isinstance(f, GoAwayFrame) or f.stream_id == stream_id)
            if isinstance(frame, GoAwayFrame):
                raise ConnectionEnded(f"GOAWAY {frame.error_code} while reading {stream_id}")
            if isinstance(frame, RstStreamFrame):
                raise StreamReset(stream_id, frame.error_code)
            if isinstance(frame, HeaderBlock):
                if response.status == 0:
                    response.headers = frame.headers
                    response.status = int(dict(frame.headers)[b":status"])
                else:
                    response.headers += frame.headers  # trailers
                end = frame.end_stream
            elif isinstance(frame, DataFrame):
                body += frame.data
                response.data_frame_sizes.append(len(frame.data))
                end = "END_STREAM" in frame.flags
                if flow_control and frame.flow_controlled_length:
                    # The stream's window only while the stream is still open.
                    ids = (0,) if end else (0, stream_id)
                    await self.send_raw(b"".join(
                        frames.window_update(i, frame.flow_controlled_length) for i in ids))
            else:
                if isinstance(frame, PushPromise):
                    response.promises.append(frame)
                end = False
            if end:
                response.body = bytes(body)
                return response

    async def closed(self) -> bool:
        """True once the server closes the connection (EOF or reset) within
        :attr:`timeout`; False if it is still open then. Frames read meanwhile are kept."""
        with trio.move_on_after(self.timeout):
            while (frame := await self._read_frame()) is not None:
                self.kept.append(frame)
            return True
        return False
