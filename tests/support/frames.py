"""HTTP/2 on the wire, built as bytes: the preface, every frame a test sends,
and HPACK blocks that need no encoder state (STYLE item 19: built here once).

Nothing here checks its arguments, so a test can build a frame as broken as
it needs (a WINDOW_UPDATE of 0, a PING of 9 bytes, SETTINGS on a stream).
Both raw clients send what these functions return: :mod:`tests.support.rawh2`
(a client that follows the protocol) and :mod:`tests.support.attack_client`
(an attacker that sends anything). Frames are read back by those clients.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from h2.errors import ErrorCodes
from hpack import Encoder, NeverIndexedHeaderTuple
from hpack.hpack import encode_integer

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 section 3.4)."""

# Frame types (RFC 9113 section 6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
FRAME_NAMES = {DATA: "DATA", HEADERS: "HEADERS", PRIORITY: "PRIORITY", RST_STREAM: "RST_STREAM",
               SETTINGS: "SETTINGS", PUSH_PROMISE: "PUSH_PROMISE", PING: "PING",
               GOAWAY: "GOAWAY", WINDOW_UPDATE: "WINDOW_UPDATE", CONTINUATION: "CONTINUATION"}
MAX_WINDOW = 2**31 - 1
"""The largest flow-control window (RFC 9113 section 6.9.1)."""
MAX_FRAME_SIZE = 16384
"""SETTINGS_MAX_FRAME_SIZE until the server says otherwise (RFC 9113 section 6.5.2)."""

Field = tuple[str | bytes, str | bytes]
"""A header field as tests write it: names and values as str or bytes."""


def code_name(code: int | None) -> str:
    """An error code's RFC name (``"PROTOCOL_ERROR"``), or its hex value."""
    if code is None:
        return "none"
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


# ------------------------------------------------------------------ frames


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes, *,
              length: int | None = None) -> bytes:
    """A frame exactly as given: no checks, so it can be as broken as a test
    needs. ``length`` is the length its header announces, if not the payload's."""
    n = len(payload) if length is None else length
    return struct.pack("!HBBBL", n >> 8, n & 0xFF, frame_type, flags, stream_id) + payload


def headers(stream_id: int, header_block: bytes, *, end_stream: bool = True,
            end_headers: bool = True, priority: tuple[int, int, bool] | None = None) -> bytes:
    """HEADERS carrying ``header_block``. ``priority`` is ``(depends_on,
    weight 1-256, exclusive)`` (RFC 7540 section 6.2)."""
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    if priority is not None:
        depends_on, weight, exclusive = priority
        flags |= PRIORITY_FLAG
        header_block = _dependency(depends_on, weight, exclusive) + header_block
    return raw_frame(HEADERS, flags, stream_id, header_block)


def continuation(stream_id: int, fragment: bytes, *, end_headers: bool = False) -> bytes:
    return raw_frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, fragment)


def split_block(stream_id: int, header_block: bytes, size: int = MAX_FRAME_SIZE, *,
                end_stream: bool = True, priority: tuple[int, int, bool] | None = None) -> bytes:
    """HEADERS and CONTINUATIONs carrying ``header_block`` in fragments of
    ``size`` bytes (an empty block is one empty HEADERS)."""
    fragments = [header_block[i:i + size] for i in range(0, len(header_block), size)] or [b""]
    frames = [headers(stream_id, fragments[0], end_stream=end_stream,
                      end_headers=len(fragments) == 1, priority=priority)]
    frames += [continuation(stream_id, f, end_headers=i == len(fragments) - 2)
               for i, f in enumerate(fragments[1:])]
    return b"".join(frames)


def data(stream_id: int, payload: bytes = b"", *, end_stream: bool = False,
         pad_length: int | None = None) -> bytes:
    """DATA; with ``pad_length``, PADDED with that many zero bytes."""
    flags = END_STREAM if end_stream else 0
    if pad_length is not None:
        flags |= PADDED
        payload = bytes([pad_length]) + payload + bytes(pad_length)
    return raw_frame(DATA, flags, stream_id, payload)


def rst_stream(stream_id: int, code: int = ErrorCodes.CANCEL) -> bytes:
    return raw_frame(RST_STREAM, 0, stream_id, struct.pack("!L", code))


def ping(payload: bytes = b"attack!!", *, ack: bool = False) -> bytes:
    return raw_frame(PING, ACK if ack else 0, 0, payload)


def settings(pairs: Iterable[tuple[int, int]] = (), *, ack: bool = False) -> bytes:
    """SETTINGS with ``pairs`` of (identifier, value), in order."""
    payload = b"".join(struct.pack("!HL", ident, value) for ident, value in pairs)
    return raw_frame(SETTINGS, ACK if ack else 0, 0, payload)


def window_update(stream_id: int, increment: int) -> bytes:
    """WINDOW_UPDATE; any increment, 0 included (hyperframe refuses to build that)."""
    return raw_frame(WINDOW_UPDATE, 0, stream_id, struct.pack("!L", increment))


def priority(stream_id: int, depends_on: int = 0, weight: int = 16,
             exclusive: bool = False) -> bytes:
    return raw_frame(PRIORITY, 0, stream_id, _dependency(depends_on, weight, exclusive))


def goaway(last_stream_id: int = 0, code: int = ErrorCodes.NO_ERROR) -> bytes:
    return raw_frame(GOAWAY, 0, 0, struct.pack("!LL", last_stream_id, code))


def _dependency(depends_on: int, weight: int, exclusive: bool) -> bytes:
    return struct.pack("!LB", depends_on | (0x80000000 if exclusive else 0), weight - 1)


# ------------------------------------------------------------ header blocks


def block(fields: Iterable[Field]) -> bytes:
    """An HPACK header block that touches no dynamic table (literals never
    indexed, static indexes): valid whatever was sent before or after it."""
    encoder = Encoder()
    return encoder.encode([NeverIndexedHeaderTuple(as_bytes(name), as_bytes(value))
                           for name, value in fields])


def literal(name: bytes, value: bytes, *, indexed: bool = False) -> bytes:
    """One HPACK literal field with a new name, not Huffman-coded (RFC 7541
    section 6.2): added to the dynamic table if ``indexed``."""
    prefix = b"\x40" if indexed else b"\x00"
    return (prefix + bytes(encode_integer(len(name), 7)) + name
            + bytes(encode_integer(len(value), 7)) + value)


def as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
