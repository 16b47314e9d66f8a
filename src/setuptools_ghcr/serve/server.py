"""The built-in server of ``setuptools-ghcr serve``: a bounded pool of threads.

- A listen backlog of 128: uv opens dozens of connections at once, and a backlog of 5
  overflows (the kernel drops the rest, and uv waits on connection retries).
- At most ``workers`` requests at once: beyond that, connections wait in the backlog instead
  of each getting a thread (300 idle connections made 302 threads).
- A socket timeout: a client that stops sending or reading is dropped after ``timeout``
  seconds and frees its worker.
- Access lines go through logging, with control characters from clients escaped.
- Bound without a DNS lookup, and the bound address is one the ``Host`` check accepts.

A team's shared service runs the same application under a WSGI server (see docs/deploy.md).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from setuptools_ghcr.serve.app import IndexApp

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_WORKERS", "IndexServer", "escape_log", "make_server"]

logger = logging.getLogger(__name__)

#: Requests served at once.
DEFAULT_WORKERS = 32
#: Seconds a connection may stay silent (sending a request or reading an answer).
DEFAULT_TIMEOUT = 60.0
#: Connections the kernel holds while every worker is busy.
BACKLOG = 128


def escape_log(text: str) -> str:
    """``text`` with control characters (a client's ``\\r\\n``, terminal escapes) escaped."""
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


class _RequestHandler(WSGIRequestHandler):
    """Access lines go to logging, escaped; the socket times out (see the module)."""

    def setup(self) -> None:
        self.request.settimeout(getattr(self.server, "timeout_seconds", DEFAULT_TIMEOUT))
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s", escape_log(f"{self.address_string()} {format % args}"))


class IndexServer(WSGIServer):
    """A WSGI server that hands each connection to one of ``workers`` threads."""

    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[WSGIRequestHandler] = _RequestHandler,
        *,
        workers: int = DEFAULT_WORKERS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.timeout_seconds = timeout
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="index-request")
        super().__init__(address, handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        # HTTPServer asks for the host's FQDN, a reverse DNS lookup that can stall for
        # seconds where there is no resolver; the numeric address serves as well.
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Wait here, in the accepting thread, for a free worker: the next connections stay
        # in the kernel's backlog meanwhile rather than each taking a thread.
        self._slots.acquire()
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool is shut down: the server is closing
            self._slots.release()
            self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer is routine; say it in one line.
        logger.info("connection from %s ended early", client_address[0], exc_info=False)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def url(self) -> str:
        """The index URL, e.g. ``http://127.0.0.1:8000/simple/``."""
        host, port = self.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/simple/"


class _IndexServer6(IndexServer):
    address_family = socket.AF_INET6


def make_server(
    app: IndexApp,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = DEFAULT_WORKERS,
    timeout: float = DEFAULT_TIMEOUT,
) -> IndexServer:
    """A server bound to ``host:port`` (port 0 picks a free one); call ``serve_forever()``.

    The bound address joins the ``Host`` values ``app`` answers.
    """
    host = host.strip("[]")
    server_class = _IndexServer6 if ":" in host else IndexServer
    server = server_class((host, port), _RequestHandler, workers=workers, timeout=timeout)
    app.hosts = app.hosts.with_address(host)
    server.set_app(app)
    return server
