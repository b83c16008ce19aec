"""Starlette and FastAPI apps (anyio on trio) served over HTTP/2, unchanged;
their WebSocket routes over HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
import trio
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from tests.support.tools import curl_args, run
from trio_h2.testing import H2ServerFactory, WebSocketClosed, WebSocketRejected, open_websocket


def starlette_app(events: list[str]) -> Starlette:
    async def home(request: Request) -> Response:
        return PlainTextResponse(f"hello {request.scope['http_version']} "
                                 f"{request.app.state.greeting}")

    async def upload(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"size": len(body), "type": request.headers["content-type"]})

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(50):
                await anyio.lowlevel.checkpoint()
                yield f"part {i}\n".encode()
        return StreamingResponse(chunks(), media_type="text/plain")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        app.state.greeting = "from lifespan"
        yield
        events.append("shutdown")

    return Starlette(routes=[Route("/", home), Route("/upload", upload, methods=["POST"]),
                             Route("/stream", stream)], lifespan=lifespan)


async def test_starlette(h2_server: H2ServerFactory, tmp_path: Path) -> None:
    events: list[str] = []
    server = await h2_server(starlette_app(events))
    assert events == ["startup"]
    curl = curl_args(server, tmp_path)
    assert await run(*curl, server.url + "/") == "hello 2 from lifespan"
    payload = tmp_path / "form.bin"
    payload.write_bytes(b"z" * 300_000)
    out = await run(*curl, "-H", "content-type: application/x-thing", "--data-binary",
                    f"@{payload}", server.url + "/upload")
    assert json.loads(out) == {"size": 300_000, "type": "application/x-thing"}
    assert await run(*curl, server.url + "/stream") == "".join(f"part {i}\n" for i in range(50))
    out = await run(*curl, "-o", "/dev/null", "-w", "%{http_code}", server.url + "/missing")
    assert out == "404"


class Item(BaseModel):
    name: str
    price: float


def fastapi_app() -> FastAPI:
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def get_item(item_id: int, q: str | None = None) -> dict[str, object]:
        return {"item_id": item_id, "q": q}

    @api.post("/items")
    async def create(item: Item) -> Item:
        return item

    return api


async def test_fastapi(h2_server: H2ServerFactory, tmp_path: Path) -> None:
    server = await h2_server(fastapi_app(), tls=True)
    curl = curl_args(server, tmp_path)
    assert json.loads(await run(*curl, server.url + "/items/7?q=x")) == {"item_id": 7, "q": "x"}
    out = await run(*curl, "-H", "content-type: application/json", "-d",
                    '{"name": "pen", "price": 1.5}', server.url + "/items")
    assert json.loads(out) == {"name": "pen", "price": 1.5}
    out = await run(*curl, "-o", "/dev/null", "-w", "%{http_code}", server.url + "/items/nope")
    assert out == "422"


def starlette_ws_app(disconnects: list[int], gone: trio.Event) -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="chat")
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{websocket.scope['http_version']}: {text}")
        except WebSocketDisconnect as exc:
            disconnects.append(exc.code)
            gone.set()

    async def private(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    return Starlette(routes=[WebSocketRoute("/ws", echo), WebSocketRoute("/private", private)])


def fastapi_ws_app() -> FastAPI:
    api = FastAPI()

    @api.websocket("/ws/{room}")
    async def room(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"room": room, **data})
        await websocket.close(code=4000)

    return api


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
async def test_starlette_and_fastapi_websocket_routes(h2_server: H2ServerFactory,
                                                      http2: bool) -> None:
    disconnects: list[int] = []
    gone = trio.Event()
    server = await h2_server(starlette_ws_app(disconnects, gone), tls=True)
    base = f"wss://localhost:{server.port}"
    async with open_websocket(base + "/ws", http2=http2, subprotocols=["chat"],
                              ssl_context=server.client_ssl_context()) as ws:
        assert ws.subprotocol == "chat"
        await ws.send("hi")
        assert await ws.receive() == f"{'2' if http2 else '1.1'}: hi"
        assert await ws.close(1001) == 1001
    with pytest.raises(WebSocketRejected) as rejected:  # closed before accepting
        async with open_websocket(base + "/private", http2=http2,
                                  ssl_context=server.client_ssl_context()):
            pass
    assert rejected.value.status == 403
    with trio.fail_after(10):
        await gone.wait()
    assert disconnects == [1001]

    server = await h2_server(fastapi_ws_app())
    async with open_websocket(f"ws://{server.host}:{server.port}/ws/blue",
                              http2=http2) as ws:
        await ws.send(json.dumps({"who": "me"}))
        assert json.loads(await ws.receive()) == {"room": "blue", "who": "me"}
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
    assert closed.value.code == 4000
