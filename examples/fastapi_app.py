"""A FastAPI application: a pydantic request model, a streaming response and
a background task.

Run from the repository root::

    python -m trio_h2 examples.fastapi_app:app
    curl --http2-prior-knowledge -H 'content-type: application/json' \\
        -d '{"name": "tea", "price": 2.5, "quantity": 4}' http://127.0.0.1:8000/orders
    curl --http2-prior-knowledge http://127.0.0.1:8000/orders
    curl --http2-prior-knowledge http://127.0.0.1:8000/countdown
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

app = FastAPI()

# What the background task has recorded (a real app would write to a database).
ledger: list[str] = []


class Order(BaseModel):
    name: str
    price: float = Field(gt=0)
    quantity: int = Field(default=1, ge=1)


def record(order: Order) -> None:
    ledger.append(f"{order.quantity} x {order.name}")


@app.post("/orders")
async def create_order(order: Order, background_tasks: BackgroundTasks) -> dict[str, float]:
    # Runs after the response has been sent.
    background_tasks.add_task(record, order)
    return {"total": order.price * order.quantity}


@app.get("/orders")
async def list_orders() -> list[str]:
    return ledger


@app.get("/countdown")
async def countdown() -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for n in range(5, 0, -1):
            yield f"{n}\n".encode()
            await trio.sleep(0.05)
        yield b"liftoff\n"

    return StreamingResponse(lines(), media_type="text/plain")
