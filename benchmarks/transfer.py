"""Blob transfer benchmark: RegistryStore against curl, on a local docker-registry.

Measures, in one run and interleaved (A B, B A, A B ...):
- push: ``RegistryStore.push_blob`` vs ``curl`` POST + PUT of an equally sized file;
- pull: ``RegistryStore.download_blob`` (verified, to a file) vs ``curl`` GET to a file.
Every contender runs in its own child process so that its peak RSS can be read from
``wait4``. Every upload sends a file with fresh random bytes, so nothing is deduplicated.

    python benchmarks/transfer.py --size-mib 1024 --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

CURL_PUSH = r"""
set -e
location=$(curl -sS -f -o /dev/null -D - -X POST "$1/v2/$2/blobs/uploads/" \
    | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
case "$location" in http*) ;; *) location="$1$location" ;; esac
case "$location" in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sS -f -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    -T "$3" "$location${sep}digest=$4"
"""


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_rss_mb: float


def run_child(argv: Sequence[str], scratch: Path) -> Sample:
    """Run a command, returning its wall time and peak RSS (including its own children).

    The peak RSS a process reports counts the memory of the process that forked it (at the
    moment of fork, until exec), so a big parent would inflate every child's figure. GNU
    ``time`` is a small intermediate parent that reports its child's true peak.
    """
    report = scratch / "peak-rss"
    timer = shutil.which("time") or "/usr/bin/time"
    measured = [timer, "-f", "%M", "-o", str(report), *argv] if Path(timer).exists() else argv
    # Dirty pages left by the previous contender would be written back during this one.
    os.sync()
    started = time.perf_counter()
    process = subprocess.Popen(measured, stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {process.returncode}: {argv}")
    peak_kib = usage.ru_maxrss  # KiB on Linux; inflated by this process when time is absent
    if measured is not argv:
        peak_kib = int(report.read_text().split()[-1])
        report.unlink()
    return Sample(elapsed, peak_kib / 1024)


def in_turn(contenders: list[T], round_number: int) -> list[T]:
    """The contenders in alternating order (A B, B A, ...), so neither always goes first."""
    return contenders if round_number % 2 == 0 else contenders[::-1]


def fresh_file(base: Path, path: Path) -> str:
    """Copy ``base`` to ``path`` with new random first bytes; return its sha256 digest."""
    shutil.copyfile(base, path)
    with path.open("r+b") as stream:
        stream.write(os.urandom(64))
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        while count := stream.readinto(buffer):
            digest.update(view[:count])
    return "sha256:" + digest.hexdigest()


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as stream:
        left = size
        while left:
            chunk = os.urandom(min(left, 16 << 20))
            stream.write(chunk)
            left -= len(chunk)


# ---------------------------------------------------------------------- child side


def child(args: argparse.Namespace) -> None:
    from setuptools_ghcr.oci import Descriptor, Digest
    from setuptools_ghcr.registry import RegistryClient
    from setuptools_ghcr.store import FileBlob

    descriptor = Descriptor("application/octet-stream", Digest.parse(args.digest), args.size)
    with RegistryClient(args.host, "http", None) as client:
        store = client.store(args.repository)
        if args.child == "push":
            store.push_blob(FileBlob(Path(args.file), descriptor))
        else:
            store.download_blob(descriptor, Path(args.file))


# ---------------------------------------------------------------------- parent side


def table(rows: list[tuple[str, list[Sample], list[Sample] | None]]) -> str:
    lines = [
        f"{'contender':<34} {'median s':>9} {'min s':>7} {'max s':>7} {'peak RSS MB':>12} "
        f"{'x curl':>7}",
        "-" * 81,
    ]
    for name, samples, baseline in rows:
        seconds = [s.seconds for s in samples]
        median = statistics.median(seconds)
        rss = max(s.peak_rss_mb for s in samples)
        ratio = ""
        if baseline is not None:
            ratio = f"{median / statistics.median(s.seconds for s in baseline):.2f}"
        lines.append(
            f"{name:<34} {median:>9.2f} {min(seconds):>7.2f} {max(seconds):>7.2f} {rss:>12.1f} "
            f"{ratio:>7}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument("--child", choices=["push", "download"], help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--repository", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--digest", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed as the baseline")

    from registry_harness import start_registry

    size = args.size_mib << 20
    workdir = Path(tempfile.mkdtemp(prefix="transfer-", dir=args.workdir))
    registry = start_registry("plain", workdir / "registry")
    try:
        base = workdir / "base.bin"
        print(f"writing a {args.size_mib} MiB random file ...", flush=True)
        random_file(base, size)
        me = [sys.executable, str(Path(__file__).resolve())]

        def ours_push(path: Path, digest: str, repository: str) -> list[str]:
            return [
                *me,
                "--child",
                "push",
                "--host",
                registry.host,
                "--repository",
                repository,
                "--file",
                str(path),
                "--digest",
                digest,
                "--size",
                str(size),
            ]

        def curl_push(path: Path, digest: str, repository: str) -> list[str]:
            return ["sh", "-c", CURL_PUSH, "curl-push", registry.url, repository, str(path), digest]

        push_contenders: list[tuple[str, Callable[[Path, str, str], list[str]]]] = [
            ("push: RegistryStore.push_blob", ours_push),
            ("push: curl POST + PUT", curl_push),
        ]
        push_samples: dict[str, list[Sample]] = {name: [] for name, _ in push_contenders}
        for round_number in range(args.repeat):
            for name, command in in_turn(push_contenders, round_number):
                path = workdir / "upload.bin"
                digest = fresh_file(base, path)
                repository = f"bench/{'ours' if 'Registry' in name else 'curl'}"
                sample = run_child(command(path, digest, repository), workdir)
                push_samples[name].append(sample)
                print(
                    f"  round {round_number + 1} {name}: {sample.seconds:.2f} s, "
                    f"{sample.peak_rss_mb:.0f} MB",
                    flush=True,
                )
                path.unlink()
                # Keep the disk from filling up: a fresh, empty storage for the next upload.
                registry.stop()
                shutil.rmtree(registry.storage)
                registry.storage.mkdir()
                registry.start()

        # One blob to download, pushed with curl (so the reading side is all that differs).
        digest = fresh_file(base, workdir / "download-source.bin")
        run_child(curl_push(workdir / "download-source.bin", digest, "bench/pull"), workdir)
        (workdir / "download-source.bin").unlink()
        blob_url = f"{registry.url}/v2/bench/pull/blobs/{digest}"
        out = workdir / "out.bin"

        def ours_download() -> list[str]:
            return [
                *me,
                "--child",
                "download",
                "--host",
                registry.host,
                "--repository",
                "bench/pull",
                "--file",
                str(out),
                "--digest",
                digest,
                "--size",
                str(size),
            ]

        def curl_download() -> list[str]:
            return ["curl", "-sS", "-f", "-o", str(out), blob_url]

        pull_contenders: list[tuple[str, Callable[[], list[str]]]] = [
            ("pull: RegistryStore.download_blob", ours_download),
            ("pull: curl GET -o file", curl_download),
        ]
        pull_samples: dict[str, list[Sample]] = {name: [] for name, _ in pull_contenders}
        for round_number in range(args.repeat):
            for name, pull_command in in_turn(pull_contenders, round_number):
                sample = run_child(pull_command(), workdir)
                if out.stat().st_size != size:
                    raise SystemExit(f"{name} wrote {out.stat().st_size} bytes, not {size}")
                out.unlink()
                pull_samples[name].append(sample)
                print(
                    f"  round {round_number + 1} {name}: {sample.seconds:.2f} s, "
                    f"{sample.peak_rss_mb:.0f} MB",
                    flush=True,
                )

        print()
        print(f"{args.size_mib} MiB blob, medians of {args.repeat}, local docker-registry:")
        push_names = [name for name, _ in push_contenders]
        pull_names = [name for name, _ in pull_contenders]
        print(
            table(
                [
                    (push_names[0], push_samples[push_names[0]], push_samples[push_names[1]]),
                    (push_names[1], push_samples[push_names[1]], None),
                    (pull_names[0], pull_samples[pull_names[0]], pull_samples[pull_names[1]]),
                    (pull_names[1], pull_samples[pull_names[1]], None),
                ]
            )
        )
    finally:
        registry.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
