"""Serving a 64 MiB file: ``http.response.pathsend`` against ``os.sendfile``.

trio_h2 reads a file in pieces (``_apps.asgi.FILE_PIECE``) in a worker
thread and offers each piece to the sender like any body, so priority and
flow control hold. ``os.sendfile`` would skip the copy through Python. This
script measures what that could save, at best: the server's CPU seconds per
MiB (``/proc/PID/stat`` utime + stime, threads included) and curl's
download rate, for

* ``trio_h2 h2c`` and ``trio_h2 http/1.1``: pathsend, with 16, 64, 128 and 256
  KiB pieces (``FILE_PIECE`` set in the server process);
* ``sendfile http/1.1``: a bare trio server that answers one request with
  ``os.sendfile`` of the whole file, in the kernel's own pieces: the floor
  for HTTP/1.1 without TLS;
* ``sendfile h2c-frames``: the same, one ``sendfile`` per 16 KiB DATA
  payload with its 9-byte frame header written before it: the floor for h2c
  (a DATA frame carries at most SETTINGS_MAX_FRAME_SIZE, 16 KiB from most
  clients), with no HTTP/2 state at all.

Run: ``python bench/pathsend.py [--runs N]``; prints a table (medians of N runs).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._servers import cpu_seconds, free_port  # noqa: E402  (needs ROOT on sys.path)

SIZE = 64 * 1024 * 1024

TRIO_H2_SERVER = """
import sys, trio, trio_h2, trio_h2._apps.asgi as asgi
asgi.FILE_PIECE = int(sys.argv[2])
path = sys.argv[3]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.pathsend", "path": path})
trio.run(lambda: trio_h2.serve(app, host="127.0.0.1", port=int(sys.argv[1])))
"""

SENDFILE_SERVER = """
import os, socket, struct, sys, trio
port, frames, path = int(sys.argv[1]), sys.argv[2] == "frames", sys.argv[3]
async def handle(stream):
    sock = stream.socket
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        data += await stream.receive_some(65536)
    size = os.path.getsize(path)
    length = size + (9 * -(-size // 16384) if frames else 0)  # and the frame headers
    await stream.send_all(b"HTTP/1.1 200 OK\\r\\ncontent-length: %d\\r\\n"
                          b"connection: close\\r\\n\\r\\n" % length)
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            n = min(16384, size - offset) if frames else size - offset
            if frames:
                await stream.send_all(struct.pack("!I", n)[1:] + struct.pack("!BBI", 0, 0, 1))
            while n:
                await trio.lowlevel.wait_writable(sock)
                try:
                    sent = os.sendfile(sock.fileno(), f.fileno(), offset, n)
                except BlockingIOError:
                    continue
                offset += sent
                n -= sent
    await stream.aclose()
trio.run(lambda: trio.serve_tcp(handle, int(sys.argv[1]), host="127.0.0.1"))
"""


def measure(code: str, arg: str, path: Path, curl_version: str, runs: int) -> tuple[float, float]:
    """Median (server CPU ms per MiB, MiB/s) over ``runs`` downloads."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", code, str(port), arg, str(path)], env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        cpu, rate = [], []
        for _ in range(runs):
            before = cpu_seconds(server.pid)
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}",
                                  curl_version, f"http://127.0.0.1:{port}/"],
                                 capture_output=True, check=True, text=True).stdout
            cpu.append((cpu_seconds(server.pid) - before) * 1000 / (SIZE / 2**20))
            rate.append(float(out) / 2**20)
        return statistics.median(cpu), statistics.median(rate)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "file.bin"
        with path.open("wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(SIZE >> 20):
                f.write(block)
        rows = []
        for piece in (16, 64, 128, 256):
            for name, version in (("h2c", "--http2-prior-knowledge"), ("http/1.1", "--http1.1")):
                rows.append((f"trio_h2 {name}, {piece} KiB pieces",
                             *measure(TRIO_H2_SERVER, str(piece * 1024), path, version, runs)))
        rows.append(("sendfile http/1.1 (floor)",
                     *measure(SENDFILE_SERVER, "whole", path, "--http1.1", runs)))
        # (curl reads these bytes as an HTTP/1.1 body: what matters is the
        # server's work, two syscalls per 16 KiB as h2c would need.)
        rows.append(("sendfile per 16 KiB frame (h2c floor)",
                     *measure(SENDFILE_SERVER, "frames", path, "--http1.1", runs)))
        print(f"{'64 MiB file, curl, loopback':40} {'CPU ms/MiB':>11} {'MiB/s':>8}")
        for label, cpu, rate in rows:
            print(f"{label:40} {cpu:11.2f} {rate:8.0f}")


if __name__ == "__main__":
    main()
