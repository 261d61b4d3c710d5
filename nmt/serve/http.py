"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request head.

uvicorn closes a keep-alive connection that sends nothing, but a client that sends a request head
a byte at a time (slowloris), or opens a connection and sends half a head, holds its socket for
as long as it likes. Here a connection that has waited for a complete head for longer than
``head_timeout_s`` (from connecting, or from the end of its previous response) is closed. A slow
body is the route's business (``body_timeout_s`` in nmt.serve.app, answered with 408).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def protocol_class(head_timeout_s: float) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``."""

    class DeadlineProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._waiting_since = self.loop.time()
            self._watch: asyncio.TimerHandle | None = None
            self._schedule()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._waiting_since = self.loop.time()  # the next head's deadline counts from here

        def connection_lost(self, exc: Exception | None) -> None:
            if self._watch is not None:
                self._watch.cancel()
            super().connection_lost(exc)

        def _schedule(self) -> None:
            self._watch = self.loop.call_later(min(1.0, head_timeout_s), self._check)

        def _check(self) -> None:
            if self.transport.is_closing():
                return
            waiting = self.conn.their_state is h11.IDLE  # no complete request head yet
            if waiting and self.loop.time() - self._waiting_since > head_timeout_s:
                self.transport.close()
                return
            if not waiting:
                self._waiting_since = self.loop.time()
            self._schedule()

    return DeadlineProtocol
