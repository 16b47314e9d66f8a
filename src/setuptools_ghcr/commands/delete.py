"""``setuptools-ghcr delete``: delete one version, where the target allows it."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", metavar="PROJECT==VERSION", help="the version to delete")


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.core.selection import pinned_version
    from setuptools_ghcr.usecases.resolve import parse_requirement
    from setuptools_ghcr.usecases.retire import delete_version

    requirement = parse_requirement(args.project)
    version = pinned_version(requirement.specifier, args.project)
    with context.factory(args) as stores:
        removal = delete_version(stores, requirement.name, version)
    print(removal.line(), file=sys.stdout)
    return 0
