"""Request bodies in tiny DATA frames, against a server in its own process.

Every account of request body (the stream window, ``max_body_memory``)
counts bytes of body; a client that sends them one byte a frame must not
make each byte cost a hundred (a bytes object, a tuple and a deque slot
per frame held 25 MiB for 256 KiB of body). The server joins small pieces
as they arrive (``_core.exchange.add_body``), so what it holds is measured
here from outside: the resident memory of the server process, before and
after, against the bytes of body sent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from tests.support.attack_client import Attacker, Ending
from tests.support.attack_harness import LIVENESS_LIMIT
from tests.support.frames import PING, data, headers, ping
from tests.support.processes import run_server, write_module
from tests.support.requests import request_block

MiB = 1024 * 1024

# Never reads its request body: every byte the client sends stays buffered
# (within the stream's window) for as long as the test runs.
APP = """
import trio


async def app(scope, receive, send):
    print("holding", scope["path"], flush=True)
    await trio.sleep_forever()
"""

STREAMS = 16
BODY = 16 * 1024
"""Bytes of body per stream, one DATA frame each: within the stream window
(256 KiB), 262,144 frames in all (2.6 MB on the wire)."""
ALLOWANCE = 4 * MiB
"""What the server's RSS may grow by besides twice the body: the per-read
garbage of parsing 16 KiB of frames at a time, and the heap's granularity.
Measured: 0.07 MiB (the heap had room for the body); 29.3 MiB before small
pieces were joined."""


def resident(pid: int) -> int:
    """The process's resident memory (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="reads the server's RSS from /proc")
async def test_one_byte_data_frames_hold_about_their_bytes(tmp_path: Path) -> None:
    """16 uploads to an application that never reads them, each 16 KiB sent
    as 1-byte DATA frames (within every window and budget: the server takes
    them all and answers a PING after them). The server's resident memory
    grows by at most twice the body plus :data:`ALLOWANCE`, as it would for
    the same body in 16 KiB frames."""
    write_module(tmp_path, "holding", APP)
    # A data_frame_budget for all of them: memory, not CPU, is measured here.
    with run_server("holding:app", "--bind", "127.0.0.1:0", "--lifespan", "off",
                    "--log-level", "warning", "--data-frame-budget", f"{256 * STREAMS * BODY}/0",
                    cwd=tmp_path) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        attacker = await Attacker.connect(host, int(port))
        try:
            stream_ids = range(1, 2 * STREAMS, 2)
            upload = request_block("POST", "/up")
            await attacker.send(b"".join(headers(s, upload, end_stream=False)
                                         for s in stream_ids))
            for _ in stream_ids:  # every handler runs: their own memory is in `before`
                server.stdout.wait_for("holding /up", timeout=LIVENESS_LIMIT)
            before = resident(server.process.pid)
            frames = (data(s, b"x") for _ in range(BODY) for s in stream_ids)
            # A liveness bound: 262,144 frames take the server a few seconds of CPU.
            sent = await attacker.flood(frames, seconds=12 * LIVENESS_LIMIT)
            assert sent == STREAMS * BODY, f"only {sent} frames sent: {attacker.ending.describe()}"
            await attacker.send(ping())  # answered once every frame before it is processed

            def answered(ending: Ending) -> bool:
                return ending.closed or ending.counts[PING] > 0

            with trio.fail_after(12 * LIVENESS_LIMIT):
                await attacker.read_until(answered)
            growth = resident(server.process.pid) - before
            ending = attacker.ending
        finally:
            await attacker.aclose()
    assert not ending.closed and ending.goaway is None and not ending.resets, ending.describe()
    body = STREAMS * BODY
    print(f"{body} bytes of body in 1-byte DATA frames: the server's RSS grew by "
          f"{growth / MiB:.2f} MiB")
    assert growth <= 2 * body + ALLOWANCE, (
        f"{body} bytes of unread body in 1-byte DATA frames grew the server's RSS by "
        f"{growth / MiB:.1f} MiB (bound: {(2 * body + ALLOWANCE) / MiB:.1f} MiB)")
