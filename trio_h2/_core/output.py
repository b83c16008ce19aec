"""The connection's outgoing bytes, in order, copied once. Pure."""

from __future__ import annotations

from typing import final

Piece = bytes | bytearray | memoryview


@final
class Output:
    """Bytes waiting for the socket, kept as the pieces they were made of:
    h2's output, frame headers written by ``_core.h2internals``, and slices of the
    response bodies the handlers offered. :meth:`take` joins them, the one
    copy they get before the kernel's.

    The body slices are safe to hold: ``_apps.asgi`` hands the core immutable
    ``bytes``, so an application reusing its buffer cannot change what is
    queued.
    """

    __slots__ = ("_pieces", "_size")

    def __init__(self) -> None:
        self._pieces: list[Piece] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, piece: Piece) -> None:
        if piece:
            self._pieces.append(piece)
            self._size += len(piece)

    def take(self) -> bytes:
        """Everything queued, as one buffer; the queue is then empty. A lone
        piece that is all of a ``bytes`` (an HTTP/1.1 body chunk, as the
        application gave it) is that ``bytes``, not a copy."""
        pieces = self._pieces
        data = _whole(pieces[0]) if len(pieces) == 1 else None
        if data is None:
            data = b"".join(pieces)
        self._pieces.clear()
        self._size = 0
        return data

    def clear(self) -> None:
        self._pieces.clear()
        self._size = 0


def _whole(piece: Piece) -> bytes | None:
    """``piece`` as the ``bytes`` it is all of, or None."""
    if isinstance(piece, bytes):
        return piece
    if isinstance(piece, memoryview) and isinstance(piece.obj, bytes) and \
            piece.nbytes == len(piece.obj):
        return piece.obj
    return None
