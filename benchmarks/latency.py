"""A proxy that adds a round trip to every request: a registry seen from far away.

Every request a client sends is held ``delay`` seconds before it goes on to the registry;
answers come back at once. Connections are kept alive, one upstream connection per client
connection, as a registry's would be, and the proxy itself costs little (an asyncio loop on
one thread): what a measure through it shows is the client's behaviour over a slow link,
not the proxy's. It records each request's method and path.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["DelayingProxy"]

_REQUEST_LINE = re.compile(rb"^(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")


class DelayingProxy:
    """A proxy on ``127.0.0.1`` in front of ``upstream`` (``host:port``)."""

    def __init__(self, upstream: str, delay: float) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self.delay = delay
        self._lock = threading.Lock()
        self._requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="delaying-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._server is None:
            raise RuntimeError("the delaying proxy did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def count(self, method: str, path: str = "") -> int:
        """How many requests with ``method`` and a path matching ``path`` went through."""
        return sum(1 for m, p in self.requests if m == method and re.search(path, p))

    def close(self) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_soon(self._loop.stop)

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    def __enter__(self) -> DelayingProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, backlog=512)

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        answers = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            while data := await reader.read(1 << 16):
                found = _REQUEST_LINE.match(data)
                if found is not None:
                    # A request starts: it travels the long way.
                    with self._lock:
                        self._requests.append((found[1].decode(), found[2].decode()))
                    await asyncio.sleep(self.delay)
                up_writer.write(data)
                await up_writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            up_writer.close()
            await _quietly(answers)
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


async def _quietly(awaitable: Coroutine[Any, Any, None] | asyncio.Future[None]) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await awaitable
