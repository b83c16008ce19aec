"""The ``trio_h2.scheduler`` scope extension, seen on the wire: the record of
what the sender sent is what a raw client received, frame for frame;
ignoring priorities turns strict urgency into round robin for that
connection alone; HTTP/1.1 does not offer it. And the priority page's
verdict (``_apps.priority_page.summarize``) on records made by hand."""

from __future__ import annotations

import itertools
import json
from typing import Any

import trio
from hyperframe.frame import DataFrame, HeadersFrame

from tests.support.apps import http_only
from tests.support.frames import MAX_WINDOW
from tests.support.rawh2 import H2Client
from tests.support.requests import request
from trio_h2._apps.priority_page import COMMITTED, RESOURCES, summarize
from trio_h2._core.priority_field import ExtensiblePriority
from trio_h2._core.sendlog import SendRecord, SentData, StreamNote
from trio_h2._io.connection import SEND_BATCH
from trio_h2.testing import H2ServerFactory

BIG = 1 << 20  # each response: 64 quanta of 16 KiB
CHUNK = 16384


async def app(scope: Any, receive: Any, send: Any) -> None:
    """``/setup?off|on`` ignores priorities or not and starts recording;
    ``/record`` answers the record as JSON; ``/has`` whether the extension is
    there; anything else is :data:`BIG` bytes in 16 KiB chunks."""
    control = scope["extensions"].get("trio_h2.scheduler")
    path = scope["path"]
    body = b'"ok"'
    if path == "/has":
        body = json.dumps(control is not None).encode()
    elif path == "/setup":
        control.ignore_priorities(scope["query_string"] == b"off")
        control.start_recording()
    elif path == "/record":
        record = control.record()
        body = json.dumps(None if record is None else record.to_json()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if path == "/big":
        for _ in range(BIG // CHUNK):
            await send({"type": "http.response.body", "body": b"x" * CHUNK, "more_body": True})
        body = b""
    await send({"type": "http.response.body", "body": body})


async def connect(server: Any) -> H2Client:
    # Windows that never hold the server back: the scheduler alone decides.
    client = await H2Client.connect(server.host, server.port, settings={0x4: MAX_WINDOW})
    await client.send_window_update(0, MAX_WINDOW - 65535)
    return client


async def get_json(client: H2Client, stream_id: int, path: str) -> Any:
    await client.send_headers(stream_id, request("GET", path), end_stream=True)
    return json.loads((await client.read_response(stream_id, flow_control=False)).body)


async def two_big_responses(client: H2Client) -> list[tuple[int, int]]:
    """u=7 (stream 3) and u=0 (stream 5) asked for in one write;
    ``(stream id, DATA length)`` of every non-empty DATA frame."""
    block = b"".join([
        await _headers_bytes(client, 3, request("GET", "/big", ("priority", "u=7"))),
        await _headers_bytes(client, 5, request("GET", "/big", ("priority", "u=0"))),
    ])
    await client.send_raw(block)
    frames: list[tuple[int, int]] = []
    ended: set[int] = set()
    while ended != {3, 5}:
        frame = await client.next_frame(lambda f: isinstance(f, DataFrame))
        assert isinstance(frame, DataFrame)
        if frame.data:
            frames.append((frame.stream_id, len(frame.data)))
        if "END_STREAM" in frame.flags:
            ended.add(frame.stream_id)
    return frames


async def _headers_bytes(client: H2Client, stream_id: int,
                         headers: list[tuple[str, str]]) -> bytes:
    frame = HeadersFrame(stream_id, data=client.encode(headers),
                         flags=["END_HEADERS", "END_STREAM"])
    return bytes(frame.serialize())


def switches(frames: list[tuple[int, int]]) -> int:
    return sum(a[0] != b[0] for a, b in itertools.pairwise(frames))


async def test_record_is_what_went_on_the_wire_and_urgency_holds(
        h2_server: H2ServerFactory) -> None:
    server = await h2_server(http_only(app))
    client = await connect(server)
    assert await get_json(client, 1, "/setup?on") == "ok"
    frames = await two_big_responses(client)
    record = await get_json(client, 7, "/record")
    # Frame for frame, what the client got is what the record says was sent.
    recorded = [(stream_id, size) for _, stream_id, size, _ in record["sends"]
                if stream_id in (3, 5)]
    assert recorded == frames
    assert sum(size for stream_id, size in frames if stream_id == 3) == BIG
    signals = {stream_id: signal for _, stream_id, _, signal in record["sends"]}
    assert signals[3] == {"urgency": 7, "incremental": False}
    assert signals[5] == {"urgency": 0, "incremental": False}
    notes = {note["stream_id"]: note for note in record["streams"]}
    assert notes[3]["path"] == "/big" and notes[3]["priority_field"] == "u=7"
    assert notes[5]["priority_field"] == "u=0" and notes[5]["rfc7540"] is None
    assert record["priorities_ignored"] is False and record["frames_left_out"] == 0
    # Strict urgency: once stream 5 goes, stream 3 waits but for what was
    # already committed (a batch), and stream 5 finishes first.
    first_5 = frames.index(next(f for f in frames if f[0] == 5))
    last_5 = max(i for i, f in enumerate(frames) if f[0] == 5)
    assert sum(size for stream_id, size in frames[first_5:last_5] if stream_id == 3) \
        <= SEND_BATCH
    assert frames[-1][0] == 3
    await client.aclose()


async def test_ignoring_priorities_is_round_robin_for_that_connection_only(
        h2_server: H2ServerFactory) -> None:
    server = await h2_server(http_only(app))
    client = await connect(server)
    assert await get_json(client, 1, "/setup?off") == "ok"
    frames = await two_big_responses(client)
    record = await get_json(client, 7, "/record")
    assert record["priorities_ignored"] is True
    # Round robin: one 16 KiB turn each while both are ready.
    assert all(size <= CHUNK for _, size in frames)
    assert switches(frames) >= BIG // CHUNK  # about 2 x 64 if both run all along
    # Another connection of the same server is neither recorded nor round robin.
    other = await connect(server)
    assert await get_json(other, 1, "/record") is None
    others = await two_big_responses(other)
    assert others[-1][0] == 3 and switches(others) <= 3
    await client.aclose()
    await other.aclose()


async def test_http11_has_no_scheduler_extension(h2_server: H2ServerFactory) -> None:
    server = await h2_server(http_only(app))
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(b"GET /has HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
    response = b""
    while data := await stream.receive_some(65536):
        response += data
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"false")
    client = await connect(server)
    assert await get_json(client, 1, "/has") is True
    await client.aclose()


# ----------------------------------------------------- the page's verdict

def page_record(order: list[str], *, arrivals: dict[str, float] | None = None) -> SendRecord:
    """Every resource of the page sent whole, one after the other in ``order``
    (by name), one frame each at times 1, 2, ...; requests at time 0 unless
    ``arrivals`` says otherwise."""
    ids = {resource.name: 1 + 2 * n for n, resource in enumerate(RESOURCES)}
    sizes = {resource.name: resource.size for resource in RESOURCES}
    notes = tuple(StreamNote(ids[r.name], r.path, None, None, False,
                             (arrivals or {}).get(r.name, 0.0)) for r in RESOURCES)
    sends = tuple(SentData(float(n), ids[name], sizes[name], ExtensiblePriority())
                  for n, name in enumerate(order, 1))
    return SendRecord(notes, sends, False, 0, 0)


HIGH = [r.name for r in RESOURCES if r.wanted == "high"]
LOW = [r.name for r in RESOURCES if r.wanted == "low"]


def test_verdict_high_first_mixed_and_incomplete() -> None:
    summary = summarize(page_record(HIGH + LOW))
    assert summary["verdict"] == "high-first"
    assert [e["path"].rpartition("/")[2] for e in summary["resources"]] == HIGH + LOW
    assert [e["rank"] for e in summary["resources"]] == list(range(1, len(RESOURCES) + 1))
    assert summary["total_bytes"] == sum(r.size for r in RESOURCES)
    assert summarize(page_record(LOW[:1] + HIGH + LOW[1:]))["verdict"] == "mixed"
    assert summarize(page_record(HIGH + LOW[1:]))["verdict"] == "incomplete"


def test_a_high_request_that_came_too_late_to_overtake_does_not_count() -> None:
    # The late one arrived after every low one had been sent: the scheduler
    # could not have put it first.
    late = next(r.name for r in RESOURCES if r.how == "late")
    early = [name for name in HIGH if name != late]
    record = page_record(early + LOW + [late], arrivals={late: len(RESOURCES) - 0.5})
    assert summarize(record)["verdict"] == "high-first"
    # Arrived while the last low one had all its bytes (more than COMMITTED) to go.
    assert min(r.size for r in RESOURCES if r.wanted == "low") > COMMITTED
    record = page_record(early + LOW + [late], arrivals={late: len(RESOURCES) - 1.5})
    assert summarize(record)["verdict"] == "mixed"
