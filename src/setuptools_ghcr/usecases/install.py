"""Use case: resolve requirements on a target, download them, and hand the files to pip.

Naming each file on pip's command line makes it the only candidate for its project, so a
project that lives in the target can never be taken from another index (no dependency
confusion); dependencies that are not in the target resolve as pip normally would.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.store import ProgressFactory
from setuptools_ghcr.usecases.resolve import ResolveOptions, StoreOpener, download

__all__ = ["install", "pip_command"]

logger = logging.getLogger(__name__)


def pip_command(
    files: Sequence[Path],
    pip_args: Sequence[str] = (),
    python: str | None = None,
    *,
    pip: Sequence[str] = (),
) -> list[str]:
    """The ``python -m pip install`` command line for ``files``.

    ``pip`` is the command that runs pip (see ``usecases.interpreter``); by default
    ``python -m pip`` with ``python``, else this interpreter.
    """
    runner = list(pip) or [python or sys.executable, "-m", "pip"]
    return [*runner, "install", *map(str, files), *pip_args]


def install(
    stores: StoreOpener,
    requirements: Sequence[str],
    *,
    cache: BlobCache,
    pip_args: Sequence[str] = (),
    options: ResolveOptions | None = None,
    progress: ProgressFactory | None = None,
    python: str | None = None,
    pip: Sequence[str] = (),
    before_pip: Callable[[], None] | None = None,
) -> int:
    """Download into a temporary folder, run pip on the files, and return pip's exit status.

    ``before_pip`` is called once everything is downloaded, right before pip runs.

    pip's own output goes where ours goes (the streams are inherited).
    """
    options = options or ResolveOptions()
    extra = list(pip_args)
    if not options.deps and "--no-deps" not in extra:
        extra.append("--no-deps")
    with tempfile.TemporaryDirectory(prefix="setuptools-ghcr-") as folder:
        downloaded = download(
            stores, requirements, Path(folder), cache=cache, options=options, progress=progress
        )
        command = pip_command([d.path for d in downloaded], extra, python, pip=pip)
        logger.info("running %s", " ".join(command))
        if before_pip is not None:
            before_pip()
        return subprocess.run(command, check=False).returncode
