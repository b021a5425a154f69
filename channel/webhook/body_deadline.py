"""A total deadline for reading a webhook body under gunicorn.

gunicorn's threads read a request body with blocking recv() calls, and its reader loops until
the size asked for has arrived: a client that sends a byte a second never trips a per-recv
socket timeout, and holds the thread for as long as it likes. Ten such clients held every
thread, and /healthz went unanswered for 20 seconds. So each body read under gunicorn is
registered here with its deadline, and one thread per process shuts the read side of the
socket (environ["gunicorn.socket"]) once the deadline has passed: the blocked recv() returns at
once, the intake answers 408, and the connection is not reused.

In production the buffering proxy in front (the compose file's Caddy) receives whole bodies
before it forwards them; this is the web server's own guard for when it faces clients itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.25  # how late past its deadline a body may be cut off


class BodyTimeout(Exception):
    """The body did not arrive whole before its deadline."""


class _Watchdog:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[float, socket.socket]] = {}
        self.expired: set[int] = set()
        self.pid = 0

    def watch(self, key: int, sock: socket.socket, deadline: float) -> None:
        with self.lock:
            if self.pid != os.getpid():  # first use in this process (gunicorn forks workers)
                self.pid = os.getpid()
                self.pending.clear()
                self.expired.clear()
                threading.Thread(target=self._run, name="body-deadline", daemon=True).start()
            self.pending[key] = (deadline, sock)

    def forget(self, key: int) -> bool:
        """Stop watching; True when the deadline had passed and the socket was shut."""
        with self.lock:
            self.pending.pop(key, None)
            if key in self.expired:
                self.expired.discard(key)
                return True
            return False

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            with self.lock:
                late = [(key, sock) for key, (at, sock) in self.pending.items() if at <= now]
                for key, _ in late:
                    del self.pending[key]
                    self.expired.add(key)
            for _, sock in late:
                try:
                    sock.shutdown(socket.SHUT_RD)
                except OSError:  # already closed by the client
                    pass


_watchdog = _Watchdog()


class BodyDeadline:
    """Wraps a WSGI input's `read` so that a body still short at `seconds` raises BodyTimeout.

    Without a socket to shut (any server but gunicorn), reads are passed through unchanged.
    """

    def __init__(self, read: Callable[[int], bytes], sock: socket.socket | None, seconds: float):
        self._read = read
        self._key = id(self) if sock is not None else 0
        if self._key:
            _watchdog.watch(self._key, sock, time.monotonic() + seconds)

    def read(self, size: int) -> bytes:
        data = self._read(size)
        if len(data) < size and self.close():
            raise BodyTimeout
        return data

    def close(self) -> bool:
        """Stop the watch; True when the deadline cut the body off."""
        key, self._key = self._key, 0
        return bool(key) and _watchdog.forget(key)
