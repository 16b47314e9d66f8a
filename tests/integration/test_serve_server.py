"""The built-in server under load it must shrug off: idle connections, bursts, odd clients."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.serve.app import make_app
from setuptools_ghcr.serve.server import IndexServer, make_server
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.publish import PushOptions, publish

pytestmark = pytest.mark.integration

WORKERS = 4


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndexServer]:
    factory = StoreFactory(parse_target(f"oci:{tmp_path / 'store'}"), environ={}, home=tmp_path)
    wheel = read_distribution(make_wheel(tmp_path, "busy-pkg", "1.0"))
    publish(factory.open, [wheel], PushOptions())
    app = make_app(factory, cache_ttl=0)
    running = make_server(app, "127.0.0.1", 0, workers=WORKERS, timeout=1.0)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.shutdown()
        running.server_close()
        app.close()
        thread.join(timeout=10)


def _get(server: IndexServer, path: str, host: str | None = None) -> int:
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": host or f"127.0.0.1:{port}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_idle_connections_take_no_more_threads_than_the_pool(server: IndexServer) -> None:
    before = threading.active_count()
    idle = [socket.create_connection(server.server_address[:2]) for _ in range(24)]
    try:
        time.sleep(0.5)
        # The pool's workers, at most; never a thread per connection.
        assert threading.active_count() - before <= WORKERS
        # Idle clients time out (1 s here) and free their workers: a real request gets in.
        started = time.monotonic()
        assert _get(server, "/simple/busy-pkg/") == 200
        assert time.monotonic() - started < 30
    finally:
        for connection in idle:
            connection.close()


def test_a_burst_of_connections_fits_the_backlog(server: IndexServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def fetch() -> None:
        status = _get(server, "/simple/busy-pkg/")
        with lock:
            results.append(status)

    threads = [threading.Thread(target=fetch) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * 64


def test_requests_for_another_host_get_421(server: IndexServer) -> None:
    # A page whose DNS name was rebound to 127.0.0.1 sends its own name as Host.
    assert _get(server, "/simple/busy-pkg/", host="attacker.example:8000") == 421
    assert _get(server, "/simple/busy-pkg/", host="localhost") == 200


def test_access_lines_escape_what_clients_send(
    server: IndexServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="setuptools_ghcr.serve.server")
    with socket.create_connection(server.server_address[:2]) as connection:
        connection.sendall(b"GET /\x1b[2Jfake\x07 HTTP/1.0\r\nHost: localhost\r\n\r\n")
        while connection.recv(4096):  # the whole answer: the line is logged after it
            pass
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline and not any("fake" in line for line in lines):
        time.sleep(0.05)
        lines = [record.getMessage() for record in caplog.records]
    assert any("\\x1b[2Jfake\\x07" in line for line in lines), lines
    assert not any("\x1b" in line or "\x07" in line for line in lines)
