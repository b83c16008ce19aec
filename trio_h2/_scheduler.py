"""Which stream's DATA goes next: the sender's one question, answered here. Pure.

The answer comes from an RFC 7540 section 5.3 priority tree (the ``priority``
package, H2O's algorithm). A stream is *ready* when its handler has data
waiting and it has flow-control window to send some; every other stream is
blocked in the tree, so the tree only ever names a stream that can send.
"""

from __future__ import annotations

from contextlib import suppress
from typing import final

from priority.priority import (
    DuplicateStreamError,
    MissingStreamError,
    PriorityError,
    PriorityTree,
)

# RFC 9113 section 5.3.5 (RFC 7540 section 5.3.5): the default weight.
DEFAULT_WEIGHT = 16


class SchedulerError(Exception):
    """The client's priority signals cannot be represented (for example the
    tree would outgrow its bound). The connection answers ENHANCE_YOUR_CALM."""


@final
class Scheduler:
    """A priority tree plus the set of streams ready to send."""

    def __init__(self, *, max_streams: int) -> None:
        # The tree holds open streams and the idle streams clients name as
        # dependencies; max_streams bounds both (the priority issue refines
        # how idle nodes are evicted).
        self._tree = PriorityTree(maximum_streams=max_streams)
        self._ready: set[int] = set()

    def add(
        self, stream_id: int, *, depends_on: int = 0, weight: int = DEFAULT_WEIGHT,
        exclusive: bool = False,
    ) -> None:
        """Add a new stream, blocked until :meth:`set_ready` says otherwise.

        A stream a PRIORITY frame already placed in the tree while it was idle
        keeps that placement unless this call names one.
        """
        try:
            self._tree.insert_stream(
                stream_id, depends_on=depends_on or None, weight=weight, exclusive=exclusive
            )
        except DuplicateStreamError:
            if depends_on or weight != DEFAULT_WEIGHT or exclusive:
                self.reprioritize(stream_id, depends_on=depends_on, weight=weight,
                                  exclusive=exclusive)
        except PriorityError as exc:
            raise SchedulerError(f"stream {stream_id}: {exc}") from exc
        self._block(stream_id)

    def reprioritize(
        self, stream_id: int, *, depends_on: int, weight: int, exclusive: bool
    ) -> None:
        """Apply a PRIORITY frame, to an open stream or an idle one."""
        try:
            try:
                self._tree.reprioritize(
                    stream_id, depends_on=depends_on or None, weight=weight, exclusive=exclusive
                )
            except MissingStreamError:
                # RFC 7540 section 5.3.4: a PRIORITY frame may name an idle
                # stream; it enters the tree so that later streams can depend on it.
                self._tree.insert_stream(
                    stream_id, depends_on=depends_on or None, weight=weight, exclusive=exclusive
                )
                self._block(stream_id)
        except PriorityError as exc:
            raise SchedulerError(f"stream {stream_id}: {exc}") from exc

    def remove(self, stream_id: int) -> None:
        """Forget a closed stream (its children move up to its parent)."""
        self._ready.discard(stream_id)
        # Missing: it never entered the tree (refused or rejected before add()).
        with suppress(MissingStreamError):
            self._tree.remove_stream(stream_id)

    def set_ready(self, stream_id: int, ready: bool) -> None:
        """Mark whether ``stream_id`` has data it can send now."""
        if ready == (stream_id in self._ready):
            return
        if ready:
            self._ready.add(stream_id)
            self._tree.unblock(stream_id)
        else:
            self._block(stream_id)

    def next(self) -> int | None:
        """The stream that should send next, or ``None`` if none is ready."""
        if not self._ready:
            return None
        if len(self._ready) == 1:
            # Nothing to choose between: skip the tree walk.
            for stream_id in self._ready:
                return stream_id
        return self._tree.next()

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    def _block(self, stream_id: int) -> None:
        self._ready.discard(stream_id)
        self._tree.block(stream_id)
