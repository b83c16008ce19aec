"""The connection's outgoing bytes, in order, copied at most once. Pure."""

from __future__ import annotations

from typing import final

Piece = bytes | bytearray | memoryview


@final
class Output:
    """Bytes waiting for the socket, kept as the pieces they were made of:
    h2's output, frame headers written by ``_core.h2internals``, and slices of the
    response bodies the handlers offered. :meth:`take_pieces` hands them
    over as they are, for one ``writev`` and no copy before the kernel's;
    :meth:`take` joins them (one copy), for a stream that takes one buffer.

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

    def take_pieces(self) -> list[Piece]:
        """Everything queued, in order, as the pieces it was made of; the
        queue is then empty."""
        pieces = self._pieces
        self._pieces = []
        self._size = 0
        return pieces

    def take(self) -> bytes:
        """Everything queued, as one buffer; the queue is then empty. A lone
        piece that is all of a ``bytes`` (an HTTP/1.1 body chunk, as the
        application gave it) is that ``bytes``, not a copy."""
        return join(self.take_pieces())

    def clear(self) -> None:
        self._pieces.clear()
        self._size = 0


def join(pieces: list[Piece]) -> bytes:
    """``pieces`` as one ``bytes``: a copy, unless it is one piece that is all
    of a ``bytes`` already."""
    data = _whole(pieces[0]) if len(pieces) == 1 else None
    return b"".join(pieces) if data is None else data


def _whole(piece: Piece) -> bytes | None:
    """``piece`` as the ``bytes`` it is all of, or None."""
    if isinstance(piece, bytes):
        return piece
    if isinstance(piece, memoryview) and isinstance(piece.obj, bytes) and \
            piece.nbytes == len(piece.obj):
        return piece.obj
    return None
