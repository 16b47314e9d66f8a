"""A threaded server of the test harnesses, on a free loopback port, served from a thread."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable

__all__ = ["Loopback"]


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    # A thread per connection, none waited for at exit or on close.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class Loopback:
    """Serves ``handler`` on ``127.0.0.1`` (a free port) until :meth:`stop`."""

    def __init__(
        self,
        handler: Callable[..., socketserver.BaseRequestHandler],
        name: str,
        *,
        start: bool = True,
    ) -> None:
        self.server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name=name, daemon=True
        )
        if start:
            self.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        started = self._thread.ident is not None
        if started:
            self.server.shutdown()
        self.server.server_close()
        if started:
            self._thread.join(timeout=5)
