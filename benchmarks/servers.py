"""Index servers as child processes: ``setuptools-ghcr serve``, pypiserver, gunicorn.

Each listens on a free loopback port; the benchmark talks to it over HTTP only, and reads
its memory from ``/proc`` (the peak resident set of the server process and its workers).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import ours
from support.registry_harness import free_port

__all__ = ["JSON", "Server", "process_tree_peak_mb"]

JSON = "application/vnd.pypi.simple.v1+json"


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(word) for word in text.split()]


def _peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree_peak_mb(pid: int) -> float:
    """The peak resident set of a process plus its children's (gunicorn's workers)."""
    return _peak_mb(pid) + sum(process_tree_peak_mb(child) for child in _children(pid))


class Server:
    """A server child process on ``127.0.0.1:<port>``, started by ``argv(port)``."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [word.replace("{port}", str(self.port)) for word in argv],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    tail = log.read_text(errors="replace")[-1500:]
                    raise SystemExit(f"{argv[0]} exited at start:\n{tail}") from None
                time.sleep(0.02)
        raise SystemExit(f"{argv[0]} did not start listening")

    @classmethod
    def ours(
        cls,
        target: str,
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        extra: Sequence[str] = (),
    ) -> Server:
        """``setuptools-ghcr serve -r TARGET``."""
        return cls([*ours(), "serve", "-r", target, "--port", "{port}", *extra], log, env=env)

    @property
    def index(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def get(self, path: str, accept: str = JSON) -> tuple[float, int, bytes]:
        """Seconds from request to last byte, the status and the body."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("GET", path, headers={"Accept": accept})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        return time.perf_counter() - started, response.status, body

    def peak_rss_mb(self) -> float:
        return process_tree_peak_mb(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
