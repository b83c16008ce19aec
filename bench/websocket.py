"""WebSocket throughput and idle memory: trio_h2 against Hypercorn's trio
worker and uvicorn (asyncio, its ``websockets-sansio`` implementation), all
serving the echo WebSocket of ``bench._apps:app`` over HTTP/1.1.

The client is the ``websockets`` library on asyncio in this process, with
compression off (the figures are the servers' framing and scheduling, not
zlib's). Each connection sends a message, waits for its echo, and repeats:

* ``echo 64 B``: messages per second, 1 connection and 100;
* ``echo 1 MiB``: MiB per second echoed (one way), 1 connection and 100
  (100 x 1 MiB in flight is 100 MiB each way: the servers' memory shows it);
* ``idle``: the server's resident memory for 1000 open, idle WebSockets,
  less its memory before they connected, per WebSocket.

Usage: ``python -m bench.websocket [--seconds S] [--idle N]``. Numbers depend
on the machine and its load; compare the servers within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from ._servers import Server, hypercorn_argv, rss, trio_h2_argv, uvicorn_argv

KiB, MiB = 1024, 1024 * 1024


def servers(directory: Path) -> list[Server]:
    uvicorn = [*uvicorn_argv(1), "--ws", "websockets-sansio"]
    return [Server("trio_h2", trio_h2_argv(None, 1), directory / "trio_h2.log"),
            Server("hypercorn-trio", hypercorn_argv(None, 1, directory),
                   directory / "hypercorn.log"),
            Server("uvicorn", uvicorn, directory / "uvicorn.log")]


async def _echo_loop(ws: ClientConnection, message: bytes, until: float) -> int:
    count = 0
    while time.monotonic() < until:
        await ws.send(message)
        reply = await ws.recv()
        assert len(reply) == len(message)
        count += 1
    return count


async def echo_rate(url: str, connections: int, size: int, seconds: float) -> float:
    """Echoes per second over ``connections`` WebSockets of ``size``-byte messages."""
    sockets = [await connect(url, compression=None, max_size=None, ping_interval=None)
               for _ in range(connections)]
    try:
        message = b"m" * size
        await asyncio.gather(*(_echo_loop(ws, message, time.monotonic() + 0.5)
                               for ws in sockets))  # warm-up
        start = time.monotonic()
        counts = await asyncio.gather(*(_echo_loop(ws, message, start + seconds)
                                        for ws in sockets))
        return sum(counts) / (time.monotonic() - start)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def idle_memory(url: str, pid: int, count: int) -> float:
    """Bytes of server memory per open, idle WebSocket."""
    await asyncio.sleep(0.5)
    before = rss(pid)
    sockets = []
    for _ in range(count):
        sockets.append(await connect(url, compression=None, ping_interval=None))
    await asyncio.sleep(1.0)
    after = rss(pid)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=1000)
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for server in servers(Path(tmp)):
            server.start()
            url = server.url.replace("http://", "ws://") + "/ws"
            try:
                row: dict[str, object] = {"server": server.name}
                # First, on the fresh server: after 100 x 1 MiB its freed heap
                # would make the difference meaningless.
                idle = asyncio.run(idle_memory(url, server.pid, options.idle))
                for connections in (1, 100):
                    row[f"64 B x{connections} (msg/s)"] = asyncio.run(
                        echo_rate(url, connections, 64, options.seconds))
                    row[f"1 MiB x{connections} (MiB/s)"] = asyncio.run(
                        echo_rate(url, connections, MiB, options.seconds))
                row[f"idle x{options.idle} (KiB each)"] = idle / KiB
                row["errors"] = "; ".join(server.errors()) or "-"
            finally:
                server.stop()
            rows.append(row)
            print(row, flush=True)
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(f"{v:,.1f}" if isinstance(v, float) else str(v)
                                for v in row.values()) + " |")


if __name__ == "__main__":
    main()
