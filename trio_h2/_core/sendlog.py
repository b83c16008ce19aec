"""What one connection's sender sent, frame by frame, for an app that asks. Pure.

The scheduler decides which stream's DATA goes next; :class:`SendLog` writes
down what came of each decision: the stream, the bytes, when, and the
stream's priority at that moment. Only a connection whose application asked
(the ``trio_h2.scheduler`` scope extension, :class:`SchedulerControl`) has a
log; for every other connection the cost is one ``None`` check per DATA frame.

The log keeps the first :data:`MAX_SENDS` frames and the first
:data:`MAX_STREAMS` streams after recording starts, then counts what it
leaves out: a page load is recorded from its beginning, which is what a
waterfall shows.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, final

from .priority_field import ExtensiblePriority
from .scheduler import Scheduler, TreePlace

# Frames kept per recording connection. The demo's priority page sends 21
# MiB, 1,500 to 1,700 frames (16 KiB, and shorter ones where a chunk or a
# turn ends), so 4096 holds two page loads. Each costs 16 bytes in the arrays
# (time, stream id, size) and 8 in the list of priorities (shared objects):
# 96 KiB per recording connection.
MAX_SENDS = 4096
# Streams whose request is noted (path and signals as they arrived): a page
# of 256 resources; their paths and fields are cut to MAX_PATH bytes. At most
# 256 x (2 x 256 + ~250) bytes, about 190 KiB.
MAX_STREAMS = 256
MAX_PATH = 256

Signal = ExtensiblePriority | TreePlace


@final
@dataclass(frozen=True, slots=True)
class StreamNote:
    """A request as it arrived, for the log's reader."""

    stream_id: int
    path: str
    priority_field: str | None
    """The request's RFC 9218 ``priority`` field, as sent (None: absent)."""
    rfc7540: TreePlace | None
    """The RFC 7540 priority in its HEADERS frame (None: not sent)."""
    exclusive: bool
    opened_at: float


@final
@dataclass(frozen=True, slots=True)
class SentData:
    """One DATA frame: ``size`` bytes of ``stream_id`` at ``time`` (seconds
    since recording started), while the stream's priority was ``signal``."""

    time: float
    stream_id: int
    size: int
    signal: Signal


@final
@dataclass(frozen=True, slots=True)
class SendRecord:
    """A copy of a connection's log, for the application to read."""

    streams: tuple[StreamNote, ...]
    sends: tuple[SentData, ...]
    priorities_ignored: bool
    """The scheduler's mode when the copy was taken."""
    frames_left_out: int
    """DATA frames sent after the log was full."""
    streams_left_out: int

    def to_json(self) -> dict[str, object]:
        """The record as JSON-ready values (lists, dicts, numbers, strings)."""
        return {
            "priorities_ignored": self.priorities_ignored,
            "frames_left_out": self.frames_left_out,
            "streams_left_out": self.streams_left_out,
            "streams": [{"stream_id": note.stream_id, "path": note.path,
                         "priority_field": note.priority_field,
                         "rfc7540": signal_json(note.rfc7540), "exclusive": note.exclusive,
                         "opened_at": round(note.opened_at, 6)} for note in self.streams],
            "sends": [[round(sent.time, 6), sent.stream_id, sent.size, signal_json(sent.signal)]
                      for sent in self.sends],
        }


def signal_json(signal: Signal | None) -> dict[str, object] | None:
    if isinstance(signal, ExtensiblePriority):
        return {"urgency": signal.urgency, "incremental": signal.incremental}
    if isinstance(signal, TreePlace):
        return {"weight": signal.weight, "depends_on": signal.depends_on}
    return None


@final
class SendLog:
    """The bounded log itself, owned by ``H2Core`` while recording."""

    __slots__ = ("_clock", "_ids", "_signals", "_sizes", "_start", "_streams", "_times",
                 "frames_left_out", "streams_left_out")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._start = clock()
        self._times = array("d")
        self._ids = array("I")  # stream ids are 31 bits
        self._sizes = array("I")  # a frame is at most 2**24 - 1 bytes
        self._signals: list[Signal] = []
        self._streams: dict[int, StreamNote] = {}
        self.frames_left_out = 0
        self.streams_left_out = 0

    def opened(self, stream_id: int, path: bytes, priority_field: bytes | None,
               rfc7540: TreePlace | None, exclusive: bool) -> None:
        """A request arrived on ``stream_id``."""
        if len(self._streams) >= MAX_STREAMS:
            self.streams_left_out += 1
            return
        self._streams[stream_id] = StreamNote(
            stream_id, path[:MAX_PATH].decode("latin-1"),
            None if priority_field is None else priority_field[:MAX_PATH].decode("latin-1"),
            rfc7540, exclusive, self._clock() - self._start)

    def sent(self, stream_id: int, size: int, signal: Signal) -> None:
        """``size`` bytes of ``stream_id`` were framed as DATA just now."""
        if len(self._ids) >= MAX_SENDS:
            self.frames_left_out += 1
            return
        self._times.append(self._clock() - self._start)
        self._ids.append(stream_id)
        self._sizes.append(size)
        self._signals.append(signal)

    def copy(self, *, priorities_ignored: bool) -> SendRecord:
        return SendRecord(
            tuple(self._streams.values()),
            tuple(map(SentData, self._times, self._ids, self._sizes, self._signals)),
            priorities_ignored, self.frames_left_out, self.streams_left_out)


class LogHolder(Protocol):
    """Where a connection keeps its log: ``H2Core``, which writes to it."""

    send_log: SendLog | None

    @property
    def scheduler(self) -> Scheduler: ...

    @property
    def clock(self) -> Callable[[], float]: ...


@final
class SchedulerControl:
    """The ``trio_h2.scheduler`` scope extension: one HTTP/2 connection's
    scheduler, as its application may see and steer it. Every method acts on
    that connection alone."""

    __slots__ = ("_core",)

    def __init__(self, core: LogHolder) -> None:
        self._core = core

    def start_recording(self) -> None:
        """Record this connection's DATA frames from now on (a fresh log;
        the one before, if any, is dropped). Requests that arrive from now
        on are noted too."""
        self._core.send_log = SendLog(self._core.clock)

    def stop_recording(self) -> None:
        self._core.send_log = None

    def record(self) -> SendRecord | None:
        """A copy of the log so far, or None if not recording."""
        log = self._core.send_log
        if log is None:
            return None
        return log.copy(priorities_ignored=self._core.scheduler.priorities_ignored)

    def ignore_priorities(self, ignored: bool = True) -> None:
        """Serve this connection's streams round robin, one quantum (16 KiB)
        each in the order they became ready, whatever the client asked
        (``False``: honour the signals again)."""
        self._core.scheduler.ignore_priorities(ignored)

    @property
    def priorities_ignored(self) -> bool:
        return self._core.scheduler.priorities_ignored
