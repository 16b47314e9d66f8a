"""Use case step: which dependencies of the files being published live in the target.

The publisher records them on each file's manifest and index entry, so that whoever
installs the file later takes them from the target only, even when they cannot read them
there (a private package, a CI token without access): a refusal then fails the install
instead of letting pip fetch a same-named project from another index.

A dependency counts as living in the target when it is published in the same push, when
it matches the publisher's ``internal-projects`` patterns, or when the target lists a
version of it. One the publisher may not read is not recorded: nothing is claimed that was
not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from packaging.utils import NormalizedName

from setuptools_ghcr.core.dependencies import ProjectPatterns, dependency_names
from setuptools_ghcr.core.dists import MetadataFields
from setuptools_ghcr.errors import AuthenticationError, InvalidReferenceError
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import list_versions

__all__ = ["held_dependencies"]

logger = logging.getLogger(__name__)


def _held(open_store: Callable[[str], Store], project: NormalizedName) -> bool:
    try:
        return bool(list_versions(open_store(project)))
    except (AuthenticationError, InvalidReferenceError) as error:
        logger.info("not recording %s as living in the target: %s", project, error)
        return False


def held_dependencies(
    open_store: Callable[[str], Store],
    files: Iterable[tuple[NormalizedName, MetadataFields]],
    patterns: ProjectPatterns,
    published: Sequence[NormalizedName] = (),
    workers: int = 4,
) -> set[NormalizedName]:
    """The dependencies of ``files`` (project, metadata) that live in the target."""
    wanted = {
        name
        for project, fields in files
        for name in dependency_names(fields.requires_dist, project)
    }
    sure = {name for name in wanted if name in published or patterns.matches(name)}
    unknown = sorted(wanted - sure)
    with ThreadPoolExecutor(max(1, min(workers, len(unknown) or 1))) as pool:
        found = pool.map(lambda name: _held(open_store, name), unknown)
        looked = dict(zip(unknown, found, strict=True))
    return sure | {name for name, held in looked.items() if held}
