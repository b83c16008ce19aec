"""trio_h2: an HTTP/2 server for trio.

One nursery per connection holds a reader, one handler per stream and a
single sender that consults the priority tree before each write.
"""

from ._apps.lifespan import LifespanFailure as LifespanFailure
from ._apps.wsgi import WSGIApp as WSGIApp
from ._config import Config as Config
from ._core.errors import ClientDisconnected as ClientDisconnected
from ._core.limits import Budget as Budget
from ._io.server import serve as serve
from ._io.server import serve_listeners as serve_listeners
from ._io.tls import configure_h2_context as configure_h2_context
from ._io.tls import server_ssl_context as server_ssl_context

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "ClientDisconnected",
    "Config",
    "LifespanFailure",
    "WSGIApp",
    "configure_h2_context",
    "serve",
    "serve_listeners",
    "server_ssl_context",
]
