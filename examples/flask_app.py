"""A Flask application served through WSGI.

``app`` is ``trio_h2.WSGIApp(flask_app)``: the WSGI callable runs in a worker
thread, the response body is written with the same backpressure as an ASGI
app's. The runner also detects a WSGI callable by itself, so
``examples.flask_app:flask_app`` works too (``--interface wsgi`` to be explicit).

Run from the repository root::

    python -m trio_h2 examples.flask_app:app
    curl --http2-prior-knowledge http://127.0.0.1:8000/
    curl --http2-prior-knowledge -H 'content-type: application/json' -d '{"a": 1}' \\
        http://127.0.0.1:8000/json
"""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

import trio_h2

flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> ResponseReturnValue:
    return f"Hello from Flask over {request.environ['SERVER_PROTOCOL']}\n"


@flask_app.post("/json")
def echo_json() -> ResponseReturnValue:
    return jsonify(received=request.get_json(), keys=len(request.get_json() or {}))


app = trio_h2.WSGIApp(flask_app)
