"""Resolve and download one small wheel of a project with 200 versions, behind token auth.

The registry asks for Bearer tokens (as ghcr.io does); its access log gives the number of
HTTP requests the command made, and the token server counts the token requests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import AccessLog, Child, Stats, load_average, logged_registry, measure, ours
from populate import DEEP_PROJECT, credentials_env, populate, version_of
from report import Check, Outcome, Row

__all__ = ["run"]

VERSIONS = 200
NAME = "setuptools-ghcr download (newest of 200 versions)"


def run(workdir: Path, rounds: int) -> list[Outcome]:
    registry = logged_registry("token", workdir / "registry")
    try:
        target = populate(registry, workdir / "dists", VERSIONS)
        load_before = load_average()
        log = AccessLog(registry)
        out = workdir / "out"
        cache = workdir / "cache"
        counts: list[tuple[int, int, int]] = []
        token_server = registry.token_server
        assert token_server is not None

        def before(_name: str, _round: int) -> None:
            out.mkdir()
            token_server.clear()
            log.mark()

        def after(_name: str, _round: int) -> None:
            requests = log.since_mark()
            challenges = sum(1 for r in requests if r.status == 401)
            counts.append((len(requests), challenges, len(token_server.requests)))
            files = [p.name for p in out.iterdir()]
            newest = version_of(VERSIONS - 1)
            if len(files) != 1 or f"-{newest}-" not in files[0]:
                raise SystemExit(f"the resolve downloaded {files}, not version {newest}")
            shutil.rmtree(out)
            shutil.rmtree(cache, ignore_errors=True)

        def command(_round: int) -> Child:
            return Child(
                [*ours(), "download", "-r", target, "-d", str(out), DEEP_PROJECT],
                env={**credentials_env(registry), "SETUPTOOLS_GHCR_CACHE_DIR": str(cache)},
            )

        print(f"  resolving {DEEP_PROJECT} among {VERSIONS} versions", flush=True)
        found: Stats = measure([(NAME, command)], rounds, workdir, before=before, after=after)[NAME]
    finally:
        registry.close()
    total, challenges, tokens = max(counts)
    after_auth = total - challenges
    note = (
        f"{total} registry requests ({challenges} answered 401 to start auth, {after_auth} "
        f"after it), {tokens} token request(s); cold cache, with dependencies resolved"
    )
    return [
        Outcome(
            f"Resolve and download one wheel among {VERSIONS} versions x 4 files (token auth)",
            (Row(NAME, found, note=note),),
            (
                Check(
                    f"resolve among {VERSIONS} versions: <= 5 HTTP requests after auth",
                    f"{after_auth}",
                    after_auth <= 5,
                ),
                Check(
                    f"resolve among {VERSIONS} versions <= 0.5 s",
                    f"{found.median:.3f} s (whole process)",
                    found.median <= 0.5,
                ),
            ),
            load=(load_before, load_average()),
        )
    ]
