"""Reading a published file's manifest and blob, as the resolver, the index and inspect do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from packaging.version import Version
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.oci import Descriptor, Digest, Manifest
from setuptools_ghcr.core.wire_format import LAYER_MEDIA_TYPE, FileEntry
from setuptools_ghcr.errors import NotFoundError
from setuptools_ghcr.storage.layout import LayoutStore
from setuptools_ghcr.storage.store import RawManifest
from setuptools_ghcr.usecases.publish import publish
from setuptools_ghcr.usecases.versions import (
    file_blob,
    list_versions,
    listed_blob,
    read_file_manifest,
    read_version,
    versions_of,
)


class CountingStore(LayoutStore):
    """A layout store that notes every manifest it is asked for."""

    def __init__(self, path: Path, repository: str) -> None:
        super().__init__(path, repository)
        self.asked: list[str] = []

    def get_manifest(self, reference: str) -> RawManifest | None:
        self.asked.append(reference)
        return super().get_manifest(reference)


@pytest.fixture
def published(tmp_path: Path) -> tuple[CountingStore, FileEntry, Path]:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    store = CountingStore(tmp_path / "oci" / "demo-pkg", "demo-pkg")
    publish(lambda _project: store, [read_distribution(wheel)])
    found = read_version(store, "demo-pkg", Version("1.0"))
    assert found is not None
    store.asked.clear()
    (entry,) = found.files
    return store, entry, wheel


def test_an_entry_that_names_digest_and_size_costs_no_manifest(
    published: tuple[CountingStore, FileEntry, Path],
) -> None:
    store, entry, wheel = published
    dist = read_distribution(wheel)
    expected = Descriptor(LAYER_MEDIA_TYPE, dist.sha256, dist.size)
    assert listed_blob(entry) == expected
    assert file_blob(store, entry) == expected
    assert store.asked == []


def test_an_entry_without_digest_or_size_reads_its_manifest_once_per_cache(
    published: tuple[CountingStore, FileEntry, Path],
) -> None:
    store, entry, wheel = published
    dist = read_distribution(wheel)
    for bare in (
        dataclasses.replace(entry, sha256=None),
        dataclasses.replace(entry, size=None),
    ):
        assert listed_blob(bare) is None
        cache: dict[Digest, Manifest] = {}
        store.asked.clear()
        blob = file_blob(store, bare, cache)
        assert (blob.digest, blob.size) == (dist.sha256, dist.size)
        assert file_blob(store, bare, cache) == blob
        assert read_file_manifest(store, bare, cache).layers == (blob,)
        assert store.asked == [str(entry.manifest.digest)]
        file_blob(store, bare)
        assert len(store.asked) == 2  # no cache given, so read again


def test_a_missing_manifest_names_the_file(
    published: tuple[CountingStore, FileEntry, Path],
) -> None:
    store, entry, _wheel = published
    gone = dataclasses.replace(
        entry,
        sha256=None,
        manifest=Descriptor(entry.manifest.media_type, Digest.of_bytes(b"gone"), 4),
    )
    with pytest.raises(NotFoundError, match=f"{entry.filename}: manifest sha256:.* is missing"):
        file_blob(store, gone)


def test_versions_newest_first_ignoring_other_tags(
    published: tuple[CountingStore, FileEntry, Path],
) -> None:
    store, _entry, _wheel = published
    assert list_versions(store) == [Version("1.0")]
    assert versions_of(["latest", "1.0", "2.0rc1", "1.10", "v1"]) == [
        Version("2.0rc1"),
        Version("1.10"),
        Version("1.0"),
    ]
