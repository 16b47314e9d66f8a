"""``setuptools-ghcr yank``: mark a version yanked (PEP 592), or take the yank back."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", metavar="PROJECT==VERSION", help="the version to yank")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--reason", metavar="TEXT", help="why, shown by pip and uv when they warn")
    how.add_argument("--undo", action="store_true", help="take a yank back")


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.core.selection import pinned_version
    from setuptools_ghcr.usecases.resolve import parse_requirement
    from setuptools_ghcr.usecases.yank import yank

    requirement = parse_requirement(args.project)
    version = pinned_version(requirement.specifier, args.project)
    with context.factory(args) as stores:
        result = yank(
            stores.open(requirement.name),
            requirement.name,
            version,
            reason=args.reason,
            undo=args.undo,
        )
    print(result.line(), file=sys.stdout)
    return 0
