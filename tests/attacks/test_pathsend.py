"""``http.response.pathsend`` of a path that is not a regular file: the
worker thread that opens it must not block, as nothing can cancel it there
(a connection's cancellation, and the server's shutdown, wait for it)."""

from __future__ import annotations

import logging
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from tests.support.attack_harness import LIVENESS_LIMIT
from tests.support.rawh2 import H2Client
from trio_h2.testing import H2ServerFactory


def request(path: str) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "t")]


def pathsend_app(path: Path) -> Any:
    """``/file``: ``path`` by pathsend; anything else: ``ok``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/file":
            await send({"type": "http.response.pathsend", "path": str(path)})
        else:
            await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_pathsend_of_a_fifo_is_a_500_at_once(
        h2_server: H2ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Opening a FIFO for reading waits for a writer: the worker thread
    blocked for good, the stream was never answered, and the server could
    not stop (its cancellation waits for the thread). A static-file app that
    serves a directory others can write to meets one. Opened without
    blocking, it is refused as not a regular file."""
    caplog.set_level(logging.ERROR, logger="trio_h2")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    try:
        server = await h2_server(pathsend_app(fifo))
        client = await H2Client.connect(server.host, server.port)
        client.timeout = LIVENESS_LIMIT
        await client.send_headers(1, request("/file"), end_stream=True)
        assert (await client.read_response(1)).status == 500
        raised = [r.getMessage() for r in caplog.records if "application raised" in r.getMessage()]
        assert raised and raised[0].endswith("LocalProtocolError"), raised
        await client.send_headers(3, request("/"), end_stream=True)
        assert (await client.read_response(3)).body == b"ok"
        await client.aclose()
    finally:
        # A thread still blocked in open() is released by a writer (none
        # waiting: ENXIO, nothing blocked).
        with suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
