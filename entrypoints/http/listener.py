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
"""
from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import tornado.httpserver
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
    io_loop = IOLoop.current()
    state = {"removed": False, "paused": False, "skipped": 0, "warned_at": -WARN_EVERY}

    def accept_handler(fd: socket.socket, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            if state["removed"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return  # every waiting connection is accepted
            except ConnectionAbortedError:
                continue  # closed while it waited in the backlog
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    raise
                _pause(error)
                return
            callback(connection, address)

    def _pause(error: OSError) -> None:
        io_loop.remove_handler(sock)
        state["paused"] = True
        io_loop.call_later(pause, _resume)
        state["skipped"] += 1
        now = time.monotonic()
        if now - state["warned_at"] >= WARN_EVERY:
            state["warned_at"] = now
            log.warning(
                "cannot accept connections: %s (this process may open %s files); not accepting for %.1f s at a "
                "time: raise the limit (ulimit -n) or spread the sockets over more gateways (pauses since the "
                "last warning: %d)", error.strerror, _fd_limit(), pause, state["skipped"],
            )
            state["skipped"] = 0

    def _resume() -> None:
        if state["removed"] or not state["paused"]:
            return
        state["paused"] = False
        io_loop.add_handler(sock, accept_handler, IOLoop.READ)

    def remove_handler() -> None:
        if not state["paused"]:
            io_loop.remove_handler(sock)
        state["removed"] = True

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler


def _fd_limit() -> int | str:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else soft


class HTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer with the accept handler above. (TCPServer.add_sockets with
    one call changed; _sockets and _handlers are the pinned Tornado's own, which stop()
    reads: re-check on upgrade.)"""

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = add_accept_handler(sock, self._handle_connection)
