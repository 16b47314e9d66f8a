"""Use case: publish files from disk to the target the options, the settings or the environment
name.

``setuptools-ghcr push``, ``setup.py ghcr_upload`` and the PEP 517 backend differ only in where
the files and the options come from. Here every file's name and metadata is checked and the
target and options are settled before anything is sent; then
:func:`~setuptools_ghcr.usecases.publish.publish` checks the archives themselves before any
upload is committed (big ones as they go).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from setuptools_ghcr.config import Settings, choose_target, default_source, internal_projects
from setuptools_ghcr.core.dists import parse_filename, scan_distribution
from setuptools_ghcr.core.targets import Target
from setuptools_ghcr.errors import GhcrError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import ProgressFactory
from setuptools_ghcr.usecases.publish import FileResult, PushOptions, publish
from setuptools_ghcr.usecases.visibility import Visibility, check_visibility

__all__ = ["ProgressBars", "PushReport", "push_files", "push_options", "version_files"]

#: Opens the progress display for the transfers (a face's bars), yielding their factory.
ProgressBars = Callable[[], AbstractContextManager[ProgressFactory | None]]

_SAYS = {
    "uploaded": "uploaded",
    "exists": "already there (same sha256)",
    "skipped": "skipped (published with other contents)",
}


@dataclass(frozen=True)
class PushReport:
    """Where the files went and what happened to each."""

    target: Target
    results: tuple[FileResult, ...]
    #: On ghcr.io, whether each project can be read without credentials.
    visibility: tuple[Visibility, ...] = ()

    def lines(self) -> list[str]:
        """One line per file, e.g. ``uploaded: a-1.0.tar.gz -> ghcr.io/acme/a:1.0``, then one
        per private ghcr.io package with the page that makes it public."""
        lines = [f"{_SAYS[r.status]}: {r.filename} -> {r.reference}" for r in self.results]
        lines.extend(line for v in self.visibility if (line := v.line()) is not None)
        return lines

    def public(self, result: FileResult) -> bool | None:
        """Whether the file's package can be read without credentials (None: not checked)."""
        return next((v.public for v in self.visibility if v.location == result.location), None)


def push_options(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    skip_existing: bool | None = None,
    extra_tags: Sequence[str] = (),
    skip_option: str = "--skip-existing",
) -> PushOptions:
    """The options of a push: those given, else the settings', else the environment's.

    ``skip_option`` is how the publishing face spells ``--skip-existing``, for messages.
    """
    return PushOptions(
        source=settings.source or default_source(environ),
        annotations=settings.annotations,
        extra_tags=tuple(dict.fromkeys([*settings.tags, *extra_tags])),
        skip_existing=settings.skip_existing if skip_existing is None else skip_existing,
        skip_advice=f"give {skip_option} (or set skip-existing = true in [tool.setuptools-ghcr])",
        internal_projects=internal_projects(settings, environ),
    )


def push_files(
    paths: Sequence[Path],
    settings: Settings,
    environ: Mapping[str, str],
    *,
    repository: str | None = None,
    username: str | None = None,
    password: str | None = None,
    skip_existing: bool | None = None,
    extra_tags: Sequence[str] = (),
    progress: ProgressBars | None = None,
    insecure: Sequence[str] = (),
    announce: Callable[[str], None] | None = None,
    skip_option: str = "--skip-existing",
) -> PushReport:
    """Check ``paths``, settle the target and options, then publish (``progress`` is opened
    only once everything checked out).

    ``announce`` is told which target is used when ``repository`` did not name it.
    """
    dists = [scan_distribution(Path(path)) for path in paths]
    choice = choose_target(repository, settings, environ, insecure=insecure)
    target = choice.target
    options = push_options(
        settings,
        environ,
        skip_existing=skip_existing,
        extra_tags=extra_tags,
        skip_option=skip_option,
    )
    announcement = choice.announcement()
    if announce is not None and announcement:
        announce(announcement)
    with StoreFactory(
        target,
        username=username,
        password=password,
        environ=environ,
        given_credentials=choice.credentials_allowed,
    ) as stores:
        with (progress or nullcontext)() as bars:
            results = publish(stores.open, dists, options, bars)
        published = [(r.project, r.version) for r in results]
        visibility = check_visibility(stores, published, environ)
    return PushReport(target, tuple(results), tuple(visibility))


def version_files(folder: Path, project: str, version: str) -> list[Path]:
    """The sdists and wheels of one version of ``project`` in ``folder``, by name."""
    name = canonicalize_name(project)
    wanted = Version(version)
    found = []
    for path in sorted(folder.glob("*")):
        try:
            file_name, file_version, _kind, _tags = parse_filename(path.name)
        except GhcrError:
            continue
        if file_name == name and file_version == wanted:
            found.append(path)
    return found
