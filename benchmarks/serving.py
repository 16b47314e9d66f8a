"""``setuptools-ghcr serve`` over a token-auth registry holding 200 versions x 4 files.

- cold page: a fresh server process, first ``GET /simple/<project>/`` (JSON), timed by the
  client from request to last byte: one tag listing and 200 index fetches behind it;
- warm page: the same request again (the page is cached for 30 s), median of many;
- requests per second with 8 concurrent clients on the warm page (ApacheBench ``ab``, a
  separate process, so the load generator does not share the server's interpreter);
- ``pip install`` of the newest version through the index, against ``pip install`` of the
  same wheel from a local folder (what pip itself costs).
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Child, Sample, Stats, load_average, logged_registry, measure, ours
from populate import DEEP_PROJECT, WHEEL_TAGS, credentials_env, populate, version_of
from report import Check, Outcome, Row
from support.registry_harness import RunningRegistry, free_port

__all__ = ["run"]

VERSIONS = 200
JSON = "application/vnd.pypi.simple.v1+json"
WARM_REQUESTS = 50
AB_REQUESTS = 2000
CLIENTS = 8


class _Server:
    """A ``setuptools-ghcr serve`` child process."""

    def __init__(self, registry: RunningRegistry, target: str, log: Path) -> None:
        self.port = free_port()
        self._log = log.open("ab")
        env = {**credentials_env(registry)}
        import os

        self.process = subprocess.Popen(
            [*ours(), "serve", "-r", target, "--port", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, **env},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit("setuptools-ghcr serve exited at start") from None
                time.sleep(0.02)
        raise SystemExit("setuptools-ghcr serve did not start listening")

    @property
    def index(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def get(self, path: str) -> tuple[float, int, int]:
        """Seconds from request to last byte, the status and the body size."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request("GET", path, headers={"Accept": JSON})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        return time.perf_counter() - started, response.status, len(body)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


def _ab(url: str) -> float:
    """Requests per second of ``ab`` with CLIENTS concurrent clients (failed ones refused)."""
    result = subprocess.run(
        ["ab", "-q", "-n", str(AB_REQUESTS), "-c", str(CLIENTS), "-H", f"Accept: {JSON}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    failed = re.search(r"Failed requests:\s+(\d+)", result.stdout)
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", result.stdout)
    if (failed and int(failed.group(1))) or non_2xx:
        raise SystemExit(f"ab saw failures:\n{result.stdout}")
    found = re.search(r"Requests per second:\s+([\d.]+)", result.stdout)
    if found is None:
        raise SystemExit(f"cannot read ab's output:\n{result.stdout}")
    return float(found.group(1))


def _threads_rps(server: _Server, path: str) -> float:
    """The same measure without ``ab``: CLIENTS threads of this process."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(lambda _: server.get(path)[1], range(AB_REQUESTS // 4)))
    if any(status != 200 for status in statuses):
        raise SystemExit("a warm page request failed")
    return (AB_REQUESTS // 4) / (time.perf_counter() - started)


def run(workdir: Path, rounds: int) -> list[Outcome]:
    registry = logged_registry("token", workdir / "registry")
    try:
        target = populate(registry, workdir / "dists", VERSIONS)
        load_before = load_average()
        path = f"/simple/{DEEP_PROJECT}/"
        cold: list[float] = []
        warm: list[float] = []
        rates: list[float] = []
        server_rss: list[float] = []
        size = 0
        rps_tool = "ab" if shutil.which("ab") else "threads"
        for round_number in range(rounds):
            server = _Server(registry, target, workdir / "serve.log")
            try:
                seconds, status, size = server.get(path)
                if status != 200:
                    raise SystemExit(f"cold page answered {status}")
                cold.append(seconds)
                warm.extend(server.get(path)[0] for _ in range(WARM_REQUESTS))
                url = f"http://127.0.0.1:{server.port}{path}"
                rates.append(_ab(url) if rps_tool == "ab" else _threads_rps(server, path))
                server_rss.append(server.peak_rss_mb())
            finally:
                server.stop()
            print(
                f"    round {round_number + 1}: cold {cold[-1] * 1000:.0f} ms, warm "
                f"{statistics.median(warm) * 1000:.1f} ms, {rates[-1]:.0f} req/s",
                flush=True,
            )

        # pip through the index vs pip from a folder holding the same wheel.
        newest = version_of(VERSIONS - 1)
        local = workdir / "local"
        local.mkdir()
        stem = DEEP_PROJECT.replace("-", "_")
        # The version's four files, so that pip chooses among the same candidates.
        for name in [f"{stem}-{newest}-{tag}.whl" for tag in WHEEL_TAGS] + [
            f"{stem}-{newest}.tar.gz"
        ]:
            shutil.copy(workdir / "dists" / name, local / name)
        server = _Server(registry, target, workdir / "serve.log")
        pip_target = workdir / "pip-target"
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir"]
        pip += ["--disable-pip-version-check", "--target", str(pip_target)]
        via_index = "pip install via serve (cold page)"
        via_folder = "pip install --find-links folder"

        def before(name: str, _round: int) -> None:
            nonlocal server
            if name == via_index:
                # A cold page each time: what one CI job meets.
                server.stop()
                server = _Server(registry, target, workdir / "serve.log")

        def after(_name: str, _round: int) -> None:
            shutil.rmtree(pip_target)

        def pip_index(_round: int) -> Child:
            return Child([*pip, "--index-url", server.index, f"{DEEP_PROJECT}=={newest}"])

        def pip_folder(_round: int) -> Child:
            return Child([*pip, "--no-index", "--find-links", str(local), DEEP_PROJECT])

        try:
            installs = measure(
                [(via_index, pip_index), (via_folder, pip_folder)],
                rounds,
                workdir,
                before=before,
                after=after,
            )
        finally:
            server.stop()
    finally:
        registry.close()

    cold_s = statistics.median(cold)
    warm_ms = statistics.median(warm) * 1000
    rate = statistics.median(rates)
    page = Stats(tuple(Sample(s, max(server_rss)) for s in cold))
    rows = (
        Row(
            "cold project page (fresh server)",
            page,
            note=f"{VERSIONS} versions x 4 files, {size // 1024} KiB of JSON; RSS: the server's",
        ),
        Row(
            "warm project page",
            value=f"{warm_ms:.1f} ms",
            note=f"median of {WARM_REQUESTS * rounds} sequential requests",
        ),
        Row(
            f"warm page, {CLIENTS} concurrent clients",
            value=f"{rate:.0f} req/s",
            note=f"{rps_tool}, {AB_REQUESTS} requests, median of {rounds} servers",
        ),
        Row(
            via_index, installs[via_index], via_folder, "pip picks one of the four files, --no-deps"
        ),
        Row(via_folder, installs[via_folder], None, "the same four files in a folder"),
    )
    checks = (
        Check("serve: warm project page <= 20 ms", f"{warm_ms:.1f} ms", warm_ms <= 20),
        Check(f"serve: >= 200 requests/s with {CLIENTS} clients", f"{rate:.0f} req/s", rate >= 200),
        Check(
            f"serve: cold page for {VERSIONS} versions x 4 files <= 2 s",
            f"{cold_s:.2f} s",
            cold_s <= 2.0,
        ),
    )
    return [
        Outcome(
            f"serve: the simple index over {VERSIONS} versions x 4 files (token auth)",
            rows,
            checks,
            load=(load_before, load_average()),
        )
    ]
