"""How a handler hands response chunks to the sender: a zero-buffer memory channel.

The design card's shape (issue 12): each exchange has a
``trio.open_memory_channel(0)``. Its handler tells the core it has a chunk
(``ProtocolCore.offer``: the stream becomes ready once the client's windows
allow a byte) and waits in ``send``. The sender does not wait in
``receive``: the core, choosing by the priority tree before every DATA frame,
takes the chunk with ``receive_nowait`` (``StreamState.take``) when it is
that exchange's turn, and that releases the handler, which makes its next
chunk while this one is framed and written. With no buffer, the chunk a
handler waits with and the one the core is framing are all the response
data of an exchange that trio_h2 holds.

A closed channel is how a handler learns its client went away: the core
calls ``StreamState.hang_up`` when the stream is reset or the connection
lost, which closes the receiving end, so the handler's ``send`` raises
``trio.BrokenResourceError`` (or, if it tries again, ``ClosedResourceError``),
which :meth:`HandOff.put` turns into :exc:`ClientDisconnected`.

A channel costs about 10 us to make (trio's generic classes), as much as
the rest of a small request's hand-off, so a connection keeps the channels
of exchanges that ended normally for its next ones (:class:`HandOffs`).
"""

from __future__ import annotations

from typing import final

import trio

from ._errors import ClientDisconnected
from ._stream import Chunk, StreamState


def _detached() -> None:
    return None


@final
class HandOff:
    """The channel between one exchange's handler and the sender."""

    __slots__ = ("_in", "_out", "_stream_id", "hung_up")

    def __init__(self) -> None:
        self._in, self._out = trio.open_memory_channel[Chunk](0)
        self._stream_id = 0
        self.hung_up = False
        """The receiving end is closed: the channel cannot serve again."""

    def attach(self, stream: StreamState) -> None:
        """Serve ``stream``: the core takes its chunks and hangs up through this."""
        self._stream_id = stream.stream_id
        stream.take = self.take
        stream.hang_up = self.hang_up

    async def put(self, chunk: Chunk) -> None:
        """Wait until the sender takes ``chunk``. Raises
        :exc:`ClientDisconnected` if the stream is (or gets) disconnected
        first; if cancelled, the chunk was not taken."""
        try:
            await self._in.send(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ClientDisconnected(
                f"stream {self._stream_id}: client disconnected") from None

    def take(self) -> Chunk | None:
        """The chunk the handler waits with; the handler is released. None
        if its ``send`` was cancelled after it offered (the cancelled
        handler resets the stream when it runs)."""
        try:
            return self._out.receive_nowait()
        except trio.WouldBlock:
            return None

    def hang_up(self) -> None:
        """The client went away: the handler's ``send`` raises."""
        self.hung_up = True
        self._out.close()


@final
class HandOffs:
    """One connection's channels: those of exchanges that ended without a
    disconnect serve its next exchanges. At most one per handler that ran at
    the same time (``max_concurrent_streams``), about 1 KiB each."""

    __slots__ = ("_free",)

    def __init__(self) -> None:
        self._free: list[HandOff] = []

    def acquire(self, stream: StreamState) -> HandOff:
        """A channel for ``stream``'s handler, attached to it."""
        handoff = self._free.pop() if self._free else HandOff()
        handoff.attach(stream)
        return handoff

    def release(self, stream: StreamState, handoff: HandOff) -> None:
        """``stream``'s handler has returned (nobody waits in ``send``): the
        core can no longer reach the channel, which serves again unless it
        was hung up."""
        stream.take = _detached
        stream.hang_up = _detached
        if not handoff.hung_up:
            self._free.append(handoff)
