"""The ASGI lifespan protocol: startup before the first connection, shutdown after the last."""

from __future__ import annotations

import logging
from typing import Any, final

import trio

from .._config import Config
from .asgi import ASGIApp, Message, Receive, Send
from .scope import ASGI_VERSION

log = logging.getLogger("trio_h2")


@final
class LifespanFailure(Exception):
    """The application reported ``lifespan.startup.failed`` (or failed to start
    with ``lifespan="on"``); the server does not start."""


@final
class Lifespan:
    """Runs the app's lifespan scope in a task of the server's nursery."""

    def __init__(self, app: ASGIApp, config: Config) -> None:
        self._app = app
        self._mode = config.lifespan
        self.state: dict[str, Any] = {}
        self.supported = self._mode != "off"
        self._to_app_send, self._to_app = trio.open_memory_channel[Message](1)
        self._startup = trio.Event()
        self._shutdown = trio.Event()
        self._failure: str | None = None
        self._started = False
        self._scope = trio.CancelScope(shield=True)

    async def startup(self, nursery: trio.Nursery) -> None:
        """Send ``lifespan.startup`` and wait for the answer."""
        if not self.supported:
            return
        nursery.start_soon(self._run, name="trio_h2 lifespan")
        await self._to_app_send.send({"type": "lifespan.startup"})
        await self._startup.wait()
        if self._failure is not None:
            raise LifespanFailure(self._failure)
        self._started = self.supported

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (or the app's exit)."""
        if not self._started:
            return
        await self._to_app_send.send({"type": "lifespan.shutdown"})
        await self._shutdown.wait()
        if self._failure is not None:
            log.error("ASGI lifespan shutdown failed: %s", self._failure)

    def cancel(self) -> None:
        """Stop the lifespan task if it is still running (after shutdown)."""
        self._scope.cancel()

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            # Shielded: cancelling serve() must not cut the app's lifespan
            # short before it has been sent lifespan.shutdown.
            with self._scope:
                await self._app(scope, self._to_app.receive, self._send)
        except Exception as exc:
            if not self._startup.is_set():
                if self._mode == "on":
                    self._failure = f"lifespan startup raised {exc!r}"
                    log.error("ASGI lifespan startup raised", exc_info=exc)
                else:
                    # ASGI: an app that raises on the lifespan scope does not
                    # support it; the server carries on without.
                    log.info("ASGI lifespan not supported by the app (%r); continuing", exc)
                    self.supported = False
            else:
                self._failure = f"lifespan raised {exc!r}"
                log.error("ASGI lifespan raised", exc_info=exc)
        finally:
            if not self._startup.is_set() and self._failure is None:
                self.supported = False  # returned without answering startup
            self._startup.set()
            self._shutdown.set()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._startup.set()
        elif kind == "lifespan.startup.failed":
            self._failure = str(message.get("message", ""))
            self._startup.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown.set()
        elif kind == "lifespan.shutdown.failed":
            self._failure = str(message.get("message", ""))
            self._shutdown.set()
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """The lifespan protocol of an app that needs no startup or shutdown of
    its own (the demo, :class:`~trio_h2.WSGIApp`): complete both at once."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
