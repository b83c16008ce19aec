"""A Starlette application with HTTP routes and a WebSocket route.

Starlette runs on anyio, which runs on trio, so it needs nothing special
under trio_h2. The WebSocket route works over HTTP/1.1 (Upgrade) and over
HTTP/2 (RFC 8441 extended CONNECT).

Run from the repository root::

    python -m trio_h2 examples.starlette_app:app
    curl --http2-prior-knowledge http://127.0.0.1:8000/users/ada
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"Hello from Starlette over HTTP/{request.scope['http_version']}\n")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"name": request.path_params["name"]})


async def shout(websocket: WebSocket) -> None:
    """Answers every text message with the same text in capitals."""
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(text.upper())
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[
    Route("/", homepage),
    Route("/users/{name}", user),
    WebSocketRoute("/shout", shout),
])
