"""The server's accounts of memory its clients make it hold. Pure.

Each bound elsewhere holds per request or per connection; a client that
opens many connections multiplies it. These accounts hold for the whole
server (one process): one :class:`ServerMemory` per server, shared by the
protocol cores of all its connections (``_io.select.new_core``).

* ``headers`` (``Config.max_header_memory``): complete request heads, their
  fields at Python's cost (``_core.headers.head_cost``), from their arrival until
  their handler returns.
* ``heads`` (a quarter of ``Config.max_header_memory``): request heads still
  arriving, at what the core holds of them (h2's frames of an unfinished
  block, h11's buffered head). A legitimate head arrives in one read or
  two; only a client that sends heads slowly on purpose holds this for long
  (up to ``header_timeout``, each up to ``max_header_list_size``).
* ``bodies`` (``Config.max_body_memory``): request body a client may have
  buffered for applications that have not read it. Charged when a stream
  that may carry a body opens, by the flow-control window it is granted
  (``initial_window_size``, or its ``content-length`` if smaller): body it
  sends within that window is held without asking, so the credit granted is
  the bound, not the bytes seen so far. Released once the body is consumed
  to its end, or the stream is done.

Past an account's limit, what would add to it is refused (a stream), or
stopped (a head arriving: its connection is closed), except for a
connection that holds less than the account's floor: light clients are
served while others hold the budget. The total is then at most the limit
plus one floor per connection, which ``Config.max_connections`` makes finite.
"""

from __future__ import annotations

from typing import final

from .._config import Config

# Unfinished head bytes a connection may always hold, whatever the server's
# account says: four times a browser's heads (nginx's client_header_buffer_size
# is 1 KiB, Chromium's heads are 1-3 KiB with cookies), a quarter of nginx's
# largest head (large_client_header_buffers 4 x 8k). A connection over it when
# the account is full is closed.
HEAD_FLOOR = 8 * 1024

# Header memory a connection may always hold for its requests in progress
# (complete heads): one request at max_header_list_size's default, or a dozen
# browser requests.
HEADER_FLOOR = 64 * 1024

# What a head still arriving costs per byte h2 or h11 holds of it: the bytes
# themselves, the copy h2's frame parser makes of each frame, and the growth of
# the buffers they pass through. Measured: 500 HTTP/2 connections each holding
# a 60 KB block grew the process by 170 KB a connection before the first read
# was let go, 140 KB after, of which 40 KB is an idle connection's own.
HEAD_BYTE_COST = 2


@final
class MemoryAccount:
    """One kind of memory held for clients, across all connections.

    A connection charges what it will hold and releases it when done; it
    keeps its own total, which :meth:`charge` compares with ``floor``.
    """

    __slots__ = ("floor", "held", "limit", "refusals")

    def __init__(self, limit: int, floor: int) -> None:
        self.limit = limit
        self.floor = floor
        self.held = 0
        self.refusals = 0
        """Refusals since the account was last below its limit: the first of
        a run is logged at WARNING, the rest at DEBUG."""

    def charge(self, cost: int, held_by_connection: int) -> bool:
        """Admit ``cost`` bytes for a connection that holds ``held_by_connection``
        (before them); False (nothing charged) if the account is over its limit
        and the connection would hold more than the floor."""
        if self.held + cost > self.limit and held_by_connection + cost > self.floor:
            self.refusals += 1
            return False
        self.held += cost
        if self.held < self.limit:
            self.refusals = 0
        return True

    def release(self, cost: int) -> None:
        self.held -= cost

    @property
    def warn(self) -> bool:
        """Whether the refusal just made starts a run (log it at WARNING)."""
        return self.refusals == 1


@final
class Holding:
    """What one connection holds of ``account`` for something that grows and
    shrinks as bytes arrive (a request head), at ``HEAD_BYTE_COST`` a byte."""

    __slots__ = ("account", "held")

    def __init__(self, account: MemoryAccount) -> None:
        self.account = account
        self.held = 0

    def hold(self, size: int) -> bool:
        """Hold ``size`` bytes now instead of what was held. False (nothing
        held any more) if the account is over its limit and ``size`` is over
        the floor: the connection must stop holding it."""
        cost = size * HEAD_BYTE_COST
        if cost == self.held:
            return True  # (no head arriving, the common case: nothing to do)
        self.account.release(self.held)
        self.held = cost if self.account.charge(cost, 0) else 0
        return self.held == cost


@final
class ServerMemory:
    """The accounts one server's connections share (see the module docstring)."""

    __slots__ = ("bodies", "headers", "heads")

    def __init__(self, config: Config) -> None:
        self.headers = MemoryAccount(config.max_header_memory, HEADER_FLOOR)
        # 8 MiB by default: 70 connections each holding a 60 KB head they
        # send slowly, where the headers of complete requests get 32 MiB.
        self.heads = MemoryAccount(config.max_header_memory // 4,
                                   HEAD_FLOOR * HEAD_BYTE_COST)
        # A connection may always have one stream's window of body buffered:
        # one upload at a time, and all an HTTP/1.1 connection ever holds
        # (with one read), so HTTP/1.1 never meets this account's limit.
        self.bodies = MemoryAccount(config.max_body_memory, config.initial_window_size)
