"""Every use trio_h2 makes of h2's, hpack's, hyperframe's and priority's
undocumented parts, and the check, run when this module is imported, that
each is still there. Pure. Nothing else in trio_h2 reaches inside these
libraries: it calls the functions and classes here.

If a new release renames or reshapes one of these hooks, importing trio_h2
fails with :class:`HookMissing`, naming the hook and the installed versions.
Never a fallback: the frame buffer's internals drive the header timer and the
header block cap, and a silent default there would switch those defences off
without a word.

h2 (documented: ``H2Connection``'s methods and its ``#:`` attributes, the
events, exceptions, ``h2.errors``, ``h2.settings``):

* ``h2.frame_buffer.FrameBuffer``: an undocumented module path.
  ``_data`` (received bytes not yet parsed into a frame) and
  ``_headers_buffer`` (the HEADERS and CONTINUATION frames of an unfinished
  block) are read by :func:`unparsed_bytes` and :func:`pending_header_frames`
  for ``_core.guard``'s header timer, header block cap and early frame size check.
  ``_update_header_buffer(frame)`` is overridden by :class:`FrameBuffer` to
  hand out :class:`DataFrame`.
* ``H2Connection.incoming_buffer``: replaced by :func:`use_frame_buffer`.
* ``H2Connection._frame_dispatch_table``: h2 dispatches received frames on
  their exact class, so :func:`use_frame_buffer` routes :class:`DataFrame`
  as DATA.
* ``H2Connection.decoder``: replaced by :func:`replace_decoder` (the
  decoder that reports COMPRESSION_ERROR, :class:`Decoder`); h2 must
  decode every header block with it.
* ``H2Connection.encoder``: used by :func:`response_headers_frame`, so the
  HPACK state stays h2's own; its table size capped by
  :func:`limit_encoder_table`.
* ``H2Connection.local_settings`` and ``max_inbound_frame_size`` (the latter
  documented, but written here): replaced at once, without a SETTINGS frame
  and its acknowledgement, by :func:`change_local_settings`.
* ``H2Connection.remote_settings``: read (its length, by ``_core.h2``; the
  testing client's settings snapshot). A ``Settings``, undocumented as an
  attribute; checked here, read in place. (``max_inbound_frame_size`` and
  ``max_outbound_frame_size`` are documented; ``highest_inbound_stream_id``
  is named by ``close_connection``'s documentation: read in place.)
* ``H2Connection.streams`` and ``H2Stream.closed``: :func:`stream_live`,
  and the fast paths below.
* ``H2Connection.state_machine.state`` and ``h2.connection.ConnectionState``
  (``SERVER_OPEN``, ``CLOSED``): :func:`connection_closed`, the fast paths.
* ``H2Connection.outbound_flow_control_window`` and, per stream,
  ``outbound_flow_control_window`` and ``max_outbound_frame_size``: read and
  debited by :func:`data_frame_header` as ``send_data`` would.
* ``h2.stream``, an undocumented module: ``Exchange`` (``OPEN``,
  ``HALF_CLOSED_REMOTE``), ``StreamInputs`` (``SEND_HEADERS``,
  ``SEND_END_STREAM``), and each stream's ``state_machine``: its ``state``,
  ``headers_sent`` and ``process_input(input)``, driven by the fast paths
  exactly as h2's ``send_data``/``send_headers`` drive them.
* ``H2Connection._receive_goaway_frame(frame)``: overridden by
  :class:`GoawayTolerantConnection`, the testing client's h2 connection,
  which also writes ``state_machine.state`` back.

hyperframe:

* ``hyperframe.frame._raw_data_repr(data)`` and ``Frame._body_repr()``:
  :class:`DataFrame` overrides the latter with the former, on fewer bytes.

hpack:

* ``Encoder.huffman_coder``, ``hpack.huffman.HuffmanEncoder`` and
  ``hpack.huffman_constants`` (``REQUEST_CODES``, ``REQUEST_CODES_LENGTH``),
  undocumented: :func:`use_linear_huffman` gives the encoder of a server
  connection :class:`HuffmanEncoder`, which encodes as hpack's does in
  linear time. :func:`check_hooks` compares the two on every byte value.
* ``Decoder._decode_indexed``, ``_decode_literal_index``,
  ``_decode_literal_no_index``, ``_update_encoding_context`` and
  ``_assert_valid_table_size``: :class:`Decoder` runs hpack's own decoding
  loop with these steps, adding a count of fields, so that a block of 2,000
  one-byte references never becomes 2,000 tuples (``max_header_fields``).
  :func:`check_hooks` decodes a block with it and compares the fields with
  hpack's own ``decode``. Installing it is the ``H2Connection.decoder``
  hook above.

h11 (documented: ``Connection``'s methods and attributes, the events):

* ``Connection._receive_buffer``: bytes received and not yet parsed into an
  event, of which :func:`h11_buffered` reads the length (the head still
  arriving, for ``max_header_memory``). The public ``trailing_data`` is a
  copy of it: up to 64 KiB copied per read of a slow head.

priority: nothing private. ``_core.scheduler`` uses ``PriorityTree``'s public
methods and exceptions, all exported by ``priority`` itself (importing
them from ``priority.priority`` is not needed). A hook added here would go in
the section marked "priority" below, and in :func:`check_hooks`.
"""

from __future__ import annotations

import functools
import inspect
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import cast, final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h11
import hpack
import hyperframe.frame
from h2.errors import ErrorCodes
from hpack import HeaderTuple
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, PushPromiseFrame

try:  # h2's and hpack's undocumented modules (listed above)
    import h2.frame_buffer
    import h2.stream
    import hpack.huffman
    import hpack.huffman_constants
except ImportError as exc:
    raise ImportError(f"trio_h2 needs h2's module {exc.name}, which h2 "
                      f"{metadata.version('h2')} does not have") from exc

LIBRARIES = ("h2", "hpack", "hyperframe", "priority", "h11")

HeaderBlockFrame = HeadersFrame | ContinuationFrame | PushPromiseFrame


def installed_versions() -> str:
    """``"h2 4.4.1, hpack 4.2.0, ..."``: what a :class:`HookMissing` names."""
    return ", ".join(f"{name} {metadata.version(name)}" for name in LIBRARIES)


class HookMissing(ImportError):
    """A hook listed in this module's docstring is missing or has changed in
    the installed libraries: trio_h2 cannot run on them."""

    def __init__(self, hook: str, detail: str) -> None:
        super().__init__(
            f"trio_h2 relies on {hook}, which is missing or changed in the installed "
            f"{installed_versions()} ({detail}); install the versions trio_h2's "
            "pyproject.toml allows")
        self.hook = hook


# ---------------------------------------------------------------- the hooks

@dataclass(frozen=True)
class Hook:
    """One undocumented attribute, and what :func:`check_hooks` expects of it."""

    owner: str
    """The dotted path of the module or class that holds it."""
    name: str
    """The attribute's name."""
    on_instance: bool
    """Set on each instance (by ``__init__``), not on ``owner`` itself."""
    expect: Callable[[object], bool]
    """What its value must satisfy."""

    def __str__(self) -> str:
        return f"{self.owner}.{self.name}"


def _is(kind: type | str) -> Callable[[object], bool]:
    """An instance of ``kind`` (a type, or the dotted path of one)."""
    def check(value: object) -> bool:
        cls = _resolve(kind) if isinstance(kind, str) else kind
        return isinstance(cls, type) and isinstance(value, cls)
    return check


def _takes(count: int) -> Callable[[object], bool]:
    """A function of ``count`` parameters (``self`` included)."""
    return lambda value: callable(value) and len(inspect.signature(value).parameters) == count


def _exists(value: object) -> bool:
    return True


_CONNECTION = "h2.connection.H2Connection"
_BUFFER = "h2.frame_buffer.FrameBuffer"
_STREAM = "h2.stream.H2Stream"
_STREAM_MACHINE = "h2.stream.H2StreamStateMachine"
_CONNECTION_MACHINE = "h2.connection.H2ConnectionStateMachine"
_ENCODER = "hpack.Encoder"

HOOKS = (
    # h2: classes, enums and methods.
    Hook("h2.connection.ConnectionState", "SERVER_OPEN", False, _exists),
    Hook("h2.connection.ConnectionState", "CLOSED", False, _exists),
    Hook("h2.stream.StreamState", "OPEN", False, _exists),
    Hook("h2.stream.StreamState", "HALF_CLOSED_REMOTE", False, _exists),
    Hook("h2.stream.StreamInputs", "SEND_HEADERS", False, _exists),
    Hook("h2.stream.StreamInputs", "SEND_END_STREAM", False, _exists),
    Hook(_BUFFER, "_update_header_buffer", False, _takes(2)),
    Hook(_CONNECTION, "_receive_goaway_frame", False, _takes(2)),
    Hook(_STREAM_MACHINE, "process_input", False, _takes(2)),
    Hook(_STREAM, "closed", False, _is(property)),
    # hyperframe.
    Hook("hyperframe.frame", "_raw_data_repr", False, _takes(1)),
    Hook("hyperframe.frame.DataFrame", "_body_repr", False, _takes(1)),
    # h2: a server connection's attributes.
    Hook(_CONNECTION, "incoming_buffer", True, _is(_BUFFER)),
    Hook(_CONNECTION, "_frame_dispatch_table", True,
         lambda table: isinstance(table, dict) and hyperframe.frame.DataFrame in table),
    Hook(_CONNECTION, "decoder", True, _is(hpack.Decoder)),
    Hook(_CONNECTION, "encoder", True, _is(hpack.Encoder)),
    Hook(_ENCODER, "huffman_coder", True, _is(hpack.huffman.HuffmanEncoder)),
    Hook(_CONNECTION, "local_settings", True, _is(h2.settings.Settings)),
    Hook(_CONNECTION, "remote_settings", True, _is(h2.settings.Settings)),
    Hook(_CONNECTION, "max_inbound_frame_size", True, _is(int)),
    Hook(_CONNECTION, "streams", True, _is(dict)),
    Hook(_CONNECTION, "state_machine", True, _is(_CONNECTION_MACHINE)),
    Hook(_CONNECTION_MACHINE, "state", True,
         _is("h2.connection.ConnectionState")),
    Hook(_CONNECTION, "outbound_flow_control_window", True, _is(int)),
    Hook(_BUFFER, "_data", True, _is(bytearray)),
    Hook(_BUFFER, "_headers_buffer", True, _is(list)),
    # h2: a stream's, once a request has opened it.
    Hook(_STREAM, "state_machine", True, _is(_STREAM_MACHINE)),
    Hook(_STREAM, "outbound_flow_control_window", True, _is(int)),
    Hook(_STREAM, "max_outbound_frame_size", True, _is(int)),
    Hook(_STREAM_MACHINE, "state", True, _is("h2.stream.StreamState")),
    Hook(_STREAM_MACHINE, "headers_sent", True, lambda sent: sent in (None, False)),
    # hpack: Decoder.decode's loop, rewritten by Decoder._decode with a count.
    Hook("hpack.Decoder", "_decode_indexed", False, _takes(2)),
    Hook("hpack.Decoder", "_decode_literal_index", False, _takes(2)),
    Hook("hpack.Decoder", "_decode_literal_no_index", False, _takes(2)),
    Hook("hpack.Decoder", "_update_encoding_context", False, _takes(2)),
    Hook("hpack.Decoder", "_assert_valid_table_size", False, _takes(1)),
    # h11: a server connection's.
    Hook("h11.Connection", "_receive_buffer", True, _is("h11._receivebuffer.ReceiveBuffer")),
    # priority: none (see the module docstring).
)
"""What :func:`check_hooks` looks for, in order: classes and functions, then
a fresh server connection's attributes, then those of a stream it received."""


def check_hooks() -> None:
    """Raise :class:`HookMissing` unless every hook in :data:`HOOKS` is there
    and behaves as trio_h2 uses it. Runs when this module is imported."""
    for hook in HOOKS:
        if not hook.on_instance:
            _check(hook, functools.partial(_resolve, hook.owner))
    with _hook(f"{_CONNECTION}()"):
        server = _h2(client_side=False)
    stream = functools.cache(_request_stream)
    holders: dict[str, Callable[[], object]] = {
        # Each is reached through hooks that HOOKS lists (and checks) first.
        _CONNECTION: lambda: server,
        _ENCODER: lambda: server.encoder,
        _BUFFER: lambda: server.incoming_buffer,
        _CONNECTION_MACHINE: lambda: server.state_machine,
        _STREAM: stream,
        _STREAM_MACHINE: lambda: stream().state_machine,
        "h11.Connection": lambda: h11.Connection(h11.SERVER),
    }
    for hook in HOOKS:
        if hook.on_instance:
            _check(hook, holders[hook.owner])
    with _hook(f"h2 decoding header blocks with {_CONNECTION}.decoder"):
        _check_decoder()
    with _hook("hpack.Decoder's steps, run by trio_h2's Decoder"):
        _check_counting_decoder()
    with _hook(f"{_BUFFER}._data and ._headers_buffer holding an unfinished header block"):
        _check_frame_buffer()
    with _hook("hpack.huffman.HuffmanEncoder, matched by trio_h2's HuffmanEncoder"):
        _check_huffman()
    with _hook("h11.Connection._receive_buffer holding an unfinished head"):
        _check_h11_buffer()


def _check(hook: Hook, holder: Callable[[], object]) -> None:
    with _hook(str(hook)):
        value = getattr(holder(), hook.name)
        if not hook.expect(value):
            raise TypeError(f"unexpected value {value!r}")


def _resolve(path: str) -> object:
    """The module or class at dotted ``path`` (its modules imported above)."""
    package, *names = path.split(".")
    found: object = import_module(package)
    for name in names:
        found = getattr(found, name)
    return found


@contextmanager
def _hook(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # whatever a changed library raises, said loudly
        raise HookMissing(what, f"{type(exc).__name__}: {exc}") from exc


def _h2(*, client_side: bool) -> h2.connection.H2Connection:
    return h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=client_side, header_encoding=None))


_REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"t")]


def _request_wire() -> bytes:
    """A client's preface, SETTINGS and one GET on stream 1."""
    client = _h2(client_side=True)
    client.initiate_connection()
    client.send_headers(1, _REQUEST, end_stream=True)
    return client.data_to_send()


def _request_stream() -> h2.stream.H2Stream:
    """h2's stream 1 on a server that has received a GET."""
    server = _h2(client_side=False)
    server.initiate_connection()
    server.receive_data(_request_wire())
    return server.streams[1]


def _check_decoder() -> None:
    decoded: list[bytes] = []

    class Recording(hpack.Decoder):
        def decode(self, data: bytes, raw: bool = False) -> list[hpack.HeaderTuple]:
            decoded.append(data)
            return list(super().decode(data, raw))

    server = _h2(client_side=False)
    replace_decoder(server, Recording())
    server.receive_data(_request_wire())
    if len(decoded) != 1:
        raise AssertionError(f"the replaced decoder decoded {len(decoded)} blocks, not 1")


def _check_counting_decoder() -> None:
    """:class:`Decoder` decodes as hpack does: the same fields, in order, and
    the same dynamic table after a block that adds to it."""
    encoder = hpack.Encoder()
    fields = [*_REQUEST, (b"x-a", b"1"), (b"x-b", b"22")]
    blocks = [encoder.encode(fields), encoder.encode(fields)]  # the second: references
    ours = Decoder(max_header_list_size=65536, max_fields=len(fields))
    theirs = hpack.Decoder()
    for block in blocks:
        decoded = [tuple(field) for field in ours.decode(block, raw=True)]
        expected = [tuple(field) for field in theirs.decode(block, raw=True)]
        if decoded != expected:
            raise AssertionError(f"decoded {decoded!r}, hpack decodes {expected!r}")


def _check_frame_buffer() -> None:
    server = _h2(client_side=False)
    server.receive_data(_request_wire()
                        + b"\x00\x00\x01\x01\x00\x00\x00\x00\x03\x82"  # HEADERS, no END_HEADERS
                        + b"\x00\x00")  # the start of the next frame's header
    frames = pending_header_frames(server)
    if [frame.data for frame in frames] != [b"\x82"] or unparsed_bytes(server) != b"\x00\x00":
        raise AssertionError(f"buffer holds {frames!r} and {bytes(unparsed_bytes(server))!r}")


def _check_h11_buffer() -> None:
    conn = h11.Connection(h11.SERVER)
    head = b"GET / HTTP/1.1\r\nhost: x\r\n"
    conn.receive_data(head)
    if conn.next_event() is not h11.NEED_DATA or h11_buffered(conn) != len(head):
        raise AssertionError(f"h11 holds {h11_buffered(conn)} bytes of a "
                             f"{len(head)}-byte head")


def _check_huffman() -> None:
    theirs = hpack.Encoder().huffman_coder
    for value in (bytes(range(256)), b"\xff" * 3, b"a", b"", b"trio_h2/1 \x00\x7f"):
        if HUFFMAN.encode(value) != theirs.encode(value):
            raise AssertionError(f"{value!r} encodes as {HUFFMAN.encode(value).hex()}, "
                                 f"hpack encodes {theirs.encode(value).hex()}")


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


# ------------------------------------------------- h2: the connection's state

def change_local_settings(conn: h2.connection.H2Connection,
                          changes: Mapping[h2.settings.SettingCodes, int]) -> None:
    """Apply ``changes`` to the settings h2 enforces on what it receives, at
    once: no SETTINGS frame, no waiting for its acknowledgement. Advertising
    them is the caller's business (``initiate_connection`` sends all of
    them; after it, a change the peer need not know about)."""
    # Settings holds codes h2 does not know as plain ints (see _h2extras).
    values = {cast(h2.settings.SettingCodes, code): value
              for code, value in conn.local_settings.items()}
    conn.local_settings = h2.settings.Settings(client=conn.config.client_side,
                                               initial_values={**values, **changes})
    conn.max_inbound_frame_size = conn.local_settings.max_frame_size


def limit_encoder_table(conn: h2.connection.H2Connection, limit: int) -> None:
    """Keep ``conn``'s HPACK encoder table within ``limit`` bytes. h2 sizes
    it to the client's SETTINGS_HEADER_TABLE_SIZE, which is only the most the
    client's decoder accepts (RFC 7541 section 4.2: the encoder may use less,
    and says so in its next header block)."""
    if conn.encoder.header_table_size > limit:
        conn.encoder.header_table_size = limit


def replace_decoder(conn: h2.connection.H2Connection, decoder: hpack.Decoder) -> None:
    """Have h2 decode every header block it receives with ``decoder``."""
    conn.decoder = decoder


def unparsed_bytes(conn: h2.connection.H2Connection) -> bytearray:
    """Received bytes h2 has not parsed into a frame yet (a frame header, or
    a frame still arriving). Read only: h2 owns the buffer."""
    data: bytearray = conn.incoming_buffer._data
    return data


def pending_header_frames(conn: h2.connection.H2Connection) -> Sequence[HeaderBlockFrame]:
    """The frames of the header block h2 is still receiving (HEADERS, then
    CONTINUATION), none if no block is unfinished. Read only."""
    return conn.incoming_buffer._headers_buffer


def h11_buffered(conn: h11.Connection) -> int:
    """Bytes h11 holds that no event has taken yet (a head still arriving)."""
    return len(conn._receive_buffer)


def stream_live(conn: h2.connection.H2Connection, stream_id: int) -> bool:
    """Whether h2 knows ``stream_id`` and has not closed it."""
    stream = conn.streams.get(stream_id)
    return stream is not None and not stream.closed


def connection_closed(conn: h2.connection.H2Connection) -> bool:
    """Whether h2's side of the connection is closed (a GOAWAY sent or received)."""
    return conn.state_machine.state is h2.connection.ConnectionState.CLOSED


check_hooks()

# Everything below relies on the hooks checked above.

# ------------------------------------------------ h2: sending without copies

# RFC 9113 section 4.1: a 24-bit length (as 16 + 8 bits), the type, the
# flags, and the reserved bit with the 31-bit stream id.
_FRAME_HEADER = struct.Struct(">HBBBL")
_DATA = 0x0  # RFC 9113 section 6.1
_HEADERS = 0x1  # RFC 9113 section 6.2
_CONTINUATION = 0x9  # RFC 9113 section 6.10
_END_STREAM = 0x1
_END_HEADERS = 0x4
# The stream states in which h2 lets a server send DATA (h2.stream's
# transitions for StreamInputs.SEND_DATA that change nothing).
_SENDING = frozenset({h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE})
_SERVER_OPEN = h2.connection.ConnectionState.SERVER_OPEN
_SEND_HEADERS = h2.stream.StreamInputs.SEND_HEADERS
_SEND_END_STREAM = h2.stream.StreamInputs.SEND_END_STREAM


def data_frame_header(conn: h2.connection.H2Connection, stream_id: int, size: int, *,
                      end_stream: bool = False) -> bytes | None:
    """Do what ``conn.send_data(stream_id, payload, end_stream=end_stream)``
    does for an unpadded payload of ``size`` bytes, except queue it: check
    that the connection and the stream may send it, debit both flow-control
    windows, move the stream's state machine for END_STREAM (h2's own
    transition), and return the 9-byte frame header. The caller writes the
    header and then the payload, after everything h2 has queued so far.

    Returns None, having changed nothing, whenever h2 must decide: the
    caller then calls ``send_data``, which raises as h2 does.

    Why: h2 copies a payload five times on its way out (``tobytes``, the
    frame body, the frame, its buffer, ``data_to_send``) and spends about
    6 us per frame, 16 KiB or 12 bytes; 1 MiB downloads went 1.4x as fast
    without it. tests/core/test_h2extras.py pins this to h2's own bytes, windows
    and stream states.
    """
    stream = conn.streams.get(stream_id)
    if (stream is None
            or stream.state_machine.state not in _SENDING
            or conn.state_machine.state is not _SERVER_OPEN
            or not (0 if end_stream else 1) <= size <= conn.max_outbound_frame_size
            or size > conn.outbound_flow_control_window
            or size > stream.outbound_flow_control_window):
        return None
    conn.outbound_flow_control_window -= size
    stream.outbound_flow_control_window -= size
    if end_stream:
        stream.state_machine.process_input(_SEND_END_STREAM)
    return _frame_header(_DATA, _END_STREAM if end_stream else 0, stream_id, size)


def response_headers_frame(conn: h2.connection.H2Connection, stream_id: int,
                           headers: list[tuple[bytes, bytes]], *,
                           end_stream: bool) -> bytes | None:
    """Do what ``conn.send_headers(stream_id, headers, end_stream=...)``
    does for a final response header block, except queue it: move the
    stream's state machine with h2's own inputs, encode with h2's HPACK
    encoder, and return the frames, HEADERS then CONTINUATION if the block
    is larger than the client's SETTINGS_MAX_FRAME_SIZE, sliced as h2 slices
    them. The caller writes them after everything h2 has queued so far.

    ``headers`` must be what h2 would send after its own (disabled)
    normalisation and validation: lowercase bytes, pseudo-headers first.
    Returns None, having changed nothing, for anything else (informational
    responses, trailers, a stream that cannot send): the caller then calls
    ``send_headers``.

    Why: h2's send_headers spent about 16 us on four fields, 5 of them
    encoding; this is 15% of a small request's cost at 100 connections.
    tests/core/test_h2extras.py pins the frames, HPACK state and stream states
    to h2's own.
    """
    stream = conn.streams.get(stream_id)
    if stream is None:
        return None
    machine, limit = stream.state_machine, stream.max_outbound_frame_size
    if (not limit or machine.state not in _SENDING or machine.headers_sent
            or conn.state_machine.state is not _SERVER_OPEN
            or headers[0][0] != b":status" or headers[0][1][:1] == b"1"):
        return None
    machine.process_input(_SEND_HEADERS)  # h2's response_sent
    block = conn.encoder.encode(headers)
    flags = _END_STREAM if end_stream else 0
    if end_stream:
        machine.process_input(_SEND_END_STREAM)
    if len(block) <= limit:
        return _frame(_HEADERS, flags | _END_HEADERS, stream_id, block)
    # Huffman coding can make a field longer than it is, so only the encoded
    # size tells (and the encoder's state has moved: no going back to h2).
    pieces = [block[i:i + limit] for i in range(0, len(block), limit)]
    frames = [_frame(_HEADERS, flags, stream_id, pieces[0])]
    frames += [_frame(_CONTINUATION, 0, stream_id, piece) for piece in pieces[1:-1]]
    frames.append(_frame(_CONTINUATION, _END_HEADERS, stream_id, pieces[-1]))
    return b"".join(frames)


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return _frame_header(kind, flags, stream_id, len(payload)) + payload


def _frame_header(kind: int, flags: int, stream_id: int, size: int) -> bytes:
    return _FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, flags, stream_id)


# ------------------------------- hyperframe and h2: received DATA, cheap repr

class DataFrame(hyperframe.frame.DataFrame):
    """hyperframe's DATA frame, whose ``repr`` hexlifies only what it shows.

    h2 formats every frame it receives for a trace log that it then drops
    (``repr(frame)`` in ``H2Connection._receive_frame``), and hyperframe
    hexlifies a whole DATA payload to show its first ten bytes: 29% of the
    server's CPU while it received uploads. Same repr, character for
    character (tests/core/test_h2extras.py); same name, for that reason.
    """

    def _body_repr(self) -> str:
        # The body hyperframe would serialize: padding length, data, padding.
        head = self.serialize_padding_data() + bytes(self.data[:11])
        head += b"\0" * min(self.pad_length, 11)
        return hyperframe.frame._raw_data_repr(head[:11])


@final
class FrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's incoming frame buffer, yielding :class:`DataFrame` for DATA."""

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        if type(f) is hyperframe.frame.DataFrame:
            f.__class__ = DataFrame  # a subclass that only overrides a method
        return super()._update_header_buffer(f)


def use_frame_buffer(conn: h2.connection.H2Connection) -> None:
    """Give a new server connection the :class:`FrameBuffer`. h2 dispatches
    received frames on their exact class, so ours is routed as DATA."""
    conn.incoming_buffer = FrameBuffer(server=True)
    table = conn._frame_dispatch_table
    table[DataFrame] = table[hyperframe.frame.DataFrame]


# ------------------------------------------ h2 as a client (trio_h2.testing)

class GoawayTolerantConnection(h2.connection.H2Connection):
    """h2's connection, still open after receiving a GOAWAY.

    RFC 9113 section 6.8 lets streams up to last_stream_id complete after a
    GOAWAY, but h2 moves the connection to CLOSED on receiving one and then
    rejects every later frame. The testing client uses this connection and
    refuses new streams itself once a GOAWAY has arrived.
    """

    def _receive_goaway_frame(
            self, frame: GoAwayFrame) -> tuple[list[Frame], list[h2.events.Event]]:
        previous = self.state_machine.state
        result = super()._receive_goaway_frame(frame)
        if previous is not h2.connection.ConnectionState.CLOSED:
            self.state_machine.state = previous
        return result


# ------------------------------------------------------------------ priority
# No hook (see the module docstring).
