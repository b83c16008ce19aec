"""A plain PEP 3333 app (``wsgi_app``) and ``Arrivals``, which apps in worker
threads tell that they reached a point."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

import trio

Environ = dict[str, Any]
KiB = 1024


def _json(start_response: Any, value: object) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _count(environ: Environ) -> int:
    return int(parse_qs(environ["QUERY_STRING"]).get("n", ["10"])[0])


def wsgi_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """A plain PEP 3333 app. ``/environ`` describes the environ, ``/upload``
    reads ``wsgi.input`` in 64 KiB reads, ``/lines`` with every other method,
    ``/gen?n=K`` is a generator, ``/write?n=K`` uses ``write()``, ``/file``
    ``wsgi.file_wrapper``; ``/boom`` raises at once, ``/boom-late`` after
    the first piece; ``/exc-info`` and ``/exc-info-late`` call
    ``start_response`` with ``exc_info``; ``/hop`` sends a hop-by-hop header;
    ``/too-long`` and ``/too-short`` miss their Content-Length; ``/errors``
    writes to ``wsgi.errors``."""
    path = environ["PATH_INFO"]
    if path.endswith("/environ"):
        # Read the body first, as an app handling a POST does: one that
        # answers before it arrives gets its stream reset with NO_ERROR
        # (RFC 9113 section 8.1), which curl 7.88 reports as error 92.
        environ["wsgi.input"].read()
        described = {key: value for key, value in environ.items()
                     if isinstance(value, str | bool | int | tuple)}
        return _json(start_response, described)
    if path == "/upload":
        stream, digest, size = environ["wsgi.input"], hashlib.sha256(), 0
        while data := stream.read(64 * KiB):
            digest.update(data)
            size += len(data)
        return _json(start_response, {"size": size, "sha256": digest.hexdigest()})
    if path == "/lines":
        stream = environ["wsgi.input"]
        first = stream.readline(5)  # a piece of the first line
        rest_of_first = stream.readline()
        hinted = stream.readlines(1)  # at least one line
        iterated = [next(stream), next(stream)]
        remaining = stream.read()
        return _json(start_response, {
            "first": [first.decode(), rest_of_first.decode()],
            "hinted": [line.decode() for line in hinted],
            "iterated": [line.decode() for line in iterated],
            "remaining": remaining.decode(), "after_end": stream.read(10).decode()})
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"chunk {i}\n".encode() for i in range(_count(environ)))
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(_count(environ)):
            write(f"written {i}\n".encode())
        return [b"", b"returned\n"]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(bytes(range(256)) * 1000), 1000)
    if path == "/boom":
        raise RuntimeError("boom before the response")
    if path == "/boom-late":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def late() -> Iterator[bytes]:
            yield b"first piece\n"
            raise RuntimeError("boom after the response started")
        return late()
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("caught by the app")
        except ValueError:
            start_response("503 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"sorry\n"]
    if path == "/exc-info-late":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def after_headers() -> Iterator[bytes]:
            yield b"partial\n"
            try:
                raise ValueError("too late to change the status")
            except ValueError:
                start_response("500 Oops", [], sys.exc_info())  # re-raises
            yield b"never sent\n"
        return after_headers()
    if path == "/hop":
        start_response("200 OK", [("Connection", "close")])
        return [b"never sent\n"]
    if path == "/too-long":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"01234", b"56789"]
    if path == "/too-short":
        start_response("200 OK", [("Content-Length", "100")])
        return iter([b"short\n"])
    if path == "/errors":
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["line\n", "unterminated"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"logged\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


class Arrivals:
    """Apps that reached a point, told from their worker threads (which
    trio started, so ``trio.from_thread`` finds the event loop)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._waiters: list[tuple[int, trio.Event]] = []

    def arrive(self, name: str = "") -> None:
        """Called in a worker thread."""
        trio.from_thread.run_sync(self._arrive, name)

    def _arrive(self, name: str) -> None:
        self.names.append(name)
        for count, event in self._waiters:
            if len(self.names) >= count:
                event.set()

    async def wait_for(self, count: int) -> None:
        event = trio.Event()
        self._waiters.append((count, event))
        if len(self.names) >= count:
            event.set()
        await event.wait()
