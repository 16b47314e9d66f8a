"""Use cases: delete a version, and prune old ones (per-commit builds pile up by the thousand).

Deleting a version deletes its image index (every tag naming it goes too, ``latest`` included,
and is reported) and the file manifests it lists, where the target allows it: a layout
itself, a registry through its ``DELETE`` (distribution only with deletion enabled), ghcr.io
through GitHub's REST API (see ``StoreFactory.deleter``). What a target refuses is reported
with its reason, never skipped silently: GitHub keeps a package's last tagged version and
public versions downloaded over 5,000 times.

Pruning keeps the newest ``keep`` versions (PEP 440 order) of those it considers (only
development releases with ``only_dev``) and deletes the others, or only those of them
published more than ``older_than`` days ago; a version whose publication time is unknown is
kept then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal, Protocol

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.oci import Index
from setuptools_ghcr.core.wire_format import OCI_CREATED, version_to_tag
from setuptools_ghcr.errors import GhcrError, NotFoundError
from setuptools_ghcr.storage.store import RawManifest, Store, VersionDeleter
from setuptools_ghcr.usecases.versions import list_versions
from setuptools_ghcr.usecases.yank import other_tags

__all__ = ["PruneReport", "Removal", "delete_version", "prune", "prune_choice"]

Outcome = Literal["deleted", "would delete", "not deleted"]


class Targets(Protocol):
    """Opens a project's store and its deleter (a ``StoreFactory``)."""

    def open(self, project: str) -> Store: ...

    def deleter(self, project: str) -> VersionDeleter: ...


@dataclass(frozen=True)
class Removal:
    """What happened to one version."""

    project: NormalizedName
    version: Version
    reference: str
    outcome: Outcome
    #: Other tags that named the version's index, and went (or would go) with it.
    tags: tuple[str, ...] = ()
    reason: str | None = None

    def line(self) -> str:
        """e.g. ``deleted: mypkg 1.0.dev3 -> ghcr.io/acme/mypkg:1.0.dev3 (and latest)``."""
        text = f"{self.outcome}: {self.project} {self.version} -> {self.reference}"
        if self.tags:
            text += f" (and {', '.join(self.tags)})"
        if self.reason:
            text += f": {self.reason}"
        return text


@dataclass(frozen=True)
class PruneReport:
    """What pruning did to each version it chose, and the versions left."""

    removals: tuple[Removal, ...]
    #: Every version still there (or, on a dry run, that would be), newest first.
    kept: tuple[Version, ...]
    project: NormalizedName
    location: str

    @property
    def refused(self) -> tuple[Removal, ...]:
        return tuple(r for r in self.removals if r.outcome == "not deleted")

    def lines(self) -> list[str]:
        kept = f"kept: {len(self.kept)} version(s) of {self.project} in {self.location}"
        return [*(removal.line() for removal in self.removals), kept]


@dataclass
class _Deleting:
    """One target's store and deleter of a project, opened once."""

    targets: Targets
    project: NormalizedName
    store: Store
    deleter: VersionDeleter | None = field(default=None)

    def delete(self, version: Version, dry_run: bool, found: RawManifest | None = None) -> Removal:
        tag = version_to_tag(version)
        reference = f"{self.store.location}:{tag}"
        found = found or self.store.get_manifest(tag)
        if found is None:
            raise NotFoundError(f"{self.project} {version} is not in {self.store.location}")
        tags = tuple(other_tags(self.store, found.digest, tag))
        if dry_run:
            return Removal(self.project, version, reference, "would delete", tags)
        if self.deleter is None:
            self.deleter = self.targets.deleter(self.project)
        self.deleter.delete_version(found)
        return Removal(self.project, version, reference, "deleted", tags)


def delete_version(
    targets: Targets, project: str, version: Version, *, dry_run: bool = False
) -> Removal:
    """Delete one version of ``project``; a refusal raises, saying why."""
    name = canonicalize_name(project)
    return _Deleting(targets, name, targets.open(name)).delete(version, dry_run)


def prune_choice(
    versions: Sequence[Version],
    *,
    keep: int,
    only_dev: bool = False,
) -> tuple[list[Version], list[Version]]:
    """(versions to delete, versions kept) before any age is considered: the newest ``keep``
    of those considered stay (all releases, or only development ones)."""
    considered = sorted((v for v in versions if v.is_devrelease or not only_dev), reverse=True)
    return considered[keep:], considered[:keep]


def _published(index: Index) -> datetime | None:
    """When a version's files were last published (their newest ``created``)."""
    moments = []
    for entry in index.manifests:
        text = entry.annotations.get(OCI_CREATED, "")
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            moments.append(moment)
    return max(moments, default=None)


def prune(
    targets: Targets,
    project: str,
    *,
    keep: int,
    older_than: float | None = None,
    only_dev: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Delete all but the newest ``keep`` versions (see the module's docstring)."""
    name = canonicalize_name(project)
    store = targets.open(name)
    versions = list_versions(store)
    if not versions:
        raise NotFoundError(f"project {name} not found in {store.location}")
    doomed, _kept = prune_choice(versions, keep=keep, only_dev=only_dev)
    cutoff = None
    if older_than is not None:
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=older_than)
    deleting = _Deleting(targets, name, store)
    removals: list[Removal] = []
    for version in doomed:
        try:
            found = store.get_manifest(version_to_tag(version))
            if found is None:
                continue  # deleted meanwhile
            if cutoff is not None and not _older(found, cutoff):
                continue
            removals.append(deleting.delete(version, dry_run, found))
        except GhcrError as error:
            reference = f"{store.location}:{version_to_tag(version)}"
            removals.append(Removal(name, version, reference, "not deleted", reason=str(error)))
    gone = {r.version for r in removals if r.outcome != "not deleted"}
    remaining = tuple(sorted(set(versions) - gone, reverse=True))
    return PruneReport(tuple(removals), remaining, name, store.location)


def _older(index: RawManifest, cutoff: datetime) -> bool:
    published = _published(Index.from_bytes(index.raw, f"index {index.digest.short}"))
    return published is not None and published < cutoff
