"""Every use trio_h2 makes of h2's, hpack's, hyperframe's and priority's
undocumented parts, and the check, run when this package is imported, that
each is still there. Pure. Nothing else in trio_h2 reaches inside these
libraries: it calls the functions and classes this package exports.

This module holds the list (below, and :data:`HOOKS`) and the one check;
the code that uses the hooks is in one module per library: ``hpackhooks``
(the counting decoder, the linear Huffman encoder), ``h2hooks`` (h2's
connection state, read and changed in place; the testing client's
connection), ``h11hooks`` (h11's receive buffer), and ``framing`` (frames
written and read around h2), imported only once the check has passed.

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
* ``H2Connection._receive_data_frame(frame)``: h2's DATA handler, wrapped
  (in the dispatch table) by :func:`reset_on_body_length`, which makes the
  ``InvalidBodyLengthError`` it raises a stream reset (a
  :class:`BodyLengthReset` event) instead of h2's connection error.
  :func:`check_hooks` sends a body past its content-length through it.
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
* ``Connection._reader``, a ``ContentLengthReader`` while a Content-Length
  body arrives, and its ``_remaining``: :func:`h11_take_body` takes body
  bytes off that count, so that they reach the application without h11's
  three copies (bench/cpu_cost.py --only h1-echo: 1,270 to 964 us per MiB). :func:`check_hooks`
  feeds a body half past h11 and half through it, and compares the events.

priority: nothing private. ``_core.scheduler`` uses ``PriorityTree``'s public
methods and exceptions, all exported by ``priority`` itself (importing
them from ``priority.priority`` is not needed). A hook added here would go in
a module of its own in this package, in :data:`HOOKS` and in :func:`check_hooks`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module, metadata

import h2.config
import h2.connection
import h2.settings
import h11
import hpack
import hyperframe.frame

try:  # h2's and hpack's undocumented modules (listed above)
    import h2.frame_buffer
    import h2.stream
    import hpack.huffman
    import hpack.huffman_constants
except ImportError as exc:
    raise ImportError(f"trio_h2 needs h2's module {exc.name}, which h2 "
                      f"{metadata.version('h2')} does not have") from exc

from .h2hooks import (
    BodyLengthReset,
    GoawayTolerantConnection,
    HeaderBlockFrame,
    change_local_settings,
    connection_closed,
    limit_encoder_table,
    pending_header_frames,
    replace_decoder,
    reset_on_body_length,
    stream_live,
    unparsed_bytes,
)
from .h11hooks import h11_buffered, h11_take_body
from .hpackhooks import (
    HUFFMAN,
    Decoder,
    FieldsDropped,
    HeaderBlockUndecodable,
    HuffmanEncoder,
    fields_dropped,
    use_linear_huffman,
)

LIBRARIES = ("h2", "hpack", "hyperframe", "priority", "h11")


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
    Hook(_CONNECTION, "_receive_data_frame", False, _takes(2)),
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
    Hook("h11.Connection", "_reader", True, lambda reader: reader is not None),
    Hook("h11._readers", "ContentLengthReader", False, lambda value: isinstance(value, type)),
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
    with _hook(f"{_CONNECTION}._receive_data_frame raising InvalidBodyLengthError, "
               "wrapped to reset the stream"):
        _check_body_length()
    with _hook(f"{_BUFFER}._data and ._headers_buffer holding an unfinished header block"):
        _check_frame_buffer()
    with _hook("hpack.huffman.HuffmanEncoder, matched by trio_h2's HuffmanEncoder"):
        _check_huffman()
    with _hook("h11.Connection._receive_buffer holding an unfinished head"):
        _check_h11_buffer()
    with _hook("h11's ContentLengthReader._remaining, taken off by h11_take_body"):
        _check_h11_take_body()


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


def _check_body_length() -> None:
    """Two bytes of body past a content-length of 1: the stream reset, the
    connection still open."""
    client = _h2(client_side=True)
    client.initiate_connection()
    client.send_headers(1, [(b":method", b"POST"), *_REQUEST[1:], (b"content-length", b"1")])
    client.send_data(1, b"12")
    server = _h2(client_side=False)
    reset_on_body_length(server)
    events = server.receive_data(client.data_to_send())
    resets = [(event.stream_id, event.expected, event.actual)
              for event in events if isinstance(event, BodyLengthReset)]
    if resets != [(1, 1, 2)] or stream_live(server, 1) or connection_closed(server):
        raise AssertionError(f"events {events!r}, stream 1 live: {stream_live(server, 1)}, "
                             f"connection closed: {connection_closed(server)}")


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


def _check_h11_take_body() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n")
    events: list[object] = [type(conn.next_event()), h11_take_body(conn, 6)]
    conn.receive_data(b"7890GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    events += [conn.next_event(), h11_take_body(conn, 100), type(conn.next_event())]
    expected: list[object] = [h11.Request, 6, h11.Data(data=b"7890"), 0, h11.EndOfMessage]
    if events != expected:
        raise AssertionError(f"events {events!r}, expected {expected!r}")


def _check_huffman() -> None:
    theirs = hpack.Encoder().huffman_coder
    for value in (bytes(range(256)), b"\xff" * 3, b"a", b"", b"trio_h2/1 \x00\x7f"):
        if HUFFMAN.encode(value) != theirs.encode(value):
            raise AssertionError(f"{value!r} encodes as {HUFFMAN.encode(value).hex()}, "
                                 f"hpack encodes {theirs.encode(value).hex()}")


check_hooks()

# Imported only now: it relies on the hooks checked above as it is imported.
from .framing import (  # noqa: E402
    DataFrame,
    FrameBuffer,
    data_frame_header,
    response_headers_frame,
    use_frame_buffer,
)

__all__ = [
    "HOOKS",
    "HUFFMAN",
    "LIBRARIES",
    "BodyLengthReset",
    "DataFrame",
    "Decoder",
    "FieldsDropped",
    "FrameBuffer",
    "GoawayTolerantConnection",
    "HeaderBlockFrame",
    "HeaderBlockUndecodable",
    "Hook",
    "HookMissing",
    "HuffmanEncoder",
    "change_local_settings",
    "check_hooks",
    "connection_closed",
    "data_frame_header",
    "fields_dropped",
    "h11_buffered",
    "h11_take_body",
    "installed_versions",
    "limit_encoder_table",
    "pending_header_frames",
    "replace_decoder",
    "reset_on_body_length",
    "response_headers_frame",
    "stream_live",
    "unparsed_bytes",
    "use_frame_buffer",
    "use_linear_huffman",
]
