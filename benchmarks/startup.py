"""Start-up: ``setuptools-ghcr --help``, and what our ``distutils.commands`` entry point adds.

setuptools imports every registered command module when it lists commands, so our entry
point costs every ``python setup.py ...`` something. Measured by running the same
``setup.py --help-commands`` with two site folders that differ only in our package: one
holds every entry of this interpreter's site-packages, the other the same minus ours.
"""

from __future__ import annotations

import site
import statistics
import subprocess
import sys
from pathlib import Path

from harness import Child, load_average, measure, ours
from report import Check, Outcome, Row

__all__ = ["run"]

HELP = "setuptools-ghcr --help"
FLOOR = "python -c pass (interpreter floor)"
WITH = "setup.py --help-commands, with our entry point"
WITHOUT = "setup.py --help-commands, without it"

SETUP_PY = 'from setuptools import setup\nsetup(name="startup-probe", version="1.0")\n'
RUN_SETUP = (
    "import runpy, site, sys; site.addsitedir(sys.argv[1]); "
    "sys.argv = ['setup.py', '--help-commands']; runpy.run_path('setup.py', run_name='__main__')"
)


def _ours(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith(("setuptools_ghcr", "__editable__.setuptools_ghcr"))


def _site_copy(folder: Path, keep_ours: bool) -> Path:
    """A folder of links to every entry of site-packages (less ours unless ``keep_ours``)."""
    folder.mkdir(parents=True)
    for packages in site.getsitepackages():
        for entry in Path(packages).iterdir():
            if entry.name == "__pycache__" or (_ours(entry.name) and not keep_ours):
                continue
            link = folder / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return folder


IMPORT_COST = (
    "import time, setuptools; started = time.perf_counter(); "
    "import setuptools_ghcr.setuptools_command; print(time.perf_counter() - started)"
)


def _import_ms(rounds: int) -> float:
    """Median milliseconds to import our command module once setuptools is imported."""
    times = []
    for _ in range(rounds):
        result = subprocess.run(
            [sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True
        )
        times.append(float(result.stdout.strip()) * 1000)
    return statistics.median(times)


def run(workdir: Path, rounds: int) -> list[Outcome]:
    load_before = load_average()
    project = workdir / "probe"
    project.mkdir()
    (project / "setup.py").write_text(SETUP_PY)
    with_ours = _site_copy(workdir / "site-with", keep_ours=True)
    without = _site_copy(workdir / "site-without", keep_ours=False)
    # -S: no site-packages but the one given, so the two runs differ only in our package.
    python = [sys.executable, "-S", "-c", RUN_SETUP]
    print(f"  start-up, {rounds} rounds", flush=True)
    found = measure(
        [
            (HELP, lambda _r: Child([*ours(), "--help"])),
            (FLOOR, lambda _r: Child([sys.executable, "-c", "pass"])),
            (WITH, lambda _r: Child([*python, str(with_ours)], cwd=project)),
            (WITHOUT, lambda _r: Child([*python, str(without)], cwd=project)),
        ],
        rounds,
        workdir,
    )
    import_ms = _import_ms(rounds)
    help_s = found[HELP].median
    # Each round ran both setup.py variants back to back: the median of the per-round
    # differences cancels most of what the machine's other work adds to both.
    added_ms = 1000 * statistics.median(
        a.seconds - b.seconds
        for a, b in zip(found[WITH].samples, found[WITHOUT].samples, strict=True)
    )
    return [
        Outcome(
            "Start-up",
            (
                Row(HELP, found[HELP], FLOOR),
                Row(FLOOR, found[FLOOR]),
                Row(
                    WITH, found[WITH], WITHOUT, f"adds {added_ms:.0f} ms (median paired difference)"
                ),
                Row(WITHOUT, found[WITHOUT]),
                Row(
                    "import of our command module after setuptools",
                    value=f"{import_ms:.1f} ms",
                    note="in-process, median; what setuptools pays to list our command",
                ),
            ),
            (
                Check("setuptools-ghcr --help <= 0.3 s", f"{help_s:.3f} s", help_s <= 0.3),
                Check(
                    "the entry point adds <= 20 ms to setup.py --help-commands",
                    f"{added_ms:.0f} ms end to end, {import_ms:.1f} ms to import",
                    added_ms <= 20 and import_ms <= 20,
                ),
            ),
            load=(load_before, load_average()),
        )
    ]
