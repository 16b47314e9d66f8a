"""Big transfers: push and download of one big wheel, against curl, skopeo and oras-py.

- push: ``setuptools-ghcr push`` vs a raw curl POST + PUT of the same bytes (the registry's
  ceiling: no validation, digest known beforehand) vs ``skopeo copy`` from an OCI layout
  (``--preserve-digests``) vs oras-py's ``push``. Each push sends a fresh wheel (same
  size, new bytes), and the registry starts each on an empty storage.
- download: ``setuptools-ghcr download`` (resolve, then verified, into an empty cache and
  then the folder) vs curl GET to a file vs ``skopeo copy`` to an OCI layout (verifies)
  vs oras-py's ``pull`` (does not verify).
- footprint: our push and download of a smaller wheel, to show that peak RSS does not grow
  with the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import HERE, Child, Stats, load_average, logged_registry, measure, ours, reset_storage
from inputs import BigWheels, stem
from report import Check, Outcome, Row
from support.registry_harness import RunningRegistry

__all__ = ["run"]

PROJECT = "bench-big"

CURL_PUSH = r"""
set -e
location=$(curl -sS -f -o /dev/null -D - -X POST "$1/v2/$2/blobs/uploads/" \
    | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
case "$location" in http*) ;; *) location="$1$location" ;; esac
case "$location" in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sS -f -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    -T "$3" "$location${sep}digest=$4"
"""

PUSH_OURS = "setuptools-ghcr push"
PUSH_CURL = "curl POST + PUT (same bytes)"
PUSH_SKOPEO = "skopeo copy oci: layout -> registry"
PUSH_ORAS = "oras-py push"
PULL_OURS = "setuptools-ghcr download (verified)"
PULL_CURL = "curl GET -o file"
PULL_SKOPEO = "skopeo copy registry -> oci: layout (verifies)"
PULL_ORAS = "oras-py pull (no verification)"


def _settle() -> None:
    """Let the file system finish with the gigabyte just deleted before the next contender,
    so that no contender shares the machine with the clean-up of the one before."""
    os.sync()
    time.sleep(1.0)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _push_json(registry: RunningRegistry, target: str, wheel: Path) -> dict[str, str]:
    """Publish with our tool, untimed (set-up); returns its JSON report of the file."""
    result = subprocess.run(
        [*ours(), "push", "--no-progress", "--json", "-r", target, str(wheel)],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, str] = json.loads(result.stdout)["files"][0]
    return report


class _Pushes:
    """Makes each push contender's input before its run and cleans up after it."""

    def __init__(self, workdir: Path, registry: RunningRegistry, wheels: BigWheels) -> None:
        self.workdir = workdir
        self.registry = registry
        self.wheels = wheels
        self.wheel = Path()
        self.digest = ""
        self.layout = workdir / "layout"

    def before(self, name: str, _round: int) -> None:
        self.wheel = self.wheels.fresh()
        if name == PUSH_CURL:
            self.digest = _sha256(self.wheel)
        if name == PUSH_SKOPEO:
            shutil.rmtree(self.layout, ignore_errors=True)
            _push_json(self.registry, f"oci:{self.layout}", self.wheel)

    def after(self, _name: str, _round: int) -> None:
        shutil.rmtree(self.wheel.parent)
        shutil.rmtree(self.layout, ignore_errors=True)
        reset_storage(self.registry)
        _settle()

    def version(self) -> str:
        return self.wheel.name.split("-")[1]

    def ours(self, _round: int) -> Child:
        return Child(
            [*ours(), "push", "--no-progress", "-r", f"{self.registry.host}/ours", str(self.wheel)]
        )

    def curl(self, _round: int) -> Child:
        return Child(
            [
                *("sh", "-c", CURL_PUSH, "curl-push", self.registry.url, "curl/blob"),
                *(str(self.wheel), self.digest),
            ]
        )

    def skopeo(self, _round: int) -> Child:
        version = self.version()
        return Child(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
                f"oci:{self.layout / stem(PROJECT)}:{version}",
                f"docker://{self.registry.host}/skopeo/{stem(PROJECT)}:{version}",
            ]
        )

    def oras(self, _round: int) -> Child:
        reference = f"{self.registry.host}/oras/{stem(PROJECT)}:{self.version()}"
        return Child(
            [
                sys.executable,
                str(HERE / "children.py"),
                "oras-push",
                self.registry.host,
                reference,
                str(self.wheel),
            ]
        )


class _Downloads:
    """Each download contender's command, and a check of what it wrote."""

    def __init__(self, workdir: Path, registry: RunningRegistry, report: dict[str, str]) -> None:
        self.workdir = workdir
        self.registry = registry
        self.out = workdir / "out"
        self.cache = workdir / "cache"
        self.filename = report["filename"]
        self.version = report["reference"].rsplit(":", 1)[1]
        self.digest = "sha256:" + report["sha256"]
        self.size = int(report["size"])
        self.manifest = report["manifest"]
        self.repository = f"dl/{stem(PROJECT)}"

    def before(self, _name: str, _round: int) -> None:
        self.out.mkdir()

    def after(self, name: str, _round: int) -> None:
        files = [p for p in self.out.rglob("*") if p.is_file()]
        biggest = max((p.stat().st_size for p in files), default=0)
        if biggest != self.size:
            raise SystemExit(f"{name} wrote {biggest} bytes, not {self.size}")
        shutil.rmtree(self.out)
        shutil.rmtree(self.cache, ignore_errors=True)
        _settle()

    def ours(self, _round: int) -> Child:
        return Child(
            [
                *ours(),
                "download",
                "-r",
                f"{self.registry.host}/dl",
                "-d",
                str(self.out),
                f"{PROJECT}=={self.version}",
            ],
            env={"SETUPTOOLS_GHCR_CACHE_DIR": str(self.cache)},
        )

    def curl(self, _round: int) -> Child:
        url = f"{self.registry.url}/v2/{self.repository}/blobs/{self.digest}"
        return Child(["curl", "-sS", "-f", "-o", str(self.out / self.filename), url])

    def skopeo(self, _round: int) -> Child:
        return Child(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                f"docker://{self.registry.host}/{self.repository}:{self.version}",
                f"oci:{self.out / 'layout'}:{self.version}",
            ]
        )

    def oras(self, _round: int) -> Child:
        reference = f"{self.registry.host}/{self.repository}@{self.manifest}"
        return Child(
            [
                sys.executable,
                str(HERE / "children.py"),
                "oras-pull",
                self.registry.host,
                reference,
                str(self.out),
            ]
        )


def _mib(size: int) -> str:
    return f"{size >> 30} GiB" if size % (1 << 30) == 0 else f"{size >> 20} MiB"


def _ours_only(
    workdir: Path, registry: RunningRegistry, size: int, rounds: int
) -> tuple[Stats, Stats]:
    """Our push and download of a wheel of ``size`` bytes (for the footprint comparison)."""
    wheels = BigWheels(workdir / f"wheels-{size}", PROJECT, size)
    try:
        pushes = _Pushes(workdir, registry, wheels)
        push = measure(
            [(PUSH_OURS, pushes.ours)],
            rounds,
            workdir,
            before=pushes.before,
            after=pushes.after,
        )[PUSH_OURS]
        wheel = wheels.fresh()
        report = _push_json(registry, f"{registry.host}/dl", wheel)
        shutil.rmtree(wheel.parent)
        downloads = _Downloads(workdir, registry, report)
        download = measure(
            [(PULL_OURS, downloads.ours)],
            rounds,
            workdir,
            before=downloads.before,
            after=downloads.after,
        )[PULL_OURS]
        reset_storage(registry)
    finally:
        wheels.close()
    return push, download


def run(workdir: Path, size: int, rounds: int, small_size: int | None) -> list[Outcome]:
    """Push and download of a ``size``-byte wheel, and the footprint at ``small_size``."""
    registry = logged_registry("plain", workdir / "registry")
    outcomes: list[Outcome] = []
    try:
        load_before = load_average()
        wheels = BigWheels(workdir / "wheels", PROJECT, size)
        try:
            pushes = _Pushes(workdir, registry, wheels)
            print(f"  push of a {_mib(size)} wheel", flush=True)
            pushed = measure(
                [
                    (PUSH_OURS, pushes.ours),
                    (PUSH_CURL, pushes.curl),
                    (PUSH_SKOPEO, pushes.skopeo),
                    (PUSH_ORAS, pushes.oras),
                ],
                rounds,
                workdir,
                before=pushes.before,
                after=pushes.after,
            )
            push_outcome = Outcome(
                f"Push of a {_mib(size)} wheel",
                (
                    Row(PUSH_OURS, pushed[PUSH_OURS], PUSH_CURL, "validates, hashes, uploads"),
                    Row(PUSH_CURL, pushed[PUSH_CURL], None, "digest computed beforehand"),
                    Row(PUSH_SKOPEO, pushed[PUSH_SKOPEO], PUSH_CURL, "digests already known"),
                    Row(PUSH_ORAS, pushed[PUSH_ORAS], PUSH_CURL, "reads the file into memory"),
                ),
                notes=(f"{rounds} rounds.",),
                load=(load_before, load_average()),
            )
            ratio = push_outcome.ratio(push_outcome.rows[0]) or 0.0
            outcomes.append(
                _with_checks(
                    push_outcome,
                    [Check(f"push {_mib(size)} <= 1.10 x curl", f"{ratio:.2f} x", ratio <= 1.10)],
                )
            )

            print(f"  download of a {_mib(size)} wheel", flush=True)
            load_before = load_average()
            wheel = wheels.fresh()
            report = _push_json(registry, f"{registry.host}/dl", wheel)
            shutil.rmtree(wheel.parent)
        finally:
            wheels.close()
        downloads = _Downloads(workdir, registry, report)
        # Downloads are short, so a stray second of other work weighs more: more rounds.
        pull_rounds = max(rounds, 5)
        pulled = measure(
            [
                (PULL_OURS, downloads.ours),
                (PULL_CURL, downloads.curl),
                (PULL_SKOPEO, downloads.skopeo),
                (PULL_ORAS, downloads.oras),
            ],
            pull_rounds,
            workdir,
            before=downloads.before,
            after=downloads.after,
        )
        reset_storage(registry)
        pull_outcome = Outcome(
            f"Download of a {_mib(size)} wheel",
            (
                Row(PULL_OURS, pulled[PULL_OURS], PULL_CURL, "resolves, verifies, caches"),
                Row(PULL_CURL, pulled[PULL_CURL], None, "blob URL known beforehand"),
                Row(PULL_SKOPEO, pulled[PULL_SKOPEO], PULL_CURL),
                Row(PULL_ORAS, pulled[PULL_ORAS], PULL_CURL),
            ),
            notes=(f"{pull_rounds} rounds.",),
            load=(load_before, load_average()),
        )
        ratio = pull_outcome.ratio(pull_outcome.rows[0]) or 0.0
        outcomes.append(
            _with_checks(
                pull_outcome,
                [Check(f"download {_mib(size)} <= 1.3 x curl", f"{ratio:.2f} x", ratio <= 1.3)],
            )
        )

        if small_size is not None and small_size != size:
            print(f"  footprint: our push and download of a {_mib(small_size)} wheel", flush=True)
            load_before = load_average()
            small_push, small_pull = _ours_only(workdir, registry, small_size, rounds)
            big_push, big_pull = pushed[PUSH_OURS], pulled[PULL_OURS]
            rows = (
                Row(f"push {_mib(small_size)}", small_push),
                Row(f"push {_mib(size)}", big_push),
                Row(f"download {_mib(small_size)}", small_pull),
                Row(f"download {_mib(size)}", big_pull),
            )
            peak = max(s.peak_rss_mb for s in (small_push, big_push, small_pull, big_pull))
            push_growth = big_push.peak_rss_mb - small_push.peak_rss_mb
            pull_growth = big_pull.peak_rss_mb - small_pull.peak_rss_mb
            outcomes.append(
                Outcome(
                    "Peak RSS of setuptools-ghcr by file size",
                    rows,
                    (
                        Check(
                            "peak RSS of push and download <= 80 MB", f"{peak:.0f} MB", peak <= 80
                        ),
                        Check(
                            f"RSS at {_mib(small_size)} and {_mib(size)} within 10 MB",
                            f"push {push_growth:+.0f} MB, download {pull_growth:+.0f} MB",
                            abs(push_growth) <= 10 and abs(pull_growth) <= 10,
                        ),
                    ),
                    load=(load_before, load_average()),
                )
            )
    finally:
        registry.close()
    return outcomes


def _with_checks(outcome: Outcome, checks: list[Check]) -> Outcome:
    from dataclasses import replace

    return replace(outcome, checks=tuple(checks))


def run_download(workdir: Path, size: int, rounds: int) -> list[Outcome]:
    """Our download against curl's alone, round by round, with each round's load."""
    registry = logged_registry("plain", workdir / "registry")
    try:
        wheels = BigWheels(workdir / "wheels", PROJECT, size)
        try:
            wheel = wheels.fresh()
            report = _push_json(registry, f"{registry.host}/dl", wheel)
            shutil.rmtree(wheel.parent)
        finally:
            wheels.close()
        downloads = _Downloads(workdir, registry, report)
        load_before = load_average()
        pulled = measure(
            [(PULL_OURS, downloads.ours), (PULL_CURL, downloads.curl)],
            rounds,
            workdir,
            before=downloads.before,
            after=downloads.after,
        )
    finally:
        registry.close()
    ours_runs, curl_runs = pulled[PULL_OURS].samples, pulled[PULL_CURL].samples
    notes = [f"{rounds} rounds, ours and curl in turn; each round's figures:"]
    for number, (mine, theirs) in enumerate(zip(ours_runs, curl_runs, strict=True), 1):
        notes.append(
            f"round {number}: {mine.seconds:.2f} s vs {theirs.seconds:.2f} s, "
            f"{mine.seconds / theirs.seconds:.2f} x (load {mine.load:.2f} / {theirs.load:.2f})"
        )
    outcome = Outcome(
        f"Download of a {_mib(size)} wheel, against curl only",
        (
            Row(PULL_OURS, pulled[PULL_OURS], PULL_CURL, "resolves, verifies, caches"),
            Row(PULL_CURL, pulled[PULL_CURL], None, "blob URL known beforehand"),
        ),
        notes=tuple(notes),
        load=(load_before, load_average()),
    )
    ratio = outcome.ratio(outcome.rows[0]) or 0.0
    return [
        _with_checks(
            outcome,
            [
                Check(
                    f"download {_mib(size)} <= 1.3 x curl (curl alone, {rounds} rounds)",
                    f"{ratio:.2f} x",
                    ratio <= 1.3,
                )
            ],
        )
    ]
