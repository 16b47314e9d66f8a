"""``setuptools-ghcr prune``: delete all but the newest versions of a project."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context

__all__ = ["add_arguments", "run"]


def _count(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 0 or more")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days above 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", metavar="PROJECT", help="the project to prune")
    parser.add_argument(
        "--keep",
        type=_count,
        required=True,
        metavar="N",
        help="keep the newest N versions (of those considered; PEP 440 order)",
    )
    parser.add_argument(
        "--older-than",
        type=_days,
        metavar="DAYS",
        help="delete only versions last published more than DAYS days ago",
    )
    parser.add_argument(
        "--only-dev",
        action="store_true",
        help="consider development releases only (1.2.dev3): releases are never touched",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would be deleted, delete nothing"
    )


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.errors import GhcrError
    from setuptools_ghcr.usecases.retire import prune

    with context.factory(args) as stores:
        report = prune(
            stores,
            args.project,
            keep=args.keep,
            older_than=args.older_than,
            only_dev=args.only_dev,
            dry_run=args.dry_run,
        )
    sys.stdout.writelines(line + "\n" for line in report.lines())
    sys.stdout.flush()
    refused = report.refused
    if refused:
        raise GhcrError(
            f"{len(refused)} of {len(report.removals)} version(s) of {report.project} could not "
            "be deleted (see above)"
        )
    return 0
