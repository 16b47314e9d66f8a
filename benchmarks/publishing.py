"""Publishing beyond one big upload: a re-push of an unchanged file, and many small files.

- re-push: the big wheel pushed again, unchanged: ``setuptools-ghcr push`` vs ``skopeo
  copy`` of the same layout again vs oras-py ``push`` again. The registry's access log
  shows whether any blob upload was started.
- many: 50 wheels of 2 MiB, one project and version (one per platform), published by one
  ``setuptools-ghcr push`` vs by 50 single-file ``setuptools-ghcr push`` processes in a row.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from harness import HERE, AccessLog, Child, load_average, logged_registry, measure, ours
from inputs import BigWheels, small_wheel, stem
from report import Check, Outcome, Row
from transfer import _push_json

__all__ = ["run"]

PROJECT = "bench-repush"
MANY_PROJECT = "bench-many"
MANY = 50
MANY_SIZE = 2 << 20

REPUSH_OURS = "setuptools-ghcr push (unchanged file)"
REPUSH_SKOPEO = "skopeo copy (unchanged layout)"
REPUSH_ORAS = "oras-py push (unchanged file)"
ONE = f"setuptools-ghcr push, {MANY} files in one command"
SEPARATE = f"{MANY} setuptools-ghcr push processes, one file each"

SEPARATE_LOOP = (
    'target="$1"; shift; for f in "$@"; do '
    '"$EXE" push --no-progress -r "$target" "$f" >/dev/null || exit 1; done'
)


def _mib(size: int) -> str:
    return f"{size >> 30} GiB" if size % (1 << 30) == 0 else f"{size >> 20} MiB"


def _repush(workdir: Path, size: int, rounds: int) -> Outcome:
    registry = logged_registry("plain", workdir / "registry")
    try:
        wheels = BigWheels(workdir / "wheels", PROJECT, size)
        try:
            wheel = wheels.fresh()
        finally:
            wheels.close()
        layout = workdir / "layout"
        report = _push_json(registry, f"{registry.host}/ours", wheel)
        _push_json(registry, f"oci:{layout}", wheel)
        version = report["reference"].rsplit(":", 1)[1]
        skopeo = [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout / stem(PROJECT)}:{version}",
            f"docker://{registry.host}/skopeo/{stem(PROJECT)}:{version}",
        ]
        oras_reference = f"{registry.host}/oras/{stem(PROJECT)}:{version}"
        oras = [sys.executable, str(HERE / "children.py"), "oras-push", registry.host]
        oras += [oras_reference, str(wheel)]
        # The first pushes of the peers, untimed: what follows are re-pushes for everyone.
        from harness import run_child

        run_child(Child(skopeo), workdir)
        run_child(Child(oras), workdir)

        log = AccessLog(registry)
        uploads: dict[str, int] = {}
        requests: dict[str, int] = {}

        def before(_name: str, _round: int) -> None:
            log.mark()

        def after(name: str, _round: int) -> None:
            seen = log.since_mark()
            uploads[name] = max(uploads.get(name, 0), sum(1 for r in seen if r.uploads))
            requests[name] = max(requests.get(name, 0), len(seen))

        ours_push = [*ours(), "push", "--no-progress", "-r", f"{registry.host}/ours", str(wheel)]
        print(f"  re-push of an unchanged {_mib(size)} wheel", flush=True)
        load_before = load_average()
        found = measure(
            [
                (REPUSH_OURS, lambda _r: Child(ours_push)),
                (REPUSH_SKOPEO, lambda _r: Child(skopeo)),
                (REPUSH_ORAS, lambda _r: Child(oras)),
            ],
            rounds,
            workdir,
            before=before,
            after=after,
        )
    finally:
        registry.close()

    def note(name: str) -> str:
        count, up = requests[name], uploads[name]
        return (
            f"{count} request{'s' if count != 1 else ''}, "
            f"{up} blob upload request{'s' if up != 1 else ''}"
        )

    ours_s = found[REPUSH_OURS].median
    return Outcome(
        f"Re-push of an unchanged {_mib(size)} wheel",
        (
            Row(REPUSH_OURS, found[REPUSH_OURS], note=note(REPUSH_OURS) + "; hashes the file"),
            Row(REPUSH_SKOPEO, found[REPUSH_SKOPEO], note=note(REPUSH_SKOPEO) + "; digests known"),
            Row(REPUSH_ORAS, found[REPUSH_ORAS], note=note(REPUSH_ORAS)),
        ),
        (
            Check(
                f"re-push of an unchanged {_mib(size)} wheel <= 1.0 s, no blob bytes sent",
                f"{ours_s:.2f} s, {uploads[REPUSH_OURS]} upload requests",
                ours_s <= 1.0 and uploads[REPUSH_OURS] == 0,
            ),
        ),
        load=(load_before, load_average()),
    )


def _platform_tags() -> list[str]:
    tags = [
        f"cp3{minor}-cp3{minor}-manylinux_2_{glibc}_x86_64"
        for minor in range(8, 13)
        for glibc in range(17, 27)
    ]
    return tags[:MANY]


def _many(workdir: Path, rounds: int) -> Outcome:
    registry = logged_registry("plain", workdir / "registry-many")
    target = f"{registry.host}/many"
    current: list[Path] = []
    counter = iter(range(1_000_000))

    def before(_name: str, _round: int) -> None:
        # A new version each run, so that every file is new to the registry.
        folder = workdir / "many"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        version = f"2.0.{next(counter)}"
        current[:] = [
            small_wheel(folder, MANY_PROJECT, version, tag, MANY_SIZE) for tag in _platform_tags()
        ]

    def one(_round: int) -> Child:
        return Child([*ours(), "push", "--no-progress", "-r", target, *map(str, current)])

    def separate(_round: int) -> Child:
        script = ["sh", "-c", SEPARATE_LOOP, "separate", target, *map(str, current)]
        return Child(script, env={"EXE": ours()[0]} if len(ours()) == 1 else {})

    print(f"  {MANY} wheels of {_mib(MANY_SIZE)}: one command vs {MANY} commands", flush=True)
    load_before = load_average()
    try:
        found = measure([(ONE, one), (SEPARATE, separate)], rounds, workdir, before=before)
    finally:
        registry.close()
    speedup = found[SEPARATE].median / found[ONE].median
    return Outcome(
        f"{MANY} wheels of {_mib(MANY_SIZE)} (one project, one version)",
        (
            Row(ONE, found[ONE], SEPARATE, "4 upload threads, one connection pool, one merge"),
            Row(SEPARATE, found[SEPARATE], None, "one process, connection and merge per file"),
        ),
        (
            Check(
                f"{MANY} small wheels in one command >= 2 x faster than {MANY} pushes",
                f"{speedup:.1f} x faster",
                speedup >= 2,
            ),
        ),
        load=(load_before, load_average()),
    )


def run(workdir: Path, size: int, rounds: int) -> list[Outcome]:
    return [_repush(workdir, size, rounds), _many(workdir, rounds)]
