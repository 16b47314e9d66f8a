"""The index service against pypiserver, serving the same 50 projects, in one run.

pypiserver reads a local folder; setuptools-ghcr reads a registry (a local docker-registry
holding the same files, pushed by the tool beforehand). Both run under gunicorn with four
workers; ours also runs as the built-in ``setuptools-ghcr serve``. For each server:

- warm project pages per second with 16 concurrent clients (ApacheBench, a separate
  process): every project page is read once first, then ``ab`` asks for one page;
- ``pip install`` and ``uv pip install`` of 20 of the projects (``--no-deps``, no cache,
  into a fresh ``--target``), interleaved with the other servers' installs.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import Child, Stats, load_average, logged_registry, measure
from report import Check, Outcome, Row
from servers import JSON, Server
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.publish import PushOptions, publish

__all__ = ["run"]

PROJECTS = 50
VERSIONS = ("1.0", "1.1", "1.2")
INSTALLED = 20
CLIENTS = 16
AB_REQUESTS = 4000
NAMESPACE = "idx"

PYPISERVER = "pypiserver (gunicorn -w 4)"
OURS_GUNICORN = "setuptools-ghcr (gunicorn -w 4)"
OURS_SERVE = "setuptools-ghcr serve (built-in)"


def project(number: int) -> str:
    return f"bench-idx-{number:02d}"


def _inputs(folder: Path) -> list[Path]:
    """A wheel and an sdist of each version of each project, in one flat folder."""
    folder.mkdir(parents=True)
    paths: list[Path] = []
    for number in range(PROJECTS):
        for version in VERSIONS:
            paths.append(make_wheel(folder, project(number), version, summary="index benchmark"))
            paths.append(make_sdist(folder, project(number), version))
    return paths


def _gunicorn() -> list[str]:
    found = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("gunicorn is needed (pip install -e '.[bench]')")
    return [found, "--workers", "4", "--bind", "127.0.0.1:{port}", "--log-level", "warning"]


def _servers(folder: Path, target: str, workdir: Path) -> dict[str, Callable[[], Server]]:
    log = workdir / "servers.log"
    env = {"SETUPTOOLS_GHCR_CACHE_DIR": str(workdir / "serve-cache")}
    servers: dict[str, Callable[[], Server]] = {
        PYPISERVER: lambda: Server([*_gunicorn(), f"pypiserver:app(roots=[{str(folder)!r}])"], log),
        OURS_GUNICORN: lambda: Server(
            [*_gunicorn(), "setuptools_ghcr.wsgi:application"],
            log,
            env={**env, "SETUPTOOLS_GHCR_REPOSITORY": target},
        ),
        OURS_SERVE: lambda: Server.ours(target, log, env=env),
    }
    if importlib.util.find_spec("setuptools_ghcr.wsgi") is None:
        print(f"    (no WSGI application in this version: {OURS_GUNICORN} skipped)")
        del servers[OURS_GUNICORN]
    return servers


def _warm(server: Server) -> None:
    for number in range(PROJECTS):
        for accept in (JSON, "text/html"):
            _seconds, status, _body = server.get(f"/simple/{project(number)}/", accept)
            if status != 200:
                raise SystemExit(f"{project(number)}'s page answered {status}")


def _ab(url: str) -> float:
    """Requests per second of ``ab`` with CLIENTS concurrent clients (failures refused)."""
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


def _installers(
    servers: dict[str, Server], workdir: Path
) -> list[tuple[str, Callable[[int], Child]]]:
    wanted = [project(number) for number in range(INSTALLED)]
    out = workdir / "installed"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
    contenders: list[tuple[str, Callable[[int], Child]]] = []
    for name, server in servers.items():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-cache-dir"]
        pip += ["--disable-pip-version-check", "--target", str(out), "-i", server.index]
        uv_pip = [uv, "pip", "install", "-q", "--no-deps", "--no-cache", "--target", str(out)]
        uv_pip += ["--python", sys.executable, "--index-url", server.index]

        def pip_child(_round: int, argv: list[str] = pip) -> Child:
            return Child([*argv, *wanted])

        def uv_child(_round: int, argv: list[str] = uv_pip) -> Child:
            return Child([*argv, *wanted])

        contenders.append((f"pip install, {name}", pip_child))
        contenders.append((f"uv pip install, {name}", uv_child))
    return contenders


def run(workdir: Path, rounds: int) -> list[Outcome]:
    load_before = load_average()
    registry = logged_registry("plain", workdir / "registry")
    started: dict[str, Server] = {}
    try:
        files = _inputs(workdir / "files")
        target = f"{registry.host}/{NAMESPACE}"
        with StoreFactory(parse_target(target), environ={}) as stores:
            publish(stores.open, [read_distribution(p) for p in files], PushOptions(workers=8))
        print(f"  {PROJECTS} projects, {len(files)} files in a folder and a registry", flush=True)
        rates: dict[str, list[float]] = {}
        for name, start in _servers(workdir / "files", target, workdir).items():
            server = started[name] = start()
            _warm(server)
            url = f"{server.index}{project(0)}/"
            _ab(url)  # every worker warm
            rates[name] = [_ab(url) for _ in range(rounds)]
            print(f"    {name}: {statistics.median(rates[name]):.0f} req/s", flush=True)
        out = workdir / "installed"

        def after(_name: str, _round: int) -> None:
            installed = {p.name.split("-")[0] for p in out.glob("*.dist-info")}
            if len(installed) != INSTALLED:
                raise SystemExit(f"{_name} installed {sorted(installed)}")
            shutil.rmtree(out)

        installs = measure(_installers(started, workdir), rounds, workdir, after=after)
    finally:
        for server in started.values():
            server.stop()
        registry.close()
    return [_outcome(rates, installs, (load_before, load_average()))]


def _outcome(
    rates: dict[str, list[float]], installs: dict[str, Stats], load: tuple[float, float]
) -> Outcome:
    rows: list[Row] = [
        Row(
            f"warm page, {CLIENTS} clients, {name}",
            value=f"{statistics.median(found):.0f} req/s",
            note=f"ab, {AB_REQUESTS} requests, median of {len(found)}",
        )
        for name, found in rates.items()
    ]
    for tool in ("pip install", "uv pip install"):
        base = f"{tool}, {PYPISERVER}"
        for name in rates:
            contender = f"{tool}, {name}"
            rows.append(
                Row(
                    contender,
                    installs[contender],
                    None if name == PYPISERVER else base,
                    f"{INSTALLED} packages, --no-deps, no cache",
                )
            )
    base_rate = statistics.median(rates[PYPISERVER])
    checks: list[Check] = []
    for name in (n for n in rates if n != PYPISERVER):
        rate = statistics.median(rates[name])
        checks.append(
            Check(
                f"{name}: warm page req/s >= pypiserver's (gunicorn -w 4)",
                f"{rate:.0f} vs {base_rate:.0f} req/s",
                rate >= base_rate,
            )
        )
        for tool in ("pip install", "uv pip install"):
            ratio = installs[f"{tool}, {name}"].median / installs[f"{tool}, {PYPISERVER}"].median
            checks.append(
                Check(
                    f"{tool} of {INSTALLED} through {name} <= 1.2 x through pypiserver",
                    f"{ratio:.2f} x",
                    ratio <= 1.2,
                )
            )
    return Outcome(
        f"The index service against pypiserver: {PROJECTS} projects",
        tuple(rows),
        tuple(checks),
        notes=(
            "pypiserver reads a folder; setuptools-ghcr a local docker-registry holding the "
            "same files. Pages are warm (each read once before).",
        ),
        load=load,
    )
