"""``setuptools-ghcr push``: publish built sdists and wheels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context
    from setuptools_ghcr.usecases.push import PushReport

__all__ = ["add_arguments", "run"]


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


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.config import load_settings
    from setuptools_ghcr.progress import transfer_progress
    from setuptools_ghcr.usecases.push import push_files

    report = push_files(
        [Path(name) for name in args.files],
        load_settings(context.cwd / "pyproject.toml"),
        context.environ,
        repository=args.repository,
        username=args.username,
        password=args.password,
        skip_existing=args.skip_existing,
        extra_tags=args.tags,
        progress=lambda: transfer_progress(enabled=False if args.no_progress else None),
        insecure=args.insecure_registries,
        announce=context.announce,
    )
    if args.json:
        sys.stdout.write(json.dumps(_json(report), indent=2) + "\n")
    else:
        sys.stdout.writelines(line + "\n" for line in report.lines())
    return 0


def _json(report: PushReport) -> dict[str, Any]:
    return {
        "repository": str(report.target),
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
                "public": report.public(r),
            }
            for r in report.results
        ],
    }
