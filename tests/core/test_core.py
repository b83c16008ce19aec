"""The sans-IO core, driven by an h2 client connection: no sockets, no trio."""

from __future__ import annotations

import subprocess
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame, PingFrame, RstStreamFrame

from tests.support.requests import GET, POST
from tests.support.sansio import Pair, parse_frames, received
from trio_h2 import Config


def test_core_imports_without_trio() -> None:
    # Load the core modules without running trio_h2/__init__ (which imports
    # the server), with trio made unimportable.
    code = (
        "import sys, types, trio_h2\n"
        "path = trio_h2.__path__\n"
        "for name in [m for m in sys.modules if m.split('.')[0] in ('trio', 'trio_h2')]:\n"
        "    del sys.modules[name]\n"
        "sys.modules['trio'] = None\n"
        "package = types.ModuleType('trio_h2'); package.__path__ = path\n"
        "sys.modules['trio_h2'] = package\n"
        "import importlib, pkgutil, trio_h2._core\n"
        "for module in pkgutil.walk_packages(trio_h2._core.__path__, 'trio_h2._core.'):\n"
        "    importlib.import_module(module.name)\n"
        "importlib.import_module('trio_h2._apps.scope')\n"
        "print(sorted(m for m in sys.modules if m.startswith('trio_h2._core.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The whole folder: every protocol core and what they share.
    for core in ("h2", "h1", "websocket", "tunnel", "h2internals.framing"):
        assert f"'trio_h2._core.{core}'" in result.stdout


def test_request_response_round_trip() -> None:
    pair = Pair()
    stream = pair.request(GET)
    assert pair.started == [stream]
    assert stream.head.method == b"GET" and stream.body_ended
    pair.respond(stream, b"hello")
    assert pair.drain_output() == [stream]
    assert received(pair.events, stream.stream_id) == b"hello"
    assert stream.closed and not stream.disconnected
    assert pair.server.streams == {}


def test_settings_advertise_config() -> None:
    config = Config(max_concurrent_streams=7, initial_window_size=12345, max_frame_size=20000,
                    max_header_list_size=4321)
    pair = Pair(config)
    changed = next(e for e in pair.events if isinstance(e, h2.events.RemoteSettingsChanged))
    values = {code: s.new_value for code, s in changed.changed_settings.items()}
    assert values[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert values[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 12345
    assert values[h2.settings.SettingCodes.MAX_FRAME_SIZE] == 20000
    assert values[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE] == 4321
    # The connection window is max_concurrent_streams x initial_window_size.
    assert pair.client.outbound_flow_control_window == 7 * 12345


def test_stream_credit_returns_only_as_the_app_reads() -> None:
    pair = Pair(Config(initial_window_size=65535))
    stream = pair.request(POST, end_stream=False)
    for _ in range(4):
        pair.client.send_data(stream.stream_id, b"x" * 15000)
    pair.pump()
    assert pair.client.local_flow_control_window(stream.stream_id) == 5535
    assert sum(n for _, n in stream.body) == 60000
    # Nothing consumed: no stream WINDOW_UPDATE, however long we pump.
    assert not [e for e in pair.pump() if isinstance(e, h2.events.WindowUpdated)]
    assert pair.server.take_body(stream) == b"x" * 60000
    pair.pump()
    assert pair.client.local_flow_control_window(stream.stream_id) == 65535


def test_padding_counts_towards_the_credit_returned() -> None:
    pair = Pair(Config(initial_window_size=65535))
    stream = pair.request(POST, end_stream=False)
    pair.client.send_data(stream.stream_id, b"y" * 1000, pad_length=200)
    pair.pump()
    assert pair.client.local_flow_control_window(stream.stream_id) == 65535 - 1201
    pair.server.take_body(stream)
    # h2 batches WINDOW_UPDATE until half the window is consumed; force it
    # with more data and check the window closes back to full, padding included.
    for _ in range(30):
        pair.client.send_data(stream.stream_id, b"y" * 1000, pad_length=200)
        pair.pump()
        pair.server.take_body(stream)
        pair.pump()
    assert pair.client.local_flow_control_window(stream.stream_id) > 65535 - 2 * 1201 * 16


def test_unread_body_does_not_use_up_the_connection_window() -> None:
    # Two streams fill their windows and are never read: the connection
    # window still has room for a third (RFC 9113 section 6.9.1).
    pair = Pair(Config(initial_window_size=65535, max_concurrent_streams=3))
    for _ in range(2):
        stream = pair.request(POST, end_stream=False)
        for _ in range(4):
            pair.client.send_data(stream.stream_id, b"z" * 16000)
        pair.pump()
    third = pair.request(POST, end_stream=False)
    assert pair.client.local_flow_control_window(third.stream_id) == 65535


def test_closed_window_stops_the_sender() -> None:
    pair = Pair(client_window=0)
    stream = pair.request(GET)
    pair.respond(stream, b"a" * 50000)
    assert pair.drain_output() == []  # nothing may be framed
    assert stream.in_flight and stream.outbox is not None and len(stream.outbox) == 50000
    pair.client.increment_flow_control_window(20000, stream.stream_id)
    pair.pump()
    assert pair.drain_output() == []
    assert received(pair.events, stream.stream_id) == b"a" * 20000
    pair.client.increment_flow_control_window(30000, stream.stream_id)
    pair.pump()
    assert pair.drain_output() == [stream]
    assert received(pair.events, stream.stream_id) == b"a" * 50000


def test_frames_respect_client_max_frame_size_and_budget() -> None:
    pair = Pair(client_window=1 << 20)
    stream = pair.request(GET)
    pair.respond(stream, b"b" * 100000)
    pair.server.pull(40000)
    frames = pair.server.data_to_send()
    sizes = [e.flow_controlled_length for e in pair.client.receive_data(frames)
             if isinstance(e, h2.events.DataReceived)]
    # One decision per frame; it stops at the budget.
    assert sizes == [16384, 16384, 40000 - 2 * (16384 + 9)]


def test_weights_share_bytes() -> None:
    pair = Pair(client_window=2**31 - 1)
    pair.client.increment_flow_control_window(2**31 - 1 - 65535)
    pair.pump()
    heavy = pair.request(GET)
    light = pair.request(GET)
    pair.server.scheduler.reprioritize(heavy.stream_id, depends_on=0, weight=256,
                                       exclusive=False)
    pair.server.scheduler.reprioritize(light.stream_id, depends_on=0, weight=32, exclusive=False)
    pair.respond(heavy, b"h" * 16384 * 200)
    pair.respond(light, b"l" * 16384 * 200)
    pair.server.pull(16393 * 90)
    events = pair.client.receive_data(pair.server.data_to_send())
    counts = {heavy.stream_id: 0, light.stream_id: 0}
    for e in events:
        if isinstance(e, h2.events.DataReceived):
            counts[e.stream_id] += 1
    assert counts[heavy.stream_id] == 80 and counts[light.stream_id] == 10


@pytest.mark.parametrize("headers", [
    [(b":method", b"GET"), (b":path", b"/")],
    [*GET, (b"Upper", b"x")],
    [*GET, (b"connection", b"close")],
    [(b"x", b"1"), *GET],
])
def test_malformed_request_is_a_stream_error(headers: list[tuple[bytes, bytes]]) -> None:
    pair = Pair()
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, headers, end_stream=True)
    events = pair.pump()
    resets = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [
        (stream_id, ErrorCodes.PROTOCOL_ERROR)]
    assert pair.started == [] and not pair.server.terminated
    good = pair.request(GET)  # the connection goes on
    assert pair.started == [good]


def test_client_reset_disconnects_the_stream_and_returns_credit() -> None:
    pair = Pair(Config(initial_window_size=65535))
    stream = pair.request(POST, end_stream=False)
    for _ in range(4):
        pair.client.send_data(stream.stream_id, b"q" * 10000)
    pair.pump()
    before = pair.client.outbound_flow_control_window
    pair.client.reset_stream(stream.stream_id, ErrorCodes.CANCEL)
    pair.pump()
    assert stream.disconnected and stream.closed and not stream.body
    assert pair.client.outbound_flow_control_window >= before  # credit is back or pending
    assert pair.server.stats()["buffered_body_bytes"] == 0


def test_handler_finishing_early_resets_the_open_request_with_no_error() -> None:
    pair = Pair()
    stream = pair.request(POST, end_stream=False)
    pair.respond(stream, b"done")
    pair.drain_output()
    pair.server.handler_finished(stream)
    events = pair.pump()
    assert [(e.stream_id, e.error_code) for e in events if isinstance(e, h2.events.StreamReset)] \
        == [(stream.stream_id, ErrorCodes.NO_ERROR)]
    assert received(pair.events, stream.stream_id) == b"done"


def test_drain_is_two_goaways_around_a_ping() -> None:
    # RFC 9113 section 6.8: GOAWAY with 2^31-1 first, a PING, then GOAWAY
    # with the last stream id once the PING is answered.
    pair = Pair()
    first = pair.request(GET)
    pair.server.start_drain()
    goaway, ping = parse_frames(pair.server.data_to_send())
    assert isinstance(goaway, GoAwayFrame) and goaway.last_stream_id == 2**31 - 1
    assert isinstance(ping, PingFrame) and "ACK" not in ping.flags
    # A stream the client opened before it saw the GOAWAY is still served.
    # (Fed as raw bytes: h2's client closes its side once it sees GOAWAY.)
    pair.client.send_headers(3, GET, end_stream=True)
    pair.server.receive_data(pair.client.data_to_send())
    assert 3 in pair.server.streams
    pair.server.receive_data(PingFrame(0, flags=["ACK"], opaque_data=ping.opaque_data)
                             .serialize())
    (second,) = parse_frames(pair.server.data_to_send())
    assert isinstance(second, GoAwayFrame) and second.last_stream_id == 3
    pair.client.send_headers(5, GET, end_stream=True)  # after the second: refused
    pair.server.receive_data(pair.client.data_to_send())
    (refused,) = parse_frames(pair.server.data_to_send())
    assert isinstance(refused, RstStreamFrame) and refused.stream_id == 5
    assert refused.error_code == ErrorCodes.REFUSED_STREAM
    assert not pair.server.finished  # streams 1 and 3 are in flight
    for stream in (first, pair.server.streams[3]):
        pair.respond(stream, b"ok")
    pair.server.taken(pair.server.pull(1 << 20))
    assert pair.server.finished


def test_protocol_error_is_recorded_with_its_code() -> None:
    pair = Pair()
    pair.server.receive_data(b"\x00\x00\x07\x06\x00\x00\x00\x00\x00" + b"\x00" * 7)  # short PING
    assert pair.server.terminated
    assert pair.server.error is not None
    assert pair.server.error.error_code == ErrorCodes.FRAME_SIZE_ERROR


@pytest.mark.parametrize("name", [b"x-foo\n", b"x foo", b"x-foo:", b"", b"\nx-foo"])
def test_an_app_header_name_that_is_not_a_token_is_refused(name: bytes) -> None:
    """RFC 9110 section 5.1: the whole name is a token (a trailing newline
    too is refused, not only characters in the middle)."""
    from trio_h2._core.errors import LocalProtocolError
    from trio_h2._core.headers import response_headers

    with pytest.raises(LocalProtocolError, match="invalid response header name"):
        response_headers(200, [(name, b"v")])
