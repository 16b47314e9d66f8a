"""``setuptools-ghcr download``: resolve requirements and write verified files to a folder."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context
    from setuptools_ghcr.storage.cache import BlobCache
    from setuptools_ghcr.usecases.resolve import ResolveOptions

__all__ = ["add_arguments", "add_resolve_arguments", "open_cache", "resolve_options", "run"]


def add_resolve_arguments(parser: argparse.ArgumentParser, *, target_options: bool) -> None:
    """Options shared by ``download`` and ``install``."""
    parser.add_argument(
        "requirements", nargs="+", metavar="REQUIREMENT", help="PEP 508, e.g. 'mypkg>=1.2,<2'"
    )
    parser.add_argument(
        "--pre", action="store_true", help="also consider pre-release and development versions"
    )
    parser.add_argument(
        "--no-deps",
        action="store_true",
        help="do not resolve the dependencies that live in the same target",
    )
    parser.add_argument(
        "--only-binary",
        choices=[":all:", ":none:"],
        default=":none:",
        help="':all:' never picks an sdist",
    )
    parser.add_argument(
        "--internal-project",
        dest="internal_projects",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a project (name pattern such as 'acme-*') that must come from the target, never "
        "from another index, even when it cannot be read there (repeatable; adds to "
        "[tool.setuptools-ghcr] internal-projects and $SETUPTOOLS_GHCR_INTERNAL_PROJECTS)",
    )
    parser.add_argument(
        "--no-cache-dir",
        action="store_true",
        help="do not read or fill the download cache ($SETUPTOOLS_GHCR_CACHE_DIR)",
    )
    if not target_options:
        return
    group = parser.add_argument_group("choose files for another interpreter (as pip download)")
    group.add_argument("--python-version", metavar="X.Y", help="e.g. 3.12 (default: this one)")
    group.add_argument(
        "--platform",
        dest="platforms",
        action="append",
        default=[],
        metavar="PLATFORM",
        help="a platform tag such as manylinux_2_28_x86_64 (repeatable)",
    )
    group.add_argument("--implementation", metavar="IMPL", help="cp, pp, ... (default: this)")
    group.add_argument(
        "--abi", dest="abis", action="append", default=[], metavar="ABI", help="(repeatable)"
    )


def resolve_options(args: argparse.Namespace, context: Context) -> ResolveOptions:
    from setuptools_ghcr.config import internal_projects, load_settings
    from setuptools_ghcr.core.selection import TargetEnvironment
    from setuptools_ghcr.usecases.resolve import ResolveOptions

    environment = TargetEnvironment.for_target(
        python_version=getattr(args, "python_version", None),
        platforms=getattr(args, "platforms", ()),
        implementation=getattr(args, "implementation", None),
        abis=getattr(args, "abis", ()),
    )
    return ResolveOptions(
        pre=args.pre,
        deps=not args.no_deps,
        only_binary=args.only_binary == ":all:",
        environment=environment,
        internal_projects=internal_projects(
            load_settings(context.cwd / "pyproject.toml"), context.environ, args.internal_projects
        ),
    )


@contextlib.contextmanager
def open_cache(args: argparse.Namespace, context: Context) -> Iterator[BlobCache]:
    """The user's cache, or a throw-away one with ``--no-cache-dir``."""
    from setuptools_ghcr.storage.cache import BlobCache

    if not args.no_cache_dir:
        yield BlobCache.from_environment(context.environ)
        return
    with tempfile.TemporaryDirectory(prefix="setuptools-ghcr-cache-") as folder:
        yield BlobCache(Path(folder))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_resolve_arguments(parser, target_options=True)
    parser.add_argument(
        "-d",
        "--dest",
        default=".",
        metavar="DIR",
        help="the folder to write the files to (default: the current folder)",
    )


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.progress import transfer_progress
    from setuptools_ghcr.usecases.resolve import download

    options = resolve_options(args, context)
    with (
        context.factory(args) as stores,
        open_cache(args, context) as cache,
        transfer_progress() as progress,
    ):
        downloaded = download(
            stores,
            args.requirements,
            context.cwd / args.dest,
            cache=cache,
            options=options,
            progress=progress,
        )
    for item in downloaded:
        print(Path(args.dest) / item.path.name, file=sys.stdout)
    return 0
