"""Starlette and FastAPI apps (anyio on trio) served over HTTP/2, unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from trio_h2.testing import H2ServerFactory

from .test_interop import curl_args, run


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
