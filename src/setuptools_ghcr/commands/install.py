"""``setuptools-ghcr install``: resolve, download, then ``python -m pip install`` the files.

Everything after ``--`` goes to pip as is: ``install mypkg -- --target DIR``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from setuptools_ghcr.commands.download import add_resolve_arguments, open_cache, resolve_options

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context

__all__ = ["add_arguments", "run", "split_pip_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_resolve_arguments(parser, target_options=False)
    parser.add_argument(
        "--target-only",
        action="store_true",
        help="take nothing from any other index: pip runs with --no-index, so a dependency "
        "the target lacks fails the install",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="install for this interpreter (or virtual environment folder); default: the "
        "active virtual environment ($VIRTUAL_ENV), else the interpreter this tool runs on "
        "unless pipx or uv tool made that environment",
    )
    parser.usage = "%(prog)s [options] REQUIREMENT... [-- PIP_ARGS...]"
    parser.epilog = (
        "Arguments after '--' go to 'python -m pip install' unchanged, e.g. "
        "'-- --target DIR' or '-- --no-index'. Give this command's options before the requirements."
    )


def split_pip_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The requirements and the pip arguments.

    argparse drops the ``--`` and hands what follows it to the requirements; a requirement
    never starts with ``-``, so pip's arguments start at the first word that does. A
    command line that already split them (``pip_args``) is taken as it is.
    """
    given = getattr(args, "pip_args", None)
    if given is not None:
        return list(args.requirements), list(given)
    words: list[str] = list(args.requirements)
    for position, word in enumerate(words):
        if word.startswith("-"):
            return words[:position], words[position:]
    return words, []


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.errors import InvalidReferenceError
    from setuptools_ghcr.progress import transfer_progress
    from setuptools_ghcr.usecases.install import install
    from setuptools_ghcr.usecases.interpreter import choose_interpreter

    requirements, pip_args = split_pip_args(args)
    if not requirements:
        raise InvalidReferenceError("give at least one requirement before '--'")
    options = resolve_options(args, context)
    if args.target_only and "--no-index" not in pip_args:
        pip_args = ["--no-index", *pip_args]
    interpreter = choose_interpreter(args.python, context.environ)
    with (
        context.factory(args) as stores,
        open_cache(args, context) as cache,
        transfer_progress() as progress,
    ):
        return install(
            stores,
            requirements,
            cache=cache,
            pip_args=pip_args,
            options=options,
            progress=progress,
            pip=interpreter.pip,
            before_pip=lambda: context.announce(interpreter.describe()),
        )
