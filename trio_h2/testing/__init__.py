"""Test HTTP/2 servers from the client side: a trio HTTP/2 client, a
WebSocket client (:func:`open_websocket`, over HTTP/1.1 or HTTP/2), and the
types of the ``h2_server`` and ``h2_client`` pytest fixtures.

Open a connection with :func:`open_h2_client`, an async context manager::

    async with open_h2_client("127.0.0.1", port) as client:
        response = await client.get("/")
"""

from ._client import H2Client as H2Client
from ._connect import open_h2_client as open_h2_client
from ._responses import ConnectionClosed as ConnectionClosed
from ._responses import H2ClientError as H2ClientError
from ._responses import Priority as Priority
from ._responses import Response as Response
from ._responses import StreamingResponse as StreamingResponse
from ._responses import StreamReset as StreamReset
from ._servers import H2ClientFactory as H2ClientFactory
from ._servers import H2ServerFactory as H2ServerFactory
from ._servers import H2TestServer as H2TestServer
from ._websocket import WebSocket as WebSocket
from ._websocket import WebSocketClosed as WebSocketClosed
from ._websocket import WebSocketRejected as WebSocketRejected
from ._websocket import open_websocket as open_websocket

__all__ = [
    "ConnectionClosed",
    "H2Client",
    "H2ClientError",
    "H2ClientFactory",
    "H2ServerFactory",
    "H2TestServer",
    "Priority",
    "Response",
    "StreamReset",
    "StreamingResponse",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketRejected",
    "open_h2_client",
    "open_websocket",
]
