"""Reading what a store holds: a project's versions, the files of each version, and for one
file its manifest and the blob that holds it.

A version's index says most of what there is to know about its files; a file's manifest is
read only when its index entry lacks the file's digest or size (PyOCI publishes such
entries), or when the caller wants the manifest itself (its annotations, the metadata blob).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass

from packaging.version import Version

from setuptools_ghcr.core.oci import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    Descriptor,
    Digest,
    Index,
    Manifest,
)
from setuptools_ghcr.core.wire_format import (
    LAYER_MEDIA_TYPE,
    FileEntry,
    file_entries,
    layer_of,
    tag_to_version,
    version_to_tag,
    yank_state,
)
from setuptools_ghcr.errors import MalformedDocumentError, NotFoundError
from setuptools_ghcr.storage.store import Store

__all__ = [
    "ListedFiles",
    "ManifestCache",
    "VersionFiles",
    "file_blob",
    "list_versions",
    "listed_blob",
    "read_file_manifest",
    "read_index",
    "read_version",
    "versions_of",
]

#: Manifests already read, by digest (a caller that meets the same file twice keeps one).
ManifestCache = MutableMapping[Digest, Manifest]


def list_versions(store: Store) -> list[Version]:
    """Every published version, newest first; tags that are not versions are ignored."""
    return versions_of(store.list_tags())


def versions_of(tags: Iterable[str]) -> list[Version]:
    """The versions ``tags`` name, newest first; tags that are not versions are ignored."""
    return sorted({v for v in map(tag_to_version, tags) if v is not None}, reverse=True)


def read_index(store: Store, tag: str) -> Index | None:
    """The image index behind ``tag``, or None when the tag does not exist."""
    found = store.get_manifest(tag)
    if found is None:
        return None
    if found.media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        raise MalformedDocumentError(
            f"{store.location}:{tag} is a {found.media_type}, not an image index"
        )
    return Index.from_bytes(found.raw, f"index {store.location}:{tag}")


@dataclass(frozen=True)
class VersionFiles:
    """A version's index and the files it lists."""

    version: Version
    index: Index
    files: tuple[FileEntry, ...]

    @property
    def yanked(self) -> str | None:
        """The reason the version is yanked ("" for none), or None when it is not."""
        return yank_state(self.index.annotations)


@dataclass(frozen=True)
class ListedFiles:
    """What a resolver keeps of a version's index: its usable files, and how many were not."""

    files: tuple[FileEntry, ...]
    skipped: int
    #: The reason ("" for none) when the version is yanked, else None.
    yanked: str | None = None

    @classmethod
    def of(cls, found: VersionFiles) -> ListedFiles:
        return cls(found.files, len(found.index.manifests) - len(found.files), found.yanked)


def read_version(store: Store, project: str, version: Version) -> VersionFiles | None:
    """The files of one version (one index fetch), or None when it is not published."""
    index = read_index(store, version_to_tag(version))
    if index is None:
        return None
    return VersionFiles(version, index, tuple(file_entries(index, project, version)))


def read_file_manifest(
    store: Store, entry: FileEntry, cache: ManifestCache | None = None
) -> Manifest:
    """The manifest an index entry points at (the store verifies it against its digest)."""
    digest = entry.manifest.digest
    manifest = cache.get(digest) if cache is not None else None
    if manifest is None:
        found = store.get_manifest(str(digest))
        if found is None:
            raise NotFoundError(
                f"{entry.filename}: manifest {digest} is missing from {store.location}"
            )
        manifest = Manifest.from_bytes(found.raw, f"manifest of {entry.filename}")
        if cache is not None:
            cache[digest] = manifest
    return manifest


def listed_blob(entry: FileEntry) -> Descriptor | None:
    """The file's blob as its index entry names it; None when the entry lacks digest or size."""
    if entry.sha256 is None or entry.size is None:
        return None
    return Descriptor(LAYER_MEDIA_TYPE, entry.sha256, entry.size)


def file_blob(store: Store, entry: FileEntry, cache: ManifestCache | None = None) -> Descriptor:
    """The file's blob: from its index entry when that says enough, else from its manifest."""
    listed = listed_blob(entry)
    if listed is not None:
        return listed
    return layer_of(read_file_manifest(store, entry, cache), entry)
