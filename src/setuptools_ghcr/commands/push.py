"""``setuptools-ghcr push``: publish built sdists and wheels.

The setuptools command and the PEP 517 backend publish through :func:`push_paths` too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context
    from setuptools_ghcr.config import Settings
    from setuptools_ghcr.usecases.publish import FileResult

__all__ = ["add_arguments", "push_paths", "run"]

_SAYS = {
    "uploaded": "uploaded",
    "exists": "already there (same sha256)",
    "skipped": "skipped (published with other contents)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="sdists (.tar.gz) and wheels")
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        default=None,
        help="leave files already published with other contents and go on",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        dest="tags",
        metavar="TAG",
        help="also tag each version's index with TAG (repeatable; adds to the config's tags)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars even on a terminal"
    )


def push_paths(
    paths: Sequence[Path],
    *,
    repository: str | None,
    settings: Settings,
    environ: Mapping[str, str],
    username: str | None = None,
    password: str | None = None,
    skip_existing: bool | None = None,
    extra_tags: Sequence[str] = (),
    progress: bool | None = None,
    out: TextIO | None = None,
    as_json: bool = False,
) -> list[FileResult]:
    """Validate ``paths``, publish them to the resolved target, report on ``out``."""
    from setuptools_ghcr.commands.progress import transfer_progress
    from setuptools_ghcr.config import default_source, resolve_target
    from setuptools_ghcr.core.dists import scan_distribution
    from setuptools_ghcr.storage.factory import StoreFactory
    from setuptools_ghcr.usecases.publish import PushOptions, publish

    out = out or sys.stdout
    # Every file's name and metadata are checked before the first byte goes out; publish
    # checks the archives themselves before any upload is committed (big ones as they go).
    dists = [scan_distribution(Path(path)) for path in paths]
    target = resolve_target(repository, settings, environ)
    options = PushOptions(
        source=settings.source or default_source(environ),
        annotations=settings.annotations,
        extra_tags=tuple(dict.fromkeys([*settings.tags, *extra_tags])),
        skip_existing=settings.skip_existing if skip_existing is None else skip_existing,
    )
    factory = StoreFactory(
        target,
        username=username or environ.get("SETUPTOOLS_GHCR_USERNAME"),
        password=password or environ.get("SETUPTOOLS_GHCR_PASSWORD"),
        environ=environ,
    )
    try:
        with transfer_progress(enabled=progress) as bars:
            results = publish(factory.open, dists, options, bars)
    finally:
        factory.close()
    if as_json:
        report = {
            "repository": str(target),
            "files": [
                {
                    "filename": r.filename,
                    "project": r.project,
                    "version": str(r.version),
                    "status": r.status,
                    "sha256": r.sha256,
                    "size": r.size,
                    "reference": r.reference,
                    "manifest": r.manifest,
                }
                for r in results
            ],
        }
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        for r in results:
            out.write(f"{_SAYS[r.status]}: {r.filename} -> {r.reference}\n")
    return results


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.config import load_settings

    settings = load_settings(context.cwd / "pyproject.toml")
    push_paths(
        [Path(name) for name in args.files],
        repository=args.repository,
        settings=settings,
        environ=context.environ,
        username=args.username,
        password=args.password,
        skip_existing=args.skip_existing,
        extra_tags=args.tags,
        progress=False if args.no_progress else None,
        as_json=args.json,
    )
    return 0
