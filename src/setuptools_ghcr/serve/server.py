"""The built-in server: threaded, access lines through logging, bound without a DNS lookup."""

from __future__ import annotations

import logging
import socket
import socketserver
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from setuptools_ghcr.serve.app import IndexApp

__all__ = ["IndexServer", "make_server"]

logger = logging.getLogger(__name__)


class _RequestHandler(WSGIRequestHandler):
    """Access lines go to logging, not straight to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class IndexServer(socketserver.ThreadingMixIn, WSGIServer):
    """A threaded WSGI server (a thread per connection, none kept alive at exit)."""

    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        # HTTPServer asks for the host's FQDN, a reverse DNS lookup that can stall for
        # seconds where there is no resolver; the numeric address serves as well.
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    @property
    def url(self) -> str:
        """The index URL, e.g. ``http://127.0.0.1:8000/simple/``."""
        host, port = self.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/simple/"


class _IndexServer6(IndexServer):
    address_family = socket.AF_INET6


def make_server(app: IndexApp, host: str = "127.0.0.1", port: int = 8000) -> IndexServer:
    """A server bound to ``host:port`` (port 0 picks a free one); call ``serve_forever()``."""
    host = host.strip("[]")
    server_class = _IndexServer6 if ":" in host else IndexServer
    server = server_class((host, port), _RequestHandler)
    server.set_app(app)
    return server
