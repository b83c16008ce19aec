"""An h2 client connection wired to a sans-IO H2Core in memory."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import Frame

from trio_h2 import Config
from trio_h2._core.exchange import Exchange
from trio_h2._core.h2 import H2Core


class Pair:
    """A client H2Connection wired to a server H2Core in memory."""

    def __init__(self, config: Config | None = None, client_window: int = 65535) -> None:
        self.server = H2Core(config or Config())
        self.server.initiate()
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None,
                                      validate_outbound_headers=False,
                                      normalize_outbound_headers=False))
        self.client.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: client_window})
        self.client.initiate_connection()
        self.started: list[Exchange] = []
        self.events: list[h2.events.Event] = []
        self.pump()

    def pump(self) -> list[h2.events.Event]:
        """Move bytes both ways until both sides are quiet; return client events."""
        new: list[h2.events.Event] = []
        while True:
            to_server = self.client.data_to_send()
            if to_server:
                self.started += self.server.receive_data(to_server)
            to_client = self.server.data_to_send()
            if to_client:
                new += self.client.receive_data(to_client)
            if not to_server and not to_client:
                break
        self.events += new
        return new

    def request(self, headers: list[tuple[bytes, bytes]], end_stream: bool = True) -> Exchange:
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers, end_stream=end_stream)
        self.pump()
        return self.server.streams[stream_id]

    def respond(self, stream: Exchange, body: bytes) -> None:
        self.server.send_headers(stream, [(b":status", b"200")], end_stream=False)
        self.server.offer(stream, body, end_stream=True)

    def drain_output(self, budget: int = 1 << 30) -> list[Exchange]:
        done = self.server.pull(budget)
        self.server.taken(done)
        self.pump()
        return done


def received(events: list[h2.events.Event], stream_id: int) -> bytes:
    return b"".join(e.data for e in events
                    if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id)


def parse_frames(data: bytes) -> list[Frame]:
    """The frames in ``data`` (the server's output), in order: for what the
    client's h2 would take without an event (a RST_STREAM on a stream it
    has closed, a GOAWAY's details)."""
    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        out.append(frame)
        data = data[9 + length:]
    return out
