"""Reading what a store holds: a project's versions and the files of each version."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import Version

from setuptools_ghcr.core.oci import DOCKER_MANIFEST_LIST, OCI_INDEX, Index
from setuptools_ghcr.core.wire_format import FileEntry, file_entries, tag_to_version, version_to_tag
from setuptools_ghcr.errors import MalformedDocumentError
from setuptools_ghcr.storage.store import Store

__all__ = ["VersionFiles", "list_versions", "read_index", "read_version"]


def list_versions(store: Store) -> list[Version]:
    """Every published version, newest first; tags that are not versions are ignored."""
    versions = {v for v in map(tag_to_version, store.list_tags()) if v is not None}
    return sorted(versions, reverse=True)


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


def read_version(store: Store, project: str, version: Version) -> VersionFiles | None:
    """The files of one version (one index fetch), or None when it is not published."""
    index = read_index(store, version_to_tag(version))
    if index is None:
        return None
    return VersionFiles(version, index, tuple(file_entries(index, project, version)))
