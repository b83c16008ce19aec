"""A WSGI app through trio_h2.WSGIApp, Hypercorn's trio worker and Granian.

The app (``bench.wsgi:app``, plain PEP 3333, no framework) answers ``/`` with
12 bytes and ``/download`` with 1 MiB in 64 KiB pieces from a generator. Each
server runs it with its own WSGI support, in one process:

* trio_h2: ``python -m trio_h2 bench.wsgi:app`` (WSGI detected; 40 threads);
* Hypercorn: ``hypercorn -k asyncio bench.wsgi:app``. Hypercorn serves any
  callable that is not a coroutine function as WSGI, in threads (it reads
  the whole request body first, up to 16 MiB, and its writes do not wait
  for the client). Its trio worker (``-k trio``) cannot start a WSGI app in
  Hypercorn 0.18: its WSGI wrapper returns at once from the lifespan scope,
  and the trio worker's lifespan then sends ``lifespan.startup`` into a
  closed channel (``trio.ClosedResourceError``, the process exits). So the
  asyncio worker it is;
* Granian: ``granian --interface wsgi`` (Rust HTTP, Python app in its
  blocking threads), ``--http 2`` for the h2c loads and ``--http 1`` for wrk.

Loads: h2load over h2c (hello: 10 connections x 10 streams; download: 4
connections x 1 stream) and wrk over HTTP/1.1 (hello, 10 connections). For
each load and round, the servers run in turn, a fresh process each. Prints
the median requests per second per server and load, and the ratios
trio_h2 / each other server. Speed is reported here, never asserted in tests.

Run: ``python bench/wsgi.py`` (``--quick`` for a smoke test, ``--help``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _h2load, _wrk
from bench._loadgen import LoadResult
from bench._servers import HYPERCORN_KEEP_ALIVE_MAX_REQUESTS, Server, free_port

KiB, MiB = 1024, 1024 * 1024
HELLO = b"Hello, world"
PIECE = b"d" * (64 * KiB)
APP = "bench.wsgi:app"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/download``: 1 MiB from a generator; anything else: 12 bytes."""
    if environ["PATH_INFO"] == "/download":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(MiB))])

        def pieces() -> Iterator[bytes]:
            for _ in range(MiB // len(PIECE)):
                yield PIECE
        return pieces()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def argv_for(name: str, http: str, directory: Path) -> list[str]:
    """The command line that serves ``APP`` with server ``name``; ``http`` is
    ``"2"`` for the h2c loads, ``"1"`` for wrk (only Granian needs to know)."""
    if name == "trio_h2":
        return [sys.executable, "-m", "trio_h2", APP, "--bind", "127.0.0.1:0",
                "--log-level", "warning"]
    if name == "Hypercorn":
        config = directory / "hypercorn.toml"
        config.write_text(f"workers = 0\n"
                          f"keep_alive_max_requests = {HYPERCORN_KEEP_ALIVE_MAX_REQUESTS}\n")
        return [sys.executable, "-m", "hypercorn", "--config", str(config), "-k", "asyncio",
                "--bind", "127.0.0.1:0", "--log-level", "info", APP]
    if name == "Granian":
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--http", http,
                "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1",
                # As many threads for the app as trio_h2's WSGIApp has.
                "--blocking-threads", "40",
                "--log-level", "info", "--no-ws", APP]
    raise ValueError(name)


def _wait_ready(server: Server, timeout: float = 20.0) -> None:
    """Granian prints its URL before its worker process serves: wait for it."""
    if server.name != "Granian":
        return
    deadline = time.monotonic() + timeout
    while "Started worker" not in server.log_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Granian's worker did not start:\n{server.log_text()}")
        time.sleep(0.05)


LOADS: dict[str, tuple[str, str, Callable[[str, float, float], LoadResult]]] = {
    "h2c hello (h2load -c 10 -m 10)": ("2", "/", lambda url, d, w: _h2load.run(
        _h2load.command(url, clients=10, streams=10, duration=d, warm_up=w), timeout=d + w + 60)),
    "h2c 1 MiB download (h2load -c 4 -m 1)": ("2", "/download", lambda url, d, w: _h2load.run(
        _h2load.command(url, clients=4, streams=1, duration=d, warm_up=w), timeout=d + w + 60)),
    "HTTP/1.1 hello (wrk -c 10)": ("1", "/", lambda url, d, w: _wrk.run(
        url, clients=10, duration=d, warm_up=w, timeout=d + w + 60)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warm-up", type=float, default=2.0, help="seconds before each")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians reported)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, for a smoke test")
    parser.add_argument("--servers", default="trio_h2,Hypercorn,Granian")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warm_up, args.repeat = 2.0, 0.5, 1
    servers = args.servers.split(",")
    results: dict[str, dict[str, list[float]]] = {load: {s: [] for s in servers}
                                                  for load in LOADS}
    with tempfile.TemporaryDirectory(prefix="trio_h2-bench-wsgi-") as tmp:
        directory = Path(tmp)
        for load, (http, path, drive) in LOADS.items():
            for _ in range(args.repeat):
                for name in servers:
                    server = Server(name, argv_for(name, http, directory),
                                    directory / f"{name}.log")
                    server.start()
                    _wait_ready(server)
                    try:
                        result = drive(server.url + path, args.duration, args.warm_up)
                    finally:
                        server.stop()
                    if result.problems:
                        print(f"  {name}, {load}: {'; '.join(result.problems)}")
                    print(f"  {name:9} {load}: {result.requests_per_second:10.1f} req/s"
                          f"   ({' '.join(result.command)})", flush=True)
                    results[load][name].append(result.requests_per_second)
                    for line in server.errors():
                        print(f"    {name} logged: {line}")
    print(f"\nMedians of {args.repeat} round(s) of {args.duration:g} s:")
    for load, by_server in results.items():
        medians = {name: statistics.median(values) for name, values in by_server.items()}
        ratios = ", ".join(f"trio_h2/{name} {medians['trio_h2'] / value:.2f}"
                           for name, value in medians.items()
                           if name != "trio_h2" and value and "trio_h2" in medians)
        cells = "  ".join(f"{name} {value:9.1f}" for name, value in medians.items())
        print(f"{load:40} {cells}   {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
