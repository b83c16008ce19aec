"""How trio_h2 runs h2, and what it needs from h2 that h2 does not offer. Pure.

* :func:`server_connection`: h2 configured for one server connection.
* GOAWAY frames written by hand: h2's ``close_connection`` ends h2's side of
  the connection, so the first GOAWAY of a graceful close, and one after h2
  itself failed, cannot go through it.
* An HPACK decoder that reports failures with the code RFC 9113 requires,
  and keeps no more than ``max_header_fields`` fields of a block.
* DATA frames whose payload h2 does not copy (:func:`data_frame_header`), and
  response HEADERS frames without h2's per-call overhead
  (:func:`response_headers_frame`).
* A frame buffer whose DATA frames are cheap to ``repr`` (:func:`use_frame_buffer`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import cast, final

import h2.config
import h2.connection
import h2.exceptions
import h2.frame_buffer
import h2.settings
import hpack
import hyperframe.frame
from h2.errors import ErrorCodes
from h2.stream import StreamInputs, StreamState
from hpack.struct import HeaderTuple
from hyperframe.frame import Frame, GoAwayFrame

from ._config import Config

# RFC 9218 section 2.1. h2 passes settings it does not know through as plain ints.
SETTINGS_NO_RFC7540_PRIORITIES = cast(h2.settings.SettingCodes, 0x9)

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
_SENDING = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})


def server_connection(config: Config) -> h2.connection.H2Connection:
    """An h2 server connection as trio_h2 runs it: ``config``'s settings,
    h2's header validation off (``_headers`` does it, as stream errors), the
    :class:`Decoder` and the :class:`FrameBuffer`."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # Validated in _headers, as stream errors (see its docstring).
            validate_inbound_headers=False,
            # Response headers are validated and lowercased in _headers
            # before they reach h2 (more strictly than h2 would); h2's own
            # pass cost 14 us a response and could fail half-way through
            # HPACK encoding.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
    )
    conn.local_settings = h2.settings.Settings(
        client=False,
        initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: config.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: config.max_frame_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: config.max_header_list_size,
            # RFC 9218 section 2.1: say so only if RFC 7540 signals are ignored.
            **({} if config.rfc7540_priorities else {SETTINGS_NO_RFC7540_PRIORITIES: 1}),
        },
    )
    conn.max_inbound_frame_size = config.max_frame_size
    use_frame_buffer(conn)
    conn.decoder = Decoder(max_header_list_size=config.max_header_list_size,
                           max_fields=config.max_header_fields)
    return conn


class HeaderBlockUndecodable(h2.exceptions.ProtocolError):
    """RFC 9113 section 4.3: a header block that cannot be decompressed is a
    connection error of type COMPRESSION_ERROR."""

    error_code = ErrorCodes.COMPRESSION_ERROR


@final
class FieldsDropped(HeaderTuple):
    """The first field of a header block the :class:`Decoder` cut short: its
    value is how many fields the block had. No client can send it (h2 hands
    on the decoder's objects, and a client only sends bytes); its empty name
    makes ``_headers`` reject the block if anything ever let it through."""

    __slots__ = ()


def fields_dropped(fields: Sequence[tuple[bytes, bytes]]) -> int:
    """How many fields the header block had, if the :class:`Decoder` cut it
    at ``max_header_fields`` (then ``fields`` holds the first ones); else 0.
    (h2 moves cookie fields to the end of the list, never the first field.)"""
    if fields and type(fields[0]) is FieldsDropped:
        return int(fields[0][1])
    return 0


@final
class Decoder(hpack.Decoder):
    """h2's HPACK decoder, reporting decoding failures with the error code
    RFC 9113 requires (h2 turns them all into PROTOCOL_ERROR), and keeping at
    most ``max_fields`` fields of a block.

    Past ``max_fields`` it goes on decoding, so the dynamic table stays in
    step with the client's encoder (RFC 7541 section 2.2: every block must
    be processed), and counting the block's size, but keeps no field: the
    list it returns starts with a :class:`FieldsDropped` and holds the first
    ``max_fields``, so the stream, not the connection, can be refused. An
    attacker's 2000 one-byte references never become 2000 tuples (Go's hpack
    decoder does the same past its limit: ``SetEmitEnabled(false)``).
    Oversized header lists stay h2's connection error, ENHANCE_YOUR_CALM.
    """

    def __init__(self, *, max_header_list_size: int, max_fields: int) -> None:
        super().__init__(max_header_list_size)
        self.max_fields = max_fields

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        if not raw:
            raise TypeError("trio_h2's Decoder returns bytes (h2 asks with raw=True)")
        try:
            return self._decode(data)
        except hpack.OversizedHeaderListError:
            raise
        except (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise HeaderBlockUndecodable(f"undecodable header block: {exc}") from exc

    def _decode(self, data: bytes) -> list[HeaderTuple]:
        # hpack.Decoder.decode's loop, with the count; fields stay the bytes
        # hpack decoded (its raw=True pass would copy every tuple once more).
        view = memoryview(data)
        fields: list[HeaderTuple] = []
        count = size = position = 0
        while position < len(data):
            first = data[position]
            if first & 0x80:  # RFC 7541 section 6.1: indexed
                field, used = self._decode_indexed(view[position:])
            elif first & 0x40:  # section 6.2.1: literal, added to the table
                field, used = self._decode_literal_index(view[position:])
            elif first & 0x20:  # section 6.3: dynamic table size update
                if count:
                    raise hpack.HPACKDecodingError(
                        "Table size update not at the start of the block")
                position += self._update_encoding_context(view[position:])
                continue
            else:  # sections 6.2.2 and 6.2.3: literal, not added
                field, used = self._decode_literal_no_index(view[position:])
            position += used
            count += 1
            size += len(field[0]) + len(field[1]) + 32  # RFC 7541 section 4.1
            if size > self.max_header_list_size:
                raise hpack.OversizedHeaderListError(
                    f"A header list larger than {self.max_header_list_size} has been received")
            if count <= self.max_fields:
                fields.append(field)
        self._assert_valid_table_size()
        if count > self.max_fields:
            fields.insert(0, FieldsDropped(b"", str(count).encode()))
        return fields


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
    tests/test_h2extras.py pins the frames, HPACK state and stream states
    to h2's own.
    """
    stream = conn.streams.get(stream_id)
    if stream is None:
        return None
    machine, limit = stream.state_machine, stream.max_outbound_frame_size
    if (not limit or machine.state not in _SENDING or machine.headers_sent
            or conn.state_machine.state is not h2.connection.ConnectionState.SERVER_OPEN
            or headers[0][0] != b":status" or headers[0][1][:1] == b"1"):
        return None
    machine.process_input(StreamInputs.SEND_HEADERS)  # h2's response_sent
    block = conn.encoder.encode(headers)
    flags = _END_STREAM if end_stream else 0
    if end_stream:
        machine.process_input(StreamInputs.SEND_END_STREAM)
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
