"""Progress bars for the faces (the command line, ``setup.py ghcr_upload``): rich on a terminal,
nothing otherwise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TextIO

from setuptools_ghcr.storage.store import ProgressCallback, ProgressFactory

__all__ = ["transfer_progress"]


def _ignore(_count: int) -> None:
    return None


@contextlib.contextmanager
def transfer_progress(
    stream: TextIO | None = None, *, enabled: bool | None = None
) -> Iterator[ProgressFactory]:
    """Yield a ``(name, total) -> callback`` factory drawing one bar per file.

    Quiet (callbacks that do nothing) when ``stream`` is not a terminal, so CI logs stay clean.
    """
    stream = stream or sys.stderr
    if enabled is None:
        enabled = stream.isatty()
    if not enabled:
        yield lambda _name, _total: _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=stream),
        transient=False,
    )

    def factory(name: str, total: int) -> ProgressCallback:
        task = progress.add_task(name, total=total)

        def advance(count: int) -> None:
            progress.advance(task, count)

        return advance

    with progress:
        yield factory
