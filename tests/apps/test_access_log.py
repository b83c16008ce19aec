"""The access log of in-process servers (the ``h2_server`` fixture) spoken to
over sockets by the trio client and the WebSocket client: the
``trio_h2.access`` logger's records, collected."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import trio

import trio_h2._apps.asgi
from tests.support.access_log import APP, EVERY_ATOM, parse
from tests.support.processes import TIMEOUT
from trio_h2._core.accesslog import NO_RESPONSE
from trio_h2.testing import H2ClientFactory, H2ServerFactory, StreamReset, open_websocket


class Lines(list[str]):
    """The access log's lines, formatted as a handler writes them; the
    handler runs in the trio thread, so ``grew`` can be set from it."""

    def __init__(self) -> None:
        super().__init__()
        self.grew = trio.Event()


class _Collect(logging.Handler):
    def __init__(self, lines: Lines) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.lines.grew.set()


@pytest.fixture
def access_lines() -> Iterator[Lines]:
    lines = Lines()
    logger = logging.getLogger("trio_h2.access")
    handler = _Collect(lines)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def wait_for_lines(lines: Lines, count: int) -> Lines:
    with trio.fail_after(TIMEOUT):
        while len(lines) < count:
            lines.grew = trio.Event()
            await lines.grew.wait()
    return lines


def load_app() -> Any:
    namespace: dict[str, Any] = {}
    exec(APP, namespace)
    return namespace["app"]


async def test_h2_request_every_atom(h2_server: H2ServerFactory, h2_client: H2ClientFactory,
                                     access_lines: Lines,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_H2_TEST_VAR", "v\n1")
    server = await h2_server(load_app(), access_log_format=EVERY_ATOM)
    client = await h2_client(server)
    response = await client.request(
        "POST", "/p%20q/r?x=1&y=%22", body=b"abc",
        headers=[("x-test", "one"), ("x-test", "two"), ("referer", "http://r/"),
                 ("user-agent", "agent/1"), ("authorization", "Basic dXNlcjpwYXNz")])
    assert response.status == 200
    (line,) = await wait_for_lines(access_lines, 1)
    atoms = parse(line)
    assert atoms["h"] == "127.0.0.1" and atoms["peer"] == "127.0.0.1"
    assert atoms["l"] == "-" and atoms["u"] == "user"
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", atoms["t"])
    assert atoms["r"] == atoms["R"] == "POST /p%20q/r?x=1&y=%22 HTTP/2"
    assert atoms["m"] == "POST" and atoms["U"] == "/p q/r" and atoms["q"] == "x=1&y=%22"
    assert atoms["Uq"] == "/p%20q/r?x=1&y=%22"
    assert atoms["H"] == "HTTP/2" and atoms["S"] == "http"
    assert (atoms["s"], atoms["st"]) == ("200", "OK")
    assert atoms["B"] == atoms["b"] == "13" and atoms["received"] == "3"
    assert atoms["f"] == "http://r/" and atoms["a"] == "agent/1"
    duration = float(atoms["L"])
    assert int(atoms["T"]) == int(duration)
    assert int(atoms["M"]) == int(duration * 1000)
    assert abs(int(atoms["D"]) - duration * 1_000_000) <= 1
    assert atoms["p"] == f"<{os.getpid()}>"
    assert atoms["stream"] == str(response.stream_id) == "1"
    assert atoms["outcome"] == "ok"
    assert atoms["{X-Test}i"] == "one, two"
    assert atoms["{content-type}o"] == "text/plain"
    assert atoms["{TRIO_H2_TEST_VAR}e"] == "v\\x0A1"


async def test_reset_and_failed_exchanges(h2_server: H2ServerFactory,
                                          h2_client: H2ClientFactory,
                                          access_lines: Lines) -> None:
    started = trio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fail":
            raise RuntimeError("boom")
        if scope["path"] == "/half":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"half", "more_body": True})
            raise RuntimeError("boom after the head")
        started.set()
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"

    server = await h2_server(app, access_log_format="%(r)s %(s)s %(B)s %(outcome)s")
    client = await h2_client(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.get, "/wait")
        await started.wait()
        nursery.cancel_scope.cancel()  # the client resets the stream (CANCEL)
    assert (await client.get("/fail")).status == 500
    with pytest.raises(StreamReset):
        await client.get("/half")
    await wait_for_lines(access_lines, 3)
    assert sorted(access_lines) == sorted([
        f"GET /wait HTTP/2 {NO_RESPONSE} 0 reset",
        "GET /fail HTTP/2 500 22 error",
        "GET /half HTTP/2 200 4 error",
    ])


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
async def test_websocket_one_line_when_it_ends(h2_server: H2ServerFactory,
                                               access_lines: Lines, http2: bool) -> None:
    server = await h2_server(
        load_app(), access_log_format="%(r)s %(s)s %(S)s %(B)s %(received)s %(outcome)s")
    async with open_websocket(server.url + "/ws", http2=http2) as ws:
        await ws.send("hello")
        assert await ws.receive() == "hello"
        assert access_lines == []  # not before it ends
        await ws.close()
    (line,) = await wait_for_lines(access_lines, 1)
    # Frames: "hello" is 7 bytes from the server, 11 masked from the client;
    # the close frames, 4 and 8.
    expected = "CONNECT /ws HTTP/2 200" if http2 else "GET /ws HTTP/1.1 101"
    assert line == f"{expected} ws 11 19 ok"


async def test_off_builds_nothing(h2_server: H2ServerFactory, h2_client: H2ClientFactory,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger("trio_h2.access")
    monkeypatch.setattr(logger, "level", logging.WARNING)
    logger.manager._clear_cache()  # (isEnabledFor caches its answers)

    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("atoms built with the access log off")

    monkeypatch.setattr(trio_h2._apps.asgi, "AccessAtoms", built)
    server = await h2_server(load_app())
    client = await h2_client(server)
    assert (await client.get("/")).status == 200
    assert (await client.get("/missing")).status == 404
