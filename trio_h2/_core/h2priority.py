"""The client's priority signals, turned into the scheduler's view of each stream.

RFC 7540 signals (in HEADERS and PRIORITY frames, when
``Config.rfc7540_priorities`` is on), RFC 9218's ``priority`` field and
PRIORITY_UPDATE frames (including those that name a stream before it opens),
and the response's own ``priority`` field. ``H2Core`` (``_core.h2``), whose table
(``_core.h2streams``) owns stream lifetime, says when a stream opens and closes and acts on the
errors raised here (:class:`SchedulerError`, :class:`BadPriorityUpdate`:
connection errors); this class only keeps the scheduler in step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container
from typing import final

import h2.events

from .._config import Config
from .headers import RequestHead
from .priority_field import (
    ExtensiblePriority,
    parse_priority,
    parse_priority_update,
    priority_extension,
)
from .scheduler import DEFAULT_WEIGHT, Scheduler


def priority_field(head: RequestHead) -> bytes | None:
    """The request's RFC 9218 ``priority`` field (the first, if repeated)."""
    return next((v for n, v in head.headers if n == b"priority"), None)


@final
class PrioritySignals:
    """Priority signals for one connection, applied to its :class:`Scheduler`."""

    def __init__(self, scheduler: Scheduler, config: Config) -> None:
        self.scheduler = scheduler
        self.rfc7540 = config.rfc7540_priorities
        self.max_early = config.max_concurrent_streams
        # RFC 9218 section 7.1: PRIORITY_UPDATE may name a stream before it
        # opens; keep a bounded number (the same bound as open streams).
        self._early_updates: OrderedDict[int, ExtensiblePriority] = OrderedDict()
        self._in_headers: h2.events.PriorityUpdated | None = None

    def headers_received(self, event: h2.events.RequestReceived) -> None:
        """A request's HEADERS arrived: h2 reports its RFC 7540 priority
        again as a separate event, which :meth:`frame_received` then skips."""
        self._in_headers = event.priority_updated

    def add(self, stream_id: int, head: RequestHead,
            prio: h2.events.PriorityUpdated | None) -> dict[str, object]:
        """Put a stream that opens in the scheduler with its signals (an early
        PRIORITY_UPDATE, else its ``priority`` field, and RFC 7540's);
        return its ``trio_h2.priority`` scope extension. Raises
        :class:`SchedulerError` if the scheduler refuses it."""
        extensible = self._early_updates.pop(stream_id, None)
        if extensible is None:
            field_value = priority_field(head)
            if field_value is not None:
                extensible = parse_priority(field_value)
        depends_on, weight, exclusive = 0, DEFAULT_WEIGHT, False
        if prio is not None and self.rfc7540:
            depends_on, weight = prio.depends_on or 0, prio.weight or DEFAULT_WEIGHT
            exclusive = bool(prio.exclusive)
        self.scheduler.add(stream_id, depends_on=depends_on, weight=weight,
                           exclusive=exclusive, extensible=extensible)
        return priority_extension(extensible, depends_on, weight, exclusive)

    def in_headers(self, event: h2.events.PriorityUpdated) -> bool:
        """Whether h2's priority event repeats the one in a request's HEADERS,
        already applied with its request (by :meth:`add`)."""
        return event is self._in_headers

    def reprioritize(self, event: h2.events.PriorityUpdated) -> None:
        """A PRIORITY frame (RFC 7540 section 6.3), applied if RFC 7540
        priorities are on. Raises :class:`SchedulerError` if the scheduler
        refuses it."""
        if self.rfc7540:
            assert event.stream_id is not None
            self.scheduler.reprioritize(event.stream_id, depends_on=event.depends_on or 0,
                                        weight=event.weight or 16,
                                        exclusive=bool(event.exclusive))

    def update_received(self, frame_stream_id: int, payload: bytes, open_streams: Container[int],
                        highest_inbound: int) -> None:
        """A PRIORITY_UPDATE frame (RFC 9218 section 7.1). An open stream's
        priority changes; one not opened yet (a client stream above
        ``highest_inbound``) keeps it for :meth:`add`; a closed one ignores
        it. Raises :class:`BadPriorityUpdate` for a malformed frame."""
        stream_id, field_value = parse_priority_update(frame_stream_id, payload)
        value = parse_priority(field_value)
        if stream_id in open_streams:
            self.scheduler.set_extensible(stream_id, value)
        elif stream_id > highest_inbound and stream_id % 2:
            self._early_updates[stream_id] = value
            self._early_updates.move_to_end(stream_id)
            while len(self._early_updates) > self.max_early:
                self._early_updates.popitem(last=False)

    def response_priority(self, stream_id: int, value: bytes) -> None:
        """The response's ``priority`` field: RFC 9218 section 8 lets the
        server override the client's priority; what it leaves out keeps the
        request's."""
        base = self.scheduler.extensible(stream_id)
        self.scheduler.set_extensible(stream_id, parse_priority(value, base))
