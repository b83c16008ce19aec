"""What trio_h2 needs from h2 that h2 does not offer. Pure.

* GOAWAY frames written by hand: h2's ``close_connection`` ends h2's side of
  the connection, so the first GOAWAY of a graceful close, and one after h2
  itself failed, cannot go through it.
* An HPACK decoder that reports failures with the code RFC 9113 requires.
* DATA frames whose payload h2 does not copy (:func:`data_frame_header`).
* A frame buffer whose DATA frames are cheap to ``repr`` (:func:`use_frame_buffer`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import final

import h2.connection
import h2.exceptions
import h2.frame_buffer
import hpack
import hyperframe.frame
from h2.errors import ErrorCodes
from h2.stream import StreamInputs, StreamState
from hpack.struct import HeaderTuple
from hyperframe.frame import Frame, GoAwayFrame

# RFC 9113 section 4.1: a 24-bit length (as 16 + 8 bits), the type, the
# flags, and the reserved bit with the 31-bit stream id.
_FRAME_HEADER = struct.Struct(">HBBBL")
_DATA = 0x0  # RFC 9113 section 6.1
_END_STREAM = 0x1
# The stream states in which h2 lets a server send DATA (h2.stream's
# transitions for StreamInputs.SEND_DATA that change nothing).
_SENDING = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})


class HeaderBlockUndecodable(h2.exceptions.ProtocolError):
    """RFC 9113 section 4.3: a header block that cannot be decompressed is a
    connection error of type COMPRESSION_ERROR."""

    error_code = ErrorCodes.COMPRESSION_ERROR


@final
class Decoder(hpack.Decoder):
    """h2's HPACK decoder, reporting decoding failures with the error code
    RFC 9113 requires (h2 turns them all into PROTOCOL_ERROR). Oversized
    header lists stay h2's ENHANCE_YOUR_CALM."""

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        try:
            return super().decode(data, raw)
        except hpack.OversizedHeaderListError:
            raise
        except (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise HeaderBlockUndecodable(f"undecodable header block: {exc}") from exc


class DataFrame(hyperframe.frame.DataFrame):
    """hyperframe's DATA frame, whose ``repr`` hexlifies only what it shows.

    h2 formats every frame it receives for a trace log that it then drops
    (``repr(frame)`` in ``H2Connection._receive_frame``), and hyperframe
    hexlifies a whole DATA payload to show its first ten bytes: 29% of the
    server's CPU while it received uploads. Same repr, character for
    character (tests/test_h2extras.py); same name, for that reason.
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
    without it. tests/test_h2extras.py pins this to h2's own bytes, windows
    and stream states, and to the h2 attributes it reads.
    """
    stream = conn.streams.get(stream_id)
    if (stream is None
            or stream.state_machine.state not in _SENDING
            or conn.state_machine.state is not h2.connection.ConnectionState.SERVER_OPEN
            or not (0 if end_stream else 1) <= size <= conn.max_outbound_frame_size
            or size > conn.outbound_flow_control_window
            or size > stream.outbound_flow_control_window):
        return None
    conn.outbound_flow_control_window -= size
    stream.outbound_flow_control_window -= size
    if end_stream:
        stream.state_machine.process_input(StreamInputs.SEND_END_STREAM)
    return _FRAME_HEADER.pack(size >> 8, size & 0xFF, _DATA,
                              _END_STREAM if end_stream else 0, stream_id)


def goaway(last_stream_id: int, code: ErrorCodes) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = code
    return bytes(frame.serialize())


def code_name(code: object) -> str:
    try:
        return ErrorCodes(code).name  # type: ignore[arg-type]
    except ValueError:
        return f"0x{code:x}" if isinstance(code, int) else repr(code)
