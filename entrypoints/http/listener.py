"""Accepting connections when the process is out of file descriptors.

Past its fd limit (`ulimit -n`; a gateway holding tens of thousands of sockets
gets there) accept() fails with EMFILE and leaves the connection in the listen
backlog, so the listening socket stays readable. Tornado's accept handler lets
that error escape to the event loop, which logs it and calls the handler again
at once: the process spun at a full core writing the same traceback (557,538
lines in about ten seconds, seen with 19,589 sockets open against a limit of
20,000), and every socket it already served waited behind that.

Here the listener instead stops being watched for ACCEPT_PAUSE seconds, as
nginx does: the waiting clients stay in the kernel's backlog and are accepted
once sockets have closed, nothing else of the process is held up, and one
warning (at most every WARN_EVERY seconds) tells the operator what to raise.
tornado_overrides.HTTPServer accepts its connections with add_accept_handler.
"""
from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

log = logging.getLogger("courier.server")

ACCEPT_PAUSE = 0.1  # seconds the listener is left alone after accept() ran out of a resource
WARN_EVERY = 10.0  # seconds between two warnings
ACCEPT_BATCH = 128  # connections accepted per readiness event (Tornado's own bound)
# accept() failures that say "no resource for one more connection right now"
# (per-process fds, system-wide fds, kernel memory), not that the listener is broken.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def add_accept_handler(
    sock: socket.socket, callback: Callable[[socket.socket, Any], None], pause: float = ACCEPT_PAUSE,
) -> Callable[[], None]:
    """tornado.netutil.add_accept_handler, but out of resources it pauses instead of
    spinning. Returns the callable that stops accepting for good."""
    return _Acceptor(sock, callback, pause).remove


class _Acceptor:
    """Watches one listening socket; `paused` while it is left alone after a failure."""

    def __init__(self, sock: socket.socket, callback: Callable[[socket.socket, Any], None], pause: float):
        self._sock = sock
        self._callback = callback
        self._pause_seconds = pause
        self._io_loop = IOLoop.current()
        self._removed = False
        self._paused = False
        self._pauses = 0  # since the last warning
        self._warned_at = -WARN_EVERY
        self._io_loop.add_handler(sock, self._on_readable, IOLoop.READ)

    def _on_readable(self, fd: socket.socket, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._removed:
                return
            try:
                connection, address = self._sock.accept()
            except BlockingIOError:
                return  # every waiting connection is accepted
            except ConnectionAbortedError:
                continue  # closed while it waited in the backlog
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    raise
                self._pause(error)
                return
            self._callback(connection, address)

    def _pause(self, error: OSError) -> None:
        self._io_loop.remove_handler(self._sock)
        self._paused = True
        self._io_loop.call_later(self._pause_seconds, self._resume)
        self._pauses += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "cannot accept connections: %s (this process may open %s files); not accepting for %.1f s at a "
                "time: raise the limit (ulimit -n) or spread the sockets over more gateways (pauses since the "
                "last warning: %d)", error.strerror, _fd_limit(), self._pause_seconds, self._pauses,
            )
            self._pauses = 0

    def _resume(self) -> None:
        if self._removed or not self._paused:
            return
        self._paused = False
        self._io_loop.add_handler(self._sock, self._on_readable, IOLoop.READ)

    def remove(self) -> None:
        if not self._paused:
            self._io_loop.remove_handler(self._sock)
        self._removed = True


def _fd_limit() -> int | str:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else soft
