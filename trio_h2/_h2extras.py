"""What trio_h2 needs from h2 that h2 does not offer. Pure.

* GOAWAY frames written by hand: h2's ``close_connection`` ends h2's side of
  the connection, so the first GOAWAY of a graceful close, and one after h2
  itself failed, cannot go through it.
* An HPACK decoder that reports failures with the code RFC 9113 requires.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

import h2.exceptions
import hpack
from h2.errors import ErrorCodes
from hpack.struct import HeaderTuple
from hyperframe.frame import GoAwayFrame


class HeaderBlockUndecodable(h2.exceptions.ProtocolError):
    """RFC 9113 section 4.3: a header block that cannot be decompressed is a
    connection error of type COMPRESSION_ERROR."""

    error_code = ErrorCodes.COMPRESSION_ERROR


@final
class Decoder(hpack.Decoder):
    """h2's HPACK decoder, reporting decoding failures with the error code
    RFC 9113 requires (h2 turns them all into PROTOCOL_ERROR). Oversized
    header lists stay h2's ENHANCE_YOUR_CALM."""

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        try:
            return super().decode(data, raw)
        except hpack.OversizedHeaderListError:
            raise
        except (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise HeaderBlockUndecodable(f"undecodable header block: {exc}") from exc


def goaway(last_stream_id: int, code: ErrorCodes) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = code
    return bytes(frame.serialize())


def code_name(code: object) -> str:
    try:
        return ErrorCodes(code).name  # type: ignore[arg-type]
    except ValueError:
        return f"0x{code:x}" if isinstance(code, int) else repr(code)
