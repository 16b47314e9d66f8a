"""LayoutStore: the Store interface over an OCI image layout folder."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import threading
import tracemalloc
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from support.documents import METADATA, PACKAGE, descriptor_of, push_artifact

from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    Index,
    Manifest,
    Platform,
    hash_file,
)
from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.errors import (
    DamagedLayoutError,
    DigestMismatchError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.layout import REF_NAME, LayoutStore
from setuptools_ghcr.storage.store import BytesBlob, FileBlob

MiB = 1 << 20


def _store(root: Path, name: str = "demo") -> LayoutStore:
    return LayoutStore(root / name, name)


def _random_file(path: Path, size: int, seed: int = 0) -> FileBlob:
    path.write_bytes(random.Random(seed).randbytes(size))
    with path.open("rb") as stream:
        digest = hash_file(stream)
    return FileBlob(path, Descriptor(PACKAGE, digest, size))


def _version_index(manifests: list[Manifest], note: str = "") -> Index:
    entries = tuple(
        Descriptor(
            OCI_MANIFEST,
            manifest.digest,
            len(manifest.raw),
            platform=Platform(f"py3-none-any-{i}.whl", "any"),
        )
        for i, manifest in enumerate(manifests)
    )
    return Index.build(entries, {"note": note} if note else None, artifact_type=PACKAGE)


def _index_json(store: LayoutStore) -> dict[str, object]:
    value = json.loads((store.path / "index.json").read_bytes())
    assert isinstance(value, dict)
    return value


def _entries(store: LayoutStore) -> list[dict[str, object]]:
    entries = _index_json(store)["manifests"]
    assert isinstance(entries, list)
    return entries


def _blob_path(store: LayoutStore, digest: Digest) -> Path:
    return store.path / "blobs" / digest.algorithm / digest.hex


def test_missing_layout_reads_as_an_empty_repository(tmp_path: Path) -> None:
    store = _store(tmp_path)
    digest = Digest.of_bytes(b"x")
    descriptor = Descriptor(PACKAGE, digest, 1)
    assert store.list_tags() == []
    assert store.get_manifest("1.0.0") is None
    assert store.get_manifest(str(digest)) is None
    assert not store.blob_exists(digest)
    with pytest.raises(NotFoundError):
        store.read_blob(descriptor)
    with pytest.raises(NotFoundError):
        list(store.iter_blob(descriptor))
    with pytest.raises(NotFoundError):
        store.download_blob(descriptor, tmp_path / "out.whl")
    assert sorted(os.listdir(tmp_path)) == []  # reading created nothing


def test_first_write_creates_a_spec_layout(tmp_path: Path) -> None:
    store = LayoutStore.for_project(LayoutTarget(tmp_path), "My.Project")
    assert store.path == tmp_path / "my_project"
    assert store.repository == "my_project"
    assert store.location == f"oci:{tmp_path / 'my_project'}"
    store.push_blob(BytesBlob(b"{}", "application/vnd.oci.empty.v1+json"))
    assert (store.path / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert _index_json(store) == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert store.blob_exists(Digest.of_bytes(b"{}"))
    assert store.list_tags() == []


def test_blob_round_trip_streams_in_chunks(tmp_path: Path) -> None:
    size = 3 * MiB + 123
    blob = _random_file(tmp_path / "in.whl", size)
    store = _store(tmp_path / "root")
    pushed: list[int] = []
    store.push_blob(blob, pushed.append)
    assert sum(pushed) == size
    assert len(pushed) == 4
    assert max(pushed) <= MiB
    assert store.blob_exists(blob.descriptor.digest)
    assert _blob_path(store, blob.descriptor.digest).read_bytes() == blob.path.read_bytes()

    fetched: list[int] = []
    out = tmp_path / "out" / "demo-1.0-py3-none-any.whl"
    out.parent.mkdir()
    store.download_blob(blob.descriptor, out, fetched.append)
    assert out.read_bytes() == blob.path.read_bytes()
    assert sum(fetched) == size
    assert os.listdir(out.parent) == [out.name]

    chunks = list(store.iter_blob(blob.descriptor))
    assert len(chunks) == 4
    assert b"".join(chunks) == blob.path.read_bytes()

    with pytest.raises(TooLargeError):
        store.read_blob(blob.descriptor, limit=size - 1)
    assert store.read_blob(blob.descriptor, limit=size) == blob.path.read_bytes()


def test_push_and_download_never_hold_the_whole_blob(tmp_path: Path) -> None:
    size = 24 * MiB
    blob = _random_file(tmp_path / "big.whl", size)
    store = _store(tmp_path / "root")
    tracemalloc.start()
    try:
        store.push_blob(blob)
        store.download_blob(blob.descriptor, tmp_path / "copy.whl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB
    assert (tmp_path / "copy.whl").stat().st_size == size


def test_push_blob_refuses_content_that_disagrees_with_its_descriptor(tmp_path: Path) -> None:
    source = tmp_path / "in.whl"
    source.write_bytes(b"actual bytes")
    store = _store(tmp_path / "root")
    folder = store.path / "blobs" / "sha256"
    wrong_digest = FileBlob(source, Descriptor(PACKAGE, Digest.of_bytes(b"other"), 12))
    with pytest.raises(DigestMismatchError):
        store.push_blob(wrong_digest)
    assert not store.blob_exists(wrong_digest.descriptor.digest)
    assert os.listdir(folder) == []  # no temporary file left behind

    too_short = FileBlob(source, Descriptor(PACKAGE, Digest.of_bytes(b"actual bytes"), 5))
    with pytest.raises(DigestMismatchError, match="more than the expected 5 bytes"):
        store.push_blob(too_short)
    assert os.listdir(folder) == []


class _UnopenableBlob:
    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor

    def open(self) -> BinaryIO:
        raise AssertionError("a blob already in the layout must not be read again")


def test_push_blob_keeps_a_blob_already_there(tmp_path: Path) -> None:
    store = _store(tmp_path)
    blob = BytesBlob(b"wheel bytes", PACKAGE)
    store.push_blob(blob)
    inode = _blob_path(store, blob.descriptor.digest).stat().st_ino
    store.push_blob(_UnopenableBlob(blob.descriptor))
    assert _blob_path(store, blob.descriptor.digest).stat().st_ino == inode


def test_manifest_and_index_round_trip(tmp_path: Path) -> None:
    store = _store(tmp_path)
    wheel = push_artifact(store, "demo-1.0.0-py3-none-any.whl", b"wheel")
    sdist = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    index = _version_index([wheel, sdist])
    assert store.put_manifest(index.raw, OCI_INDEX, "1.0.0") == index.digest

    tagged = store.get_manifest("1.0.0")
    assert tagged is not None
    assert (tagged.raw, tagged.media_type, tagged.digest) == (index.raw, OCI_INDEX, index.digest)
    by_digest = store.get_manifest(str(wheel.digest))
    assert by_digest is not None
    assert (by_digest.raw, by_digest.media_type) == (wheel.raw, OCI_MANIFEST)
    assert Index.from_bytes(tagged.raw).manifests == index.manifests
    assert store.list_tags() == ["1.0.0"]
    assert _entries(store) == [
        {
            "mediaType": OCI_INDEX,
            "digest": str(index.digest),
            "size": len(index.raw),
            "artifactType": PACKAGE,
            "annotations": {REF_NAME: "1.0.0"},
        }
    ]


def test_get_manifest_by_digest_of_a_plain_blob_is_none(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"not json at all")
    assert store.get_manifest(str(manifest.layers[0].digest)) is None


def test_put_manifest_requires_its_blobs_first(tmp_path: Path) -> None:
    store = _store(tmp_path)
    config = BytesBlob(b"Metadata-Version: 2.1\n", METADATA)
    store.push_blob(config)
    layer = Descriptor(PACKAGE, Digest.of_bytes(b"never pushed"), 12)
    manifest = Manifest.build(config.descriptor, (layer,), artifact_type=PACKAGE)
    with pytest.raises(NotFoundError, match=str(layer.digest)):
        store.put_manifest(manifest.raw, OCI_MANIFEST, "1.0.0")
    index = _version_index([manifest])
    with pytest.raises(NotFoundError, match=str(manifest.digest)):
        store.put_manifest(index.raw, OCI_INDEX, "1.0.0")
    assert store.list_tags() == []
    assert store.get_manifest(str(manifest.digest)) is None


def test_put_manifest_checks_media_type_and_size(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    with pytest.raises(MalformedDocumentError, match="declares mediaType"):
        store.put_manifest(manifest.raw, OCI_INDEX, "1.0.0")
    with pytest.raises(MalformedDocumentError, match="unsupported manifest media type"):
        store.put_manifest(b'{"schemaVersion":2}', "application/json", "1.0.0")
    with pytest.raises(TooLargeError):
        store.put_manifest(b" " * (MAX_MANIFEST_SIZE + 1), OCI_MANIFEST, "1.0.0")
    assert store.list_tags() == []


def test_a_tag_is_replaced_in_place(tmp_path: Path) -> None:
    store = _store(tmp_path)
    wheel = push_artifact(store, "demo-1.0.0-py3-none-any.whl", b"wheel")
    first, second = _version_index([wheel], "first"), _version_index([wheel], "second")
    store.put_manifest(first.raw, OCI_INDEX, "1.0.0")
    store.put_manifest(first.raw, OCI_INDEX, "latest")
    store.put_manifest(second.raw, OCI_INDEX, "1.0.0")

    names = [entry["annotations"] for entry in _entries(store)]
    assert names == [{REF_NAME: "1.0.0"}, {REF_NAME: "latest"}]
    current = store.get_manifest("1.0.0")
    assert current is not None
    assert current.raw == second.raw
    latest = store.get_manifest("latest")
    assert latest is not None
    assert latest.raw == first.raw
    old = store.get_manifest(str(first.digest))
    assert old is not None
    assert old.raw == first.raw
    assert store.list_tags() == ["1.0.0", "latest"]


def test_untagged_manifest_is_reachable_by_digest_only(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    assert _entries(store) == []
    assert store.list_tags() == []
    found = store.get_manifest(str(manifest.digest))
    assert found is not None
    assert found.raw == manifest.raw


def test_put_manifest_by_digest_reference(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    index = _version_index([manifest])
    assert store.put_manifest(index.raw, OCI_INDEX, str(index.digest)) == index.digest
    assert store.list_tags() == []
    with pytest.raises(DigestMismatchError):
        store.put_manifest(index.raw, OCI_INDEX, str(manifest.digest))


def test_foreign_index_entries_are_kept_and_not_listed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    foreign = [
        {"mediaType": OCI_MANIFEST, "digest": str(manifest.digest), "size": len(manifest.raw)},
        {
            "mediaType": OCI_MANIFEST,
            "digest": str(manifest.digest),
            "size": len(manifest.raw),
            "urls": ["https://example.com/x"],
            "annotations": {REF_NAME: "example.com/demo:2.0", "other": "kept"},
        },
        {
            "mediaType": OCI_MANIFEST,
            "digest": str(manifest.digest),
            "size": len(manifest.raw),
            "annotations": {REF_NAME: "zeta"},
        },
    ]
    document = {"schemaVersion": 2, "manifests": foreign, "annotations": {"made-by": "x"}}
    (store.path / "index.json").write_text(json.dumps(document))
    assert store.list_tags() == ["zeta"]

    index = _version_index([manifest])
    store.put_manifest(index.raw, OCI_INDEX, "1.0.0")
    after = _index_json(store)
    tagged = {**descriptor_of(index).to_json(), "annotations": {REF_NAME: "1.0.0"}}
    assert after["manifests"] == [*foreign, tagged]
    assert after["annotations"] == {"made-by": "x"}
    assert store.list_tags() == ["1.0.0", "zeta"]


def _corrupt(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _refuse_links(*args: object, **kwargs: object) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def test_corrupted_blobs_are_refused(tmp_path: Path) -> None:
    size = 2 * MiB + 5
    blob = _random_file(tmp_path / "in.whl", size)
    store = _store(tmp_path / "root")
    store.push_blob(blob)
    stored = _blob_path(store, blob.descriptor.digest)
    out = tmp_path / "out"
    out.mkdir()
    damaged = bytearray(stored.read_bytes())
    damaged[-1] ^= 1
    for content in (bytes(damaged), bytes(damaged[:-1]), bytes(damaged) + b"extra"):
        _corrupt(stored, content)
        with pytest.raises(DigestMismatchError):
            store.download_blob(blob.descriptor, out / "demo.whl")
        assert os.listdir(out) == []
        with pytest.raises(DigestMismatchError):
            store.read_blob(blob.descriptor, limit=size)
        received: list[bytes] = []
        with pytest.raises(DigestMismatchError):
            received.extend(store.iter_blob(blob.descriptor))
        assert sum(map(len, received)) < size


def test_failed_download_leaves_an_existing_destination_alone(tmp_path: Path) -> None:
    store = _store(tmp_path / "root")
    blob = BytesBlob(b"good bytes", PACKAGE)
    store.push_blob(blob)
    _corrupt(_blob_path(store, blob.descriptor.digest), b"evil bytes")
    out = tmp_path / "demo.whl"
    out.write_bytes(b"previous")
    with pytest.raises(DigestMismatchError):
        store.download_blob(blob.descriptor, out)
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["demo.whl", "root"]


def test_corrupted_manifests_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    index = _version_index([manifest])
    store.put_manifest(index.raw, OCI_INDEX, "1.0.0")
    _corrupt(_blob_path(store, index.digest), index.raw.replace(b"py3", b"py4"))
    with pytest.raises(DigestMismatchError):
        store.get_manifest("1.0.0")
    with pytest.raises(DigestMismatchError):
        store.get_manifest(str(index.digest))
    _blob_path(store, index.digest).unlink()
    with pytest.raises(NotFoundError, match="damaged"):
        store.get_manifest("1.0.0")


@pytest.mark.parametrize(
    "reference",
    ["../../etc/passwd", "a/b", "-leading-dash", "1.0+local", "x" * 129, "", "sha256:../../x"],
)
def test_invalid_references_are_refused(tmp_path: Path, reference: str) -> None:
    store = _store(tmp_path / "root")
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    with pytest.raises(InvalidReferenceError):
        store.get_manifest(reference)
    with pytest.raises(InvalidReferenceError):
        store.put_manifest(manifest.raw, OCI_MANIFEST, reference)
    assert store.list_tags() == []
    assert sorted(os.listdir(tmp_path)) == ["root"]


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "md5:" + "a" * 32])
def test_malformed_digests_are_refused(tmp_path: Path, digest: str) -> None:
    with pytest.raises(InvalidReferenceError):
        _store(tmp_path).get_manifest(digest)


def test_invalid_repository_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidReferenceError):
        LayoutStore(tmp_path / "x", "../x")
    store = _store(tmp_path)
    with pytest.raises(InvalidReferenceError):
        store.mount_blob(Digest.of_bytes(b"x"), "../escape")


def test_symbolic_links_to_blobs_are_not_followed(tmp_path: Path) -> None:
    store = _store(tmp_path / "root")
    blob = BytesBlob(b"wheel bytes", PACKAGE)
    store.push_blob(blob)
    outside = tmp_path / "outside"
    outside.write_bytes(b"wheel bytes")
    stored = _blob_path(store, blob.descriptor.digest)
    stored.unlink()
    stored.symlink_to(outside)

    with pytest.raises(UnsafeResponseError, match="symbolic link"):
        store.read_blob(blob.descriptor)
    with pytest.raises(UnsafeResponseError):
        store.download_blob(blob.descriptor, tmp_path / "out.whl")
    assert not store.blob_exists(blob.descriptor.digest)
    assert not (tmp_path / "out.whl").exists()

    store.push_blob(blob)  # replaces the link by a real file, leaving its target alone
    assert not stored.is_symlink()
    assert store.read_blob(blob.descriptor) == b"wheel bytes"
    assert outside.read_bytes() == b"wheel bytes"


def test_a_symlinked_blobs_folder_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "root")
    store.push_blob(BytesBlob(b"first", PACKAGE))
    elsewhere = tmp_path / "elsewhere"
    (store.path / "blobs").rename(elsewhere)
    (store.path / "blobs").symlink_to(elsewhere)
    blob = BytesBlob(b"second", PACKAGE)
    with pytest.raises(UnsafeResponseError):
        store.push_blob(blob)
    with pytest.raises(UnsafeResponseError):
        store.blob_exists(Digest.of_bytes(b"first"))
    assert sorted(os.listdir(elsewhere / "sha256")) == [Digest.of_bytes(b"first").hex]


def test_refuses_to_turn_a_foreign_folder_into_a_layout(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.mkdir()
    (store.path / "setup.py").write_text("print('hi')\n")
    with pytest.raises(DamagedLayoutError, match="no oci-layout"):
        store.push_blob(BytesBlob(b"x", PACKAGE))
    with pytest.raises(DamagedLayoutError, match="no oci-layout"), store.lock():
        pass
    assert os.listdir(store.path) == ["setup.py"]


def test_refuses_an_unknown_layout_version(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.path.mkdir()
    (store.path / "oci-layout").write_text('{"imageLayoutVersion": "9.0.0"}')
    with pytest.raises(DamagedLayoutError, match=r"9\.0\.0"):
        store.push_blob(BytesBlob(b"x", PACKAGE))


def test_mount_blob_links_from_a_sibling_layout(tmp_path: Path) -> None:
    source, target = _store(tmp_path, "source"), _store(tmp_path, "target")
    blob = BytesBlob(b"shared wheel", PACKAGE)
    digest = blob.descriptor.digest
    source.push_blob(blob)
    assert not target.mount_blob(Digest.of_bytes(b"absent"), "source")
    assert not target.mount_blob(digest, "nested/source")
    assert not target.mount_blob(digest, "target")
    assert target.mount_blob(digest, "source")
    assert _blob_path(target, digest).stat().st_ino == _blob_path(source, digest).stat().st_ino
    assert target.read_blob(blob.descriptor) == b"shared wheel"
    assert os.listdir(target.path / "blobs" / "sha256") == [digest.hex]


def test_mount_blob_copies_when_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = _store(tmp_path, "source"), _store(tmp_path, "target")
    blob = BytesBlob(b"shared wheel", PACKAGE)
    source.push_blob(blob)
    monkeypatch.setattr(os, "link", _refuse_links)
    assert target.mount_blob(blob.descriptor.digest, "source")
    copied = _blob_path(target, blob.descriptor.digest)
    assert copied.stat().st_ino != _blob_path(source, blob.descriptor.digest).stat().st_ino
    assert copied.read_bytes() == b"shared wheel"


@pytest.mark.parametrize("link", [True, False])
def test_mount_blob_refuses_a_damaged_sibling_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: bool
) -> None:
    source, target = _store(tmp_path, "source"), _store(tmp_path, "target")
    blob = BytesBlob(b"shared wheel", PACKAGE)
    source.push_blob(blob)
    _corrupt(_blob_path(source, blob.descriptor.digest), b"damaged whl!")
    if not link:
        monkeypatch.setattr(os, "link", _refuse_links)
    assert not target.mount_blob(blob.descriptor.digest, "source")
    assert not target.blob_exists(blob.descriptor.digest)
    assert os.listdir(target.path / "blobs" / "sha256") == []


def test_concurrent_tags_from_threads_all_land(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def tag(worker: int) -> None:
        # Half the threads share one instance, half use their own: both must be safe.
        own = store if worker % 2 else _store(tmp_path)
        try:
            start.wait()
            for n in range(3):
                name = f"t{worker}-{n}"
                own.put_manifest(_version_index([manifest], name).raw, OCI_INDEX, name)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=tag, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.list_tags() == sorted(f"t{w}-{n}" for w in range(8) for n in range(3))


def _tag_from_process(root: str, manifest_raw: bytes, worker: int, start: Any) -> None:
    store = _store(Path(root))
    manifest = Manifest.from_bytes(manifest_raw)
    documents = [_version_index([manifest], f"p{worker}-{n}") for n in range(TAGS_PER_PROCESS)]
    start.wait()  # start together, or the processes may never overlap
    for n, document in enumerate(documents):
        store.put_manifest(document.raw, OCI_INDEX, f"p{worker}-{n}")


TAGS_PER_PROCESS = 10


def test_concurrent_tags_from_processes_all_land(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=_tag_from_process, args=(str(tmp_path), manifest.raw, worker, start))
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    expected = sorted(f"p{w}-{n}" for w in range(4) for n in range(TAGS_PER_PROCESS))
    assert store.list_tags() == expected


def test_lock_is_reentrant_and_excludes_other_writers(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    other = _store(tmp_path)
    done = threading.Event()

    def write_other() -> None:
        other.put_manifest(_version_index([manifest], "other").raw, OCI_INDEX, "other")
        done.set()

    with store.lock():
        writer = threading.Thread(target=write_other)
        writer.start()
        with store.lock():  # re-entrant in the holding thread
            store.put_manifest(_version_index([manifest], "mine").raw, OCI_INDEX, "mine")
        assert not done.wait(0.3), "another writer got in while the lock was held"
        assert store.list_tags() == ["mine"]
    writer.join(timeout=10)
    assert done.is_set()
    assert store.list_tags() == ["mine", "other"]


def test_what_the_layout_stores_is_flushed_to_disk_and_a_download_is_not(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    store = _store(tmp_path)
    store.push_blob(BytesBlob(b"first", PACKAGE))  # creates the layout
    fsyncs.clear()
    blob = BytesBlob(b"wheel bytes", PACKAGE)
    store.push_blob(blob)
    assert fsyncs == ["file", "folder"]
    fsyncs.clear()
    manifest = push_artifact(store, "demo-1.0.0.tar.gz", b"sdist")
    store.put_manifest(_version_index([manifest], "1.0").raw, OCI_INDEX, "1.0")
    assert fsyncs[-2:] == ["file", "folder"]  # index.json
    fsyncs.clear()
    store.download_blob(blob.descriptor, tmp_path / "out.whl")
    assert fsyncs == []
    assert (tmp_path / "out.whl").read_bytes() == b"wheel bytes"
