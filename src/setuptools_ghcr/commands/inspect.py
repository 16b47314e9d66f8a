"""``setuptools-ghcr inspect``: a project's versions, files, sizes, digests and annotations."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from setuptools_ghcr.cli import Context

__all__ = ["add_arguments", "format_table", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "project", metavar="PROJECT[==VERSION]", help="a project, optionally with versions"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print everything as JSON, each file's manifest digest and annotations included",
    )


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text columns aligned with spaces (for pipes and files)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def _rich_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], title: str, out: TextIO
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    # On a terminal the digest is cut short (pipe the output, or use --json, for all of it)
    # and the file name keeps room enough to be read; the rest folds when space is short.
    styles: dict[str, dict[str, Any]] = {
        "VERSION": {"no_wrap": True},
        "FILE": {"overflow": "fold", "min_width": 24},
        "SIZE": {"no_wrap": True, "justify": "right"},
        "SHA256": {"no_wrap": True, "overflow": "ellipsis", "max_width": 15},
    }
    for name in header:
        table.add_column(name, **styles.get(name, {"overflow": "fold"}))
    for row in rows:
        table.add_row(*row)
    Console(file=out).print(table)


def run(args: argparse.Namespace, context: Context) -> int:
    from setuptools_ghcr.usecases.inspect import (
        TABLE_HEADER,
        annotation_lines,
        fetch_hint,
        fetch_lines,
        inspect_project,
        project_json,
        table_rows,
        yank_lines,
    )
    from setuptools_ghcr.usecases.resolve import parse_requirement

    requirement = parse_requirement(args.project)
    with context.factory(args) as stores:
        store = stores.open(requirement.name)
        info = inspect_project(
            store, requirement.name, requirement.specifier or None, manifests=True
        )
        fetch = fetch_hint(stores, requirement.name)
    out = sys.stdout
    if args.json:
        json.dump(project_json(info, fetch), out, indent=2)
        out.write("\n")
        return 0
    if out.isatty():
        _rich_table(TABLE_HEADER, table_rows(info), f"{info.project} in {info.location}", out)
    else:
        print(format_table(TABLE_HEADER, table_rows(info)), file=out)
    annotations = annotation_lines(info)
    if annotations:
        print("", *annotations, sep="\n", file=out)
    notes = yank_lines(info)
    commands = fetch_lines(info, fetch)
    if notes:
        print("", *notes, sep="\n", file=out)
    if commands:
        print(
            "\n# each file without setuptools-ghcr, then its check:", *commands, sep="\n", file=out
        )
    return 0
