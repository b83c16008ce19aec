"""RFC 9218 Extensible Priorities: the ``priority`` field and PRIORITY_UPDATE. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import final

# RFC 9218 section 4.1 and 4.2: defaults for a stream that says nothing.
DEFAULT_URGENCY = 3
DEFAULT_INCREMENTAL = False
PRIORITY_UPDATE = 0x10  # RFC 9218 section 7.1 frame type

# One dictionary member of an RFC 8941 structured field: key, then
# optionally =value, then parameters we ignore. Good enough for u and i,
# the only keys RFC 9218 defines; anything unparsable is ignored.
_MEMBER = re.compile(r"^\s*([a-z*][a-z0-9_.*-]*)\s*(?:=\s*([^;]*?))?\s*(?:;.*)?$")


@final
@dataclass(frozen=True, slots=True)
class ExtensiblePriority:
    """An RFC 9218 priority: urgency 0 (most urgent) to 7, and incremental."""

    urgency: int = DEFAULT_URGENCY
    incremental: bool = DEFAULT_INCREMENTAL


def parse_priority(
    value: bytes | str, base: ExtensiblePriority | None = None
) -> ExtensiblePriority:
    """Parse a Priority Field Value (``u=1, i``) over ``base``.

    RFC 9218 section 4: unknown keys, invalid values and malformed members are
    ignored, so this never raises; a member it cannot read leaves ``base``'s
    value for that key.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    urgency = (base or ExtensiblePriority()).urgency
    incremental = (base or ExtensiblePriority()).incremental
    for member in value.split(","):
        match = _MEMBER.match(member)
        if match is None:
            continue
        key, raw = match.group(1), match.group(2)
        if key == "u" and raw is not None and re.fullmatch(r"-?\d{1,3}", raw):
            number = int(raw)
            if 0 <= number <= 7:
                urgency = number
        elif key == "i":
            if raw is None or raw == "?1":
                incremental = True
            elif raw == "?0":
                incremental = False
    return ExtensiblePriority(urgency, incremental)


class BadPriorityUpdate(Exception):
    """A PRIORITY_UPDATE frame that RFC 9218 section 7.1 makes a connection error."""

    def __init__(self, message: str, *, frame_size_error: bool = False) -> None:
        super().__init__(message)
        self.frame_size_error = frame_size_error


def parse_priority_update(frame_stream_id: int, payload: bytes) -> tuple[int, bytes]:
    """Split a PRIORITY_UPDATE payload into (prioritized stream id, field value).

    Raises :exc:`BadPriorityUpdate` for the cases RFC 9218 section 7.1 makes
    connection errors: sent on a stream other than 0, naming stream 0 (both
    PROTOCOL_ERROR), or shorter than 4 bytes (FRAME_SIZE_ERROR).
    """
    if frame_stream_id != 0:
        raise BadPriorityUpdate(f"PRIORITY_UPDATE on stream {frame_stream_id}, not 0")
    if len(payload) < 4:
        raise BadPriorityUpdate(f"PRIORITY_UPDATE of {len(payload)} bytes",
                                frame_size_error=True)
    stream_id = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
    if stream_id == 0:
        raise BadPriorityUpdate("PRIORITY_UPDATE for stream 0")
    return stream_id, payload[4:]


def priority_extension(extensible: ExtensiblePriority | None, depends_on: int, weight: int,
                       exclusive: bool) -> dict[str, object]:
    """The ``trio_h2.priority`` scope extension for a request's signals."""
    if extensible is not None:
        return {"scheme": "rfc9218", "urgency": extensible.urgency,
                "incremental": extensible.incremental}
    return {"scheme": "rfc7540", "weight": weight, "depends_on": depends_on,
            "exclusive": exclusive}

