"""A fault-injecting HTTP proxy on loopback, to put in front of a real registry in tests.

The client under test talks to the proxy as if it were the registry (the ``Host`` header is
passed on unchanged, so the registry's upload ``Location``s point back at the proxy). Each
request is relayed on a fresh upstream connection, unless a :class:`Fault` matches it; a
fault fires for ``times`` matching requests and then lets them pass. What a fault can do:

- ``reset_request``: relay ``after`` bytes of the request body, then reset the connection
  (an upload cut in the middle of its body);
- ``reset_response``: relay the answer's head and ``after`` bytes of its body, then reset
  (a download cut in the middle of a blob);
- ``status``: answer ``status`` itself (503, 429 ...) with an optional ``Retry-After``;
- ``stall``: relay the request, then hold the answer (``after`` < 0) or stop after ``after``
  bytes of its body, for ``seconds``, past the client's timeout;
- ``drop``: read the request, relay nothing, hold the connection for ``seconds``;
- ``throttle``: relay the answer in small pieces with a pause between them;
- ``delay``: hold the request ``seconds`` before relaying it (a registry slow to answer).

``then`` is called at the moment a fault strikes (before the reset, the answer or the
stall), e.g. an :class:`Outage` that stops the registry process mid-push and starts it again.

    with FaultProxy(registry.host) as proxy:
        proxy.add(Fault("reset_response", "GET", r"/blobs/sha256:", after=1 << 20))
        ...  # point the client at proxy.host
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from support.loopback import Loopback

__all__ = ["Fault", "FaultAction", "FaultProxy", "Outage", "ProxiedRequest"]

FaultAction = Literal[
    "reset_request", "reset_response", "status", "stall", "drop", "throttle", "delay"
]

_MAX_HEAD = 64 << 10
_PIECE = 64 << 10
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS.update({503: "Service Unavailable", 504: "Gateway Timeout", 408: "Request Timeout"})
_CODES = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


@dataclass
class Fault:
    """What to do to the requests that match ``method`` and the ``path`` regular expression."""

    action: FaultAction
    method: str | None = None
    path: str = ""
    #: Body bytes relayed before the fault strikes (request body for ``reset_request``,
    #: answer body for ``reset_response`` and ``stall``; a negative ``stall`` holds the head).
    after: int = 0
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    #: How many matching requests it affects; None for all of them.
    times: int | None = 1
    then: Callable[[], None] | None = None
    fired: int = field(default=0, init=False)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return not self.exhausted and re.search(self.path, target) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received, and which fault (if any) it met."""

    method: str
    target: str
    headers: dict[str, str]
    fault: FaultAction | None


class _Stoppable(Protocol):
    def stop(self) -> None: ...

    def start(self) -> None: ...


class Outage:
    """Use as ``Fault.then``: stops a registry and starts it again ``down_for`` seconds later.

    With ``down_for=None`` it stays down until :meth:`restore`.
    """

    def __init__(self, registry: _Stoppable, down_for: float | None) -> None:
        self._registry = registry
        self._down_for = down_for
        self._lock = threading.Lock()
        self._restarter: threading.Thread | None = None
        self.started_at: float | None = None

    def __call__(self) -> None:
        with self._lock:
            if self.started_at is not None:
                return
            self.started_at = time.monotonic()
            self._registry.stop()
            if self._down_for is not None:
                self._restarter = threading.Thread(
                    target=self._restart_later, name="registry-restart", daemon=True
                )
                self._restarter.start()

    def _restart_later(self) -> None:
        assert self._down_for is not None
        time.sleep(self._down_for)
        self._registry.start()

    def restore(self) -> None:
        """Make sure the registry is up again (waits for a scheduled restart)."""
        restarter = self._restarter
        if restarter is not None:
            restarter.join(timeout=30)
        self._registry.start()


class _Reader:
    """Buffered reads from a socket: a head up to its blank line, then exact or any bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEAD:
                raise ValueError("head too large")
            data = self._sock.recv(_PIECE)
            if not data:
                return None
            self._buffer += data
        end = self._buffer.index(b"\r\n\r\n") + 4
        head, self._buffer = self._buffer[:end], self._buffer[end:]
        return head

    def some(self, limit: int = _PIECE) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer[:limit], self._buffer[limit:]
            return data
        return self._sock.recv(limit)

    def exact(self, count: int) -> Iterator[bytes]:
        while count > 0:
            data = self.some(min(count, _PIECE))
            if not data:
                raise ConnectionError("peer closed in the middle of a body")
            count -= len(data)
            yield data

    def line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            data = self._sock.recv(_PIECE)
            if not data:
                raise ConnectionError("peer closed in the middle of a chunked body")
            self._buffer += data
        end = self._buffer.index(b"\r\n") + 2
        line, self._buffer = self._buffer[:end], self._buffer[end:]
        return line

    def chunked(self) -> Iterator[bytes]:
        """A chunked body as it is on the wire (framing included), up to its end."""
        while True:
            size_line = self.line()
            yield size_line
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:
                    trailer = self.line()
                    yield trailer
                    if trailer == b"\r\n":
                        return
            yield from self.exact(size + 2)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def _closing_head(first_line: str, headers: list[tuple[str, str]]) -> bytes:
    """The head with ``Connection: close``: one exchange per connection keeps counting simple."""
    kept = [
        (k, v)
        for k, v in headers
        if k.lower() not in ("connection", "keep-alive", "proxy-connection")
    ]
    kept.append(("Connection", "close"))
    text = first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n"
    return text.encode("latin-1")


def _body(reader: _Reader, headers: list[tuple[str, str]]) -> Iterator[bytes]:
    if (_header(headers, "Transfer-Encoding") or "").lower() == "chunked":
        return reader.chunked()
    length = _header(headers, "Content-Length")
    return reader.exact(int(length)) if length and length.isdigit() else iter(())


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset rather than an orderly shutdown."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """A threaded proxy on ``127.0.0.1`` in front of ``upstream`` (``host:port``)."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host.strip("[]"), int(port))
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._log: list[ProxiedRequest] = []
        self._stopping = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        self._loopback = Loopback(Handler, "fault-proxy")

    @property
    def port(self) -> int:
        return self._loopback.port

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        """Forget every fault and every recorded request."""
        with self._lock:
            self._faults.clear()
            self._log.clear()

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, method: str, path: str = "") -> int:
        """How many requests with ``method`` and a target matching ``path`` were received."""
        return sum(
            1 for r in self.requests if r.method == method and re.search(path, r.target) is not None
        )

    def stop(self) -> None:
        self._stopping.set()
        self._loopback.stop()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- one exchange ---------------------------------------------------------------------

    def _take(self, method: str, target: str, headers: list[tuple[str, str]]) -> Fault | None:
        """The first fault that may apply to this request (it counts once it strikes)."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, target)), None)
            self._log.append(
                ProxiedRequest(
                    method,
                    target,
                    {k.lower(): v for k, v in headers},
                    fault.action if fault else None,
                )
            )
            return fault

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(60)
        upstream: socket.socket | None = None
        try:
            reader = _Reader(client)
            head = reader.head()
            if head is None:
                return
            first, headers = _parse_head(head)
            method, target = [*first.split(" "), "", ""][:2]
            fault = self._take(method, target, headers)
            action = fault.action if fault else None
            if fault is not None and action in ("status", "drop") and self._strike(fault):
                for _ in _body(reader, headers):
                    pass
                if action == "drop":
                    self._stopping.wait(fault.seconds)
                else:
                    client.sendall(_status_answer(fault))
                return
            if fault is not None and action == "delay" and self._strike(fault):
                self._stopping.wait(fault.seconds)
            try:
                upstream = socket.create_connection(self._upstream, timeout=60)
            except OSError:
                _reset(client)  # what a client sees of a registry that is not there
                return
            upstream.sendall(_closing_head(first, headers))
            sent = 0
            for piece in _body(reader, headers):
                if (
                    fault is not None
                    and action == "reset_request"
                    and sent + len(piece) > fault.after
                    and self._strike(fault)
                ):
                    upstream.sendall(piece[: max(fault.after - sent, 0)])
                    _reset(client)
                    return
                upstream.sendall(piece)
                sent += len(piece)
            self._answer(client, _Reader(upstream), fault)
        except (OSError, ValueError):
            _reset(client)
        finally:
            if upstream is not None:
                upstream.close()
            with contextlib.suppress(OSError):
                client.close()

    def _strike(self, fault: Fault) -> bool:
        """Count the fault as fired, unless concurrent requests used it up meanwhile; then
        call its ``then``. False means: let this request pass after all."""
        with self._lock:
            if fault.exhausted:
                return False
            fault.fired += 1
        if fault.then is not None:
            fault.then()
        return True

    def _answer(self, client: socket.socket, upstream: _Reader, fault: Fault | None) -> None:
        head = upstream.head()
        if head is None:
            _reset(client)
            return
        action = fault.action if fault else None
        if fault is not None and action == "stall" and fault.after < 0 and self._strike(fault):
            self._stopping.wait(fault.seconds)
            return
        throttled = fault is not None and action == "throttle" and self._strike(fault)
        first, headers = _parse_head(head)
        client.sendall(_closing_head(first, headers))
        sent = 0
        while True:
            piece = upstream.some()
            if not piece:
                return
            if (
                fault is not None
                and action in ("reset_response", "stall")
                and fault.after >= 0
                and sent + len(piece) > fault.after
                and self._strike(fault)
            ):
                client.sendall(piece[: max(fault.after - sent, 0)])
                if action == "stall":
                    self._stopping.wait(fault.seconds)
                    return
                _reset(client)
                return
            if throttled:
                assert fault is not None
                for start in range(0, len(piece), 16 << 10):
                    client.sendall(piece[start : start + (16 << 10)])
                    self._stopping.wait(fault.seconds)
                sent += len(piece)
                continue
            client.sendall(piece)
            sent += len(piece)


def _status_answer(fault: Fault) -> bytes:
    code = _CODES.get(fault.status, "UNKNOWN")
    body = json.dumps({"errors": [{"code": code, "message": "injected by the test proxy"}]})
    lines = [
        f"HTTP/1.1 {fault.status} {_REASONS.get(fault.status, 'Error')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if fault.retry_after is not None:
        lines.append(f"Retry-After: {fault.retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
