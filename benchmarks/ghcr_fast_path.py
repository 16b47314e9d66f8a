"""Requests the anonymous fast path saves on ghcr.io, counted at the ghcr.io emulator.

A chain of public projects (each depends on the next, so a resolve reads one repository per
project) is published to the emulator of the test suite, then downloaded anonymously three
ways: with ``SETUPTOOLS_GHCR_ANONYMOUS_AUTH=none`` (the challenge flow alone, as before),
with the variable unset (the emulator is on loopback, so the fast path starts once its first
challenge names ``ghcr.io``), and with ``Bearer QQ==`` (what the host ``ghcr.io`` itself gets
by default). Every request the emulator received is counted, blob bytes excluded (they come
from its CDN either way).

    python benchmarks/ghcr_fast_path.py [--projects N]

or, from another script, ``measure(workdir, projects)``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from support.ghcr_emulator import start_ghcr  # noqa: E402
from support.wheels import make_wheel  # noqa: E402

from setuptools_ghcr.core.dists import read_distribution  # noqa: E402
from setuptools_ghcr.core.targets import parse_target  # noqa: E402
from setuptools_ghcr.storage.cache import BlobCache  # noqa: E402
from setuptools_ghcr.storage.factory import StoreFactory  # noqa: E402
from setuptools_ghcr.usecases.publish import publish  # noqa: E402
from setuptools_ghcr.usecases.resolve import download  # noqa: E402

__all__ = ["SETTINGS", "Counted", "measure"]

#: (label, value of SETTINGS_GHCR_ANONYMOUS_AUTH) in the order they are measured.
SETTINGS = (
    ("challenge flow only (none)", "none"),
    ("default, emulator on loopback", ""),
    ("default on ghcr.io (Bearer QQ==)", "Bearer QQ=="),
)


@dataclass(frozen=True)
class Counted:
    """What one anonymous download cost at the registry."""

    label: str
    requests: int
    token_requests: int
    fast_path_reads: int
    files: int


def _publish_chain(registry_host: str, user: str, pat: str, work: Path, projects: int) -> str:
    namespace = "fastpath"
    target = f"{registry_host}/{namespace}"
    dists = work / "dists"
    dists.mkdir()
    factory = StoreFactory(parse_target(target), username=user, password=pat, environ={})
    try:
        for number in range(projects):
            requires = [f"chain-{number + 1}"] if number + 1 < projects else []
            wheel = make_wheel(dists, f"chain-{number}", "1.0", requires_dist=requires)
            publish(factory.open, [read_distribution(wheel)])
    finally:
        factory.close()
    return target


def measure(workdir: Path, projects: int = 5) -> list[Counted]:
    """Download the chain anonymously with each of :data:`SETTINGS`; what each cost."""
    registry = start_ghcr(workdir / "ghcr")
    try:
        assert registry.username is not None
        assert registry.password is not None
        target = _publish_chain(
            registry.host, registry.username, registry.password, workdir, projects
        )
        for number in range(projects):
            registry.make_public(f"fastpath/chain_{number}")
        counted = []
        for label, setting in SETTINGS:
            out = workdir / f"out-{len(counted)}"
            registry.state.clear()
            environ = {"SETUPTOOLS_GHCR_ANONYMOUS_AUTH": setting} if setting else {}
            with StoreFactory(parse_target(target), environ=environ) as stores:
                files = download(
                    stores, ["chain-0"], out, cache=BlobCache(workdir / f"cache-{len(counted)}")
                )
                traffic = stores.client().traffic
            seen = registry.state.requests
            counted.append(
                Counted(
                    label,
                    requests=len(seen),
                    token_requests=sum(1 for s in seen if s.path.startswith("/token")),
                    fast_path_reads=traffic.fast_path_reads,
                    files=len(files),
                )
            )
        return counted
    finally:
        registry.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=5, help="projects in the chain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ghcr-fast-path-") as folder:
        counted = measure(Path(folder), args.projects)
    base = counted[0].requests
    print(f"anonymous download of a chain of {args.projects} public projects")
    print(f"{'setting':<36} {'requests':>8} {'tokens':>6} {'fast':>5} {'saved':>5}")
    for row in counted:
        print(
            f"{row.label:<36} {row.requests:>8} {row.token_requests:>6} "
            f"{row.fast_path_reads:>5} {base - row.requests:>5}"
        )


if __name__ == "__main__":
    main()
