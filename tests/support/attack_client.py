"""An attacker's HTTP/2 connection, for the abuse and fuzz tests.

Two raw clients, two jobs. :mod:`tests.support.rawh2` follows the protocol:
it keeps an HPACK encoder, acknowledges SETTINGS, returns window credit and
parses every frame with hyperframe, so a test can read one response at a
time. An :class:`Attacker` sends anything, and is careless on purpose: it
sends frames by the ten thousand, may never read its socket (with a receive
buffer shrunk so that the server's answers back up quickly), and then has to
count a hundred thousand answers. So it sends bytes in batches with a time
limit and scans what the server sends with ``struct`` instead of hyperframe,
keeping only counts and the frames that decide a test: GOAWAY, RST_STREAM,
response headers.

Both send frames built by :mod:`tests.support.frames`. An attacker's header
blocks are *stateless* (:func:`tests.support.frames.block`): never indexed, so
the same bytes can be sent any number of times, on any stream, in any order,
and the server's HPACK decoder stays in step. Header blocks the server sends
are decoded as they arrive, so :attr:`Ending.statuses` is trustworthy.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio
from hpack import Decoder, HPACKError
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import Frame

from tests.support.frames import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_NAMES,
    GOAWAY,
    HEADERS,
    PADDED,
    PREFACE,
    PRIORITY_FLAG,
    RST_STREAM,
    SETTINGS,
    code_name,
    settings,
)

# SO_RCVBUF for an attacker that does not read: Linux doubles it and clamps
# it to at least 2304 bytes, so a few KiB of the server's answers fill it.
TINY_RCVBUF = 4096
# Bytes per send_all while flooding: big enough to be fast, small enough
# that the server's reader (64 KiB per receive) sees a steady stream.
FLOOD_BATCH = 64 * 1024

_HEADER = struct.Struct("!BHBBL")  # length as 1 + 2 bytes, type, flags, stream id


# ------------------------------------------------------------------ outcome


@dataclass
class Ending:
    """What the server did to an attacking connection, as far as it was read."""

    goaway: int | None = None
    """Error code of the server's first GOAWAY, or None."""
    goaway_debug: bytes = b""
    closed: bool = False
    """The server closed the connection (EOF or TCP reset)."""
    send_refused: bool = False
    """A send failed because the server had closed or reset the connection."""
    counts: Counter[int] = field(default_factory=Counter)
    """Frames received, by type."""
    resets: dict[int, int] = field(default_factory=dict)
    """RST_STREAM error code by stream id (the last one for each stream)."""
    statuses: dict[int, int] = field(default_factory=dict)
    """``:status`` of each stream's response headers."""
    fields: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    """Every header field received on each stream, decoded, in order."""
    ended_streams: set[int] = field(default_factory=set)
    """Streams whose response ended with END_STREAM."""
    data_bytes: int = 0
    malformed: list[str] = field(default_factory=list)
    """What could not be parsed (frames or header blocks): a server bug."""

    def stopped(self, *codes: int) -> bool:
        """The server ended the connection: closed it, after a GOAWAY with one of
        ``codes`` if it sent one at all."""
        return self.closed and (self.goaway is None or self.goaway in codes)

    def describe(self) -> str:
        frames = ", ".join(f"{n} {FRAME_NAMES.get(t, hex(t))}"
                           for t, n in sorted(self.counts.items()))
        reset_codes = Counter(code_name(c) for c in self.resets.values())
        goaway = ("no GOAWAY" if self.goaway is None else
                  f"GOAWAY {code_name(self.goaway)} {self.goaway_debug!r}")
        return (f"{goaway}; {'closed' if self.closed else 'still open'}; "
                f"frames received: {frames or 'none'}; RST_STREAM codes: {dict(reset_codes)}"
                + (f"; MALFORMED: {self.malformed}" if self.malformed else ""))


class Attacker:
    """One raw connection to the server, used abusively."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.strict = False
        """Also parse every frame received with hyperframe, and report those
        it rejects in :attr:`Ending.malformed` (slower: for the fuzz tests)."""
        self.local_port: int = stream.socket.getsockname()[1]
        self.ending = Ending()
        self.ack_settings = True
        self._buffer = bytearray()
        self._decoder = Decoder()
        self._decoder.max_header_list_size = 2**31
        # The server may grow its HPACK table to whatever SETTINGS_HEADER_TABLE_SIZE
        # an attacker (or the fuzz) announced; accept any size update.
        self._decoder.max_allowed_table_size = 2**32 - 1
        self._block: bytearray | None = None
        self._block_stream = 0
        self._block_end_stream = False
        self._ack_owed = False

    @property
    def decoder(self) -> Decoder:
        """The HPACK decoder of the server's header blocks: its dynamic table
        mirrors the server's encoder table (RFC 7541 section 2.2)."""
        return self._decoder

    @property
    def peer(self) -> str:
        """How the server names this connection in its logs."""
        return f"127.0.0.1:{self.local_port}"

    @classmethod
    async def connect(cls, host: str, port: int, *, rcvbuf: int | None = None,
                      preface: bytes = PREFACE,
                      initial_settings: Iterable[tuple[int, int]] = (),
                      handshake: bool = True) -> Attacker:
        """Connect; with ``handshake``, send the preface and SETTINGS and wait
        for the server's SETTINGS (10 s at most: a liveness bound, as in the
        harness). ``rcvbuf`` shrinks the socket's receive buffer before
        connecting (the TCP window follows)."""
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, port))
        attacker = cls(trio.SocketStream(sock))
        attacker.ack_settings = handshake  # an ACK before the preface would be a protocol error
        if handshake:
            await attacker.send(preface + settings(initial_settings))
            with trio.fail_after(10):
                await attacker.read_until(lambda e: e.counts[SETTINGS] > 0)
        return attacker

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    # ------------------------------------------------------------ sending

    async def send(self, payload: bytes) -> bool:
        """Send ``payload``; False if the server has closed or reset the connection."""
        if self.ending.send_refused:
            return False
        try:
            await self.stream.send_all(payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.ending.send_refused = True
            return False
        return True

    async def flood(self, frames: Iterable[bytes], *, seconds: float,
                    reading: bool = False) -> int:
        """Send ``frames`` in batches of about 64 KiB until they run out, the
        server refuses them (closed) or ``seconds`` pass (for instance because
        the server stopped reading). Returns how many frames were handed to
        the kernel (a batch counts once it is sent).

        Without ``reading`` nothing is read meanwhile, so the server's answers
        back up. With it, a task reads and scans everything the server sends
        (without acknowledging SETTINGS, which would be a second writer)."""
        if not reading:
            return await self._flood(frames, seconds)
        acking, self.ack_settings = self.ack_settings, False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.read_until, lambda e: e.closed)
            sent = await self._flood(frames, seconds)
            nursery.cancel_scope.cancel()
        self.ack_settings = acking
        return sent

    async def _flood(self, frames: Iterable[bytes], seconds: float) -> int:
        sent = 0
        batch: list[bytes] = []
        size = 0
        with trio.move_on_after(seconds):
            for frame in frames:
                batch.append(frame)
                size += len(frame)
                if size >= FLOOD_BATCH:
                    if not await self.send(b"".join(batch)):
                        return sent
                    sent += len(batch)
                    batch, size = [], 0
            if batch and await self.send(b"".join(batch)):
                sent += len(batch)
        return sent

    # ---------------------------------------------------------- receiving

    async def read_until(self, done: object, *, quiet: float | None = None) -> bool:
        """Read and scan until ``done(self.ending)`` is true (returns True) or
        the connection is closed (returns ``done(...)`` then). With ``quiet``,
        also return once nothing arrives for that many seconds. The caller
        bounds the total time (``trio.fail_after``/``move_on_after``)."""
        assert callable(done)
        while not done(self.ending):
            if self.ending.closed:
                return bool(done(self.ending))
            if quiet is None:
                chunk = await self._receive()
            else:
                chunk = None
                with trio.move_on_after(quiet):
                    chunk = await self._receive()
                if chunk is None:
                    return bool(done(self.ending))
            self._scan(chunk)
            if self._ack_owed:
                self._ack_owed = False
                await self.send(settings(ack=True))
        return True

    async def finish(self, seconds: float) -> Ending:
        """Read everything the server sends until it closes the connection, for
        at most ``seconds``; :attr:`Ending.closed` says whether it did."""
        with trio.move_on_after(seconds):
            await self.read_until(lambda e: e.closed)
        return self.ending

    async def _receive(self) -> bytes:
        try:
            chunk = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:  # reset by the server
            chunk = b""
        if not chunk:
            self.ending.closed = True
        return chunk

    def _scan(self, chunk: bytes) -> None:
        buffer = self._buffer
        buffer += chunk
        offset = 0
        ending = self.ending
        while len(buffer) - offset >= 9:
            high, low, kind, flags, stream_id = _HEADER.unpack_from(buffer, offset)
            length = (high << 16) | low
            if len(buffer) - offset < 9 + length:
                break
            payload = bytes(buffer[offset + 9:offset + 9 + length])
            offset += 9 + length
            if self.strict:
                self._check(bytes(buffer[offset - 9 - length:offset - length]), payload)
            stream_id &= 0x7FFFFFFF
            ending.counts[kind] += 1
            self._frame(kind, flags, stream_id, payload)
        del buffer[:offset]

    def _check(self, header: bytes, payload: bytes) -> None:
        try:
            frame, _ = Frame.parse_frame_header(memoryview(header))
            frame.parse_body(memoryview(payload))
        except (HyperframeError, ValueError, struct.error) as exc:
            self.ending.malformed.append(f"frame {header.hex()} {payload[:32].hex()}: {exc!r}")

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        ending = self.ending
        if self._block is not None and kind != CONTINUATION:
            ending.malformed.append(f"{FRAME_NAMES.get(kind, kind)} inside a header block")
            self._block = None
        if kind == DATA:
            ending.data_bytes += length_without_padding(flags, payload)
            if flags & END_STREAM:
                ending.ended_streams.add(stream_id)
        elif kind == HEADERS:
            fragment = payload
            if flags & PADDED and payload:
                fragment = fragment[1:len(fragment) - payload[0]]
            if flags & PRIORITY_FLAG:
                fragment = fragment[5:]
            self._block, self._block_stream = bytearray(fragment), stream_id
            self._block_end_stream = bool(flags & END_STREAM)
            if flags & END_HEADERS:
                self._decode_block()
        elif kind == CONTINUATION:
            if self._block is None or stream_id != self._block_stream:
                ending.malformed.append(f"CONTINUATION on stream {stream_id} out of place")
                return
            self._block += payload
            if flags & END_HEADERS:
                self._decode_block()
        elif kind == RST_STREAM and len(payload) == 4:
            ending.resets[stream_id] = struct.unpack("!L", payload)[0]
        elif kind == GOAWAY and len(payload) >= 8:
            if ending.goaway is None:
                ending.goaway = struct.unpack("!L", payload[4:8])[0]
                ending.goaway_debug = payload[8:72]
        elif kind == SETTINGS and not flags & ACK and self.ack_settings:
            self._ack_owed = True
        elif kind in FRAME_NAMES:
            pass
        elif kind != 0x10:  # PRIORITY_UPDATE is a client frame; anything else is news
            ending.malformed.append(f"unknown frame type 0x{kind:x} from the server")

    def _decode_block(self) -> None:
        assert self._block is not None
        stream_id, raw = self._block_stream, bytes(self._block)
        self._block = None
        try:
            fields = self._decoder.decode(raw, raw=True)
        except (HPACKError, IndexError, ValueError) as exc:
            self.ending.malformed.append(f"undecodable header block on {stream_id}: {exc}")
            return
        self.ending.fields.setdefault(stream_id, []).extend(fields)
        status = next((v for n, v in fields if n == b":status"), None)
        if status is not None and stream_id not in self.ending.statuses:
            self.ending.statuses[stream_id] = int(status)
        if self._block_end_stream:
            self.ending.ended_streams.add(stream_id)


def length_without_padding(flags: int, payload: bytes) -> int:
    if flags & PADDED and payload:
        return max(len(payload) - 1 - payload[0], 0)
    return len(payload)
