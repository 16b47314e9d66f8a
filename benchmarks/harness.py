"""Measuring tools shared by the scenarios: child processes, interleaving, the registry.

Every contender runs as its own child process under GNU ``time``, which reports the peak
RSS of that child alone (a child forked straight from this big parent would count the
parent's pages until it execs). Wall time is taken around the child, start-up included:
that is what a user waits for.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The registry harness of the test suite starts real docker-registry processes.
sys.path.insert(0, str(ROOT / "tests"))

from support.registry_harness import RegistryKind, RunningRegistry, start_registry  # noqa: E402

__all__ = [
    "AccessLog",
    "Child",
    "Machine",
    "Sample",
    "Stats",
    "in_turn",
    "logged_registry",
    "ours",
    "run_child",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One run of one contender."""

    seconds: float
    peak_rss_mb: float
    #: The one-minute load average when the run started (the machine is shared).
    load: float = 0.0


@dataclass(frozen=True)
class Stats:
    """Several runs of one contender."""

    samples: tuple[Sample, ...]

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def low(self) -> float:
        return min(s.seconds for s in self.samples)

    @property
    def high(self) -> float:
        return max(s.seconds for s in self.samples)

    @property
    def peak_rss_mb(self) -> float:
        return max(s.peak_rss_mb for s in self.samples)


@dataclass(frozen=True)
class Child:
    """A command to measure, with its environment additions and working folder."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def ours() -> list[str]:
    """The ``setuptools-ghcr`` console script of this interpreter (else ``-m``)."""
    script = Path(sys.executable).parent / "setuptools-ghcr"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "setuptools_ghcr"]


def run_child(child: Child, scratch: Path, *, quiet: bool = True) -> Sample:
    """Run ``child`` to its end; its wall time and peak RSS (MB). Fails loudly on error."""
    report = scratch / "peak-rss.txt"
    timer = shutil.which("time") or "/usr/bin/time"
    if not Path(timer).exists():
        raise SystemExit("GNU time is needed to read each child's peak RSS (apt-get install time)")
    argv = [timer, "-f", "%M", "-o", str(report), *child.argv]
    env = {**os.environ, **child.env}
    log = scratch / "child-output.txt"
    # Dirty pages of the previous contender would be written back during this one.
    os.sync()
    load = load_average()
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
            env=env,
            cwd=child.cwd,
        )
        _, status, _usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{child.argv[0]} failed with status {code}: {list(child.argv)}\n{tail}")
    peak_kib = int(report.read_text().split()[-1])
    report.unlink()
    return Sample(elapsed, peak_kib / 1024, load)


def in_turn(contenders: Sequence[T], round_number: int) -> list[T]:
    """The contenders in alternating order (A B C, C B A, ...): none always goes first."""
    return list(contenders) if round_number % 2 == 0 else list(contenders)[::-1]


def measure(
    contenders: Sequence[tuple[str, Callable[[int], Child]]],
    rounds: int,
    scratch: Path,
    *,
    before: Callable[[str, int], None] | None = None,
    after: Callable[[str, int], None] | None = None,
) -> dict[str, Stats]:
    """Run each contender ``rounds`` times, interleaved; ``before``/``after`` prepare/clean."""
    samples: dict[str, list[Sample]] = {name: [] for name, _ in contenders}
    for round_number in range(rounds):
        for name, make in in_turn(contenders, round_number):
            if before is not None:
                before(name, round_number)
            sample = run_child(make(round_number), scratch)
            samples[name].append(sample)
            print(
                f"    {name}: {sample.seconds:.2f} s, {sample.peak_rss_mb:.0f} MB, "
                f"load {sample.load:.2f}",
                flush=True,
            )
            if after is not None:
                after(name, round_number)
    return {name: Stats(tuple(found)) for name, found in samples.items()}


# ---------------------------------------------------------------------- the registry


def logged_registry(kind: RegistryKind, root: Path) -> RunningRegistry:
    """A registry of the test harness, restarted with its access log on (to count requests)."""
    registry = start_registry(kind, root)
    registry.stop()
    config = json.loads(registry.config_path.read_text())
    config["log"]["accesslog"]["disabled"] = False
    registry.config_path.write_text(json.dumps(config, indent=2))
    registry.start()
    return registry


_ACCESS_LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3}) ')


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int

    @property
    def uploads(self) -> bool:
        """Whether it is part of a blob upload (POST, PATCH or PUT of an upload session)."""
        return "/blobs/uploads/" in self.path and self.method in ("POST", "PATCH", "PUT")


class AccessLog:
    """The requests a registry logged since a mark."""

    def __init__(self, registry: RunningRegistry) -> None:
        self._path = registry.log_path
        self._offset = 0

    def mark(self) -> None:
        self._offset = self._path.stat().st_size

    def since_mark(self) -> list[Request]:
        # The registry writes each line as the request finishes; give the last one a moment.
        time.sleep(0.2)
        with self._path.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode("utf-8", "replace")
        return [
            Request(m.group(1), m.group(2), int(m.group(3)))
            for m in map(_ACCESS_LINE.search, text.splitlines())
            if m is not None
        ]


def reset_storage(registry: RunningRegistry) -> None:
    """Restart the registry on an empty storage (so that big benchmarks do not fill the disk)."""
    registry.stop()
    shutil.rmtree(registry.storage)
    registry.storage.mkdir()
    registry.start()


# ---------------------------------------------------------------------- the machine


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    ram_gib: float
    kernel: str
    python: str
    registry: str
    tools: Mapping[str, str]
    load: tuple[float, float, float]

    @classmethod
    def describe(cls) -> Machine:
        cpu = "unknown"
        with _suppress_os_error():
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        ram = 0.0
        with _suppress_os_error():
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    ram = int(line.split()[1]) / (1 << 20)
        tools = {
            "curl": _first_line(["curl", "--version"]),
            "skopeo": _first_line(["skopeo", "--version"]),
            "oras-py": _package_version("oras"),
            "pip": _package_version("pip"),
            "uv": _package_version("uv"),
            "pypiserver": _package_version("pypiserver"),
            "gunicorn": _package_version("gunicorn"),
            "requests": _package_version("requests"),
        }
        return cls(
            cores=os.cpu_count() or 0,
            cpu=cpu,
            ram_gib=ram,
            kernel=platform.release(),
            python=platform.python_version(),
            registry=_first_line(["docker-registry", "--version"]),
            tools=tools,
            load=os.getloadavg(),
        )


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "absent"
    return (
        (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "?"
    )


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def load_average() -> float:
    """The one-minute load average (other work on the machine skews wall times)."""
    return os.getloadavg()[0]


@dataclass
class LoadWatch:
    """The one-minute load average sampled around a scenario."""

    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        self.samples.append(load_average())

    def __iter__(self) -> Iterator[float]:
        return iter(self.samples)
