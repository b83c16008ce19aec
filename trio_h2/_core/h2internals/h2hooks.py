"""h2's undocumented parts (listed in ``_core.h2internals``) that read or
change a connection's state in place, and the testing client's h2
connection. Nothing here touches a hook as it is imported:
``h2internals.check_hooks`` checks each before trio_h2 uses it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
)

HeaderBlockFrame = HeadersFrame | ContinuationFrame | PushPromiseFrame


# ------------------------------------------------- h2: the connection's state

def change_local_settings(conn: h2.connection.H2Connection,
                          changes: Mapping[h2.settings.SettingCodes, int]) -> None:
    """Apply ``changes`` to the settings h2 enforces on what it receives, at
    once: no SETTINGS frame, no waiting for its acknowledgement. Advertising
    them is the caller's business (``initiate_connection`` sends all of
    them; after it, a change the peer need not know about)."""
    # Settings holds codes h2 does not know as plain ints (see _h2extras).
    values = {cast(h2.settings.SettingCodes, code): value
              for code, value in conn.local_settings.items()}
    conn.local_settings = h2.settings.Settings(client=conn.config.client_side,
                                               initial_values={**values, **changes})
    conn.max_inbound_frame_size = conn.local_settings.max_frame_size


def limit_encoder_table(conn: h2.connection.H2Connection, limit: int) -> None:
    """Keep ``conn``'s HPACK encoder table within ``limit`` bytes. h2 sizes
    it to the client's SETTINGS_HEADER_TABLE_SIZE, which is only the most the
    client's decoder accepts (RFC 7541 section 4.2: the encoder may use less,
    and says so in its next header block)."""
    if conn.encoder.header_table_size > limit:
        conn.encoder.header_table_size = limit


def replace_decoder(conn: h2.connection.H2Connection, decoder: hpack.Decoder) -> None:
    """Have h2 decode every header block it receives with ``decoder``."""
    conn.decoder = decoder


def unparsed_bytes(conn: h2.connection.H2Connection) -> bytearray:
    """Received bytes h2 has not parsed into a frame yet (a frame header, or
    a frame still arriving). Read only: h2 owns the buffer."""
    data: bytearray = conn.incoming_buffer._data
    return data


def pending_header_frames(conn: h2.connection.H2Connection) -> Sequence[HeaderBlockFrame]:
    """The frames of the header block h2 is still receiving (HEADERS, then
    CONTINUATION), none if no block is unfinished. Read only."""
    return conn.incoming_buffer._headers_buffer


def stream_live(conn: h2.connection.H2Connection, stream_id: int) -> bool:
    """Whether h2 knows ``stream_id`` and has not closed it."""
    stream = conn.streams.get(stream_id)
    return stream is not None and not stream.closed


@dataclass(kw_only=True)
class BodyLengthReset(h2.events.StreamReset):
    """A stream reset by us (``remote_reset`` False, RST_STREAM
    PROTOCOL_ERROR queued) because its request body disagrees with its
    content-length: :func:`reset_on_body_length`'s event."""

    expected: int
    """The body's declared length (0 for a HEAD request, as h2 counts it)."""
    actual: int
    """The bytes of body received when h2 saw the disagreement."""


def reset_on_body_length(conn: h2.connection.H2Connection) -> None:
    """Make a request body that disagrees with its content-length the
    stream error RFC 9113 section 8.1.1 says it is, not h2's connection
    error.

    h2 raises ``InvalidBodyLengthError`` out of ``receive_data`` for DATA
    past the declared length, or ending short of it, and closes the
    connection (GOAWAY PROTOCOL_ERROR): every other stream on it is lost,
    and the events of the frames before it in the same call with them. Its
    DATA handler, wrapped here, turns that into what h2 does for the other
    stream errors it finds (a stream window overflow): the stream reset
    with RST_STREAM, and a :class:`BodyLengthReset` event. h2 raises
    before the frame's END_STREAM moves the stream's state, so the stream
    is still open to reset. h2 took the frame out of the connection window
    before the stream refused it, and nobody will read it: its credit goes
    back at once, as h2 gives back DATA that arrives on a closed stream.
    """
    receive = conn._receive_data_frame

    def receive_data_frame(frame: DataFrame) -> tuple[list[Frame], list[h2.events.Event]]:
        try:
            return receive(frame)
        except h2.exceptions.InvalidBodyLengthError as exc:
            conn.reset_stream(frame.stream_id, ErrorCodes.PROTOCOL_ERROR)
            conn.acknowledge_received_data(frame.flow_controlled_length, frame.stream_id)
            return [], [BodyLengthReset(stream_id=frame.stream_id,
                                        error_code=ErrorCodes.PROTOCOL_ERROR,
                                        remote_reset=False, expected=exc.expected_length,
                                        actual=exc.actual_length)]

    table = conn._frame_dispatch_table
    for kind in [kind for kind in table if issubclass(kind, DataFrame)]:
        table[kind] = receive_data_frame  # hyperframe's, and ours (use_frame_buffer)


def connection_closed(conn: h2.connection.H2Connection) -> bool:
    """Whether h2's side of the connection is closed (a GOAWAY sent or received)."""
    return conn.state_machine.state is h2.connection.ConnectionState.CLOSED


# ------------------------------------------ h2 as a client (trio_h2.testing)

class GoawayTolerantConnection(h2.connection.H2Connection):
    """h2's connection, still open after receiving a GOAWAY.

    RFC 9113 section 6.8 lets streams up to last_stream_id complete after a
    GOAWAY, but h2 moves the connection to CLOSED on receiving one and then
    rejects every later frame. The testing client uses this connection and
    refuses new streams itself once a GOAWAY has arrived.
    """

    def _receive_goaway_frame(
            self, frame: GoAwayFrame) -> tuple[list[Frame], list[h2.events.Event]]:
        previous = self.state_machine.state
        result = super()._receive_goaway_frame(frame)
        if previous is not h2.connection.ConnectionState.CLOSED:
            self.state_machine.state = previous
        return result
