"""Talking to the index service: a served application, and a plain HTTP request."""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from setuptools_ghcr.serve.app import IndexApp
from setuptools_ghcr.serve.server import IndexServer, make_server

__all__ = ["get", "serving"]


@contextmanager
def serving(app: IndexApp) -> Iterator[IndexServer]:
    """``app`` served on a free loopback port until the block ends; then ``app`` is closed."""
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="index")
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def get(
    url: str, accept: str | None = None, *, method: str = "GET", timeout: float = 60
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names lowercased) and body of one request, redirects followed.

    An error status is an answer, not an exception; a body cut short (fewer bytes than its
    ``Content-Length``) is returned as far as it arrived.
    """
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    request.method = method
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        response = error
    with response:
        headers = {name.lower(): value for name, value in response.headers.items()}
        try:
            body = response.read()
        except http.client.IncompleteRead as error:
            body = error.partial
        return response.status, headers, body
