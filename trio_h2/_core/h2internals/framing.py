"""Frames written and read around h2 (hooks listed in ``_core.h2internals``):
DATA and response HEADERS queued without h2's copies, and received DATA
frames that are cheap to ``repr``. Unlike the other modules of the package,
this one uses h2's undocumented parts as it is imported (subclasses, state
constants), so ``h2internals`` imports it only once ``check_hooks`` has
passed."""

from __future__ import annotations

import struct
from typing import final

import h2.connection
import h2.frame_buffer
import h2.stream
import hyperframe.frame
from hyperframe.frame import Frame

# ------------------------------------------------ h2: sending without copies

# RFC 9113 section 4.1: a 24-bit length (as 16 + 8 bits), the type, the
# flags, and the reserved bit with the 31-bit stream id.
_FRAME_HEADER = struct.Struct(">HBBBL")
_DATA = 0x0  # RFC 9113 section 6.1
_HEADERS = 0x1  # RFC 9113 section 6.2
_CONTINUATION = 0x9  # RFC 9113 section 6.10
_END_STREAM = 0x1
_END_HEADERS = 0x4
# The stream states in which h2 lets a server send DATA (h2.stream's
# transitions for StreamInputs.SEND_DATA that change nothing).
_SENDING = frozenset({h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE})
_SERVER_OPEN = h2.connection.ConnectionState.SERVER_OPEN
_SEND_HEADERS = h2.stream.StreamInputs.SEND_HEADERS
_SEND_END_STREAM = h2.stream.StreamInputs.SEND_END_STREAM


def data_frame_header(conn: h2.connection.H2Connection, stream_id: int, size: int, *,
                      end_stream: bool = False) -> bytes | None:
    """Do what ``conn.send_data(stream_id, payload, end_stream=end_stream)``
    does for an unpadded payload of ``size`` bytes, except queue it: check
    that the connection and the stream may send it, debit both flow-control
    windows, move the stream's state machine for END_STREAM (h2's own
    transition), and return the 9-byte frame header. The caller writes the
    header and then the payload, after everything h2 has queued so far.

    Returns None, having changed nothing, whenever h2 must decide: the
    caller then calls ``send_data``, which raises as h2 does.

    Why: h2 copies a payload five times on its way out (``tobytes``, the
    frame body, the frame, its buffer, ``data_to_send``) and spends about
    6 us per frame, 16 KiB or 12 bytes; 1 MiB downloads went 1.4x as fast
    without it. tests/core/test_h2extras.py pins this to h2's own bytes, windows
    and stream states.
    """
    stream = conn.streams.get(stream_id)
    if (stream is None
            or stream.state_machine.state not in _SENDING
            or conn.state_machine.state is not _SERVER_OPEN
            or not (0 if end_stream else 1) <= size <= conn.max_outbound_frame_size
            or size > conn.outbound_flow_control_window
            or size > stream.outbound_flow_control_window):
        return None
    conn.outbound_flow_control_window -= size
    stream.outbound_flow_control_window -= size
    if end_stream:
        stream.state_machine.process_input(_SEND_END_STREAM)
    return _frame_header(_DATA, _END_STREAM if end_stream else 0, stream_id, size)


def response_headers_frame(conn: h2.connection.H2Connection, stream_id: int,
                           headers: list[tuple[bytes, bytes]], *,
                           end_stream: bool) -> bytes | None:
    """Do what ``conn.send_headers(stream_id, headers, end_stream=...)``
    does for a final response header block, except queue it: move the
    stream's state machine with h2's own inputs, encode with h2's HPACK
    encoder, and return the frames, HEADERS then CONTINUATION if the block
    is larger than the client's SETTINGS_MAX_FRAME_SIZE, sliced as h2 slices
    them. The caller writes them after everything h2 has queued so far.

    ``headers`` must be what h2 would send after its own (disabled)
    normalisation and validation: lowercase bytes, pseudo-headers first.
    Returns None, having changed nothing, for anything else (informational
    responses, trailers, a stream that cannot send): the caller then calls
    ``send_headers``.

    Why: h2's send_headers spent about 16 us on four fields, 5 of them
    encoding; this is 15% of a small request's cost at 100 connections.
    tests/core/test_h2extras.py pins the frames, HPACK state and stream states
    to h2's own.
    """
    stream = conn.streams.get(stream_id)
    if stream is None:
        return None
    machine, limit = stream.state_machine, stream.max_outbound_frame_size
    if (not limit or machine.state not in _SENDING or machine.headers_sent
            or conn.state_machine.state is not _SERVER_OPEN
            or headers[0][0] != b":status" or headers[0][1][:1] == b"1"):
        return None
    machine.process_input(_SEND_HEADERS)  # h2's response_sent
    block = conn.encoder.encode(headers)
    flags = _END_STREAM if end_stream else 0
    if end_stream:
        machine.process_input(_SEND_END_STREAM)
    if len(block) <= limit:
        return _frame(_HEADERS, flags | _END_HEADERS, stream_id, block)
    # Huffman coding can make a field longer than it is, so only the encoded
    # size tells (and the encoder's state has moved: no going back to h2).
    pieces = [block[i:i + limit] for i in range(0, len(block), limit)]
    frames = [_frame(_HEADERS, flags, stream_id, pieces[0])]
    frames += [_frame(_CONTINUATION, 0, stream_id, piece) for piece in pieces[1:-1]]
    frames.append(_frame(_CONTINUATION, _END_HEADERS, stream_id, pieces[-1]))
    return b"".join(frames)


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return _frame_header(kind, flags, stream_id, len(payload)) + payload


def _frame_header(kind: int, flags: int, stream_id: int, size: int) -> bytes:
    return _FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, flags, stream_id)


# ------------------------------- hyperframe and h2: received DATA, cheap repr

class DataFrame(hyperframe.frame.DataFrame):
    """hyperframe's DATA frame, whose ``repr`` hexlifies only what it shows.

    h2 formats every frame it receives for a trace log that it then drops
    (``repr(frame)`` in ``H2Connection._receive_frame``), and hyperframe
    hexlifies a whole DATA payload to show its first ten bytes: 29% of the
    server's CPU while it received uploads. Same repr, character for
    character (tests/core/test_h2extras.py); same name, for that reason.
    """

    def _body_repr(self) -> str:
        # The body hyperframe would serialize: padding length, data, padding.
        head = self.serialize_padding_data() + bytes(self.data[:11])
        head += b"\0" * min(self.pad_length, 11)
        return hyperframe.frame._raw_data_repr(head[:11])


@final
class FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's incoming frame buffer, yielding :class:`DataFrame` for DATA."""

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        if type(f) is hyperframe.frame.DataFrame:
            f.__class__ = DataFrame  # a subclass that only overrides a method
        return super()._update_header_buffer(f)


def use_frame_buffer(conn: h2.connection.H2Connection) -> None:
    """Give a new server connection the :class:`FrameBuffer`. h2 dispatches
    received frames on their exact class, so ours is routed as DATA."""
    conn.incoming_buffer = FrameBuffer(server=True)
    table = conn._frame_dispatch_table
    table[DataFrame] = table[hyperframe.frame.DataFrame]
