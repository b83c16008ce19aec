"""hpack's undocumented parts (listed in ``_core.h2internals``): the linear
Huffman encoder and the decoder that counts fields. Checked by
``h2internals.check_hooks`` before trio_h2 uses them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import final

import h2.connection
import h2.exceptions
import hpack
import hpack.huffman
import hpack.huffman_constants
from h2.errors import ErrorCodes
from hpack import HeaderTuple

# ------------------------------------------------ hpack: Huffman in linear time

@final
class HuffmanEncoder(hpack.huffman.HuffmanEncoder):
    """hpack's Huffman encoder (RFC 7541 section 5.2), in linear time.

    hpack's shifts one integer left once per byte, so encoding is quadratic
    in the value's length: 0.65 s for a 64 KB value, in one synchronous call
    on the event loop. Response headers can carry what a client sent (a
    redirect's Location holds the request's path), so one client could stall
    the whole server (tests/attacks/test_deps.py). This joins each byte's
    code as a string of bits and converts once: 5 ms for 64 KB, and faster
    than hpack's from 10 bytes on. Same output, byte for byte
    (:func:`check_hooks`).
    """

    def __init__(self, codes: list[int], lengths: list[int]) -> None:
        super().__init__(codes, lengths)
        self._bits = [format(code, f"0{length}b") for code, length in zip(codes, lengths,
                                                                           strict=True)]

    def encode(self, bytes_to_encode: bytes | None) -> bytes:
        if not bytes_to_encode:
            return b""
        bits = "".join([self._bits[byte] for byte in bytes_to_encode])
        # Padded to a whole octet with the most significant bits of EOS: ones.
        padding = -len(bits) % 8
        return int(bits + "1" * padding, 2).to_bytes((len(bits) + padding) // 8, "big")


HUFFMAN = HuffmanEncoder(hpack.huffman_constants.REQUEST_CODES,
                         hpack.huffman_constants.REQUEST_CODES_LENGTH)


def use_linear_huffman(conn: h2.connection.H2Connection) -> None:
    """Have ``conn``'s HPACK encoder Huffman-code with :data:`HUFFMAN`."""
    conn.encoder.huffman_coder = HUFFMAN


# ------------------------------------------- hpack: decoding with a field count

class HeaderBlockUndecodable(h2.exceptions.ProtocolError):
    """RFC 9113 section 4.3: a header block that cannot be decompressed is a
    connection error of type COMPRESSION_ERROR."""

    error_code = ErrorCodes.COMPRESSION_ERROR


@final
class FieldsDropped(HeaderTuple):
    """The first field of a header block the :class:`Decoder` cut short: its
    value is how many fields the block had. No client can send it (h2 hands
    on the decoder's objects, and a client only sends bytes); its empty name
    makes ``_core.headers`` reject the block if anything ever let it through."""

    __slots__ = ()


def fields_dropped(fields: Sequence[tuple[bytes, bytes]]) -> int:
    """How many fields the header block had, if the :class:`Decoder` cut it
    at ``max_header_fields`` (then ``fields`` holds the first ones); else 0.
    (h2 moves cookie fields to the end of the list, never the first field.)"""
    if fields and type(fields[0]) is FieldsDropped:
        return int(fields[0][1])
    return 0


# RFC 7541 section 6.1: an indexed field whose index fits the 7-bit prefix
# is one byte, 0x81 to 0xfe (0x80 is index 0, an error; 0xff continues).
_ONE_BYTE_INDEXED = re.compile(rb"[\x81-\xfe]+")


@final
class Decoder(hpack.Decoder):
    """h2's HPACK decoder, reporting decoding failures with the error code
    RFC 9113 requires (h2 turns them all into PROTOCOL_ERROR), and keeping at
    most ``max_fields`` fields of a block.

    Past ``max_fields`` it goes on decoding, so the dynamic table stays in
    step with the client's encoder (RFC 7541 section 2.2: every block must
    be processed), and counting the block's size, but keeps no field: the
    list it returns starts with a :class:`FieldsDropped` and holds the first
    ``max_fields``, so the stream, not the connection, can be refused. An
    attacker's 2000 one-byte references never become 2000 tuples (Go's hpack
    decoder does the same past its limit: ``SetEmitEnabled(false)``).
    Oversized header lists stay h2's connection error, ENHANCE_YOUR_CALM.
    """

    def __init__(self, *, max_header_list_size: int, max_fields: int) -> None:
        super().__init__(max_header_list_size)
        self.max_fields = max_fields

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        if not raw:
            raise TypeError("trio_h2's Decoder returns bytes (h2 asks with raw=True)")
        try:
            return self._decode(data)
        except hpack.OversizedHeaderListError:
            raise
        except (hpack.HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise HeaderBlockUndecodable(f"undecodable header block: {exc}") from exc

    def _decode(self, data: bytes) -> list[HeaderTuple]:
        # hpack.Decoder.decode's loop, with the count; fields stay the bytes
        # hpack decoded (its raw=True pass would copy every tuple once more).
        view = memoryview(data)
        fields: list[HeaderTuple] = []
        count = size = position = 0
        while position < len(data):
            first = data[position]
            if count >= self.max_fields and first & 0x80:
                run = _ONE_BYTE_INDEXED.match(data, position)
                if run is not None:
                    # Past the limit a run of one-byte references (an
                    # attacker's 2000 of them) changes no table and is kept
                    # nowhere: it is counted at C speed, each distinct index
                    # looked up once, so an index past the table is still a
                    # COMPRESSION_ERROR and the list's size still counts.
                    for byte, times in Counter(data[position:run.end()]).items():
                        name, value = self._decode_indexed(bytes([byte]))[0]
                        size += times * (len(name) + len(value) + 32)
                    count += run.end() - position
                    position = run.end()
                    if size > self.max_header_list_size:
                        raise hpack.OversizedHeaderListError(
                            f"A header list larger than {self.max_header_list_size} has "
                            f"been received")
                    continue
            if first & 0x80:  # RFC 7541 section 6.1: indexed
                field, used = self._decode_indexed(view[position:])
            elif first & 0x40:  # section 6.2.1: literal, added to the table
                field, used = self._decode_literal_index(view[position:])
            elif first & 0x20:  # section 6.3: dynamic table size update
                if count:
                    raise hpack.HPACKDecodingError(
                        "Table size update not at the start of the block")
                position += self._update_encoding_context(view[position:])
                continue
            else:  # sections 6.2.2 and 6.2.3: literal, not added
                field, used = self._decode_literal_no_index(view[position:])
            position += used
            count += 1
            size += len(field[0]) + len(field[1]) + 32  # RFC 7541 section 4.1
            if size > self.max_header_list_size:
                raise hpack.OversizedHeaderListError(
                    f"A header list larger than {self.max_header_list_size} has been received")
            if count <= self.max_fields:
                fields.append(field)
        self._assert_valid_table_size()
        if count > self.max_fields:
            fields.insert(0, FieldsDropped(b"", str(count).encode()))
        return fields
