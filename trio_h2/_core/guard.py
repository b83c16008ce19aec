"""Timers and budgets of one connection: what a client may not make us wait
for, or do for nothing. Pure: time comes from the clock it is given, and it
only answers questions; ``H2Core`` acts on the answers.

Timers (each a field of ``Config``):

* preface: the client's preface and first SETTINGS (``preface_timeout``);
* idle: no stream open (``idle_timeout``); bytes that do not complete a
  request do not count as activity;
* header: a header block (HEADERS + CONTINUATION) or a frame header that
  has started arriving must be complete (``header_timeout``, slowloris);
* stall: a stream with response data waiting makes no progress at a zero
  window (``send_timeout``);
* drain: the second GOAWAY of a graceful close follows the first after a
  PING round trip, or after ``DRAIN_RTT`` seconds at most; an idle HTTP/1.1
  connection being drained waits ``DRAIN_RTT`` for a request already sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import final

import h2.connection
from h2.errors import ErrorCodes

from .._config import Config
from .h2internals import pending_header_frames, unparsed_bytes
from .limits import TokenBucket

# The longest a graceful close waits for the PING after its first GOAWAY
# before sending the second: a round trip on any reasonable path (Go's
# server waits 1 s as well, goAwayTimeout).
DRAIN_RTT = 1.0

_HEADERS, _CONTINUATION = 0x1, 0x9


@final
class ConnectionGuard:
    """The budgets and deadlines of one connection."""

    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.resets = TokenBucket(config.reset_budget, clock)
        self.control = TokenBucket(config.control_frame_budget, clock)
        self.empty = TokenBucket(config.empty_frame_budget, clock)
        self.small_data = TokenBucket(config.data_frame_budget, clock)
        now = clock()
        self.preface_deadline: float | None = now + config.preface_timeout
        self.idle_since: float | None = now
        self.header_since: float | None = None
        self.drain_deadline: float | None = None
        self.stalled: dict[int, float] = {}
        """Streams waiting at a zero window, and since when."""
        self.starved: dict[int, float] = {}
        """Streams whose application waits for body, and since the last DATA."""
        self.writing_since: float | None = None
        """When the write in progress started, or last made progress (None:
        no write in progress). Set and cleared around every write, and set
        again each time the client takes some of a long one, so it must stay
        this cheap: no deadline is announced for it; :meth:`next_deadline` looks at least
        every half ``send_timeout`` instead."""
        self.head_size = 0
        """Bytes h2 holds of a header block still arriving (after the last read)."""
        self.new_deadline = False
        """A deadline earlier than :attr:`wake_at` appeared: the watchdog must
        look again (otherwise it would only see it at its next wake-up)."""
        self.wake_at = -math.inf
        """When the watchdog will look next (from :meth:`next_deadline`)."""

    def preface_done(self) -> None:
        self.preface_deadline = None

    def preface_expected(self) -> None:
        """A preface is due (again): HTTP/2's, after an HTTP/1.1 upgrade."""
        self.preface_deadline = self.clock() + self.config.preface_timeout
        self._announce(self.preface_deadline)

    def streams_running(self, running: int) -> None:
        if running:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = self.clock()
            self._announce(self.idle_since + self.config.idle_timeout)

    def input_parsed(self, conn: h2.connection.H2Connection) -> tuple[ErrorCodes, str] | None:
        """After h2 took a read: note whether a header block is incomplete.
        Returns the error code and reason to end the connection with, if
        what is arriving can only fail."""
        announced = _announced_frame_size(conn)
        if announced > conn.max_inbound_frame_size:
            # RFC 9113 section 4.2: the frame header alone proves the error;
            # h2 would wait for (and buffer) the whole frame first.
            return (ErrorCodes.FRAME_SIZE_ERROR,
                    f"frame of {announced} bytes announced, over SETTINGS_MAX_FRAME_SIZE "
                    f"{conn.max_inbound_frame_size}")
        if not self.header_pending(_header_block_pending(conn)):
            self.head_size = 0
            return None
        self.head_size = _header_block_size(conn)
        # Encoders use Huffman only where it is shorter (RFC 7541 section
        # 5.2), so an honest block is at most its raw fields plus a few
        # bytes each, less than what max_header_list_size counts (name,
        # value and 32 per field): past twice the limit it can only fail.
        # h2 stops at 64 CONTINUATION frames, but with large frames allowed
        # that is megabytes (the 2024 CONTINUATION flood).
        if self.head_size > 2 * self.config.max_header_list_size:
            return (ErrorCodes.ENHANCE_YOUR_CALM,
                    f"header block over {2 * self.config.max_header_list_size} bytes "
                    f"(max_header_list_size is {self.config.max_header_list_size})")
        return None

    def header_pending(self, pending: bool) -> bool:
        """Whether part of a request head has arrived and not all of it; the
        header timer runs while it has. Returns ``pending``."""
        if not pending:
            self.header_since = None
        elif self.header_since is None:
            self.header_since = self.clock()
            self._announce(self.header_since + self.config.header_timeout)
        return pending

    def stream_stalled(self, stream_id: int, stalled: bool) -> None:
        if not stalled:
            self.stalled.pop(stream_id, None)
        elif stream_id not in self.stalled:
            self.stalled[stream_id] = since = self.clock()
            self._announce(since + self.config.send_timeout)

    def body_wanted(self, stream_id: int, wanted: bool) -> None:
        """The application of ``stream_id`` waits for body (or stopped)."""
        if not wanted:
            self.starved.pop(stream_id, None)
        elif stream_id not in self.starved:
            self.starved[stream_id] = since = self.clock()
            self._announce(since + self.config.body_timeout)

    def body_arrived(self, stream_id: int) -> None:
        if stream_id in self.starved:
            self.starved[stream_id] = self.clock()

    def drain_started(self) -> None:
        self.drain_deadline = self.clock() + DRAIN_RTT
        self._announce(self.drain_deadline)

    def _announce(self, deadline: float) -> None:
        if deadline < self.wake_at:
            self.new_deadline = True

    # ------------------------------------------------------------- questions

    def expired(self) -> tuple[str | None, list[int], list[int]]:
        """What has run out now: a reason the connection must end (or
        ``None``), the streams stalled for longer than ``send_timeout``, and
        those starved of body for longer than ``body_timeout``."""
        now, config = self.clock(), self.config
        reason = None
        if self.preface_deadline is not None and now >= self.preface_deadline:
            reason = f"no connection preface within {config.preface_timeout}s"
        elif self.header_since is not None and now - self.header_since >= config.header_timeout:
            reason = f"header block not completed within {config.header_timeout}s"
        elif self.idle_since is not None and now - self.idle_since >= config.idle_timeout:
            reason = "idle"
        elif self.writing_since is not None and now - self.writing_since >= config.send_timeout:
            reason = f"the client has not read for {config.send_timeout}s"
        stalled = [stream_id for stream_id, since in self.stalled.items()
                   if now - since >= config.send_timeout]
        starved = [stream_id for stream_id, since in self.starved.items()
                   if now - since >= config.body_timeout]
        return reason, stalled, starved

    def drain_due(self) -> bool:
        return self.drain_deadline is not None and self.clock() >= self.drain_deadline

    def next_deadline(self) -> float:
        """The earliest moment :meth:`expired` or :meth:`drain_due` can change."""
        self.new_deadline = False
        config = self.config
        candidates = [self.preface_deadline, self.drain_deadline]
        if self.header_since is not None:
            candidates.append(self.header_since + config.header_timeout)
        if self.idle_since is not None:
            candidates.append(self.idle_since + config.idle_timeout)
        if self.stalled:
            candidates.append(min(self.stalled.values()) + config.send_timeout)
        if self.starved:
            candidates.append(min(self.starved.values()) + config.body_timeout)
        # A write may start at any moment: look again within half a send_timeout.
        candidates.append(self.clock() + config.send_timeout / 2)
        self.wake_at = min(c for c in candidates if c is not None)
        return self.wake_at


# Frames handed to h2 per receive_data call. h2 turns what it is given into
# events before we see any, and each HEADERS frame costs it a walk over every
# stream it holds (open_inbound_streams), streams opened earlier in the same
# call included: one 64 KiB read of 3,450 malformed requests cost 2 s of CPU
# (issue 11). In slices of 32 frames, we reset each refused stream before h2
# sees the next slice, and stop parsing as soon as a budget ends the
# connection. 32 small frames are about 1 KiB; h2's cost per call is a few
# microseconds.
SLICE_FRAMES = 32

_PREFACE_SIZE = 24  # RFC 9113 section 3.4: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@final
class FrameSlicer:
    """Cuts the client's bytes, as they arrive, into slices of at most
    :data:`SLICE_FRAMES` frames, at frame boundaries (RFC 9113 section 4.1:
    each frame is a 9-byte header whose first 3 bytes give the length of the
    payload that follows). A frame cut by a read ends a slice later. Only
    where the slices end depends on the bytes: h2 takes any split of its
    input, so what it makes of them is the same, whatever this finds."""

    def __init__(self) -> None:
        self._skip = _PREFACE_SIZE
        """Bytes before the next frame header: the preface, then payloads."""
        self._header = b""
        """The start of a frame header cut by the end of a read."""

    def slices(self, data: bytes | bytearray) -> list[bytes]:
        """``data`` in slices, as ``bytes`` (what h2 documents it takes): a
        copy of each piece, or ``data`` itself when it is one slice."""
        view = memoryview(data)
        size = len(view)
        cuts: list[bytes] = []
        start = position = frames = 0
        while True:
            if self._skip:
                step = min(self._skip, size - position)
                position += step
                self._skip -= step
                if self._skip:
                    break  # the payload goes on in the next read
            if position > start:
                frames += 1  # (the preface counts as one)
                if frames == SLICE_FRAMES:
                    cuts.append(bytes(view[start:position]))
                    start, frames = position, 0
            missing = 9 - len(self._header)
            if size - position < missing:
                self._header += bytes(view[position:])
                position = size
                break
            header = self._header + bytes(view[position:position + missing])
            self._header = b""
            position += missing
            self._skip = int.from_bytes(header[:3], "big")
        if position > start:
            if start == 0 and isinstance(data, bytes):
                cuts.append(data)
            else:
                cuts.append(bytes(view[start:position]))
        return cuts


def _announced_frame_size(conn: h2.connection.H2Connection) -> int:
    """The length in the header of the frame h2 is still receiving, or 0."""
    data = unparsed_bytes(conn)
    return int.from_bytes(data[:3], "big") if len(data) >= 9 else 0


def _header_block_size(conn: h2.connection.H2Connection) -> int:
    """Bytes of the unfinished header block h2 holds (see below)."""
    size = sum(len(frame.data) for frame in pending_header_frames(conn))
    data = unparsed_bytes(conn)
    if len(data) >= 9 and data[3] in (_HEADERS, _CONTINUATION):
        size += len(data) - 9
    return size


def _header_block_pending(conn: h2.connection.H2Connection) -> bool:
    """Whether h2 holds part of a header block, or of a frame header: the
    frames of an unfinished block, or unparsed bytes that are a frame header
    still arriving or the start of a HEADERS or CONTINUATION frame. h2 has
    no public view of either (see ``_core.h2internals``, which checks at import
    that they are still where these functions read them)."""
    if pending_header_frames(conn):
        return True
    data = unparsed_bytes(conn)
    if not data:
        return False
    if len(data) < 9:
        return True  # a frame header still arriving
    return data[3] in (_HEADERS, _CONTINUATION)
