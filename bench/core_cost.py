"""The sans-IO core's cost per small request, without sockets or trio.

Replays h2load-like GET requests (the request bytes are made beforehand by an
h2 client) through one ``H2Core``, answering each as the ASGI layer
would: response headers, a 12-byte body, the sender's pull, the handler's
exit, the bytes out. Prints microseconds per request: what h2, HPACK and
trio_h2's core cost, with the system calls and task switches of
``bench/cpu_cost.py`` left out.

Run: ``python bench/core_cost.py [--requests N]``; with
``PYTHONPATH=/tmp/base`` it measures another checkout (say, a git worktree
of the previous commit).
"""

from __future__ import annotations

import argparse
import statistics
import time

import h2.config
import h2.connection

import trio_h2
from trio_h2 import Config
from trio_h2._core.h2 import H2Core
from trio_h2._core.headers import response_headers

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
           (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"h2load nghttp2/1.52.0")]
RESPONSE = [(b"content-type", b"text/plain"), (b"content-length", b"12"),
            (b"date", b"Sat, 21 Nov 2026 00:00:00 GMT")]


def replay(requests: int) -> float:
    """Microseconds per request, over ``requests`` after a warm-up of as many."""
    server = H2Core(Config())
    server.initiate()
    client = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None))
    client.initiate_connection()
    client.increment_flow_control_window(2**30)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    server.data_to_send()
    wire = []
    for _ in range(2 * requests):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, REQUEST, end_stream=True)
        wire.append(client.data_to_send())
        del client.streams[stream_id]  # the client never reads: keep it cheap

    def serve(data: bytes) -> None:
        (stream,) = server.receive_data(data)
        server.send_headers(stream, response_headers(200, RESPONSE), end_stream=False)
        server.offer(stream, b"Hello, world", end_stream=True)
        server.taken(server.pull(128 * 1024))
        server.handler_finished(stream)
        server.data_to_send()

    for data in wire[:requests]:
        serve(data)
    start = time.perf_counter()
    for data in wire[requests:]:
        serve(data)
    return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    costs = [replay(args.requests) for _ in range(args.repeat)]
    print(f"sans-IO cost of a small GET: {statistics.median(costs):.1f} us "
          f"(median of {args.repeat} replays of {args.requests:,} requests; "
          f"{min(costs):.1f} to {max(costs):.1f}) with {trio_h2.__file__}")


if __name__ == "__main__":
    main()
