"""Flow-control steps the backpressure tests share: a client that keeps its
window closed, then opens it by a known amount and reads exactly that far."""

from __future__ import annotations

from trio_h2.testing import H2Client, StreamingResponse


async def open_window_and_read(client: H2Client, response: StreamingResponse, *,
                               more: int, through: int) -> None:
    """Open the connection's and the stream's window by ``more`` bytes, then
    read the response's body (all ``b"g"``) until ``through`` bytes of it
    have arrived in all."""
    await client.open_window(more)
    await client.open_window(more, response.stream_id)
    received = 0
    async for data in response:
        assert data == b"g" * len(data)
        received += len(data)
        if received == through:
            return
    raise AssertionError(f"the body ended after {received} bytes, before {through}")
