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

One mode ignores every signal (:meth:`Scheduler.ignore_priorities`, for the
demo's comparison): each stream is then served as RFC 9218 ``u=3, i``, so
the ready streams take turns of one quantum each in the order they became
ready (round robin). The signals are still kept, and count again when the
mode ends.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import final

from priority.priority import PriorityTree

from .dependency_shape import DependencyShape
from .priority_field import DEFAULT_URGENCY, ExtensiblePriority

# RFC 9113 section 5.3.5 (RFC 7540 section 5.3.5): the default weight.
DEFAULT_WEIGHT = 16
# The RFC 7540 tree as a whole competes at the RFC 9218 default urgency.
TREE_URGENCY = DEFAULT_URGENCY
# The deepest level of the package's tree: its next() recurses once a level
# and its own loop check gives up (falsely) past 100. Deeper streams hang
# from their ancestor at this depth; a PRIORITY frame whose target is deeper
# is not followed (the stream goes to the root). Chrome chains each request
# under the previous one, so a page's requests past the 32nd share turns by
# weight instead of going strictly in order. (nghttp2 kept at most 100
# streams in one dependency tree, NGHTTP2_MAX_DEP_TREE_LENGTH.)
MAX_DEPTH = 32
# A change that costs the package's tree at most this many moved or
# re-heaped streams is applied to it at once, and at most EAGER_CHANGES of
# them between two decisions; anything else makes the tree be rebuilt from
# the shape at the next decision (one rebuild, whatever the number of
# changes: removing a stream re-heaps all its siblings in the package).
EAGER_COST = 32
EAGER_CHANGES = 16


# What every stream is served as while priorities are ignored: one urgency,
# incremental, so ready streams share the connection round robin.
ROUND_ROBIN = ExtensiblePriority(DEFAULT_URGENCY, incremental=True)


@final
@dataclass(frozen=True, slots=True)
class TreePlace:
    """A stream's RFC 7540 place: its weight and the stream it depends on (0: the root)."""

    weight: int
    depends_on: int


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
        # Idle nodes are evicted oldest first past max_idle, so the tree
        # stays bounded. (One signal may add two idle nodes, its stream and
        # its parent, before the oldest are evicted.)
        self._tree_size = max_streams + max_idle + 2
        self._shape: DependencyShape | None = None
        """The RFC 7540 tree, the truth: made at the first dependency,
        exclusive flag or PRIORITY frame for an idle stream; until then the
        flat fast path below needs none."""
        self._tree: PriorityTree | None = None
        """The package's tree, which decides turns: the shape (flattened
        past MAX_DEPTH), or ``None`` until the next decision rebuilds it."""
        self._view_depth = 0  # at least the depth of _tree
        self._view_flattened = False  # _tree is not the shape itself
        self._eager_left = EAGER_CHANGES
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
        self.priorities_ignored = False
        """Every stream is served as :data:`ROUND_ROBIN` (see :meth:`ignore_priorities`)."""

    # ------------------------------------------------------------- signals

    def add(self, stream_id: int, *, depends_on: int = 0, weight: int = DEFAULT_WEIGHT,
            exclusive: bool = False, extensible: ExtensiblePriority | None = None) -> None:
        """Add a new stream, not ready. A stream a PRIORITY frame already put
        in the tree while it was idle keeps that place unless this call names one."""
        _check_weight(stream_id, weight)
        entry = _Entry(stream_id, extensible, weight=weight)
        if self._shape is None and not depends_on and not exclusive:
            self._entries[stream_id] = entry
            return  # the flat fast path: a child of the root
        self._build_shape()
        if stream_id in self._idle:
            del self._idle[stream_id]
            if depends_on or weight != DEFAULT_WEIGHT or exclusive:
                self._move(stream_id, depends_on, weight, exclusive)
        else:
            self._insert(stream_id, depends_on, weight, exclusive)
        self._entries[stream_id] = entry
        self._evict_idle()

    def reprioritize(self, stream_id: int, *, depends_on: int, weight: int,
                     exclusive: bool) -> None:
        """Apply an RFC 7540 PRIORITY frame, to an open stream or an idle one."""
        _check_weight(stream_id, weight)
        entry = self._entries.get(stream_id)
        if entry is not None:
            entry.weight = weight
            if self._shape is None and not depends_on and not exclusive:
                return  # still flat: only the weight changes
        if stream_id not in self._build_shape():
            # RFC 9113 section 5.3.2 / RFC 7540 section 5.3.4: an idle stream
            # (or one closed and forgotten) enters the tree so that later
            # streams can depend on it.
            self._insert(stream_id, depends_on, weight, exclusive)
            self._idle[stream_id] = None
        else:
            self._move(stream_id, depends_on, weight, exclusive)
        self._evict_idle()

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

    def signal(self, stream_id: int) -> ExtensiblePriority | TreePlace:
        """The priority ``stream_id`` has now, as the client (or the app's
        response header) last set it, whether or not it is ignored."""
        entry = self._entries[stream_id]
        if entry.extensible is not None:
            return entry.extensible
        shape = self._shape
        parent = shape.parent(stream_id) if shape is not None and stream_id in shape else 0
        return TreePlace(entry.weight, parent)

    def ignore_priorities(self, ignored: bool) -> None:
        """Serve every stream round robin (see the module docstring), or go
        back to honouring the signals. The streams ready now move at once."""
        if ignored == self.priorities_ignored:
            return
        ready = [entry.stream_id for entry in self._entries.values() if entry.ready]
        for stream_id in ready:
            self.set_ready(stream_id, False)
        self.priorities_ignored = ignored
        self._owed.clear()  # turns in progress were given under the other mode
        for stream_id in ready:
            self.set_ready(stream_id, True)

    def _served_as(self, entry: _Entry) -> ExtensiblePriority | None:
        """The RFC 9218 priority ``entry`` is served with; None: by the tree."""
        return ROUND_ROBIN if self.priorities_ignored else entry.extensible

    def remove(self, stream_id: int) -> None:
        """Forget a closed stream (its tree children move up to its parent)."""
        self.set_ready(stream_id, False)
        del self._entries[stream_id]
        self._owed.pop(stream_id, None)
        self._remove_from_tree(stream_id)

    # ------------------------------------------------------------ readiness

    def set_ready(self, stream_id: int, ready: bool) -> None:
        """Mark whether ``stream_id`` has data it can send now."""
        entry = self._entries[stream_id]
        if ready == entry.ready:
            return
        entry.ready = ready
        value = self._served_as(entry)
        self.ready_count += 1 if ready else -1
        if value is not None:
            self._rfc9218_ready += 1 if ready else -1
        if value is None:
            if ready:
                self._tree_ready.add(stream_id)
                if self._shape is not None:
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
        if (stream_id in self._owed or self._served_as(entry) is not None
                or self._shape is not None
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
        if self._shape is not None:
            return self._view().next()
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
            if (entry is not None and entry.ready and self._served_as(entry) is None
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

    def _build_shape(self) -> DependencyShape:
        """Leave the flat fast path: every open stream a child of the root,
        with its weight, as it was."""
        if self._shape is None:
            self._shape = DependencyShape()
            for entry in self._entries.values():
                self._shape.insert(entry.stream_id, 0, entry.weight, exclusive=False)
            self._tree = None
        return self._shape

    def _insert(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """A stream the tree does not hold yet (it has no dependents)."""
        shape = self._build_shape()
        if depends_on == stream_id:
            # h2 answers a self-dependency with PROTOCOL_ERROR before this;
            # should one get here, the signal is only advice: the root.
            depends_on, exclusive = 0, False
        if depends_on and depends_on not in shape:
            # A dependency on a stream we do not know: an idle (or long
            # closed) one. It enters the tree with default priority.
            self._insert(depends_on, 0, DEFAULT_WEIGHT, False)
            self._idle[depends_on] = None
        if len(shape) >= self._tree_size:
            raise SchedulerError(f"stream {stream_id}: the priority tree holds "
                                 f"{len(shape)} streams already")
        cost = shape.child_count(depends_on) if exclusive else 1
        depth = shape.depth(depends_on, MAX_DEPTH - 1)
        shape.insert(stream_id, depends_on, weight, exclusive=exclusive)
        tree = self._tree
        if (tree is not None and depth is not None
                and self._view_depth + exclusive <= MAX_DEPTH and self._eager(cost)):
            tree.insert_stream(stream_id, depends_on=depends_on or None, weight=weight,
                               exclusive=exclusive)
            tree.block(stream_id)
            self._view_depth = max(self._view_depth + exclusive, depth + 1)
        else:
            self._tree = None

    def _move(self, stream_id: int, depends_on: int, weight: int, exclusive: bool) -> None:
        """RFC 9113 section 5.3.3 (RFC 7540 section 5.3.3) for a stream the
        tree holds: it moves with its dependents under ``depends_on``. If
        ``depends_on`` is one of those dependents, it first moves to the
        stream's previous parent, keeping its weight. (priority 2.0.0 moves
        it without its own dependents and leaves them listed under it as
        well; the next exclusive move can then make a stream its own parent,
        and removing it loops for ever. Here the tree's shape is ours, and
        the package's tree is rebuilt from it.)"""
        shape = self._build_shape()
        if depends_on == stream_id:
            depends_on, exclusive = 0, False  # see _insert
        if depends_on and depends_on not in shape:
            self._insert(depends_on, 0, DEFAULT_WEIGHT, False)
            self._idle[depends_on] = None
        found = shape.ancestry(depends_on, stream_id, MAX_DEPTH)
        if found is None:
            # Too deep to tell cheaply whether it is a dependent: advice we
            # do not take. The stream keeps its weight, at the root.
            depends_on, exclusive = 0, False
        elif found:
            shape.move(depends_on, shape.parent(stream_id), shape.weight[depends_on],
                       exclusive=False)
        shape.move(stream_id, depends_on, weight, exclusive=exclusive)
        self._tree = None  # rebuilt at the next decision

    def _remove_from_tree(self, stream_id: int) -> None:
        shape = self._shape
        if shape is None or stream_id not in shape:
            return
        cost = shape.child_count(shape.parent(stream_id)) + shape.child_count(stream_id)
        shape.remove(stream_id)
        self._idle.pop(stream_id, None)
        if self._tree is not None and self._eager(cost):
            self._tree.remove_stream(stream_id)  # its dependents move up a level
        else:
            self._tree = None

    def _evict_idle(self) -> None:
        """Idle nodes past ``max_idle`` leave, oldest first (nghttp2's rule)."""
        while len(self._idle) > self._max_idle:
            oldest = next(iter(self._idle))
            self._remove_from_tree(oldest)

    def _eager(self, cost: int) -> bool:
        """Whether to apply a change to the package's tree now (it keeps the
        weighted shares of the turns in progress) rather than rebuild it at
        the next decision: only changes that cost it little, and a bounded
        number of them between two decisions."""
        if self._tree is None or self._view_flattened or cost > EAGER_COST or \
                self._eager_left <= 0:
            return False
        self._eager_left -= 1
        return True

    def _view(self) -> PriorityTree:
        """The package's tree for the current shape, rebuilt if a change
        made it stale: parents before children, every stream blocked but
        the ready ones. Streams deeper than ``MAX_DEPTH`` hang from their
        ancestor at that depth, so the package's recursion stays shallow."""
        self._eager_left = EAGER_CHANGES
        if self._tree is not None:
            return self._tree
        shape = self._shape
        assert shape is not None
        tree = PriorityTree(maximum_streams=self._tree_size + 1)
        flattened, deepest = False, 0
        children = shape.children()
        level: list[tuple[int, int]] = [(0, 0)]  # (stream, where it hangs in the view)
        for depth in range(1, len(shape) + 1):
            below: list[tuple[int, int]] = []
            for parent, anchor in level:
                for child in children[parent]:
                    tree.insert_stream(child, depends_on=anchor or None,
                                       weight=shape.weight[child])
                    if child not in self._tree_ready:
                        tree.block(child)
                    below.append((child, child if depth < MAX_DEPTH else anchor))
            if not below:
                break
            deepest = min(depth, MAX_DEPTH)
            flattened = flattened or depth > MAX_DEPTH
            level = below
        self._tree, self._view_depth, self._view_flattened = tree, deepest, flattened
        return tree


def _check_weight(stream_id: int, weight: int) -> None:
    # RFC 9113 section 5.3.2: 1 to 256 (h2 decodes the frame's byte plus one).
    if not 1 <= weight <= 256:
        raise SchedulerError(f"stream {stream_id}: weight {weight} is not 1 to 256")
