"""RegistryStore against real registries: blobs, manifests, indexes, tags, mounts, integrity."""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pytest
import urllib3
from support.documents import EMPTY_DESCRIPTOR, EMPTY_JSON, descriptor_of
from support.registry_harness import RunningRegistry, start_registry
from support.stores import unique_repository

from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    Index,
    Manifest,
    Platform,
)
from setuptools_ghcr.errors import (
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TooLargeError,
)
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.repository import RegistryStore
from setuptools_ghcr.storage.registry.streams import CHUNK_SIZE
from setuptools_ghcr.storage.store import BytesBlob, FileBlob, Store

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

pytestmark = pytest.mark.integration

LAYER_TYPE = "application/pyoci.package.v1"


@pytest.fixture
def client(any_registry: RunningRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(any_registry.host, "http", any_registry.credentials) as client:
        yield client


@pytest.fixture
def store(client: RegistryClient) -> RegistryStore:
    return client.store(unique_repository("team"))


def random_file(folder: Path, size: int) -> FileBlob:
    path = folder / f"blob-{size}.bin"
    path.write_bytes(os.urandom(size))
    data = path.read_bytes()
    return FileBlob(path, Descriptor(LAYER_TYPE, Digest.of_bytes(data), len(data)))


def test_store_satisfies_the_protocol(store: RegistryStore) -> None:
    as_store: Store = store
    assert as_store.location.endswith("/" + store.repository)


def test_small_blob_round_trip(store: RegistryStore, tmp_path: Path) -> None:
    blob = BytesBlob(b"a small blob\n", "application/octet-stream")
    digest = blob.descriptor.digest
    assert not store.blob_exists(digest)
    progress: list[int] = []
    store.push_blob(blob, progress.append)
    assert sum(progress) == len(blob.data)
    assert store.blob_exists(digest)
    assert store.read_blob(blob.descriptor) == blob.data
    assert b"".join(store.iter_blob(blob.descriptor)) == blob.data
    destination = tmp_path / "small.bin"
    store.download_blob(blob.descriptor, destination)
    assert destination.read_bytes() == blob.data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.bin"]


def test_empty_json_blob_round_trip(store: RegistryStore) -> None:
    store.push_blob(BytesBlob(EMPTY_JSON, EMPTY_DESCRIPTOR.media_type))
    assert store.blob_exists(EMPTY_DESCRIPTOR.digest)
    assert store.read_blob(EMPTY_DESCRIPTOR) == b"{}"


def test_multi_mib_blob_round_trip(store: RegistryStore, tmp_path: Path) -> None:
    blob = random_file(tmp_path, 5 * CHUNK_SIZE + 12345)
    progress: list[int] = []
    store.push_blob(blob, progress.append)
    assert sum(progress) == blob.descriptor.size
    assert store.blob_exists(blob.descriptor.digest)

    out = tmp_path / "out"
    out.mkdir()
    received: list[int] = []
    store.download_blob(blob.descriptor, out / "copy.bin", received.append)
    assert (out / "copy.bin").read_bytes() == blob.path.read_bytes()
    assert sum(received) == blob.descriptor.size
    assert os.listdir(out) == ["copy.bin"]

    chunks = list(store.iter_blob(blob.descriptor))
    assert b"".join(chunks) == blob.path.read_bytes()
    assert len(chunks) > 1, "a multi-MiB blob must arrive in several chunks"
    assert store.read_blob(blob.descriptor, limit=blob.descriptor.size) == blob.path.read_bytes()


def test_read_blob_refuses_beyond_limit(store: RegistryStore) -> None:
    blob = BytesBlob(b"x" * 1000, "application/octet-stream")
    store.push_blob(blob)
    with pytest.raises(TooLargeError):
        store.read_blob(blob.descriptor, limit=999)


class RecordingBlob:
    """A file blob that records the size of every read the uploader makes."""

    def __init__(self, blob: FileBlob) -> None:
        self._blob = blob
        self.reads: list[int] = []

    @property
    def descriptor(self) -> Descriptor:
        return self._blob.descriptor

    def open(self) -> BinaryIO:
        outer = self

        class Recorder(io.BufferedReader):
            def read(self, size: int | None = -1) -> bytes:
                data = super().read(size)
                outer.reads.append(len(data))
                return data

            def readinto(self, buffer: WriteableBuffer) -> int:
                count = super().readinto(buffer)
                outer.reads.append(count)
                return count

        return Recorder(io.FileIO(self._blob.path, "rb"))


def test_push_streams_in_bounded_chunks(store: RegistryStore, tmp_path: Path) -> None:
    blob = RecordingBlob(random_file(tmp_path, 9 * CHUNK_SIZE))
    store.push_blob(blob)
    assert store.blob_exists(blob.descriptor.digest)
    assert sum(blob.reads) == blob.descriptor.size
    # Streamed, not slurped: many reads, none anywhere near the whole file.
    assert len(blob.reads) >= 5
    assert max(blob.reads) <= 4 * CHUNK_SIZE


def test_push_of_a_file_shorter_than_its_descriptor_fails(
    store: RegistryStore, tmp_path: Path
) -> None:
    blob = random_file(tmp_path, 1000)
    lying = FileBlob(blob.path, Descriptor(LAYER_TYPE, blob.descriptor.digest, 2000))
    with pytest.raises(DigestMismatchError):
        store.push_blob(lying)
    assert not store.blob_exists(blob.descriptor.digest)


def test_push_with_a_wrong_digest_is_refused(store: RegistryStore, tmp_path: Path) -> None:
    blob = random_file(tmp_path, 1000)
    wrong = Digest.of_bytes(b"something else")
    with pytest.raises(DigestMismatchError):
        store.push_blob(FileBlob(blob.path, Descriptor(LAYER_TYPE, wrong, 1000)))
    assert not store.blob_exists(wrong)


def test_missing_blob(store: RegistryStore, tmp_path: Path) -> None:
    missing = Descriptor(LAYER_TYPE, Digest.of_bytes(b"never pushed"), 12)
    assert not store.blob_exists(missing.digest)
    with pytest.raises(NotFoundError) as caught:
        store.download_blob(missing, tmp_path / "nothing")
    assert store.location in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def push_image(store: RegistryStore, tmp_path: Path, name: str) -> Manifest:
    """Push a PyOCI-style image: empty config, one layer (the "file"); return its manifest."""
    layer = random_file(tmp_path, 3000)
    store.push_blob(BytesBlob(EMPTY_JSON, EMPTY_DESCRIPTOR.media_type))
    store.push_blob(layer)
    layer_descriptor = Descriptor(
        LAYER_TYPE,
        layer.descriptor.digest,
        layer.descriptor.size,
        annotations={"org.opencontainers.image.title": name},
    )
    return Manifest.build(EMPTY_DESCRIPTOR, (layer_descriptor,), artifact_type=LAYER_TYPE)


def test_manifest_and_index_round_trip(store: RegistryStore, tmp_path: Path) -> None:
    wheel = push_image(store, tmp_path, "demo-1.0-py3-none-any.whl")
    sdist_dir = tmp_path / "sdist"
    sdist_dir.mkdir()
    sdist = push_image(store, sdist_dir, "demo-1.0.tar.gz")

    # A manifest by digest only, another by tag.
    assert store.put_manifest(wheel.raw, OCI_MANIFEST) == wheel.digest
    assert store.put_manifest(sdist.raw, OCI_MANIFEST, "sdist-only") == sdist.digest

    fetched = store.get_manifest(str(wheel.digest))
    assert fetched is not None
    assert fetched.raw == wheel.raw
    assert fetched.digest == wheel.digest
    assert fetched.media_type == OCI_MANIFEST
    assert Manifest.from_bytes(fetched.raw).layers == wheel.layers

    index = Index.build(
        (
            descriptor_of(wheel, platform=Platform("py3-none-any.whl", "any")),
            descriptor_of(sdist, platform=Platform(".tar.gz", "any")),
        ),
        artifact_type=LAYER_TYPE,
    )
    assert store.put_manifest(index.raw, OCI_INDEX, "1.0") == index.digest
    assert store.put_manifest(index.raw, OCI_INDEX, "latest") == index.digest

    by_tag = store.get_manifest("1.0")
    assert by_tag is not None
    assert by_tag.raw == index.raw
    assert by_tag.digest == index.digest
    assert by_tag.media_type == OCI_INDEX
    by_digest = store.get_manifest(str(index.digest))
    assert by_digest is not None
    assert by_digest.raw == index.raw

    assert sorted(store.list_tags()) == ["1.0", "latest", "sdist-only"]


def test_registry_errors_are_decoded(store: RegistryStore, tmp_path: Path) -> None:
    wheel = push_image(store, tmp_path, "demo-2.0-py3-none-any.whl")
    index = Index.build((descriptor_of(wheel),), artifact_type=LAYER_TYPE)
    # The index names a manifest the registry does not have yet.
    with pytest.raises(RegistryError) as caught:
        store.put_manifest(index.raw, OCI_INDEX, "2.0")
    assert caught.value.status == 400
    assert "MANIFEST_BLOB_UNKNOWN" in caught.value.codes
    message = str(caught.value)
    assert "\n" not in message
    assert "pushing manifest 2.0" in message and store.location in message


def test_put_manifest_by_wrong_digest_is_refused_locally(store: RegistryStore) -> None:
    manifest = Manifest.build(EMPTY_DESCRIPTOR, ())
    with pytest.raises(DigestMismatchError):
        store.put_manifest(manifest.raw, OCI_MANIFEST, str(Digest.of_bytes(b"other")))


def test_put_manifest_too_large_is_refused_locally(store: RegistryStore) -> None:
    with pytest.raises(TooLargeError):
        store.put_manifest(b" " * (MAX_MANIFEST_SIZE + 1), OCI_MANIFEST, "big")


def test_absent_manifests_and_tags(store: RegistryStore) -> None:
    assert store.get_manifest("1.0") is None
    assert store.get_manifest(str(Digest.of_bytes(b"nothing"))) is None
    assert store.list_tags() == []


def test_mount_between_repositories(client: RegistryClient, tmp_path: Path) -> None:
    source = client.store(unique_repository("source"))
    target = client.store(unique_repository("target"))
    blob = random_file(tmp_path, 4000)
    source.push_blob(blob)
    assert not target.blob_exists(blob.descriptor.digest)
    assert target.mount_blob(blob.descriptor.digest, source.repository) is True
    assert target.blob_exists(blob.descriptor.digest)
    assert target.read_blob(blob.descriptor) == blob.path.read_bytes()


def test_mount_of_an_absent_blob_falls_back(client: RegistryClient, tmp_path: Path) -> None:
    source = client.store(unique_repository("source"))
    target = client.store(unique_repository("target"))
    blob = random_file(tmp_path, 4000)
    # The registry answers 202 (an ordinary upload session) when it cannot mount.
    assert target.mount_blob(blob.descriptor.digest, source.repository) is False
    assert not target.blob_exists(blob.descriptor.digest)
    target.push_blob(blob)
    assert target.blob_exists(blob.descriptor.digest)


def test_list_repositories_names_those_right_under_the_namespace(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    namespace = f"catalog_{uuid.uuid4().hex[:12]}"
    with RegistryClient(plain_registry.host, "http", None) as client:
        for name in ("beta", "alpha", "deeper/gamma"):
            store = client.store(f"{namespace}/{name}")
            manifest = push_image(store, tmp_path, name)
            store.put_manifest(manifest.raw, OCI_MANIFEST, "1.0")
        assert sorted(client.list_repositories(namespace)) == ["alpha", "beta"]
        assert client.list_repositories(f"{namespace}_elsewhere") == []


def test_corrupted_blob_is_refused_and_leaves_nothing(
    any_registry: RunningRegistry, store: RegistryStore, tmp_path: Path
) -> None:
    blob = random_file(tmp_path, 3 * CHUNK_SIZE + 7)
    store.push_blob(blob)
    data_path = any_registry.blob_data_path(blob.descriptor.digest.hex)
    assert data_path.stat().st_size == blob.descriptor.size
    corrupted = bytearray(data_path.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    data_path.write_bytes(bytes(corrupted))

    destination = tmp_path / "downloads"
    destination.mkdir()
    with pytest.raises(DigestMismatchError) as caught:
        store.download_blob(blob.descriptor, destination / "file.whl")
    assert blob.descriptor.digest.short in str(caught.value)
    assert list(destination.iterdir()) == [], "no file and no temporary file may remain"

    with pytest.raises(DigestMismatchError):
        store.read_blob(blob.descriptor, limit=blob.descriptor.size)
    received: list[bytes] = []
    with pytest.raises(DigestMismatchError):
        received.extend(store.iter_blob(blob.descriptor))
    assert sum(map(len, received)) < blob.descriptor.size, "the last chunk must be held back"


def test_connections_are_reused(
    any_registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: list[int] = []
    original = urllib3.connection.HTTPConnection.connect

    def counting_connect(self: urllib3.connection.HTTPConnection) -> None:
        connects.append(self.port)
        original(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", counting_connect)
    with RegistryClient(any_registry.host, "http", any_registry.credentials) as client:
        store = client.store(unique_repository("team"))
        blob = BytesBlob(b"reuse", "application/octet-stream")
        store.push_blob(blob)
        for _ in range(10):
            assert store.blob_exists(blob.descriptor.digest)
            assert store.read_blob(blob.descriptor) == b"reuse"
            assert store.get_manifest("absent") is None
            assert store.list_tags() == []
    assert connects.count(any_registry.port) == 1, "one kept-alive connection for all requests"


def test_requests_are_retried_across_a_registry_restart(tmp_path: Path) -> None:
    registry = start_registry("htpasswd", tmp_path / "registry")
    try:
        with RegistryClient(registry.host, "http", registry.credentials) as client:
            store = client.store(unique_repository("team"))
            first = random_file(tmp_path, 2 * CHUNK_SIZE)
            store.push_blob(first)
            for action in ("download", "push"):
                registry.stop()
                restart = threading.Timer(1.0, registry.start)
                restart.start()
                try:
                    if action == "download":
                        store.download_blob(first.descriptor, tmp_path / "copy")
                        assert (tmp_path / "copy").read_bytes() == first.path.read_bytes()
                    else:
                        other = BytesBlob(os.urandom(1000), "application/octet-stream")
                        store.push_blob(other)
                        assert store.blob_exists(other.descriptor.digest)
                finally:
                    restart.join()
    finally:
        registry.close()
