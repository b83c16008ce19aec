"""Backpressure figures for trio_h2, measured with a raw h2 client.

Starts ``python -m trio_h2 bench.backpressure:app`` as a separate process,
then measures, over real sockets:

1. bytes that get past the app's ``send`` while the client's 64 KiB window
   stays closed, during a 1 GiB download, and the server's RSS growth;
2. bytes the server accepts for an upload whose app never reads, its RSS
   growth, and how long a 100 KB POST and a GET on the same connection take;
3. how long the app takes to see ``http.disconnect`` after the client's socket
   closes mid-request.

Run: ``nox -s bench -- backpressure`` or ``python bench/backpressure.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio

KiB, MiB = 1024, 1024 * 1024
CHUNK = 256 * KiB

# --------------------------------------------------------------- the server app

_stats: dict[str, float] = {"passed": 0, "disconnect_at": 0.0}
GIB_CHUNKS = 1024 * MiB // CHUNK


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/download`` streams 1 GiB, counting what gets past send; ``/ignore``
    never reads; ``/echo`` echoes; ``/wait`` records when it sees a
    disconnect; ``/stats`` reports."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/download":
        _stats["passed"] = 0
        await send({"type": "http.response.start", "status": 200, "headers": []})
        block = b"d" * CHUNK
        for _ in range(GIB_CHUNKS):
            await send({"type": "http.response.body", "body": block, "more_body": True})
            _stats["passed"] += CHUNK
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/ignore":
        await trio.sleep_forever()
    if path == "/wait":
        while (await receive())["type"] != "http.disconnect":
            pass
        _stats["disconnect_at"] = time.monotonic()
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/stats":
        body = json.dumps(_stats).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body or b"ok"})


# ------------------------------------------------------------------ the client


class RawClient:
    """A minimal h2 client over a trio socket that reads frames itself."""

    def __init__(self, stream: trio.SocketStream, window: int = 65535) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.initiate_connection()
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()

    @classmethod
    async def connect(cls, port: int, window: int = 65535) -> RawClient:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port), window)
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    def start(self, method: str, path: str, end: bool) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, [
            (b":method", method.encode()), (b":scheme", b"http"), (b":path", path.encode()),
            (b":authority", b"bench")], end_stream=end)
        self.bodies[stream_id] = bytearray()
        return stream_id

    async def pump(self, ack: bool = True) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] += event.data
                if ack:
                    self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                        event.stream_id)
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                self.ended.add(event.stream_id)
        await self.flush()

    async def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        stream_id = self.start(method, path, end=not body)
        sent = 0
        while sent < len(body):
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                await self.flush()
                await self.pump()
                continue
            piece = body[sent:sent + window]
            sent += len(piece)
            self.conn.send_data(stream_id, piece, end_stream=sent == len(body))
        await self.flush()
        while stream_id not in self.ended:
            await self.pump()
        return bytes(self.bodies[stream_id])


# ------------------------------------------------------------------ measurements


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    raise RuntimeError("no VmRSS")


async def stats(port: int) -> dict[str, float]:
    client = await RawClient.connect(port)
    result: dict[str, float] = json.loads(await client.request("GET", "/stats"))
    await client.stream.aclose()
    return result


async def settle(client: RawClient, seconds: float = 0.5) -> None:
    """Read (without acknowledging) until the server has been quiet a while."""
    while True:
        with trio.move_on_after(seconds) as quiet:
            await client.pump(ack=False)
        if quiet.cancelled_caught:
            return


async def closed_window_download(port: int, pid: int) -> dict[str, float]:
    before = rss(pid)
    client = await RawClient.connect(port, window=64 * KiB)
    stream_id = client.start("GET", "/download", end=True)
    await client.flush()
    await settle(client)
    passed = (await stats(port))["passed"]
    received = len(client.bodies[stream_id])
    grown = rss(pid) - before
    # Open the window: the download resumes where it stopped.
    client.conn.increment_flow_control_window(4 * MiB)
    client.conn.increment_flow_control_window(4 * MiB, stream_id)
    await client.flush()
    with trio.fail_after(10):
        while len(client.bodies[stream_id]) < received + 4 * MiB:
            await client.pump(ack=False)
    resumed = bytes(client.bodies[stream_id]) == b"d" * len(client.bodies[stream_id])
    await client.stream.aclose()
    return {"bytes received with the window closed": received,
            "bytes past send() with the window closed": passed,
            "RSS growth (MiB)": grown / MiB, "resumed intact": float(resumed)}


async def unread_upload(port: int, pid: int) -> dict[str, float]:
    before = rss(pid)
    client = await RawClient.connect(port)
    await client.flush()
    with trio.move_on_after(0.5):
        await client.pump()  # the server's SETTINGS and connection window
    stream_id = client.start("POST", "/ignore", end=False)
    accepted = 0
    block = b"u" * 16384
    while True:
        window = min(client.conn.local_flow_control_window(stream_id), len(block))
        if window > 0:
            client.conn.send_data(stream_id, block[:window])
            accepted += window
            await client.flush()
            continue
        with trio.move_on_after(0.5) as quiet:
            await client.pump()
        if quiet.cancelled_caught:
            break
    grown = rss(pid) - before
    start = time.perf_counter()
    echoed = await client.request("POST", "/echo", b"e" * 100_000)
    got = await client.request("GET", "/")
    others = time.perf_counter() - start
    assert echoed == b"e" * 100_000 and got == b"ok"
    await client.stream.aclose()
    return {"bytes accepted for an unread upload": accepted, "RSS growth (MiB)": grown / MiB,
            "100 KB POST + GET on the same connection (ms)": others * 1000}


async def disconnect(port: int) -> dict[str, float]:
    client = await RawClient.connect(port)
    client.start("POST", "/wait", end=False)
    await client.flush()
    await trio.sleep(0.2)
    closed_at = time.monotonic()
    await client.stream.aclose()
    with trio.fail_after(5):
        # The app is in another process: poll its figures.
        while (await stats(port))["disconnect_at"] < closed_at:  # noqa: ASYNC110
            await trio.sleep(0.01)
    noticed = (await stats(port))["disconnect_at"] - closed_at
    return {"time to http.disconnect after the socket closed (ms)": noticed * 1000}


async def measure(port: int, pid: int) -> dict[str, dict[str, float]]:
    return {
        "closed-window download (1 GiB, 256 KiB chunks)": await closed_window_download(port, pid),
        "unread upload (default 256 KiB stream window)": await unread_upload(port, pid),
        "disconnect": await disconnect(port),
    }


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "trio_h2", "bench.backpressure:app", "--bind", "127.0.0.1:0",
         "--log-level", "warning"], cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, f"unexpected first line from the server: {line!r}"
        results = trio.run(measure, int(found.group(1)), server.pid)
    finally:
        server.terminate()
        server.wait(10)
    for scenario, figures in results.items():
        print(f"\n{scenario}")
        for name, value in figures.items():
            print(f"  {name:55} {value:>12,.1f}")


if __name__ == "__main__":
    main()
