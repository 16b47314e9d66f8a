"""Thousands of versions: resolving the newest, and serving the project's page.

For each size (500, 2,000 and 5,000 versions of four files, one project each, written
straight through the registry API: see ``populate``) on a registry with Bearer-token auth:

- resolve: ``setuptools-ghcr download -d OUT PROJECT`` of the newest version, cold cache,
  straight to the registry; its access log counts the requests and the tag pages among them;
- serve, through a proxy that holds every registry request 30 ms before relaying it (a
  runner's round trip to ghcr.io), with the index cache in a fresh folder:
  - cold: a fresh server's first page (the tag list and every version's index);
  - restarted: a new server process on the same cache folder, its first page;
  - a new version: one more version published (by the tool's own push), then the page
    once the kept one has expired: how many indexes the refresh read, and whether the
    new version is on it;
  - memory: the server's peak resident set over all of it.

The proxy counts the index reads (``GET /v2/.../manifests/<tag>``) of each step.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness import AccessLog, Child, Stats, load_average, logged_registry, measure, ours
from latency import DelayingProxy
from populate import NAMESPACE, credentials_env, populate, publish_version, version_of
from report import Check, Outcome, Row
from servers import Server
from support.registry_harness import RunningRegistry

__all__ = ["SIZES", "run"]

SIZES = (500, 2000, 5000)
#: Added to every registry request the server makes (seconds).
DELAY = 0.030
#: How long the server keeps a page (``--cache-ttl``): the "next page" comes after it.
TTL = 5.0
#: Index reads: ``GET /v2/<repository>/manifests/<tag>`` (not by digest).
INDEX_READ = r"/manifests/(?!sha256:)"


def project_of(size: int) -> str:
    return f"bench-v{size}"


@dataclass(frozen=True)
class _Resolved:
    stats: Stats
    after_auth: int
    tag_pages: int


def _cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Served:
    cold: float
    cold_reads: int
    #: CPU seconds the cold page cost the server, and the registry behind it.
    cold_cpu: tuple[float, float]
    restarted: float
    restarted_reads: int
    fresh: float
    fresh_reads: int
    fresh_seen: bool
    rss_mb: float
    versions_shown: int


def _resolve(registry: RunningRegistry, size: int, workdir: Path, rounds: int) -> _Resolved:
    project = project_of(size)
    target = f"{registry.host}/{NAMESPACE}"
    log = AccessLog(registry)
    out = workdir / "out"
    cache = workdir / "cache"
    counts: list[tuple[int, int]] = []

    def before(_name: str, _round: int) -> None:
        out.mkdir()
        log.mark()

    def after(_name: str, _round: int) -> None:
        requests = [r for r in log.since_mark() if r.status != 401]
        counts.append((len(requests), sum(1 for r in requests if "/tags/list" in r.path)))
        files = [p.name for p in out.iterdir()]
        if len(files) != 1 or f"-{version_of(size - 1)}-" not in files[0]:
            raise SystemExit(f"the resolve downloaded {files}, not version {version_of(size - 1)}")
        shutil.rmtree(out)
        shutil.rmtree(cache, ignore_errors=True)

    def command(_round: int) -> Child:
        return Child(
            [*ours(), "download", "-r", target, "-d", str(out), project],
            env={**credentials_env(registry), "SETUPTOOLS_GHCR_CACHE_DIR": str(cache)},
        )

    name = f"download the newest of {size} versions"
    found = measure([(name, command)], rounds, workdir, before=before, after=after)[name]
    after_auth, pages = max(counts)
    return _Resolved(found, after_auth, pages)


def _page(server: Server, project: str) -> tuple[float, list[str]]:
    seconds, status, body = server.get(f"/simple/{project}/")
    if status != 200:
        raise SystemExit(f"the page of {project} answered {status}")
    return seconds, list(json.loads(body).get("versions", []))


def _serve(registry: RunningRegistry, size: int, workdir: Path) -> _Served:
    project = project_of(size)
    cache = workdir / f"serve-cache-{size}"
    log = workdir / "serve.log"
    env = {**credentials_env(registry), "SETUPTOOLS_GHCR_CACHE_DIR": str(cache)}
    extra = ("--cache-ttl", str(TTL))
    with DelayingProxy(registry.host, DELAY) as proxy:
        target = f"{proxy.host}/{NAMESPACE}"
        peak = 0.0
        assert registry.process is not None
        with Server.ours(target, log, env=env, extra=extra) as server:
            proxy.clear()
            before = _cpu_seconds(server.process.pid), _cpu_seconds(registry.process.pid)
            cold, shown = _page(server, project)
            cold_cpu = (
                _cpu_seconds(server.process.pid) - before[0],
                _cpu_seconds(registry.process.pid) - before[1],
            )
            cold_reads = proxy.count("GET", INDEX_READ)
            peak = max(peak, server.peak_rss_mb())
        with Server.ours(target, log, env=env, extra=extra) as server:
            proxy.clear()
            restarted, _ = _page(server, project)
            restarted_reads = proxy.count("GET", INDEX_READ)
            newest = version_of(size)
            publish_version(registry, workdir / "dists", project, newest)
            time.sleep(TTL + 0.1)
            proxy.clear()
            fresh, versions = _page(server, project)
            fresh_reads = proxy.count("GET", INDEX_READ)
            peak = max(peak, server.peak_rss_mb())
    return _Served(
        cold,
        cold_reads,
        cold_cpu,
        restarted,
        restarted_reads,
        fresh,
        fresh_reads,
        newest in versions,
        peak,
        len(shown),
    )


def run(workdir: Path, rounds: int, sizes: tuple[int, ...] = SIZES) -> list[Outcome]:
    registry = logged_registry("token", workdir / "registry")
    resolved: dict[int, _Resolved] = {}
    served: dict[int, _Served] = {}
    written: dict[int, float] = {}
    load_before = load_average()
    try:
        for size in sizes:
            started = time.monotonic()
            populate(registry, workdir / "dists", size, project=project_of(size))
            written[size] = time.monotonic() - started
            print(f"  {size} versions: resolve", flush=True)
            resolved[size] = _resolve(registry, size, workdir, rounds)
            print(f"  {size} versions: serve, {DELAY * 1000:.0f} ms added", flush=True)
            served[size] = _serve(registry, size, workdir)
            s = served[size]
            print(
                f"    cold {s.cold:.2f} s ({s.cold_reads} index reads, CPU {s.cold_cpu[0]:.1f} s "
                f"server, {s.cold_cpu[1]:.1f} s registry), restarted "
                f"{s.restarted:.3f} s ({s.restarted_reads}), new version {s.fresh:.3f} s "
                f"({s.fresh_reads}, seen: {s.fresh_seen}), peak RSS {s.rss_mb:.0f} MB",
                flush=True,
            )
    finally:
        registry.close()
    return [
        _resolve_outcome(resolved, (load_before, load_average())),
        _serve_outcome(served, written, (load_before, load_average())),
    ]


def _resolve_outcome(resolved: dict[int, _Resolved], load: tuple[float, float]) -> Outcome:
    rows = tuple(
        Row(
            f"download the newest of {size} versions",
            found.stats,
            note=f"{found.after_auth} requests after auth, {found.tag_pages} of them tag pages",
        )
        for size, found in resolved.items()
    )
    checks = []
    for size, found in resolved.items():
        allowed = found.tag_pages + 4
        checks.append(
            Check(
                f"resolve among {size} versions: <= tag pages + 4 requests, < 1 s",
                f"{found.after_auth} requests ({found.tag_pages} tag pages), "
                f"{found.stats.median:.2f} s",
                found.after_auth <= allowed and found.stats.median < 1.0,
            )
        )
    return Outcome(
        "Resolve and download the newest version among thousands (token auth, 4 files each)",
        rows,
        tuple(checks),
        notes=("Cold cache, dependencies resolved; the whole process, start-up included.",),
        load=load,
    )


def _serve_outcome(
    served: dict[int, _Served], written: dict[int, float], load: tuple[float, float]
) -> Outcome:
    rows: list[Row] = []
    checks: list[Check] = []
    for size, s in served.items():
        rows += [
            Row(
                f"{size} versions: cold page",
                value=f"{s.cold:.2f} s",
                note=f"{s.cold_reads} index reads; {s.versions_shown} versions on the page; "
                f"CPU: server {s.cold_cpu[0]:.1f} s, registry {s.cold_cpu[1]:.1f} s",
            ),
            Row(
                f"{size} versions: restarted server",
                value=f"{s.restarted * 1000:.0f} ms",
                note=f"{s.restarted_reads} index reads (persistent cache)",
            ),
            Row(
                f"{size} versions: one new version",
                value=f"{s.fresh * 1000:.0f} ms",
                note=f"{s.fresh_reads} index reads; on the page: {'yes' if s.fresh_seen else 'no'}",
            ),
            Row(f"{size} versions: server peak RSS", value=f"{s.rss_mb:.0f} MB"),
            Row(f"{size} versions: written by the benchmark", value=f"{written[size]:.1f} s"),
        ]
        checks += [
            Check(f"serve, {size} versions: cold page < 10 s", f"{s.cold:.2f} s", s.cold < 10),
            Check(
                f"serve, {size} versions: restarted page < 0.5 s, no index read",
                f"{s.restarted:.3f} s, {s.restarted_reads} reads",
                s.restarted < 0.5 and s.restarted_reads == 0,
            ),
            Check(
                f"serve, {size} versions: a new version on the next page, 1 index read",
                f"{'seen' if s.fresh_seen else 'missing'}, {s.fresh_reads} reads",
                s.fresh_seen and s.fresh_reads == 1,
            ),
            Check(f"serve, {size} versions: memory < 200 MB", f"{s.rss_mb:.0f} MB", s.rss_mb < 200),
        ]
    return Outcome(
        f"serve over thousands of versions, {DELAY * 1000:.0f} ms added to each registry request",
        tuple(rows),
        tuple(checks),
        notes=(
            f"Pages are kept {TTL:.0f} s (--cache-ttl); the new version's page is asked for "
            "once that has passed.",
        ),
        load=load,
    )
