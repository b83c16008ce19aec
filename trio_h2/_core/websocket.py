"""The sans-IO core of one WebSocket (RFC 6455), on wsproto. Imports no trio.

It does not know what carries the WebSocket: the bytes of an HTTP/1.1
connection after ``101 Switching Protocols`` or the DATA of an HTTP/2
extended CONNECT stream (RFC 8441) are the same byte stream to it. Bytes in
(:meth:`WebSocketCore.receive_data`), events out (:meth:`~WebSocketCore.next_event`:
whole messages and the close), messages in, bytes out
(:meth:`~WebSocketCore.data_to_send`). wsproto frames and parses; this
module adds what a server needs on top of it:

* **Message size**: at most ``max_message_size`` bytes a message, summed
  over its fragments, counted after permessage-deflate has inflated them. A
  frame header that declares more is refused (1009) before any of its
  payload is buffered (:class:`_SizeGuard`, a wsproto extension that sees
  every frame header and, after permessage-deflate, every inflated piece).
* **Compression bombs**: wsproto inflates whatever one call hands it, in
  one ``zlib`` call without ``max_length``. Deflate inflates at most 1032
  times (RFC 1951's longest match, 258 bytes, in 2 bits), so input is handed
  to wsproto in slices of ``max_message_size // 1032`` bytes while a
  message is compressed: a bomb costs us at most about twice
  ``max_message_size`` before it is refused with 1009.
* **Pongs**: at most one PONG waits to go out, for the latest PING (RFC
  6455 section 5.5.3 allows answering only the most recent), so a client
  that sends PINGs and reads nothing cannot grow our output.
* **Close codes** (RFC 6455 section 7.4.1): 1002 for a protocol error, 1007
  for invalid UTF-8, 1009 for a message too big, the client's own code
  echoed when it closes; 1006 is never sent (wsproto turns it into 1000).

The handshake helpers (:func:`handshake_problem`, :func:`accept_key`,
:func:`negotiate`) are pure functions the HTTP/1.1 and HTTP/2 cores and the
ASGI adapter share.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import final

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from .headers import Headers

# RFC 6455 section 1.3: the GUID the accept key is derived with.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 1951: deflate's best case is a 258-byte match in 2 bits (about 1032:1).
INFLATE_RATIO = 1032

# Close codes (RFC 6455 section 7.4.1).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, ABNORMAL = 1000, 1001, 1002, 1006
INVALID_DATA, TOO_BIG, INTERNAL_ERROR = 1007, 1009, 1011

VERSION = b"13"


def _values(fields: Headers, name: bytes) -> list[bytes]:
    return [value for field, value in fields if field == name]


def _tokens(fields: Headers, name: bytes) -> list[bytes]:
    """The comma-separated tokens of the fields ``name``, in order."""
    return [token.strip() for value in _values(fields, name) for token in value.split(b",")
            if token.strip()]


def handshake_problem(fields: Headers, *, need_key: bool) -> tuple[int, str, Headers] | None:
    """What is wrong with a WebSocket handshake request, as the status to
    answer, the reason and extra response fields; None if nothing is.

    RFC 6455 section 4.2.1: ``Sec-WebSocket-Version`` must be 13, else 426
    with ``Sec-WebSocket-Version: 13`` (section 4.4); over HTTP/1.1
    (``need_key``) ``Sec-WebSocket-Key`` must be 16 bytes in base64, else
    400. RFC 8441 section 5 drops the key over HTTP/2."""
    versions = _values(fields, b"sec-websocket-version")
    if versions != [VERSION]:
        return 426, f"Sec-WebSocket-Version {b', '.join(versions)!r}, not 13", \
            [(b"sec-websocket-version", VERSION)]
    if need_key:
        keys = _values(fields, b"sec-websocket-key")
        try:
            valid = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
        except binascii.Error:
            valid = False
        if not valid:
            return 400, "Sec-WebSocket-Key missing, repeated, or not 16 bytes in base64", []
    return None


def accept_key(fields: Headers) -> bytes:
    """``Sec-WebSocket-Accept`` for the request's key (RFC 6455 section 4.2.2)."""
    key = _values(fields, b"sec-websocket-key")[0].strip()
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def subprotocols(fields: Headers) -> list[str]:
    """The subprotocols the client offers, in its order of preference."""
    return [token.decode("ascii", "replace")
            for token in _tokens(fields, b"sec-websocket-protocol")]


def negotiate(fields: Headers) -> tuple[list[Extension], bytes | None]:
    """The extensions to run for the client's ``Sec-WebSocket-Extensions``
    offers, and the value that accepts them (None: none accepted). Only
    permessage-deflate (RFC 7692) is offered by trio_h2; its first acceptable
    offer is taken."""
    for offer in _tokens(fields, b"sec-websocket-extensions"):
        name, _, params = offer.decode("ascii", "replace").partition(";")
        if name.strip() != PerMessageDeflate.name:
            continue
        deflate = PerMessageDeflate()
        try:
            accepted = deflate.accept(params)
        except ValueError:  # a window-bits parameter out of range
            continue
        if accepted is not None and accepted is not False:
            value = PerMessageDeflate.name
            if isinstance(accepted, str) and accepted.strip("; "):
                value += "; " + accepted.strip("; ")
            return [deflate], value.encode()
    return [], None


@final
@dataclass(frozen=True, slots=True)
class Message:
    """A whole message from the client."""

    data: str | bytes


@final
@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket is closing: the client sent a close frame (``code`` is
    its code; 1005 if it gave none), or broke the protocol or a limit
    (``code`` is ours, already queued in the output)."""

    code: int
    reason: str
    by_client: bool


@final
class _SizeGuard(Extension):
    """A wsproto extension that uses no RSV bit and only counts: it refuses
    a data frame whose declared length would take its message past the
    limit (before its payload is read), and a message whose (inflated)
    pieces do. Listed after permessage-deflate, it sees inflated pieces."""

    name = "trio_h2-size-guard"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        """Bytes of the current message so far."""
        self._control = False
        self._deflated = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False  # never negotiated: a server-side guard, not a wire extension

    def frame_inbound_header(self, proto: object, opcode: Opcode, rsv: RsvBits,
                             payload_length: int) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if not self._control:
            if opcode is not Opcode.CONTINUATION:
                self._deflated = rsv.rsv1
            # A deflated message may be longer than its content: 5 bytes
            # per stored block, which are 128 bytes at zlib's smallest
            # memLevel (the websockets library uses 5: 2 KiB blocks).
            limit = self.limit
            if self._deflated:
                limit += limit // 16 + 64
            if self.size + payload_length > limit:
                return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)

    def frame_inbound_payload_data(self, proto: object, data: bytes) -> bytes | CloseReason:
        if not self._control:
            self.size += len(data)
            if self.size > self.limit:
                return CloseReason.MESSAGE_TOO_BIG
        return data

    def frame_inbound_complete(self, proto: object, fin: bool) -> bytes | CloseReason | None:
        if fin and not self._control:
            self.size = 0
        return None


@final
class WebSocketCore:
    """One WebSocket's frames and messages, server side, after the handshake.

    Never raises for the client's mistakes: they end in a :class:`Closed`
    event with our close frame queued.
    """

    def __init__(self, *, max_message_size: int, extensions: list[Extension]) -> None:
        self.max_message_size = max_message_size
        self._guard = _SizeGuard(max_message_size)
        self._compressed = bool(extensions)
        # Inflated bytes one slice can make stay under the message limit.
        self._slice = max(1, max_message_size // INFLATE_RATIO) if extensions else 1 << 16
        self._ws = Connection(ConnectionType.SERVER, extensions=[*extensions, self._guard])
        self._pending = b""
        """Received bytes not yet handed to wsproto."""
        self._text: list[str] = []
        self._bytes: list[bytes] = []
        """The fragments of the message being received."""
        self._output = bytearray()
        self._pong: bytes | None = None
        """The one PONG payload waiting to be sent."""
        self.closed: Closed | None = None
        """Set once the closing handshake has begun, from either side."""
        self.pongs = 0
        """PONG frames received (the keepalive reads it)."""

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; parsed as :meth:`next_event` is called."""
        if self.closed is None or not self.closed.by_client:
            self._pending += data

    def next_event(self) -> Message | Closed | None:
        """The next whole message, or the close; None until more bytes come.
        After a :class:`Closed`, always None."""
        while self._pending or self.closed is None:
            for event in self._ws.events():
                result = self._event(event)
                if result is not None:
                    return result
            if not self._pending or self.closed is not None:
                return None
            size = self._slice if self._compressed else len(self._pending)
            chunk, self._pending = self._pending[:size], self._pending[size:]
            self._ws.receive_data(chunk)
        return None

    @property
    def buffered(self) -> int:
        """Bytes held: unparsed input and the fragments of a message."""
        return len(self._pending) + self._guard.size

    def _event(self, event: object) -> Message | Closed | None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if not event.message_finished:
                return None
            text, self._text = "".join(self._text), []
            return Message(text)
        if isinstance(event, BytesMessage):
            self._bytes.append(bytes(event.data))
            if not event.message_finished:
                return None
            data, self._bytes = b"".join(self._bytes), []
            return Message(data)
        if isinstance(event, Ping):
            self._pong = bytes(event.payload)
            return None
        if isinstance(event, Pong):
            self.pongs += 1
            return None
        if isinstance(event, CloseConnection):
            self._pending = b""
            self._text, self._bytes = [], []
            by_client = self._ws.state is ConnectionState.REMOTE_CLOSING
            # A parse failure leaves wsproto OPEN: the code is ours to send.
            self.closed = Closed(int(event.code), event.reason or "", by_client)
            self._output += self._ws.send(CloseConnection(code=event.code, reason=(
                event.reason or "")[:100] if not by_client else ""))
            return self.closed
        return None

    # ----------------------------------------------------------------- output

    def send_message(self, data: str | bytes) -> None:
        """Queue one whole message (a single frame). Raises
        :exc:`RuntimeError` if the WebSocket is closing."""
        if self.closed is not None:
            raise RuntimeError("the WebSocket is closing")
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        self._output += self._ws.send(event)

    def ping(self, payload: bytes) -> None:
        """Queue a PING (keepalive)."""
        if self.closed is None:
            self._output += self._ws.send(Ping(payload=payload))

    def close(self, code: int, reason: str = "") -> None:
        """Begin the closing handshake from our side (the application's)."""
        if self.closed is None:
            self.closed = Closed(code, reason, by_client=False)
            self._pong = None
            self._output += self._ws.send(CloseConnection(code=code, reason=reason or None))

    @property
    def has_output(self) -> bool:
        return bool(self._output) or self._pong is not None

    def data_to_send(self) -> bytes:
        """Everything queued, the pending PONG first; then nothing is queued."""
        data = b""
        if self._pong is not None and self.closed is None:
            data = bytes(self._ws.send(Pong(payload=self._pong)))
        self._pong = None
        data += self._output
        self._output.clear()
        return data
