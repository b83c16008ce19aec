"""The shape of an RFC 7540 priority tree, as a client describes it. Pure.

``_core.scheduler`` keeps it as the truth about dependencies and weights,
and builds the ``priority`` package's tree from it (flattened past its
depth bound) to decide turns: the package's own tree cannot be trusted with
what a hostile client sends (priority 2.0.0's moves can make a stream its
own parent: see ``Scheduler._move``), and its changes are not cheap. This
one's are, whatever the client does.
"""

from __future__ import annotations

from typing import final


@final
class DependencyShape:
    """The RFC 7540 dependency tree as the client described it: open and
    idle streams, their weights and parents, 0 the root. Pure, and cheap
    whatever the client does: each stream's dependents are a *group*, and a
    change moves or merges whole groups (union by size, with path
    compression), so an exclusive dependency or a removal that moves two
    hundred dependents costs no more than one that moves one. A walk up the
    tree is bounded by the caller."""

    __slots__ = ("_home", "_in", "weight")

    def __init__(self) -> None:
        self.weight: dict[int, int] = {}
        self._in: dict[int, _Group] = {}
        """The group each stream belongs to (its parent's dependents)."""
        self._home: dict[int, _Group] = {0: _Group(0)}
        """Each stream's own dependents (and the root's)."""

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self.weight

    def __len__(self) -> int:
        return len(self.weight)

    def parent(self, stream_id: int) -> int:
        group = self._in[stream_id] = self._in[stream_id].root()
        return group.owner

    def child_count(self, stream_id: int) -> int:
        group = self._home[stream_id] = self._home[stream_id].root()
        return group.size

    def children(self) -> dict[int, list[int]]:
        """Every stream's dependents, in the order they entered the tree: O(streams)."""
        children: dict[int, list[int]] = {stream_id: [] for stream_id in self._home}
        for stream_id in self._in:
            children[self.parent(stream_id)].append(stream_id)
        return children

    def insert(self, stream_id: int, parent: int, weight: int, *, exclusive: bool) -> None:
        self.weight[stream_id] = weight
        if exclusive:  # the parent's dependents become the new stream's
            self._home[stream_id] = self._home[parent].root()
            self._home[stream_id].owner = stream_id
            self._home[parent] = _Group(parent)
        else:
            self._home[stream_id] = _Group(stream_id)
        self._join(stream_id, parent)

    def move(self, stream_id: int, parent: int, weight: int, *, exclusive: bool) -> None:
        """Move ``stream_id`` and its dependents; ``parent`` must not be one of them."""
        self._leave(stream_id)
        self.weight[stream_id] = weight
        if exclusive:
            taken = self._home[parent]
            self._home[parent] = _Group(parent)
            self._home[stream_id] = self._home[stream_id].merge(taken, stream_id)
        self._join(stream_id, parent)

    def remove(self, stream_id: int) -> None:
        """Remove a stream; its dependents move to its parent."""
        parent = self.parent(stream_id)
        self._leave(stream_id)
        del self._in[stream_id], self.weight[stream_id]
        self._home[parent] = self._home[parent].merge(self._home.pop(stream_id), parent)

    def _join(self, stream_id: int, parent: int) -> None:
        group = self._home[parent] = self._home[parent].root()
        group.size += 1
        self._in[stream_id] = group

    def _leave(self, stream_id: int) -> None:
        group = self._in[stream_id].root()
        group.size -= 1

    def depth(self, stream_id: int, limit: int) -> int | None:
        """Levels below the root (0 for the root), or None past ``limit``."""
        for depth in range(limit + 1):
            if stream_id == 0:
                return depth
            stream_id = self.parent(stream_id)
        return None

    def ancestry(self, stream_id: int, ancestor: int, limit: int) -> bool | None:
        """Whether ``ancestor`` is ``stream_id`` or above it; None if that
        takes more than ``limit`` steps to tell."""
        for _ in range(limit + 1):
            if stream_id == ancestor:
                return True
            if stream_id == 0:
                return False
            stream_id = self.parent(stream_id)
        return None


@final
class _Group:
    """The dependents of one stream (its ``owner``), as a union-find set:
    ``into`` leads to the group this one was merged into."""

    __slots__ = ("into", "owner", "size")

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.size = 0
        self.into: _Group | None = None

    def root(self) -> _Group:
        root = self
        while root.into is not None:
            root = root.into
        group = self
        while group.into is not None and group.into is not root:  # path compression
            group.into, group = root, group.into
        return root

    def merge(self, other: _Group, owner: int) -> _Group:
        """One group of both members, owned by ``owner``; the larger absorbs the smaller."""
        big, small = self.root(), other.root()
        if big is small:
            big.owner = owner
            return big
        if big.size < small.size:
            big, small = small, big
        big.size += small.size
        small.into = big
        big.owner = owner
        return big
