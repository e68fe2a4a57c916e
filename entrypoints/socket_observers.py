"""Who hears of a socket's opening and closing besides the gateway: presence (a user's
first and last socket), presence subscriptions and typing (what a closed socket leaves
behind). ws.py tells them; a new observer is wired in the container, ws.py does not change."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("courier.ws")


class SocketObservers:
    """Each observer may have socket_opened(socket) and socket_closed(socket); both are
    called synchronously, once per socket: opened once it is attached (its replay
    done), closed when it is forgotten. An observer's failure is logged, never the
    socket's nor the other observers'."""

    __slots__ = ("_opened", "_closed")

    def __init__(self, observers: Iterable[Any]):
        observers = list(observers)
        self._opened = [o.socket_opened for o in observers if hasattr(o, "socket_opened")]
        self._closed = [o.socket_closed for o in observers if hasattr(o, "socket_closed")]

    def opened(self, socket: Any) -> None:
        for observe in self._opened:
            try:
                observe(socket)
            except Exception:
                log.exception("a socket observer failed on an opening")

    def closed(self, socket: Any) -> None:
        for observe in self._closed:
            try:
                observe(socket)
            except Exception:
                log.exception("a socket observer failed on a closing")
