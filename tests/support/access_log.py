"""The access log's tests' app and a format of every atom, for the in-process
tests (tests/apps) and the runner's (tests/cli)."""

from __future__ import annotations

from trio_h2._core.accesslog import ATOMS

# Every atom, tab-separated, the enclosed ones by example.
EVERY_ATOM = "\t".join(f"%({name})s" for name in ATOMS if not name.startswith("{")) + (
    "\t%({X-Test}i)s\t%({content-type}o)s\t%({TRIO_H2_TEST_VAR}e)s")
NAMES = [name for name in ATOMS if not name.startswith("{")] + ["{X-Test}i", "{content-type}o",
                                                                "{TRIO_H2_TEST_VAR}e"]

APP = """
from tests.support.apps import read_body

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text")})
        await receive()
        return
    body = await read_body(receive)
    status = 404 if scope["path"].startswith("/missing") else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"0123456789" + body})
"""


def parse(line: str) -> dict[str, str]:
    values = line.split("\t")
    assert len(values) == len(NAMES), line
    return dict(zip(NAMES, values, strict=True))
