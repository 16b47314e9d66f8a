"""Benchmark setuptools-ghcr against curl, skopeo, oras-py and pypiserver; write
docs/performance.md.

    pip install -e '.[dev,bench]'                  # pypiserver, gunicorn; ab: apache2-utils
    python benchmarks/run.py                       # everything, 1 GiB, 3 rounds
    python benchmarks/run.py --size-mib 64 --only transfer,versions --no-write
    python benchmarks/run.py --list

Each scenario starts its own local docker-registry, generates its inputs (incompressible
wheels) under a temporary folder, runs every contender as a child process, interleaved, and
reports medians and peak RSS. See docs/performance.md for what each number means.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness import ROOT, Machine
from report import Outcome, load_results, render, render_text, save_results

SCENARIOS = {
    "transfer": "push and download of one big wheel vs curl, skopeo, oras-py; RSS by size",
    "download": "download of one big wheel against curl alone, 5 rounds, each round's load",
    "publish": "re-push of an unchanged big wheel; 50 small wheels in one command vs 50",
    "versions": "resolve and serve 500, 2,000 and 5,000 versions (30 ms added for serve)",
    "index": "the index service against pypiserver: 50 projects, req/s, pip and uv installs",
    "startup": "setuptools-ghcr --help; what the setup.py entry point adds",
}


def _scenario(name: str, args: argparse.Namespace, workdir: Path) -> list[Outcome]:
    size = args.size_mib << 20
    rounds = args.repeat
    if name == "transfer":
        import transfer

        small = args.small_mib << 20 if args.small_mib else None
        return transfer.run(workdir, size, rounds, small)
    if name == "download":
        import transfer

        return transfer.run_download(workdir, size, max(rounds, 5))
    if name == "publish":
        import publishing

        return publishing.run(workdir, size, rounds)
    if name == "versions":
        import versions

        return versions.run(workdir, rounds)
    if name == "index":
        import index_service

        return index_service.run(workdir, rounds)
    if name == "startup":
        import startup

        # Start-ups are short and noisy: many more rounds cost little.
        return startup.run(workdir, max(rounds * 10, 30))
    raise SystemExit(f"unknown scenario {name!r}")


#: Options that only say where things go: left out of the command the report shows.
_PLACES = ("--workdir", "--output", "--results")
_QUIET_FLAGS = ("--no-write",)


def _command(argv: list[str]) -> str:
    """The command as the report shows it: what was measured, not where files went."""
    shown: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in _PLACES:
            skip = True
            continue
        if word in _QUIET_FLAGS:
            continue
        if word.startswith(tuple(f"{place}=" for place in _PLACES)):
            continue
        shown.append(shlex.quote(word))
    return " ".join(["python benchmarks/run.py", *shown])


def _compile_package() -> None:
    """Byte-compile the package, as installing a wheel does, so no child compiles it."""
    import setuptools_ghcr

    folder = Path(setuptools_ghcr.__file__).parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)], check=True, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="comma-separated scenarios to run (default: all; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="size of the big wheel (default: 1024)"
    )
    parser.add_argument(
        "--small-mib",
        type=int,
        default=100,
        help="the smaller wheel of the RSS-by-size comparison (0: skip; default: 100)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per contender (default 3)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "performance.md",
        help="the Markdown report to write (default: docs/performance.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, write no report")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="also keep the figures as JSON here (default: none)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        default=None,
        help="write the report from figures kept with --results, without running anything",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        kept, kept_machine, kept_command = load_results(args.render)
        _write(args.output, kept, kept_machine, kept_command)
        return 0
    if args.list:
        for name, what in SCENARIOS.items():
            print(f"{name:<10} {what}")
        return 0
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; see --list")
    tools = ["curl", "skopeo", "docker-registry"]
    if "index" in chosen:
        tools += ["ab", "gunicorn", "pypi-server"]
    bin_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    missing = [tool for tool in tools if not shutil.which(tool, path=bin_path)]
    if missing:
        parser.error(f"missing tools: {', '.join(missing)}")

    _compile_package()
    machine = Machine.describe()
    command = _command(sys.argv[1:] if argv is None else list(argv))
    workdir = Path(tempfile.mkdtemp(prefix="setuptools-ghcr-bench-", dir=args.workdir))
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        for name in chosen:
            print(f"== {name}: {SCENARIOS[name]}", flush=True)
            folder = workdir / name
            folder.mkdir()
            found = _scenario(name, args, folder)
            for outcome in found:
                print(render_text(outcome), flush=True)
            outcomes.extend(found)
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"done in {time.monotonic() - started:.0f} s")
    if args.results is not None:
        save_results(args.results, outcomes, machine, command.strip())
    if not args.no_write:
        _write(args.output, outcomes, machine, command.strip())
    return 0 if all(c.passed for o in outcomes for c in o.checks) else 1


def _write(output: Path, outcomes: list[Outcome], machine: Machine, command: str) -> None:
    here = Path(__file__).resolve().parent
    text = render(
        outcomes,
        machine,
        command,
        notes=(here / "notes.md").read_text(),
        explained=(here / "explained.md").read_text(),
    )
    output.write_text(text)
    print(f"wrote {output}")


if __name__ == "__main__":
    sys.exit(main())
