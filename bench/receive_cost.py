"""CPU per ``receive_data`` call of the sans-IO core under hostile input.

Issue 11's bound: no single ``H2Core.receive_data`` call may take
more than 50 ms of CPU for 64 KiB of input, whatever the client sends. This
script makes hostile inputs by class, cuts each into 64 KiB reads, feeds them
to a fresh ``H2Core`` (no sockets, no trio) and measures
``time.process_time()`` around every call. After every read it also makes one
scheduling decision with data waiting on every open stream (``pull`` of one
frame), since the priority tree's deferred work lands there.

Classes:

* ``baseline``: PRIORITY frames that only change weights of open streams
  (no tree is built): what h2 and the core cost per frame, the floor;
* ``priority-idle``: PRIORITY churn among 1000 idle streams, exclusive one
  time in three (the CVE-2019-9513 pattern);
* ``priority-open``: random PRIORITY frames among 100 open uploads, onto each
  other (dependents included), idle and unknown streams, exclusive or not;
* ``deep-chain``: idle streams chained each under the previous, then the top
  of the chain reprioritized onto its deepest dependent, over and over;
* ``exclusive-shuffle``: a wide fan of streams moved whole by exclusive
  dependencies and moved back by the eviction of the idle stream holding it;
* ``header-blocks``: requests whose HEADERS carry exclusive dependencies
  (Chrome's chains), reset at once, within the reset budget;
* ``mixed``: all of the above, interleaved frame by frame;

and the floods of ``tests/attacks/test_floods.py`` (issue 11): Rapid Reset
(``reset-flood``), requests without ``:scheme`` (``malformed-flood``),
SETTINGS and PING floods, CONTINUATION frames of 1 byte and of 16 KiB, empty
DATA frames, requests over ``max_header_fields`` (``header-count-bomb``);
request bodies in DATA frames of 1 byte, 9, 256 and 16 KiB (``data-1B``,
``data-9B``, ``data-256B``, ``data-16K``: ``data_frame_budget`` ends the
small ones, the window bounds the others); and
for HTTP/1.1 (``H1Core``), pipelined requests, garbage pipelined behind a
request, and a request head that never ends.

The trio layer hands the core 16 KiB at a time (``_io.connection.READ_SLICE``)
with a checkpoint between: what other tasks wait for is about a quarter of
the cost per 64 KiB shown here.

Run: ``python bench/receive_cost.py [--repeat N] [--log-info] [WORD...]``
(only the classes whose names contain a WORD); prints, per class, the
worst and the median CPU per call (and per decision) over every call of
every repeat, how many reads each run took before the connection ended
(the control-frame budget ends a pure PRIORITY flood after 10,000 frames),
and the median over runs of all the CPU of a run (``all``: what one
connection costs until its GOAWAY, or until the input runs out).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from pathlib import Path

# This checkout's trio_h2 and test helpers, whatever is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from h2.settings import SettingCodes

import trio_h2
from tests.support.frames import (
    MAX_WINDOW,
    PREFACE,
    block,
    continuation,
    headers,
    literal,
    ping,
    priority,
    rst_stream,
    settings,
    window_update,
)
from tests.support.frames import data as data_frame
from tests.support.requests import H1_GET, request_block
from trio_h2 import Config
from trio_h2._core.exchange import Exchange
from trio_h2._core.h1 import H1Core
from trio_h2._core.h2 import H2Core

READ = 65536
"""Bytes per ``receive_data`` call: what the trio layer reads at once."""
OPEN = 99
"""Open uploads in the classes that need them (max_concurrent_streams is 100)."""

POST = request_block("POST", "/up")


def opened(count: int = OPEN) -> bytes:
    """``count`` uploads whose body has not arrived, on streams 1, 3, 5..."""
    return b"".join(headers(2 * i + 1, POST, end_stream=False) for i in range(count))


def baseline(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    def frames() -> Iterator[bytes]:
        for _ in range(40_000):  # weights only: the tree is never built
            yield priority(rng.randrange(1, 2 * OPEN, 2), 0, rng.randrange(1, 257))
    return opened(), frames()


def priority_idle(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    def frames() -> Iterator[bytes]:
        for i in range(40_000):
            stream_id = 1001 + 2 * (i % 1000)
            depends_on = 1001 + 2 * ((i * 7919) % 1000)
            yield priority(stream_id, 0 if depends_on == stream_id else depends_on,
                           weight=i % 256 + 1, exclusive=i % 3 == 0)
    return b"", frames()


def priority_open(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    targets = [0, *range(1, 2 * OPEN, 2), 1001, 1003, 2**31 - 1]

    def frames() -> Iterator[bytes]:
        for _ in range(40_000):
            stream_id = rng.randrange(1, 2 * OPEN, 2)
            depends_on = rng.choice(targets)
            if depends_on == stream_id:
                depends_on = 0
            yield priority(stream_id, depends_on, rng.randrange(1, 257), rng.random() < 0.5)
    return opened(), frames()


def deep_chain(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    def frames() -> Iterator[bytes]:
        chain = [2 * OPEN + 1 + 2 * i for i in range(100)]  # idle streams
        yield from (priority(s, p) for p, s in zip([1, *chain], chain, strict=False))
        for i in range(40_000):
            top, deepest = chain[0], chain[-1]
            yield priority(top, deepest, exclusive=i % 2 == 0)
            chain = [deepest, *chain[1:-1], top] if i % 2 else [deepest, top, *chain[1:-1]]
    return opened(), frames()


def exclusive_shuffle(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    def frames() -> Iterator[bytes]:
        # The open streams and 100 idle ones all hang from stream 1; then, over
        # and over, an idle stream takes the whole fan exclusively and a new
        # idle stream evicts the one holding it, so the fan moves back.
        yield from (priority(s, 1) for s in range(3, 2 * OPEN, 2))
        fresh = iter(range(10_001, 2**31 - 1, 2))
        idle = [next(fresh) for _ in range(100)]
        yield from (priority(s, 1) for s in idle)
        for _ in range(20_000):
            holder = idle.pop(0)
            yield priority(holder, 1, exclusive=True)
            new = next(fresh)
            idle.append(new)
            yield priority(new, 1)
    return opened(), frames()


def header_blocks(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    get = request_block("GET", "/")

    def frames() -> Iterator[bytes]:
        previous = 0
        for i in range(900):  # under the reset budget (1000)
            stream_id = 2 * i + 1
            block = (previous | 0x80000000).to_bytes(4, "big") + bytes([rng.randrange(256)])
            yield _priority_headers(stream_id, block + get)
            if i % 2:
                yield rst_stream(stream_id)
            else:
                previous = stream_id
    return b"", frames()


def _priority_headers(stream_id: int, fragment: bytes) -> bytes:
    frame = bytearray(headers(stream_id, fragment, end_stream=True))
    frame[4] |= 0x20  # PRIORITY flag
    return bytes(frame)


def mixed(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    makers = [priority_idle, priority_open, deep_chain, exclusive_shuffle]
    parts = [maker(random.Random(rng.random())) for maker in makers]
    setup = opened()

    def frames() -> Iterator[bytes]:
        streams = [frames for _, frames in parts]
        while streams:
            source = rng.choice(streams)
            frame = next(source, None)
            if frame is None:
                streams.remove(source)
            else:
                yield frame
    return setup, frames()


# The floods of tests/attacks/test_floods.py and test_header_bombs.py (issue 11).

SLOW = request_block("GET", "/slow")
NO_SCHEME = block([(":method", "GET"), (":path", "/"), (":authority", "localhost")])


def reset_flood(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    """Rapid Reset (CVE-2023-44487): HEADERS and RST_STREAM, stream after stream."""
    return b"", (headers(s, SLOW) + rst_stream(s) for s in range(1, 400_000, 2))


def malformed_flood(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    """CVE-2019-9514: requests without ``:scheme``, each answered with RST_STREAM."""
    return b"", (headers(s, NO_SCHEME) for s in range(1, 400_000, 2))


def settings_flood(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    """CVE-2019-9515: SETTINGS frames, each acknowledged."""
    return b"", repeat(settings([(SettingCodes.ENABLE_PUSH, 0)]), 50_000)


def ping_flood(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    """CVE-2019-9512: PINGs, each acknowledged."""
    return b"", repeat(ping(b"flooding"), 100_000)


def continuation_flood(fragment: int) -> Callable[[random.Random],
                                                   tuple[bytes, Iterator[bytes]]]:
    """A header block that never ends, in CONTINUATION frames of ``fragment``
    bytes of real fields (the 2024 CONTINUATION flood)."""
    fields = literal(b"x-pad", b"v" * 1000) * 20

    def make(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
        frames = (continuation(1, fields[:fragment]) for _ in range(100_000))
        return b"", chain([headers(1, request_block(), end_headers=False)], frames)
    return make


def empty_data(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    """CVE-2019-9518: empty DATA frames on an open upload."""
    return (headers(1, request_block("POST", "/echo"), end_stream=False),
            repeat(data_frame(1), 100_000))


def body_frames(size: int) -> Callable[[random.Random], tuple[bytes, Iterator[bytes]]]:
    """DATA frames of ``size`` bytes, in turn on 99 uploads whose application
    has not read them yet, within every window: a body's cost per frame (the
    CPU per MiB of body is this per read over the body bytes in a read:
    6,553 for 1-byte frames, 65,500 for 16 KiB ones)."""
    window = Config().initial_window_size

    def make(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
        rounds = min(100_000 // OPEN, window // size - 1)
        frames = (data_frame(2 * i + 1, b"x" * size) for _ in range(rounds) for i in range(OPEN))
        return opened(), frames
    return make


def header_count_bomb(rng: random.Random) -> tuple[bytes, Iterator[bytes]]:
    """Requests of 1,950 one-byte fields each (a dynamic table entry, indexed
    again and again), over max_header_fields: each answered 431."""
    def frames() -> Iterator[bytes]:
        for i in range(900):  # under the reset budget (1000)
            entry = literal(b"a", b"", indexed=True) if i == 0 else b""
            yield headers(2 * i + 1, request_block("GET", "/") + entry + b"\xbe" * 1950)
    return b"", frames()


CLASSES: dict[str, Callable[[random.Random], tuple[bytes, Iterator[bytes]]]] = {
    "baseline": baseline,
    "priority-idle": priority_idle,
    "priority-open": priority_open,
    "deep-chain": deep_chain,
    "exclusive-shuffle": exclusive_shuffle,
    "header-blocks": header_blocks,
    "mixed": mixed,
    "reset-flood": reset_flood,
    "malformed-flood": malformed_flood,
    "settings-flood": settings_flood,
    "ping-flood": ping_flood,
    "continuation-1B": continuation_flood(1),
    "continuation-16K": continuation_flood(16384),
    "empty-data": empty_data,
    "data-1B": body_frames(1),
    "data-9B": body_frames(9),
    "data-256B": body_frames(256),
    "data-16K": body_frames(16384),
    "header-count-bomb": header_count_bomb,
}



def h1_pipelined(rng: random.Random) -> Iterator[bytes]:
    """HTTP/1.1: requests pipelined without waiting, each answered in turn."""
    return repeat(H1_GET, 40_000)


def h1_garbage(rng: random.Random) -> Iterator[bytes]:
    """HTTP/1.1: a request, then lines of garbage pipelined behind it."""
    return chain([H1_GET], (b"%x garbage\r\n" % rng.randrange(2**32) for _ in range(40_000)))


def h1_long_head(rng: random.Random) -> Iterator[bytes]:
    """HTTP/1.1: a request head of ever more header lines that never ends."""
    return chain([b"GET / HTTP/1.1\r\n"], repeat(b"x-pad: 1\r\n", 40_000))


H1_CLASSES: dict[str, Callable[[random.Random], Iterator[bytes]]] = {
    "h1-pipelined": h1_pipelined,
    "h1-pipelined-garbage": h1_garbage,
    "h1-long-head": h1_long_head,
}


def reads(frames: Iterator[bytes]) -> Iterator[bytes]:
    """Frames packed into reads of at most :data:`READ` bytes."""
    batch = bytearray()
    for frame in frames:
        if len(batch) + len(frame) > READ:
            yield bytes(batch)
            batch.clear()
        batch += frame
    if batch:
        yield bytes(batch)


def run(make: Callable[[random.Random], tuple[bytes, Iterator[bytes]]],
        seed: int) -> tuple[list[float], list[float], int]:
    """CPU seconds of every ``receive_data`` and every decision, and the reads
    taken before the connection ended."""
    server = H2Core(Config())
    server.initiate()
    setup, frames = make(random.Random(seed))
    server.receive_data(PREFACE + settings([(0x4, MAX_WINDOW)])
                        + window_update(0, MAX_WINDOW - 65535))
    server.data_to_send()
    for stream in server.receive_data(setup):
        _give_data(server, stream)
    server.data_to_send()
    receive_costs, decide_costs = [], []
    count = 0
    for data in reads(frames):
        start = time.process_time()
        started = server.receive_data(data)
        receive_costs.append(time.process_time() - start)
        count += 1
        for stream in started:
            _give_data(server, stream)
        start = time.process_time()
        server.taken(server.pull(16384))
        decide_costs.append(time.process_time() - start)
        server.data_to_send()
        if server.terminated:
            break
    return receive_costs, decide_costs, count


def run_h1(make: Callable[[random.Random], Iterator[bytes]], seed: int) -> tuple[
        list[float], list[float], int]:
    """As :func:`run`, for HTTP/1.1: every read, and every parse of held
    (pipelined) input once an exchange is answered, is one measured call."""
    server = H1Core(Config())
    server.initiate()
    receive_costs: list[float] = []
    count = 0
    for data in reads(make(random.Random(seed))):
        count += 1
        calls = 0
        while calls == 0 or (server.reading_paused and not server.terminated):
            start = time.process_time()
            started = server.receive_buffered() if calls else server.receive_data(data)
            receive_costs.append(time.process_time() - start)
            calls += 1
            if not started:
                break
            for stream in started:  # answered at once, as the app would
                server.send_headers(stream, [(b":status", b"200")], end_stream=True)
                server.taken(server.pull(16384))
                server.handler_finished(stream)
            server.data_to_send()
        if server.terminated:
            break
    return receive_costs, [], count


def _give_data(server: H2Core, stream: Exchange) -> None:
    if not stream.closed:
        server.send_headers(stream, [(b":status", b"200")], end_stream=False)
        server.offer(stream, b"x" * (1 << 20), end_stream=False)


def main() -> None:
    global READ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("only", nargs="*", help="only the classes whose names contain one "
                        "of these words")
    parser.add_argument("--read", type=int, default=65536, metavar="BYTES",
                        help="bytes per receive_data call (default %(default)s, one socket "
                             "read; the server's reader hands the core 16384 at a time, "
                             "READ_SLICE)")
    parser.add_argument("--log-info", action="store_true",
                        help="log trio_h2 at INFO (to /dev/null), as python -m trio_h2 "
                             "--log-level info does, instead of at ERROR")
    args = parser.parse_args()
    READ = args.read
    if args.log_info:
        logging.basicConfig(stream=open(os.devnull, "w"))  # noqa: SIM115 (for the whole run)
        logging.getLogger("trio_h2").setLevel(logging.INFO)
    else:
        logging.getLogger("trio_h2").setLevel(logging.ERROR)  # one line per flood ended
    print(f"CPU per receive_data of up to {READ // 1024} KiB, and per decision after it "
          f"(ms; {args.repeat} runs each; {trio_h2.__file__})")
    print(f"{'class':<20} {'reads':>6} {'worst':>7} {'median':>7}   "
          f"{'decision worst':>14} {'median':>7} {'all':>8}")
    runs: list[tuple[str, Callable[[int], tuple[list[float], list[float], int]]]] = [
        *((name, functools.partial(run, make)) for name, make in CLASSES.items()),
        *((name, functools.partial(run_h1, make)) for name, make in H1_CLASSES.items())]
    for name, measure in runs:
        if args.only and not any(word in name for word in args.only):
            continue
        receive, decide, counts, totals = [], [], [], []
        for seed in range(args.repeat):
            r, d, n = measure(seed)
            receive += r
            decide += d
            counts.append(n)
            totals.append(sum(r))
        decisions = (f"{max(decide) * 1e3:>14.2f} {statistics.median(decide) * 1e3:>7.2f}"
                     if decide else f"{'-':>14} {'-':>7}")
        print(f"{name:<20} {max(counts):>6} {max(receive) * 1e3:>7.1f} "
              f"{statistics.median(receive) * 1e3:>7.1f}   {decisions} "
              f"{statistics.median(totals) * 1e3:>8.1f}")


if __name__ == "__main__":
    main()
