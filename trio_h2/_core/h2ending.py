"""How one HTTP/2 connection ends, and the client's misconduct that ends it. Pure.

Three ways: a graceful drain in two GOAWAYs (RFC 9113 section 6.8), a
GOAWAY at once (an error, the client's or ours), or the socket's loss.
:class:`ConnectionEnd` keeps where the connection stands (draining, the
last stream it serves, ended, the client's error) and spends the client's
budgets, ending the connection with ENHANCE_YOUR_CALM when one runs out.
When the connection ends, every stream still open is disconnected through
the stream table (``_core.h2streams``). ``H2Core`` (``_core.h2``) says
when.
"""

from __future__ import annotations

import logging
from typing import final

import h2.connection
import h2.exceptions
from h2.errors import ErrorCodes

from .errors import RemoteProtocolError
from .guard import ConnectionGuard
from .h2extras import code_name, goaway
from .h2internals import connection_closed
from .h2output import H2Output
from .h2streams import StreamTable
from .limits import TokenBucket
from .memory import Holding

log = logging.getLogger("trio_h2")

# The opaque data of the PING between the two GOAWAYs of a graceful close.
DRAIN_PING = b"trio_h2\x00"

# RFC 9113 section 9.1.1's bound on a stream id; GOAWAY with it means
# "whatever you have sent so far" (RFC 9113 section 6.8).
MAX_STREAM_ID = 2**31 - 1


@final
class ConnectionEnd:
    """Where one connection stands on its way to its end."""

    def __init__(self, conn: h2.connection.H2Connection, *, output: H2Output,
                 table: StreamTable, guard: ConnectionGuard, head: Holding,
                 peer: str) -> None:
        """``head``: what the header block still arriving holds of the
        server's account, let go when the connection ends."""
        self.h2 = conn
        self.output = output
        self.table = table
        self.guard = guard
        self.head = head
        self.peer = peer
        self.error: RemoteProtocolError | None = None
        """Set when the connection ended because of the client; GOAWAY is queued."""
        self.bad_requests = 0
        """Requests refused as malformed or with too many fields (see :meth:`bad_request`)."""
        self.terminated = False
        """No more frames will be exchanged after what is queued now."""
        self.draining = False
        self.last_stream_id = MAX_STREAM_ID
        """Streams above this id are refused (set by :meth:`drain_second_step`)."""

    def start_drain(self) -> None:
        """Begin a graceful close (RFC 9113 section 6.8): GOAWAY with the
        largest stream id and a PING; once the PING is answered (or after
        DRAIN_RTT), a second GOAWAY names the last stream we will serve.
        Streams the client opened before it saw the first are still served.

        h2's ``close_connection`` would stop h2 from sending anything more, so
        these GOAWAYs are written here and h2 stays open for in-flight streams.
        """
        if self.draining or self.terminated:
            return
        self.draining = True
        self.output.queue(goaway(MAX_STREAM_ID, ErrorCodes.NO_ERROR))
        self.h2.ping(DRAIN_PING)
        self.output.queue()
        self.guard.drain_started()

    def drain_second_step(self) -> None:
        if not self.draining or self.terminated or self.last_stream_id != MAX_STREAM_ID:
            return
        self.last_stream_id = self.h2.highest_inbound_stream_id
        self.output.queue(goaway(self.last_stream_id, ErrorCodes.NO_ERROR))
        self.guard.drain_deadline = None

    def close(self) -> None:
        """Queue the final GOAWAY (NO_ERROR) of an orderly close."""
        if not self.terminated:
            # RFC 9113 section 6.8: a later GOAWAY must not raise the last
            # stream id, and streams refused after draining do not count.
            last = min(self.last_stream_id, self.h2.highest_inbound_stream_id)
            self.h2.close_connection(ErrorCodes.NO_ERROR, last_stream_id=last)
            self.terminate()

    def abort(self, code: ErrorCodes, reason: str) -> None:
        """End the connection now with GOAWAY ``code``."""
        if self.terminated:
            return
        try:
            self.h2.close_connection(code, additional_data=reason.encode()[:128])
        except h2.exceptions.ProtocolError:
            # h2's state machine refuses (it may be the one that failed):
            # write the GOAWAY ourselves.
            self.output.queue(goaway(self.h2.highest_inbound_stream_id, code))
        self.terminate()

    def connection_lost(self) -> None:
        """The socket is gone: every stream is disconnected."""
        self.output.discard()
        self.terminate()

    def connection_error(self, code: ErrorCodes, reason: str, *, quiet: bool = False) -> None:
        """The client broke a rule, or a limit (ENHANCE_YOUR_CALM): GOAWAY
        ``code`` and one log line with the peer and the reason (at DEBUG if
        ``quiet``: one of a run already logged)."""
        if self.terminated:
            return
        if not connection_closed(self.h2):
            # h2 queues its own GOAWAY for errors in frames, but not for a
            # broken preface (RFC 9113 section 3.4 asks for PROTOCOL_ERROR).
            self.abort(code, reason)
        self.terminate()
        self.error = RemoteProtocolError(reason, error_code=code)
        if quiet:
            log.debug("%s: closing connection: %s", self.peer, reason)
        elif code == ErrorCodes.ENHANCE_YOUR_CALM:
            log.warning("%s: closing connection: %s", self.peer, reason)
        else:
            log.info("%s: connection error %s: %s", self.peer, code_name(code), reason)

    def spend(self, bucket: TokenBucket, what: str, count: int = 1) -> None:
        """Spend ``count`` of the client's ``what`` from ``bucket`` (a budget
        of ``_core.guard``; a negative ``count`` gives back); past it, the
        connection ends."""
        if not bucket.spend(count):
            self.connection_error(ErrorCodes.ENHANCE_YOUR_CALM, f"too many {what}")

    def bad_request(self, stream_id: int, what: str) -> None:
        """One clear line for a connection's first bad request; the next
        ones at DEBUG, counted, and the count logged when the connection
        ends: a flood of them (thousands per read) is summarised, not
        written out line by line at a cost to every other connection."""
        self.bad_requests += 1
        log.log(logging.INFO if self.bad_requests == 1 else logging.DEBUG,
                "%s: stream %d: %s", self.peer, stream_id, what)

    def terminate(self) -> None:
        if self.bad_requests > 1 and not self.terminated:
            log.info("%s: %d bad requests on this connection (the first logged above)",
                     self.peer, self.bad_requests)
        self.terminated = True
        self.head.hold(0)
        self.table.close_all()
