"""Which stream's DATA goes next: the sender's one question, answered here. Pure.

Two priority schemes, both on by default:

* **RFC 9218** (the ``priority`` header, PRIORITY_UPDATE, or the app's
  ``priority`` response header): strict urgency order 0..7; within one
  urgency, non-incremental streams one at a time in stream-id order, then
  incremental streams round-robin.
* **RFC 7540 section 5.3** (weights and dependencies): streams without an
  RFC 9218 signal live in a ``priority.PriorityTree`` (H2O's algorithm), which
  as a whole stands at the RFC 9218 default urgency 3.

A *turn* is worth :attr:`Scheduler.quantum` bytes. The tree and the
round-robin decide turns; the sender charges each frame against the turn's
credit, and a stream whose producer ran dry mid-turn gets the rest of its turn
first when it has data again. So byte shares follow the weights whatever the
application's chunk size, and a producer that is briefly between chunks
keeps its turn.

A stream is *ready* when its handler has data waiting and flow-control window
to send some; only ready streams are unblocked in the tree, so a decision
always names a stream that can send.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from contextlib import suppress
from dataclasses import dataclass
from typing import final

from priority.priority import (
    DuplicateStreamError,
    MissingStreamError,
    PriorityError,
    PriorityLoop,
    PriorityTree,
    TooManyStreamsError,
)

from ._priority_field import DEFAULT_URGENCY, ExtensiblePriority

# RFC 9113 section 5.3.5 (RFC 7540 section 5.3.5): the default weight.
DEFAULT_WEIGHT = 16
# The RFC 7540 tree as a whole competes at the RFC 9218 default urgency.
TREE_URGENCY = DEFAULT_URGENCY


class SchedulerError(Exception):
    """The client's priority signals cannot be represented (the tree would
    outgrow its bound). The connection answers ENHANCE_YOUR_CALM."""


@final
@dataclass(eq=False, slots=True)
class _Entry:
    stream_id: int
    extensible: ExtensiblePriority | None = None
    """Set once the stream has an RFC 9218 signal; ``None``: in the tree."""
    ready: bool = False
    credit: int = 0
    """Bytes left of the stream's current turn."""
    weight: int = DEFAULT_WEIGHT
    vtime: float = 0.0
    """Virtual time of the stream's next turn in the flat fast path."""


@final
class Scheduler:
    """RFC 9218 urgency levels around an RFC 7540 priority tree."""

    def __init__(self, *, max_streams: int, max_idle: int, quantum: int = 16384) -> None:
        self.quantum = quantum
        # Open streams plus idle ones that clients name in PRIORITY frames.
        # Idle nodes are evicted oldest first past max_idle, so the tree, its
        # depth and the package's recursion stay bounded.
        self._tree_size = max_streams + max_idle + 1
        self._tree: PriorityTree | None = None
        """Built at the first dependency, exclusive flag or PRIORITY frame for
        an idle stream; until then the flat fast path below needs none."""
        self._max_idle = max_idle
        self._idle: OrderedDict[int, None] = OrderedDict()
        self._entries: dict[int, _Entry] = {}
        self._tree_ready: set[int] = set()  # ready streams ordered by the tree
        self.ready_count = 0
        """Streams that can send now."""
        self._rfc9218_ready = 0  # of which with an RFC 9218 priority
        # RFC 9218 streams that are ready, by urgency.
        self._sequential: list[set[int]] = [set() for _ in range(8)]
        self._incremental: list[deque[int]] = [deque() for _ in range(8)]
        self._owed: OrderedDict[int, None] = OrderedDict()
        """Streams with credit left whose producer ran dry mid-turn."""
        self._tree_turn = False  # alternation between the tree and urgency-3 streams
        # The fast path for the common tree: every stream a child of the root
        # (clients that send no dependencies). The package's next() pops
        # every blocked sibling on each call (70 us with 100 streams, 2
        # ready), and removing a stream rebuilds its parent's heap; a heap of
        # the ready ones gives the same weighted shares in O(log ready). Any
        # dependency or exclusive flag ends it for good.
        self._flat_heap: list[tuple[float, int]] = []  # (vtime, stream id) of ready streams
        self._vnow = 0.0

    # ------------------------------------------------------------- signals

    def add(self, stream_id: int, *, depends_on: int = 0, weight: int = DEFAULT_WEIGHT,
            exclusive: bool = False, extensible: ExtensiblePriority | None = None) -> None:
        """Add a new stream, not ready. A stream a PRIORITY frame already put
        in the tree while it was idle keeps that place unless this call names one."""
        self._entries[stream_id] = _Entry(stream_id, extensible, weight=weight)
        if self._tree is None and not depends_on and not exclusive:
            return  # the flat fast path: a child of the root
        if stream_id in self._idle:
            del self._idle[stream_id]
            if depends_on or weight != DEFAULT_WEIGHT or exclusive:
                self.reprioritize(stream_id, depends_on=depends_on, weight=weight,
                                  exclusive=exclusive)
            return
        self._place(stream_id, depends_on, weight, exclusive, insert=True)

    def reprioritize(self, stream_id: int, *, depends_on: int, weight: int,
                     exclusive: bool) -> None:
        """Apply an RFC 7540 PRIORITY frame, to an open stream or an idle one."""
        entry = self._entries.get(stream_id)
        if self._tree is None and entry is not None and not depends_on and not exclusive:
            entry.weight = weight  # still flat: only the weight changes
            return
        if entry is None and stream_id not in self._idle:
            # RFC 9113 section 5.3.2 / RFC 7540 section 5.3.4: an idle stream
            # enters the tree so that later streams can depend on it.
            self._place(stream_id, depends_on, weight, exclusive, insert=True)
            self._remember_idle(stream_id)
            return
        self._place(stream_id, depends_on, weight, exclusive, insert=False)

    def set_extensible(self, stream_id: int, value: ExtensiblePriority) -> None:
        """Give an open stream an RFC 9218 priority (header, PRIORITY_UPDATE,
        or the app's response header): it leaves the RFC 7540 ordering."""
        entry = self._entries[stream_id]
        ready = entry.ready
        self.set_ready(stream_id, False)
        entry.extensible = value
        self.set_ready(stream_id, ready)

    def extensible(self, stream_id: int) -> ExtensiblePriority | None:
        return self._entries[stream_id].extensible

    def remove(self, stream_id: int) -> None:
        """Forget a closed stream (its tree children move up to its parent)."""
        self.set_ready(stream_id, False)
        del self._entries[stream_id]
        self._owed.pop(stream_id, None)
        if self._tree is not None:
            with suppress(MissingStreamError):  # never entered: its insert failed
                self._tree.remove_stream(stream_id)

    # ------------------------------------------------------------ readiness

    def set_ready(self, stream_id: int, ready: bool) -> None:
        """Mark whether ``stream_id`` has data it can send now."""
        entry = self._entries[stream_id]
        if ready == entry.ready:
            return
        entry.ready = ready
        value = entry.extensible
        self.ready_count += 1 if ready else -1
        if value is not None:
            self._rfc9218_ready += 1 if ready else -1
        if value is None:
            if ready:
                self._tree_ready.add(stream_id)
                if self._tree is not None:
                    self._tree.unblock(stream_id)
                else:
                    # A stream that waited does not bank turns (nghttp2's rule).
                    entry.vtime = max(entry.vtime, self._vnow)
                    self._push_flat(entry)
            else:
                self._tree_ready.discard(stream_id)
                if self._tree is not None:
                    self._tree.block(stream_id)
        elif value.incremental:
            if ready:
                self._incremental[value.urgency].append(stream_id)
            else:
                self._incremental[value.urgency].remove(stream_id)
        elif ready:
            self._sequential[value.urgency].add(stream_id)
        else:
            self._sequential[value.urgency].discard(stream_id)

    # ------------------------------------------------------------- decision

    def next(self) -> int | None:
        """The stream that should send next, or ``None`` if none is ready.
        The caller then sends at most :meth:`credit` bytes and charges them."""
        for owed in self._owed:
            if self._entries[owed].ready:
                return owed  # finish a turn its producer interrupted
        stream_id = self._choose()
        if stream_id is not None:
            self._entries[stream_id].credit = self.quantum
        return stream_id

    def credit(self, stream_id: int) -> int:
        return self._entries[stream_id].credit

    def charge(self, stream_id: int, sent: int, *, drained: bool) -> None:
        """``sent`` bytes of ``stream_id`` were framed; ``drained``: its
        producer has nothing more right now."""
        entry = self._entries[stream_id]
        entry.credit = max(entry.credit - sent, 0)
        if entry.credit and drained:
            self._owed[stream_id] = None
        else:
            self._owed.pop(stream_id, None)

    def would_choose(self, stream_id: int) -> bool:
        """Whether ``stream_id``, not ready now, would be chosen next if it
        were. The sender stops framing at that point until the stream's
        producer has refilled, so that a producer between two chunks keeps
        its turn; until then other streams' frames go first as they would
        anyway. Where that is costly to tell (RFC 9218 signals, the RFC 7540
        tree, a single other stream served without its virtual time moving)
        the answer is yes."""
        entry = self._entries.get(stream_id)
        if entry is None:
            return False  # closed
        if (stream_id in self._owed or entry.extensible is not None or self._tree is not None
                or self._rfc9218_ready or len(self._tree_ready) <= 1):
            return True
        top = self._flat_top()
        return top is None or (max(entry.vtime, self._vnow), stream_id) < top

    def _choose(self) -> int | None:
        tree_ready = bool(self._tree_ready)
        if not self._rfc9218_ready:
            return self._tree_next() if tree_ready else None
        for urgency in range(8):
            sequential, incremental = self._sequential[urgency], self._incremental[urgency]
            if not sequential and not incremental:
                continue
            if urgency == TREE_URGENCY and tree_ready:
                # The tree and the urgency-3 streams share turns equally.
                self._tree_turn = not self._tree_turn
                if self._tree_turn:
                    return self._tree_next()
            elif urgency > TREE_URGENCY and tree_ready:
                return self._tree_next()
            if sequential:
                return min(sequential)
            incremental.rotate(-1)
            return incremental[-1]
        if tree_ready:
            return self._tree_next()
        return None

    def _tree_next(self) -> int:
        if len(self._tree_ready) == 1:
            for only in self._tree_ready:  # nothing to choose: no tree walk
                return only
        if self._tree is not None:
            return self._tree.next()
        top = self._flat_top()
        assert top is not None  # a stream is ready
        vtime, stream_id = heapq.heappop(self._flat_heap)
        entry = self._entries[stream_id]
        # H2O's and the package's step: a turn advances a stream by 256/weight.
        self._vnow = vtime
        entry.vtime = vtime + 256 / entry.weight
        self._push_flat(entry)
        return stream_id

    def _flat_top(self) -> tuple[float, int] | None:
        """The flat heap's first live entry, stale ones dropped: streams that
        left, blocked, or were pushed again since."""
        heap = self._flat_heap
        while heap:
            vtime, stream_id = heap[0]
            entry = self._entries.get(stream_id)
            if (entry is not None and entry.ready and entry.extensible is None
                    and entry.vtime == vtime):
                return heap[0]
            heapq.heappop(heap)
        return None

    def _push_flat(self, entry: _Entry) -> None:
        heap = self._flat_heap
        heapq.heappush(heap, (entry.vtime, entry.stream_id))
        if len(heap) > 4 * len(self._tree_ready) + 64:
            # Streams that turned ready and blocked again left stale entries.
            self._flat_heap = [(e.vtime, e.stream_id)
                               for e in map(self._entries.__getitem__, self._tree_ready)]
            heapq.heapify(self._flat_heap)

    # ---------------------------------------------------------------- tree

    def _build_tree(self) -> PriorityTree:
        """The tree, with every open stream a child of the root, as it was."""
        if self._tree is None:
            tree = PriorityTree(maximum_streams=self._tree_size)
            for entry in self._entries.values():
                tree.insert_stream(entry.stream_id, weight=entry.weight)
                if not (entry.ready and entry.extensible is None):
                    tree.block(entry.stream_id)
            self._tree = tree
        return self._tree

    def _place(self, stream_id: int, depends_on: int, weight: int, exclusive: bool,
               *, insert: bool) -> None:
        tree = self._build_tree()
        entry = self._entries.get(stream_id)
        if entry is not None:
            entry.weight = weight
        if depends_on and depends_on not in self._entries and depends_on not in self._idle:
            # A dependency on a stream we do not know: an idle (or long
            # closed) one. It enters the tree with default priority.
            self._place(depends_on, 0, DEFAULT_WEIGHT, False, insert=True)
            self._remember_idle(depends_on)
        try:
            if insert:
                tree.insert_stream(stream_id, depends_on=depends_on or None,
                                         weight=weight, exclusive=exclusive)
                tree.block(stream_id)
            else:
                tree.reprioritize(stream_id, depends_on=depends_on or None,
                                        weight=weight, exclusive=exclusive)
        except (PriorityLoop, RecursionError):
            # The package reports loops falsely past 100 levels and recurses
            # on deep chains. A priority signal is only advice (RFC 9113
            # section 5.3): keep the stream, at the root, with its weight.
            self._fallback(stream_id, weight, insert=insert)
        except DuplicateStreamError:
            self._place(stream_id, depends_on, weight, exclusive, insert=False)
        except TooManyStreamsError as exc:
            raise SchedulerError(f"stream {stream_id}: {exc}") from exc
        except PriorityError as exc:
            raise SchedulerError(f"stream {stream_id}: {exc}") from exc

    def _fallback(self, stream_id: int, weight: int, *, insert: bool) -> None:
        tree = self._build_tree()
        try:
            if insert:
                tree.insert_stream(stream_id, weight=weight)
                tree.block(stream_id)
            else:
                tree.reprioritize(stream_id, weight=weight)
        except PriorityError as exc:
            raise SchedulerError(f"stream {stream_id}: {exc}") from exc

    def _remember_idle(self, stream_id: int) -> None:
        self._idle[stream_id] = None
        while len(self._idle) > self._max_idle:
            oldest, _ = self._idle.popitem(last=False)
            self._build_tree().remove_stream(oldest)  # its dependents move up a level
