"""What one read may cost (issue 11): h2 gets the client's bytes a few
frames at a time (``_core.guard.FrameSlicer``), and nothing more once a budget or
an error has ended the connection. Sans-IO: bytes in, counts out (the CPU
each read costs is measured by ``bench/receive_cost.py``, not here)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.support.frames import PREFACE, block, data, headers, ping, settings
from tests.support.requests import request_block
from trio_h2 import Budget, Config
from trio_h2._core.guard import SLICE_FRAMES, FrameSlicer
from trio_h2._core.h2 import H2Core

NO_SCHEME = block([(":method", "GET"), (":path", "/"), (":authority", "localhost")])

FRAMES = st.lists(st.one_of(
    st.builds(ping), st.builds(lambda n: data(1, b"x" * n), st.integers(0, 40_000)),
    st.builds(lambda s: headers(s, request_block()), st.integers(1, 999).map(lambda i: 2 * i + 1)),
), max_size=120)


@given(FRAMES, st.lists(st.integers(1, 70_000), max_size=20))
def test_slices_are_whole_frames_and_keep_every_byte(frames: list[bytes],
                                                     reads: list[int]) -> None:
    """Whatever the reads (any cut, a frame header cut in two included),
    the slices put back together are the input, each ends where a frame
    ends (or where the read ends) and holds at most SLICE_FRAMES frames."""
    wire = PREFACE + b"".join(frames)
    boundaries = {len(PREFACE)}
    position = len(PREFACE)
    for frame in frames:
        position += len(frame)
        boundaries.add(position)
    slicer, out, offset = FrameSlicer(), [], 0
    cuts = sorted({min(sum(reads[:i + 1]), len(wire)) for i in range(len(reads))} | {len(wire)})
    start = 0
    for cut in cuts:
        for piece in slicer.slices(wire[start:cut]):
            offset += len(piece)
            out.append(bytes(piece))
            assert offset in boundaries or offset == cut
            first = offset - len(piece)
            assert sum(1 for b in boundaries if first < b <= offset) <= SLICE_FRAMES
        start = cut
    assert b"".join(out) == wire


def test_nothing_is_parsed_after_a_budget_ends_the_connection() -> None:
    """3,000 malformed requests in one read, with a reset budget of 10: the
    core stops within one slice of the request that ran the budget out,
    instead of having h2 open (and us refuse) all 3,000 first."""
    server = H2Core(Config(reset_budget=Budget(10, 0)))
    server.initiate()
    server.receive_data(PREFACE + settings())
    flood = b"".join(headers(s, NO_SCHEME) for s in range(1, 6001, 2))
    assert len(flood) <= 65536
    assert server.receive_data(flood) == []
    assert server.terminated and server.error is not None
    opened = (server.h2.highest_inbound_stream_id + 1) // 2
    assert 11 <= opened <= 11 + SLICE_FRAMES
