"""trio_h2's shortcuts around h2 (in ``_core.h2internals``), against h2 itself,
and the check of h2's internals that runs when trio_h2 is imported.

The fast DATA path must leave h2 exactly where ``send_data`` would: the same
bytes on the wire, the same windows, and no decision h2 would refuse. Twin
server connections get the same input; one sends with h2, the other with the
fast path, and everything observable is compared. The frame buffer's DATA
frames must repr as hyperframe's do, and h2 must still route them as DATA.

A hook that a new release of h2 or hyperframe renames must stop trio_h2 from
importing, naming the hook and the versions: never switch a defence off.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hyperframe.frame
import pytest
from h2.errors import ErrorCodes

from tests.support.requests import GET, POST
from trio_h2._core import h2internals as _h2internals
from trio_h2._core.h2internals import (
    HOOKS,
    DataFrame,
    HookMissing,
    check_hooks,
    data_frame_header,
    installed_versions,
    response_headers_frame,
    use_frame_buffer,
)
from trio_h2._core.output import Output


def _server() -> h2.connection.H2Connection:
    return h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=False, header_encoding=None))


class Twins:
    """A client and two servers fed the same bytes; the client reads server A."""

    def __init__(self) -> None:
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.a, self.b = _server(), _server()
        self.client.initiate_connection()
        for server in (self.a, self.b):
            server.initiate_connection()
        self._to_servers()
        self._to_client(self.a.data_to_send())
        self.b.data_to_send()
        self._to_servers()

    def _to_servers(self) -> None:
        data = self.client.data_to_send()
        for server in (self.a, self.b):
            server.receive_data(data)

    def _to_client(self, data: bytes) -> list[h2.events.Event]:
        events = self.client.receive_data(data)
        self._to_servers()  # acknowledgements, WINDOW_UPDATE
        return events

    def open(self, headers: list[tuple[bytes, bytes]], *, end_stream: bool,
             respond: bool = True) -> int:
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers, end_stream=end_stream)
        self._to_servers()
        if respond:
            for server in (self.a, self.b):
                server.send_headers(stream_id, [(b":status", b"200")])
        return stream_id

    def respond(self, stream_id: int, headers: list[tuple[bytes, bytes]],
                end_stream: bool) -> list[h2.events.Event]:
        """Response headers both ways (h2 on A, the fast path on B); check
        the bytes and the stream state; deliver A's bytes to the client."""
        self.a.send_headers(stream_id, headers, end_stream=end_stream)
        frame = response_headers_frame(self.b, stream_id, headers, end_stream=end_stream)
        assert frame is not None
        wire_a, wire_b = self.a.data_to_send(), self.b.data_to_send() + frame
        assert wire_b == wire_a
        assert _stream_state(self.b, stream_id) == _stream_state(self.a, stream_id)
        machines = [server.streams[stream_id].state_machine for server in (self.a, self.b)]
        assert [(m.headers_sent, m.trailers_sent) for m in machines] == [(True, None)] * 2
        assert self.b.streams[stream_id].request_method == (
            self.a.streams[stream_id].request_method)
        assert self.b.encoder.header_table.dynamic_entries == (
            self.a.encoder.header_table.dynamic_entries)
        return self._to_client(wire_a)

    def windows(self, server: h2.connection.H2Connection, stream_id: int) -> tuple[int, int]:
        return (server.outbound_flow_control_window,
                server.streams[stream_id].outbound_flow_control_window)

    def send(self, stream_id: int, payload: bytes,
             end_stream: bool = False) -> list[h2.events.Event]:
        """Send ``payload`` both ways; check bytes, windows and stream state;
        deliver A's bytes to the client."""
        self.a.send_data(stream_id, payload, end_stream=end_stream)
        header = data_frame_header(self.b, stream_id, len(payload), end_stream=end_stream)
        assert header is not None
        out = Output()
        out.append(self.b.data_to_send())  # what h2 queued first: HEADERS
        out.append(header)
        out.append(memoryview(payload))
        wire_a, wire_b = self.a.data_to_send(), out.take()
        assert wire_b == wire_a
        assert self.windows(self.b, stream_id) == self.windows(self.a, stream_id)
        assert _stream_state(self.b, stream_id) == _stream_state(self.a, stream_id)
        return self._to_client(wire_a)


def _stream_state(server: h2.connection.H2Connection, stream_id: int) -> tuple[object, object]:
    stream = server.streams[stream_id]
    return stream.state_machine.state, stream.state_machine.stream_closed_by


@pytest.mark.parametrize("headers,end_stream", [(GET, True), (POST, False)],
                         ids=["half-closed-remote", "open"])
def test_frames_and_windows_match_h2s_send_data(
        headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
    twins = Twins()
    stream_id = twins.open(headers, end_stream=end_stream)
    received = b""
    for size in (1, 100, 5000, 16384, 16383, 7):
        payload = bytes([size % 251]) * size
        for event in twins.send(stream_id, payload):
            if isinstance(event, h2.events.DataReceived):
                received += event.data
                twins.client.acknowledge_received_data(event.flow_controlled_length, stream_id)
    assert received == b"".join(bytes([n % 251]) * n for n in (1, 100, 5000, 16384, 16383, 7))


@pytest.mark.parametrize("last", [b"end", b""], ids=["with-data", "empty"])
@pytest.mark.parametrize("headers,end_stream", [(GET, True), (POST, False)],
                         ids=["half-closed-remote", "open"])
def test_end_stream_frame_and_state_match_h2s(
        headers: list[tuple[bytes, bytes]], end_stream: bool, last: bytes) -> None:
    twins = Twins()
    stream_id = twins.open(headers, end_stream=end_stream)
    events = twins.send(stream_id, last, end_stream=True)
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
    assert twins.b.streams[stream_id].state_machine.state == (
        h2.stream.StreamState.CLOSED if end_stream
        else h2.stream.StreamState.HALF_CLOSED_LOCAL)
    # And h2 refuses what follows, as it would have.
    _refused(twins.b, stream_id, 10)


def _refused(server: h2.connection.H2Connection, stream_id: int, size: int) -> None:
    """data_frame_header declines and changes nothing; h2 itself refuses too."""
    stream = server.streams.get(stream_id)
    before = (server.outbound_flow_control_window,
              None if stream is None else stream.outbound_flow_control_window)
    assert data_frame_header(server, stream_id, size) is None
    assert (server.outbound_flow_control_window,
            None if stream is None else stream.outbound_flow_control_window) == before
    with pytest.raises(h2.exceptions.H2Error):
        server.send_data(stream_id, b"x" * size)


def test_declines_what_h2_refuses() -> None:
    twins = Twins()
    server = twins.b
    stream_id = twins.open(GET, end_stream=True)
    _refused(server, 99, 10)  # no such stream
    _refused(server, stream_id, server.max_outbound_frame_size + 1)
    # A window smaller than the frame: the stream's...
    server.streams[stream_id].outbound_flow_control_window = 10
    _refused(server, stream_id, 11)
    server.streams[stream_id].outbound_flow_control_window = 65535
    # ... and the connection's.
    server.outbound_flow_control_window = 10
    _refused(server, stream_id, 11)
    server.outbound_flow_control_window = 65535
    assert data_frame_header(server, stream_id, 11) is not None  # sendable again


def test_declines_a_zero_length_frame_without_end_stream() -> None:
    """Empty DATA without END_STREAM is h2's to send (or the caller's to skip)."""
    twins = Twins()
    stream_id = twins.open(GET, end_stream=True)
    assert data_frame_header(twins.b, stream_id, 0) is None
    assert data_frame_header(twins.b, stream_id, 0, end_stream=True) is not None


def test_declines_closed_streams_and_connections() -> None:
    twins = Twins()
    ended = twins.open(GET, end_stream=True)
    reset = twins.open(GET, end_stream=True)
    twins.b.send_data(ended, b"", end_stream=True)  # half-closed (local) then closed
    twins.client.reset_stream(reset, ErrorCodes.CANCEL)
    twins._to_servers()
    _refused(twins.b, ended, 10)
    _refused(twins.b, reset, 10)
    live = twins.open(GET, end_stream=True)
    twins.b.close_connection()
    _refused(twins.b, live, 10)


def test_output_joins_pieces_in_order() -> None:
    out = Output()
    out.append(b"ab")
    out.append(b"")
    out.append(memoryview(b"xcdx")[1:3])
    out.append(bytearray(b"ef"))
    assert len(out) == 6
    assert out.take() == b"abcdef"
    assert len(out) == 0 and out.take() == b""


@pytest.mark.parametrize("data", [b"", b"a", b"0123456789", b"0123456789A", bytes(range(256)) * 64])
@pytest.mark.parametrize("pad_length", [None, 0, 3, 255])
def test_data_frame_repr_is_hyperframes(data: bytes, pad_length: int | None) -> None:
    frames = [cls(7, data) for cls in (hyperframe.frame.DataFrame, DataFrame)]
    for frame in frames:
        frame.flags.add("END_STREAM")
        if pad_length is not None:
            frame.flags.add("PADDED")
            frame.pad_length = pad_length
    theirs, ours = (repr(frame) for frame in frames)
    assert ours == theirs


def test_frame_buffer_data_frames_reach_h2_as_data() -> None:
    """Received DATA, padded or not, is ours and still DATA to h2: events and
    flow control are as without the buffer."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None))
    plain, ours = _server(), _server()
    use_frame_buffer(ours)
    client.initiate_connection()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, POST)
    client.send_data(stream_id, b"x" * 1000, pad_length=10)
    client.send_data(stream_id, b"y" * 16384, end_stream=True)
    wire = client.data_to_send()
    routed: list[type[hyperframe.frame.Frame]] = []
    handle_data = ours._frame_dispatch_table[DataFrame]

    def record(frame: hyperframe.frame.Frame) -> object:
        routed.append(type(frame))
        return handle_data(frame)

    ours._frame_dispatch_table[DataFrame] = record
    events = [[_summary(event) for event in server.receive_data(wire)]
              for server in (plain, ours)]
    assert events[1] == events[0]
    assert ("DataReceived", b"x" * 1000, 1011) in events[1]
    assert routed == [DataFrame, DataFrame]
    assert ours.inbound_flow_control_window == plain.inbound_flow_control_window


def _summary(event: h2.events.Event) -> tuple[str, bytes | None, int | None]:
    return (type(event).__name__, getattr(event, "data", None),
            getattr(event, "flow_controlled_length", None))



def test_response_headers_frames_and_hpack_state_match_h2s() -> None:
    """Several responses in a row, so that the HPACK dynamic table evolves
    (new values, indexed repeats, a never-seen name), then DATA and trailers
    through h2 on the streams the fast path answered."""
    twins = Twins()
    blocks = [
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"12")],
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"12")],
        [(b":status", b"404"), (b"content-type", b"text/html"), (b"x-long", b"v" * 3000)],
        [(b":status", b"204"), (b"date", b"Sat, 21 Nov 2026 01:02:03 GMT")],
    ]
    for i, block in enumerate(blocks):
        ends = i % 2 == 1
        stream_id = twins.open(GET, end_stream=True, respond=False)
        events = twins.respond(stream_id, block, end_stream=ends)
        received = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
        assert received.headers == block
        assert any(isinstance(e, h2.events.StreamEnded) for e in events) == ends
        if not ends:
            for server in (twins.a, twins.b):
                server.send_data(stream_id, b"body")
                server.send_headers(stream_id, [(b"x-trailer", b"1")], end_stream=True)
            wire = twins.a.data_to_send()
            assert twins.b.data_to_send() == wire
            assert _stream_state(twins.b, stream_id) == _stream_state(twins.a, stream_id)
            twins._to_client(wire)


def test_response_headers_on_an_open_request_match_h2s() -> None:
    twins = Twins()
    stream_id = twins.open(POST, end_stream=False, respond=False)
    twins.respond(stream_id, [(b":status", b"200")], end_stream=True)
    assert twins.b.streams[stream_id].state_machine.state == (
        h2.stream.StreamState.HALF_CLOSED_LOCAL)


@pytest.mark.parametrize("case", ["informational", "trailers", "closed", "no stream"])
def test_response_headers_frame_declines_what_is_h2s_to_do(case: str) -> None:
    twins = Twins()
    server = twins.b
    stream_id = twins.open(GET, end_stream=True, respond=False)
    headers = [(b":status", b"200")]
    if case == "informational":
        headers = [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")]
    elif case == "trailers":
        server.send_headers(stream_id, headers)
        headers = [(b"x-trailer", b"1")]
    elif case == "closed":
        server.send_headers(stream_id, headers, end_stream=True)
    elif case == "no stream":
        stream_id += 2
    server.data_to_send()
    table = list(server.encoder.header_table.dynamic_entries)
    state = _stream_state(server, stream_id) if stream_id in server.streams else None
    assert response_headers_frame(server, stream_id, headers, end_stream=False) is None
    assert list(server.encoder.header_table.dynamic_entries) == table
    assert (_stream_state(server, stream_id) if stream_id in server.streams else None) == state
    assert server.data_to_send() == b""


@pytest.mark.parametrize("value", [
    b"v" * 40_000,  # plainly over one frame
    b"\x16" * 6000,  # 30-bit Huffman codes: 6000 bytes encode to 22,500
    "é".encode() * 3500,  # UTF-8 bytes have 20 to 26-bit codes
    b"\\" * 9000,  # 19 bits each
], ids=["large", "huffman-control", "huffman-utf8", "huffman-backslash"])
@pytest.mark.parametrize("end_stream", [True, False])
def test_blocks_over_a_frame_are_split_as_h2_splits_them(value: bytes, end_stream: bool) -> None:
    twins = Twins()
    stream_id = twins.open(GET, end_stream=True, respond=False)
    events = twins.respond(stream_id, [(b":status", b"200"), (b"x-big", value)],
                           end_stream=end_stream)
    received = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert received.headers[1] == (b"x-big", value)


def test_table_size_updates_before_a_block_are_counted() -> None:
    """Each SETTINGS_HEADER_TABLE_SIZE change puts an update at the start of
    the next block: a block whose fields alone fit one frame may not."""
    twins = Twins()
    stream_id = twins.open(GET, end_stream=True, respond=False)
    for size in range(1000, 1012):
        twins.client.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: size})
        twins._to_servers()
        ack = twins.a.data_to_send()
        assert twins.b.data_to_send() == ack
        twins._to_client(ack)
    assert len(twins.b.encoder.table_size_changes) == 12
    value = b";" * (16384 - 32)  # ';' has an 8-bit code: about one frame on its own
    twins.respond(stream_id, [(b":status", b"200"), (b"x-big", value)], end_stream=True)


# ------------------------------------------------------- the check of hooks

def test_the_installed_versions_are_named() -> None:
    from importlib import metadata
    for name in ("h2", "hpack", "hyperframe", "priority"):
        assert f"{name} {metadata.version(name)}" in installed_versions()


def test_a_missing_method_fails_the_check_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import h2.frame_buffer
    monkeypatch.delattr(h2.frame_buffer.FrameBuffer, "_update_header_buffer")
    with pytest.raises(HookMissing) as failure:
        check_hooks()
    message = str(failure.value)
    assert "h2.frame_buffer.FrameBuffer._update_header_buffer" in message
    assert installed_versions() in message and f"h2 {h2.__version__}" in message
    assert isinstance(failure.value, ImportError)


def test_a_missing_frame_buffer_attribute_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The header timer's own hook: if h2 renames it, no silent 'no block pending'."""
    import h2.frame_buffer
    init = h2.frame_buffer.FrameBuffer.__init__

    def renamed(self: Any, server: bool = False) -> None:
        init(self, server)
        self.header_frames = self.__dict__.pop("_headers_buffer")

    monkeypatch.setattr(h2.frame_buffer.FrameBuffer, "__init__", renamed)
    with pytest.raises(HookMissing, match=r"FrameBuffer\._headers_buffer.*h2 4\."):
        check_hooks()


def test_a_decoder_h2_ignores_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attribute is there but h2 no longer decodes with what is put in it
    (a release that keeps the decoder elsewhere): the check sees it."""
    monkeypatch.setattr(h2.connection.H2Connection, "decoder", property(
        lambda self: self.__dict__["_own_decoder"],
        lambda self, decoder: self.__dict__.setdefault("_own_decoder", decoder),  # first only
    ), raising=False)
    with pytest.raises(HookMissing, match=r"decoding header blocks.*decoded 0 blocks"):
        check_hooks()


def test_the_module_docstring_lists_every_hook() -> None:
    doc = _h2internals.__doc__ or ""
    for hook in HOOKS:
        assert re.search(rf"\b{re.escape(hook.name)}\b", doc), hook


# Run in a fresh interpreter: for each hook, take it away from h2 or
# hyperframe as a new release might (delete it, or make it unreadable on
# instances), import trio_h2 from scratch, and report how the import ended.
_BREAK_EACH_HOOK = """
import enum, json, sys, types
import trio_h2._core.h2internals as internals

def resolve(path):
    package, *names = path.split(".")
    found = __import__(package)
    for name in names:
        found = getattr(found, name)
    return found

def gone(name):
    def read(self):  # what reading a renamed attribute raises
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
    return read

outcomes = {}
for hook in internals.HOOKS:
    owner, undo = resolve(hook.owner), []
    if isinstance(owner, enum.EnumMeta):
        module = sys.modules[owner.__module__]
        kept = [member.name for member in owner if member.name != hook.name]
        setattr(module, owner.__name__, enum.Enum(owner.__name__, kept))
        undo.append(lambda: setattr(module, owner.__name__, owner))
    elif hook.on_instance:
        setattr(owner, hook.name, property(gone(hook.name), lambda self, value: None))
        undo.append(lambda: delattr(owner, hook.name))
    else:
        holder = owner if isinstance(owner, types.ModuleType) else next(
            cls for cls in owner.__mro__ if hook.name in vars(cls))
        original = vars(holder)[hook.name]
        delattr(holder, hook.name)
        undo.append(lambda: setattr(holder, hook.name, original))
    for name in [name for name in sys.modules if name.split(".")[0] == "trio_h2"]:
        del sys.modules[name]
    try:
        import trio_h2
        outcomes[str(hook)] = ["imported", ""]
    except BaseException as exc:
        outcomes[str(hook)] = [type(exc).__name__, str(exc)]
    for step in undo:
        step()
print(json.dumps(outcomes))
"""


def test_every_hook_is_checked_when_trio_h2_is_imported() -> None:
    result = subprocess.run([sys.executable, "-c", _BREAK_EACH_HOOK],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    assert list(outcomes) == [str(hook) for hook in HOOKS]
    for hook in HOOKS:
        kind, message = outcomes[str(hook)]
        assert kind == "HookMissing", (hook, kind, message)
        assert hook.name in message and installed_versions() in message, (hook, message)


def test_references_past_max_fields_are_counted_and_checked_not_kept() -> None:
    # Past max_fields a run of one-byte references is skipped, not decoded
    # field by field (an attacker's 2000 of them cost one regex match), yet
    # every one is counted and an index past the table is still an error.
    decoder = _h2internals.Decoder(max_header_list_size=1 << 20, max_fields=4)
    block = b"\x82\x84\x86" + b"\x81" * 2000  # :method GET, :path /, :scheme http, then :authority
    fields = list(decoder.decode(block, raw=True))
    assert _h2internals.fields_dropped(fields) == 2003
    assert len(fields) == 1 + 4
    with pytest.raises(_h2internals.HeaderBlockUndecodable):
        decoder.decode(b"\x82\x84\x86" + b"\x81" * 10 + b"\xfe", raw=True)  # index 126: no entry
