"""What a run left in a folder: a snapshot to compare, and leftovers of interrupted writes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["no_partial_files", "tree"]


def tree(root: Path, *, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """Every file (path -> size, mtime) and folder (path -> 0, 0) under ``root``, leaving out
    ``skip`` and what is in it. Two snapshots differ when anything was written there."""
    skipped = {path.resolve() for path in skip}
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [name for name in dirs if (Path(folder) / name).resolve() not in skipped]
        for name in dirs:
            found[str((Path(folder) / name).relative_to(root))] = (0, 0)
        for name in files:
            path = Path(folder) / name
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def no_partial_files(*folders: Path) -> list[Path]:
    """Leftovers of interrupted writes (temporary ``.part`` or hidden files) in ``folders``."""
    return [
        path
        for folder in folders
        if folder.exists()
        for path in folder.rglob("*")
        if path.name.endswith(".part") or path.name.startswith(".")
    ]
