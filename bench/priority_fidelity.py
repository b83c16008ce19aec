"""Priority fidelity of trio_h2: which stream's bytes go next, measured on the wire.

Starts ``python -m trio_h2 bench.priority_fidelity:app`` as a separate process and, one
connection per scenario, asks it for several responses at once with RFC 7540
(weights, dependencies, exclusive insertion, PRIORITY frames) or RFC 9218
(``priority`` header, PRIORITY_UPDATE) signals. The client reads frames
itself and records every DATA frame in wire order as (stream, flow-controlled
length).

The client is a slow reader, so the server always has more ready than it may
send and its scheduler has to choose: every stream's window is 2^31-1 (only
the connection window limits), the socket receive buffer is 8 KiB, and the
client reopens the connection window by ``INCREMENT`` (16 KiB) at a time,
``TICK`` (1 ms) apart, and only for bytes it has read. At most the connection
window (65,535 bytes) is ever in flight.

Definitions (all offsets count DATA bytes, flow-controlled, in wire order):

* **Signal offset**: when the client writes a request's HEADERS, a PRIORITY or
  a PRIORITY_UPDATE frame, it notes the DATA bytes received so far. A request
  *has arrived* for every frame at or after its offset.
* **Ideal**: each scenario gives every stream a *rank* and a *weight* (and may
  change them at a signal offset). At any offset, among the arrived streams
  with bytes outstanding, those of the lowest rank share everything in
  proportion to weight; the others get nothing. RFC 9218: rank =
  (urgency, stream id) for non-incremental, (urgency, 0) for incremental
  (RFC 9218 section 10: same urgency, non-incremental, one at a time in
  stream-id order); weights equal. RFC 7540: the rank and weight the
  dependency tree implies (a parent before its children, siblings by weight).
* **Interval**: from the first frame at offset >= (the scenario's last signal
  offset + ``WARMUP``, 64 KiB: what the server may have sent before seeing the
  signal) until, exclusive, the first frame when fewer than two arrived streams
  have bytes outstanding (no choice left), or, inclusive, the frame that
  completes a stream whose ideal share was strictly between 0 and 1 (a
  sharing stream that ran out).
* **Phases**: maximal runs of frames in the interval with the same set of
  outstanding streams and the same signals in force, so the ideal share
  vector ``p`` is constant; ``m`` = the phase's measured byte shares.
* **fidelity** = sum over phases of ``B * (1 - sum_s |m_s - p_s| / 2)``
  divided by the sum of ``B`` (bytes of the phase): 1 - total variation
  distance, byte-weighted over phases. With one sharing phase it is plain
  1 - TVD; in a strict phase (``p`` all on one stream) the phase scores the
  fraction of its bytes that went to that stream, so for strict-order
  scenarios fidelity = the fraction of bytes delivered in the ideal order.
* **Baselines**: the same requests (sizes and signal offsets) replayed through
  a simulated server sending 16 KiB frames: *round-robin* cycles frame by
  frame over the streams with data, in order of arrival; *FIFO* sends the
  earliest-arrived stream to completion. A request the client wrote after
  DATA began reaches the simulated server 65,535 bytes (one connection
  window) later. Both are scored by the same function against the same ideal.
* **Late urgent request** (and the two late CSS of the page load, together):
  bytes of other streams' DATA read between writing its HEADERS and reading
  its first DATA frame (target: <= 256 KiB), and its last; the time from
  writing the HEADERS to reading each (bounded below by the reader's pace,
  16 KiB per ms). Baselines from the same simulations.
* **Figures**: each scenario runs ``--repeat`` times (default 5), each on a
  fresh connection; the table shows the median and the worst run. A scenario
  *reaches* the target when its median does and no run failed.

Run: ``nox -s bench -- priority_fidelity`` or ``python bench/priority_fidelity.py [--json PATH]
[--repeat N] [--only SUBSTRING]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio

KiB, MiB = 1024, 1024 * 1024

# --------------------------------------------------------------- the server app

CHUNK = 16384
MAX_CHUNK = 1024 * KiB
PERIOD = 251  # a prime: the byte pattern never lines up with chunk or frame sizes
_PATTERN = bytes(range(PERIOD)) * (2 + MAX_CHUNK // PERIOD)

Message = dict[str, Any]  # ASGI messages are dicts of mixed values


def pattern(seed: int, offset: int, length: int) -> bytes:
    """Bytes ``offset .. offset+length`` of the body whose pattern is ``seed``."""
    start = (seed + offset) % PERIOD
    return _PATTERN[start:start + length]


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """``/data?size=N&chunk=C&seed=S``: N bytes of pattern S, in chunks of C
    bytes, each handed to ``send`` as soon as the previous one returns."""
    if scope["type"] != "http":
        return
    query = parse_qs(scope["query_string"].decode("ascii"))
    size = int(query.get("size", ["0"])[0])
    chunk = int(query.get("chunk", [str(CHUNK)])[0])
    seed = int(query.get("seed", ["0"])[0])
    if scope["path"] != "/data" or not 0 < chunk <= MAX_CHUNK or size < 0:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(size).encode())]})
    sent = 0
    while True:
        n = min(chunk, size - sent)
        await send({"type": "http.response.body", "body": pattern(seed, sent, n),
                    "more_body": sent + n < size})
        sent += n
        if sent >= size:
            return


# ----------------------------------------------------------- the slow reader

MAX_WINDOW = 2**31 - 1
CONNECTION_WINDOW = 65535  # RFC 9113 section 6.9.2: the connection's initial window
INCREMENT = 16 * KiB  # the connection window reopens this much at a time...
TICK = 0.001  # ...this long apart (seconds): at most 16 MiB/s
RCVBUF = 8 * KiB  # SO_RCVBUF (Linux doubles it)
READ_SIZE = 65536
PRIORITY_UPDATE = 0x10  # RFC 9218 section 7.1 frame type
STEP_TIMEOUT = 30.0  # seconds any one wait on the server may take

Rank = tuple[int, ...]
Ideal = Mapping[int, tuple[Rank, int]]  # stream -> (rank, weight)


@dataclass(frozen=True, slots=True)
class Trace:
    """One scenario's requests, the ideal, and the DATA frames in wire order."""

    frames: list[tuple[int, int]]  # (stream id, flow-controlled length)
    sizes: dict[int, int]  # response body bytes per stream
    arrivals: dict[int, int]  # stream -> signal offset of its HEADERS
    epochs: list[tuple[int, Ideal]]  # (signal offset, ideal from then on), ascending
    measure_from: int  # the last signal offset
    times: list[float] = field(default_factory=list)  # when each frame was read
    sent_time: dict[int, float] = field(default_factory=dict)
    end_time: dict[int, float] = field(default_factory=dict)


class SlowReader:
    """An HTTP/2 client that records DATA frames in wire order and returns
    connection credit only for what it has read, ``INCREMENT`` per ``TICK``.

    Every stream's own window is 2^31-1, so only the connection window limits
    the server. :meth:`finish` reads every response to its end and checks its
    bytes; the caller (:func:`connected`) closes the socket.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        codes = h2.settings.SettingCodes
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            codes.INITIAL_WINDOW_SIZE: MAX_WINDOW, codes.ENABLE_PUSH: 0})
        self.conn.initiate_connection()
        self.frames: list[tuple[int, int]] = []
        self.times: list[float] = []
        self.received = 0
        self.last_signal = 0
        self.sizes: dict[int, int] = {}
        self.arrivals: dict[int, int] = {}
        self.sent_time: dict[int, float] = {}
        self.end_time: dict[int, float] = {}
        self.bodies: dict[int, bytearray] = {}
        self._owed = 0

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    def _signal(self) -> None:
        self.last_signal = self.received

    def request(
        self, size: int, field_value: str | None = None, *, weight: int | None = None,
        depends_on: int | None = None, exclusive: bool | None = None,
    ) -> int:
        """Queue a GET for ``size`` bytes (written at the next :meth:`flush`),
        with an RFC 9218 ``priority`` header and/or RFC 7540 priority data."""
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"bench"),
                   (b":path", f"/data?size={size}&seed={stream_id}".encode())]
        if field_value is not None:
            headers.append((b"priority", field_value.encode("ascii")))
        self.conn.send_headers(stream_id, headers, end_stream=True, priority_weight=weight,
                               priority_depends_on=depends_on, priority_exclusive=exclusive)
        self._signal()
        self.sizes[stream_id] = size
        self.arrivals[stream_id] = self.received
        self.sent_time[stream_id] = time.perf_counter()
        self.bodies[stream_id] = bytearray()
        return stream_id

    async def prioritize(
        self, stream_id: int, *, weight: int, depends_on: int = 0, exclusive: bool = False,
    ) -> None:
        """Write an RFC 7540 PRIORITY frame (``stream_id`` may be idle)."""
        self.conn.prioritize(stream_id, weight=weight, depends_on=depends_on,
                             exclusive=exclusive)
        self._signal()
        await self.flush()

    async def priority_update(self, stream_id: int, field_value: str) -> None:
        """Write an RFC 9218 PRIORITY_UPDATE frame; h2 has no API for it, so
        h2's pending output goes first and the frame starts on a boundary."""
        payload = struct.pack("!L", stream_id & 0x7FFFFFFF) + field_value.encode("ascii")
        header = struct.pack("!L", len(payload))[1:] + bytes([PRIORITY_UPDATE, 0])
        await self.flush()
        self._signal()
        await self.stream.send_all(header + struct.pack("!L", 0) + payload)

    async def pump(self) -> None:
        """Read once and record; then return credit for what was read,
        ``INCREMENT`` at a time, ``TICK`` apart."""
        data = await self.stream.receive_some(READ_SIZE)
        if not data:
            raise ConnectionError("server closed the connection")
        now = time.perf_counter()
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                stream_id, length = event.stream_id, event.flow_controlled_length
                assert stream_id is not None and length is not None
                if length:
                    self.frames.append((stream_id, length))
                    self.times.append(now)
                    self.received += length
                    self._owed += length
                    self.bodies[stream_id] += event.data or b""
                if event.stream_ended is not None:
                    self.end_time[stream_id] = now
            elif isinstance(event, h2.events.StreamEnded):
                assert event.stream_id is not None
                self.end_time.setdefault(event.stream_id, now)
            elif isinstance(event, h2.events.StreamReset):
                raise ConnectionError(f"server reset stream {event.stream_id} "
                                      f"({event.error_code!r})")
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise ConnectionError(f"server sent GOAWAY ({event.error_code!r})")
        await self.flush()  # SETTINGS and PING acknowledgements
        while self._owed >= INCREMENT:
            self._owed -= INCREMENT
            self.conn.increment_flow_control_window(INCREMENT)
            await self.flush()
            await trio.sleep(TICK)

    async def read_until(self, done: Callable[[], bool]) -> None:
        with trio.move_on_after(STEP_TIMEOUT) as waited:
            while not done():
                await self.pump()
        if waited.cancelled_caught:
            raise TimeoutError(f"no end in {STEP_TIMEOUT:g} s: {self.received} DATA bytes read,"
                               f" streams {sorted(self.end_time)} of {sorted(self.sizes)} ended")

    def delivered(self, streams: Sequence[int]) -> int:
        return sum(len(self.bodies[s]) for s in streams)

    async def finish(self, epochs: list[tuple[int, Ideal]]) -> Trace:
        """Read every response to its end, check its bytes, return the trace."""
        await self.read_until(lambda: len(self.end_time) == len(self.sizes))
        for stream_id, size in self.sizes.items():
            if not _matches(self.bodies[stream_id], stream_id, size):
                raise RuntimeError(f"stream {stream_id}: body is not the expected {size} bytes")
        return Trace(self.frames, self.sizes, self.arrivals, epochs, self.last_signal,
                     self.times, self.sent_time, self.end_time)


def _matches(body: bytearray, seed: int, size: int) -> bool:
    if len(body) != size:
        return False
    view = memoryview(body)
    return all(view[o:o + MAX_CHUNK] == pattern(seed, o, min(MAX_CHUNK, size - o))
               for o in range(0, size, MAX_CHUNK))


@asynccontextmanager
async def connected(port: int) -> AsyncIterator[SlowReader]:
    """A :class:`SlowReader` on a fresh connection, closed on exit."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    try:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, RCVBUF)
        with trio.fail_after(STEP_TIMEOUT):
            await sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    stream = trio.SocketStream(sock)
    try:
        client = SlowReader(stream)
        await client.flush()
        yield client
    finally:
        await stream.aclose()


# ----------------------------------------------------------------- scoring

WARMUP = 64 * KiB
SIM_FRAME = 16 * KiB


def ideal_shares(ideal: Ideal, outstanding: Sequence[int]) -> dict[int, float]:
    """The lowest rank among ``outstanding`` shares everything by weight."""
    best = min(ideal[s][0] for s in outstanding)
    members = [s for s in outstanding if ideal[s][0] == best]
    total = sum(ideal[s][1] for s in members)
    return {s: ideal[s][1] / total for s in members}


@dataclass(frozen=True, slots=True)
class Score:
    fidelity: float | None  # None: the interval was empty
    measured: int  # bytes in the interval
    phases: int


def score(trace: Trace, frames: Sequence[tuple[int, int]]) -> Score:
    """Fidelity of ``frames`` against ``trace``'s ideal (module docstring)."""
    start = trace.measure_from + WARMUP
    remaining = dict(trace.sizes)
    offset, epoch = 0, -1
    phases: list[tuple[object, dict[int, float], dict[int, int]]] = []
    for stream_id, length in frames:
        while epoch + 1 < len(trace.epochs) and trace.epochs[epoch + 1][0] <= offset:
            epoch += 1
        stop = False
        if offset >= start:
            outstanding = sorted(s for s, left in remaining.items()
                                 if left > 0 and trace.arrivals[s] <= offset)
            if len(outstanding) < 2:
                break
            shares = ideal_shares(trace.epochs[epoch][1], outstanding)
            key = (tuple(outstanding), epoch)
            if not phases or phases[-1][0] != key:
                phases.append((key, shares, {}))
            sent = phases[-1][2]
            sent[stream_id] = sent.get(stream_id, 0) + length
            stop = remaining[stream_id] <= length and 0 < shares.get(stream_id, 0) < 1
        remaining[stream_id] -= length
        offset += length
        if stop:
            break
    total = weighted = 0.0
    for _, shares, sent in phases:
        size = sum(sent.values())
        tvd = sum(abs(sent.get(s, 0) / size - shares.get(s, 0.0))
                  for s in set(sent) | set(shares)) / 2
        total += size
        weighted += size * (1 - tvd)
    return Score(weighted / total if total else None, int(total), len(phases))


Policy = Literal["round-robin", "FIFO"]


def simulate(trace: Trace, policy: Policy) -> list[tuple[int, int]]:
    """The frames an ideal round-robin or FIFO server would send for ``trace``'s
    requests; a request written after DATA began arrives a window later."""
    visible = {s: a + CONNECTION_WINDOW if a else 0 for s, a in trace.arrivals.items()}
    order = sorted(trace.sizes, key=lambda s: (visible[s], s))
    remaining = dict(trace.sizes)
    frames: list[tuple[int, int]] = []
    offset, turn = 0, 0
    while any(remaining.values()):
        ready = [i for i, s in enumerate(order) if remaining[s] and visible[s] <= offset]
        if not ready:  # nothing to send until the next request arrives
            pending = [s for s in order if remaining[s]]
            visible[pending[0]] = offset
            continue
        if policy == "FIFO":
            index = ready[0]
        else:
            index = next((i for i in ready if i >= turn), ready[0])
            turn = index + 1
        stream_id = order[index]
        length = min(SIM_FRAME, remaining[stream_id])
        frames.append((stream_id, length))
        remaining[stream_id] -= length
        offset += length
    return frames


def bytes_before(
    trace: Trace, frames: Sequence[tuple[int, int]], late: Collection[int], *,
    last: bool = False,
) -> int:
    """Other streams' DATA bytes between the ``late`` streams' HEADERS and
    their first DATA frame (or, with ``last``, the frame that completes them)."""
    offset = before = 0
    left = sum(trace.sizes[s] for s in late)
    sent = min(trace.arrivals[s] for s in late)
    for stream_id, length in frames:
        if stream_id in late:
            left -= length
            if not last or left <= 0:
                return before
        elif offset >= sent:
            before += length
        offset += length
    raise RuntimeError(f"streams {sorted(late)} did not complete")


# --------------------------------------------------------------- the ideals


def shared(weights: Mapping[int, int], rank: int = 0) -> dict[int, tuple[Rank, int]]:
    """Siblings sharing by weight."""
    return {s: ((rank,), w) for s, w in weights.items()}


def in_order(*groups: Mapping[int, int]) -> dict[int, tuple[Rank, int]]:
    """Each group strictly before the next; within a group, by weight."""
    ideal: dict[int, tuple[Rank, int]] = {}
    for rank, group in enumerate(groups):
        ideal.update(shared(group, rank))
    return ideal


def rfc9218(fields: Mapping[int, str]) -> dict[int, tuple[Rank, int]]:
    """The RFC 9218 ideal for streams' ``priority`` field values (defaults u=3,
    non-incremental)."""
    ideal: dict[int, tuple[Rank, int]] = {}
    for stream_id, value in fields.items():
        urgency, incremental = 3, False
        for item in (part.strip() for part in value.split(",")):
            if item.startswith("u="):
                urgency = int(item[2:])
            elif item in ("i", "i=?1"):
                incremental = True
        ideal[stream_id] = ((urgency, 0 if incremental else stream_id), 1)
    return ideal


# --------------------------------------------------------------- scenarios


async def _requests(client: SlowReader, *specs: tuple[int, str]) -> dict[int, str]:
    """Write one request per (size, priority field value), in one write."""
    fields = {client.request(size, value): value for size, value in specs}
    await client.flush()
    return fields


async def rfc7540_weights_two(port: int) -> Trace:
    """Weights 32 and 256 on stream 0 (the light one first): 1:8."""
    async with connected(port) as c:
        light = c.request(2 * MiB, weight=32, depends_on=0)
        heavy = c.request(2 * MiB, weight=256, depends_on=0)
        await c.flush()
        return await c.finish([(0, shared({light: 32, heavy: 256}))])


async def rfc7540_weights_three(port: int) -> Trace:
    """Weights 50, 100 and 200 on stream 0: 1:2:4."""
    async with connected(port) as c:
        weights = {c.request(2 * MiB, weight=w, depends_on=0): w for w in (50, 100, 200)}
        await c.flush()
        return await c.finish([(0, shared(weights))])


async def rfc7540_exclusive(port: int) -> Trace:
    """A and B (weight 16 on 0) stream; then C exclusive on 0 takes everything
    until done, then A and B share equally."""
    async with connected(port) as c:
        a = c.request(1 * MiB, weight=16, depends_on=0)
        b = c.request(1 * MiB, weight=16, depends_on=0)
        await c.flush()
        await c.read_until(lambda: c.received >= 128 * KiB)
        late = c.request(512 * KiB, weight=16, depends_on=0, exclusive=True)
        await c.flush()
        return await c.finish([(0, in_order({late: 16}, {a: 16, b: 16}))])


async def rfc7540_dependency_open(port: int) -> Trace:
    """B depends on open A: A gets everything while it has data."""
    async with connected(port) as c:
        a = c.request(1 * MiB, weight=16, depends_on=0)
        b = c.request(1 * MiB, weight=16, depends_on=a)
        await c.flush()
        return await c.finish([(0, in_order({a: 16}, {b: 16}))])


async def rfc7540_dependency_idle(port: int) -> Trace:
    """PRIORITY frames make idle 101 (weight 200) and 103 (weight 50); stream 1
    depends on 103, stream 3 on 101: 1:4."""
    async with connected(port) as c:
        c.conn.prioritize(101, weight=200, depends_on=0)
        c.conn.prioritize(103, weight=50, depends_on=0)
        light = c.request(2 * MiB, weight=16, depends_on=103)
        heavy = c.request(2 * MiB, weight=16, depends_on=101)
        await c.flush()
        return await c.finish([(0, shared({light: 50, heavy: 200}))])


async def rfc7540_reprioritize(port: int) -> Trace:
    """Two streams at weight 16; mid-flight PRIORITY frames make them 32 and
    256 (the later stream heavy): 1:8 from then on."""
    async with connected(port) as c:
        a = c.request(2 * MiB, weight=16, depends_on=0)
        b = c.request(2 * MiB, weight=16, depends_on=0)
        await c.flush()
        await c.read_until(lambda: c.received >= 256 * KiB)
        change = c.received
        c.conn.prioritize(a, weight=32, depends_on=0)
        await c.prioritize(b, weight=256, depends_on=0)
        return await c.finish([(0, shared({a: 16, b: 16})), (change, shared({a: 32, b: 256}))])


async def rfc9218_urgency(port: int) -> Trace:
    """u=4 then u=1: the u=1 stream gets everything until done."""
    async with connected(port) as c:
        fields = await _requests(c, (1 * MiB, "u=4"), (1 * MiB, "u=1"))
        return await c.finish([(0, rfc9218(fields))])


async def rfc9218_priority_update(port: int) -> Trace:
    """Two streams at u=3; PRIORITY_UPDATE sets the later one to u=0, which then
    gets everything."""
    async with connected(port) as c:
        fields = await _requests(c, (2 * MiB, "u=3"), (2 * MiB, "u=3"))
        await c.read_until(lambda: c.received >= 256 * KiB)
        change = c.received
        later = max(fields)
        await c.priority_update(later, "u=0")
        return await c.finish([(0, rfc9218(fields)), (change, rfc9218({**fields, later: "u=0"}))])


async def rfc9218_incremental(port: int) -> Trace:
    """Three streams at u=3, i: equal shares."""
    async with connected(port) as c:
        fields = await _requests(c, *[(1 * MiB, "u=3, i")] * 3)
        return await c.finish([(0, rfc9218(fields))])


async def rfc9218_non_incremental(port: int) -> Trace:
    """Three streams at u=3: one after another in stream-id order."""
    async with connected(port) as c:
        fields = await _requests(c, *[(1 * MiB, "u=3")] * 3)
        return await c.finish([(0, rfc9218(fields))])


HTML, CSS, IMAGE = (100_000, "u=0"), (50_000, "u=1"), (200_000, "u=5, i")


async def page_load(port: int) -> Trace:
    """1 HTML (u=0), 2 CSS (u=1), 10 images (u=5, i) at once: HTML, then the
    CSS one by one, then the images sharing."""
    async with connected(port) as c:
        fields = await _requests(c, HTML, CSS, CSS, *[IMAGE] * 10)
        return await c.finish([(0, rfc9218(fields))])


async def page_load_late_css(port: int) -> Trace:
    """HTML and 10 images; the 2 CSS are requested once 256 KiB of images have
    arrived, and must take over at once."""
    async with connected(port) as c:
        fields = await _requests(c, HTML, *[IMAGE] * 10)
        images = [s for s, v in fields.items() if v == IMAGE[1]]
        await c.read_until(lambda: c.delivered(images) >= 256 * KiB)
        fields |= await _requests(c, CSS, CSS)
        return await c.finish([(0, rfc9218(fields))])


async def late_urgent_rfc9218(port: int) -> Trace:
    """Four 1 MiB streams at u=5, i; after 256 KiB a 64 KiB request at u=0."""
    async with connected(port) as c:
        fields = await _requests(c, *[(1 * MiB, "u=5, i")] * 4)
        await c.read_until(lambda: c.received >= 256 * KiB)
        fields |= await _requests(c, (64 * KiB, "u=0"))
        return await c.finish([(0, rfc9218(fields))])


async def late_urgent_rfc7540(port: int) -> Trace:
    """Four 1 MiB streams with default priority; after 256 KiB a 64 KiB
    request exclusive on stream 0 with weight 256."""
    async with connected(port) as c:
        others = [c.request(1 * MiB) for _ in range(4)]
        await c.flush()
        await c.read_until(lambda: c.received >= 256 * KiB)
        urgent = c.request(64 * KiB, weight=256, depends_on=0, exclusive=True)
        await c.flush()
        return await c.finish([(0, in_order({urgent: 256}, dict.fromkeys(others, 16)))])


Scenario = Callable[[int], Awaitable[Trace]]

FIDELITY: dict[str, Scenario] = {
    "rfc7540-weights 32:256": rfc7540_weights_two,
    "rfc7540-weights 50:100:200": rfc7540_weights_three,
    "rfc7540-exclusive": rfc7540_exclusive,
    "rfc7540-dependency-open": rfc7540_dependency_open,
    "rfc7540-dependency-idle": rfc7540_dependency_idle,
    "rfc7540-reprioritize": rfc7540_reprioritize,
    "rfc9218-urgency": rfc9218_urgency,
    "rfc9218-priority-update": rfc9218_priority_update,
    "rfc9218-incremental": rfc9218_incremental,
    "rfc9218-non-incremental": rfc9218_non_incremental,
    "page-load": page_load,
    "page-load late CSS": page_load_late_css,
}
LATE_URGENT: dict[str, Scenario] = {
    "late-urgent rfc9218 u=0": late_urgent_rfc9218,
    "late-urgent rfc7540 excl w256": late_urgent_rfc7540,
    "page-load late CSS (both)": page_load_late_css,
}
TARGET_FIDELITY = 0.95
TARGET_LATE_BYTES = 256 * KiB
SCENARIO_TIMEOUT = 60.0


# --------------------------------------------------------------- running


async def _run(scenario: Scenario, port: int) -> Trace | str:
    """The trace, or what went wrong (the other scenarios still run)."""
    try:
        with trio.fail_after(SCENARIO_TIMEOUT):
            return await scenario(port)
    except trio.TooSlowError:
        return f"the scenario took over {SCENARIO_TIMEOUT:g} s"
    except (ConnectionError, RuntimeError, OSError, h2.exceptions.H2Error) as exc:
        return f"{type(exc).__name__}: {exc}"


def fidelity_figures(trace: Trace) -> dict[str, float | None]:
    ours = score(trace, trace.frames)
    return {"trio_h2": ours.fidelity,
            "round-robin": score(trace, simulate(trace, "round-robin")).fidelity,
            "FIFO": score(trace, simulate(trace, "FIFO")).fidelity,
            "measured bytes": ours.measured, "phases": ours.phases}


def late_figures(trace: Trace) -> dict[str, float | None]:
    """The late requests are those written last (at the same offset)."""
    late = [s for s, at in trace.arrivals.items() if at == trace.measure_from]
    first = trace.times[next(i for i, (s, _) in enumerate(trace.frames) if s in late)]
    sent = min(trace.sent_time[s] for s in late)
    figures: dict[str, float | None] = {
        "ms to first DATA": (first - sent) * 1000,
        "ms to end": (max(trace.end_time[s] for s in late) - sent) * 1000}
    for who, frames in (("trio_h2", trace.frames),
                        ("round-robin", simulate(trace, "round-robin")),
                        ("FIFO", simulate(trace, "FIFO"))):
        figures[f"{who} bytes"] = bytes_before(trace, frames, late)
        figures[f"{who} bytes to end"] = bytes_before(trace, frames, late, last=True)
    return figures


def summarize(name: str, runs: list[dict[str, float | None] | str]) -> dict[str, Any]:
    """Per-figure medians over the runs that completed; the runs themselves."""
    done = [run for run in runs if not isinstance(run, str)]
    median: dict[str, float | None] = {}
    for key in done[0] if done else {}:
        values = [value for run in done if (value := run[key]) is not None]
        median[key] = statistics.median(values) if values else None
    return {"scenario": name, "median": median, "runs": runs,
            "errors": [run for run in runs if isinstance(run, str)]}


async def measure(port: int, only: str, repeat: int) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {"fidelity": [], "late-urgent": []}
    for kind, scenarios, figures in (("fidelity", FIDELITY, fidelity_figures),
                                     ("late-urgent", LATE_URGENT, late_figures)):
        for name, scenario in scenarios.items():
            if only in name:
                runs: list[dict[str, float | None] | str] = []
                for _ in range(repeat):
                    trace = await _run(scenario, port)
                    runs.append(trace if isinstance(trace, str) else figures(trace))
                results[kind].append(summarize(name, runs))
    return results


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _size(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / MiB:.2f} MiB" if n >= MiB else f"{n / KiB:.0f} KiB"


def _short(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / MiB:.1f}M" if n >= MiB else f"{n / KiB:.0f}K"


def report(results: dict[str, list[dict[str, Any]]], repeat: int) -> str:
    lines = [
        "fidelity = sum over phases of B * (1 - sum_s |measured - ideal share| / 2) / sum of B",
        f"  interval: from the last signal + {WARMUP // KiB} KiB, while >= 2 streams have data,"
        " until a sharing stream",
        "  completes; phases: same streams outstanding and signals in force; B: bytes in the"
        " phase",
        f"slow reader: connection window back {INCREMENT // KiB} KiB per {TICK * 1000:g} ms,"
        " for bytes read; stream windows 2^31-1;",
        f"  SO_RCVBUF {RCVBUF // KiB} KiB",
        f"baselines: simulated {SIM_FRAME // KiB} KiB frames for the same requests; a late"
        f" request reaches them {CONNECTION_WINDOW:,} B later",
        f"figures: median of {repeat} runs (worst: the lowest trio_h2 fidelity, the most"
        " late-urgent bytes)",
        "",
        f"{'scenario':28} {'trio_h2':>7} {'worst':>6} {'round-robin':>11} {'FIFO':>6}"
        f" {'measured':>9}",
    ]
    passed = always = 0
    for row in results["fidelity"]:
        median, done = row["median"], [r for r in row["runs"] if not isinstance(r, str)]
        ours = [r["trio_h2"] for r in done]
        worst = None if None in ours or not ours else min(ours)
        ok = not row["errors"] and median.get("trio_h2") is not None \
            and median["trio_h2"] >= TARGET_FIDELITY
        passed += ok
        always += ok and worst is not None and worst >= TARGET_FIDELITY
        line = (f"{row['scenario']:28} {_fmt(median.get('trio_h2')):>7} {_fmt(worst):>6}"
                f" {_fmt(median.get('round-robin')):>11} {_fmt(median.get('FIFO')):>6}"
                f" {_size(median.get('measured bytes')):>9}")
        lines.append(line + ("" if ok else "  <"))
        lines += [f"{'':28} error: {error}" for error in row["errors"]]
    lines += ["", "late urgent request (or both late CSS): other streams' DATA bytes read"
              " between writing its HEADERS", "and reading its first DATA (target <="
              f" {TARGET_LATE_BYTES // KiB} KiB) / its last DATA; ms from writing HEADERS to"
              " reading them",
              f"{'':31}{'first DATA':-^32} {'last DATA':-^32}",
              f"{'scenario':30}" + f" {'trio_h2':>7} {'worst':>6} {'ms':>5} {'RR':>5}"
              f" {'FIFO':>5}" * 2]
    late_ok = late_always = 0
    for row in results["late-urgent"]:
        median, done = row["median"], [r for r in row["runs"] if not isinstance(r, str)]
        worst = {key: max((r[key] for r in done), default=None)
                 for key in ("trio_h2 bytes", "trio_h2 bytes to end")}
        ok = not row["errors"] and median.get("trio_h2 bytes", TARGET_LATE_BYTES + 1) \
            <= TARGET_LATE_BYTES
        late_ok += ok
        late_always += ok and max(r["trio_h2 bytes"] for r in done) <= TARGET_LATE_BYTES
        line = f"{row['scenario']:30}"
        for end, ms in (("", "ms to first DATA"), (" to end", "ms to end")):
            value = median.get(ms)
            line += (f" {_short(median.get('trio_h2 bytes' + end)):>7}"
                     f" {_short(worst['trio_h2 bytes' + end]):>6}"
                     f" {'n/a' if value is None else f'{value:.1f}':>5}"
                     f" {_short(median.get('round-robin bytes' + end)):>5}"
                     f" {_short(median.get('FIFO bytes' + end)):>5}")
        lines.append(line + ("" if ok else "  <"))
        lines += [f"{'':30} error: {error}" for error in row["errors"]]
    lines += ["", f"{passed} of {len(results['fidelity'])} scenarios reach fidelity"
              f" {TARGET_FIDELITY} ({always} in every run);\n{late_ok} of"
              f" {len(results['late-urgent'])} late urgent requests within"
              f" {TARGET_LATE_BYTES // KiB} KiB ({late_always} in every run)"]
    return "\n".join(lines)


# --------------------------------------------------------------- the server

STARTUP_TIMEOUT = 20.0


def _first_line(server: subprocess.Popen[bytes], timeout: float) -> str:
    """The server's first stdout line, or an error after ``timeout`` seconds."""
    assert server.stdout is not None
    fd, data, deadline = server.stdout.fileno(), b"", time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError(f"the server printed no line in {timeout:g} s")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"the server exited ({server.wait()}) before listening")
        data += chunk
    return data.decode(errors="replace").splitlines()[0]


def _discard(fd: int) -> None:
    while os.read(fd, 65536):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario (median)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "trio_h2", "bench.priority_fidelity:app", "--bind", "127.0.0.1:0",
         "--log-level", "warning"], cwd=root, env=env, stdout=subprocess.PIPE)
    try:
        line = _first_line(server, STARTUP_TIMEOUT)
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not found:
            raise RuntimeError(f"unexpected first line from the server: {line!r}")
        assert server.stdout is not None
        # Anything more it prints must not fill the pipe and stall it.
        threading.Thread(target=_discard, args=(server.stdout.fileno(),), daemon=True).start()
        results = trio.run(measure, int(found.group(1)), args.only, max(1, args.repeat))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    print(report(results, max(1, args.repeat)))
    if args.json:
        args.json.write_text(json.dumps({"definitions": __doc__, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
