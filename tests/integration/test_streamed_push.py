"""Big files are hashed and checked while they upload, and committed only when both agree.

``PushOptions(stream_from=0)`` makes every scanned file take that path, so small wheels
exercise it against a real registry and a layout.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from support.registry_harness import RunningRegistry
from support.wheels import make_wheel

from setuptools_ghcr.core.dists import Distribution, ScannedDistribution, scan_distribution
from setuptools_ghcr.core.oci import Digest
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.core.wire_format import version_to_tag
from setuptools_ghcr.errors import DigestMismatchError, GhcrError, InvalidDistributionError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import ProgressCallback, Store
from setuptools_ghcr.usecases.publish import PushOptions, publish
from setuptools_ghcr.usecases.versions import read_index

pytestmark = pytest.mark.integration

STREAM = PushOptions(stream_from=0, created="2026-01-02T03:04:05Z")


@pytest.fixture(params=["layout", "plain", "token"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    if request.param == "layout":
        made = StoreFactory(parse_target(f"oci:{tmp_path / 'store'}"), environ={})
    else:
        registry: RunningRegistry = request.getfixturevalue(f"{request.param}_registry")
        namespace = f"stream{abs(hash(request.node.nodeid)) % 10**8}"
        made = StoreFactory(
            parse_target(f"{registry.host}/{namespace}"),
            username=registry.username,
            password=registry.password,
            environ={},
        )
    yield made
    made.close()


def _wheel(folder: Path, version: str = "1.0", **options: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return make_wheel(
        folder,
        "streamed-pkg",
        version,
        # Random, so that deflate cannot shrink it: the upload is about a MiB.
        extra_files={"streamed_pkg/data.bin": os.urandom(1 << 20)},
        **options,  # type: ignore[arg-type]
    )


def _corrupt(path: Path) -> Path:
    """Flip bytes inside a member's data, so its CRC no longer matches (name and size stay)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("streamed_pkg/data.bin")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in range(start + 100, start + 120):
        data[offset] ^= 0x55
    path.write_bytes(bytes(data))
    return path


def _sha256(path: Path) -> Digest:
    return Digest.sha256(hashlib.sha256(path.read_bytes()).hexdigest())


def test_a_streamed_file_is_published_under_its_own_digest(
    factory: StoreFactory, tmp_path: Path
) -> None:
    wheel = _wheel(tmp_path / "dist")
    scanned = scan_distribution(wheel)
    assert isinstance(scanned, ScannedDistribution)

    (result,) = publish(factory.open, [scanned], STREAM)

    assert result.status == "uploaded"
    assert result.sha256 == _sha256(wheel).hex and result.size == wheel.stat().st_size
    store = factory.open("streamed-pkg")
    assert store.blob_exists(_sha256(wheel))
    index = read_index(store, version_to_tag(scanned.version))
    assert index is not None and [e.digest for e in index.manifests] == [
        Digest.parse(str(result.manifest))
    ]
    out = tmp_path / "back.whl"
    from setuptools_ghcr.core.oci import Descriptor
    from setuptools_ghcr.core.wire_format import LAYER_MEDIA_TYPE

    store.download_blob(Descriptor(LAYER_MEDIA_TYPE, _sha256(wheel), result.size), out)
    assert out.read_bytes() == wheel.read_bytes()


def test_a_corrupt_archive_is_never_committed(factory: StoreFactory, tmp_path: Path) -> None:
    wheel = _corrupt(_wheel(tmp_path / "dist"))
    scanned = scan_distribution(wheel)  # name and metadata are fine: only the CRC is wrong

    with pytest.raises(InvalidDistributionError, match=r"streamed_pkg/data\.bin"):
        publish(factory.open, [scanned], STREAM)

    store = factory.open("streamed-pkg")
    assert not store.blob_exists(_sha256(wheel))
    assert read_index(store, version_to_tag(scanned.version)) is None


def test_nothing_is_stored_when_the_commit_check_refuses(
    factory: StoreFactory, tmp_path: Path
) -> None:
    wheel = _wheel(tmp_path / "dist")
    store = factory.open("streamed-pkg")
    seen: list[Digest] = []

    def refuse(digest: Digest) -> None:
        seen.append(digest)
        raise InvalidDistributionError("changed while it was uploading")

    with pytest.raises(InvalidDistributionError):
        store.push_stream(lambda: wheel.open("rb"), wheel.stat().st_size, None, refuse)
    assert seen == [_sha256(wheel)]
    assert not store.blob_exists(_sha256(wheel))


def test_a_source_shorter_than_announced_is_refused(factory: StoreFactory, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "dist")
    store = factory.open("streamed-pkg")
    with pytest.raises(GhcrError):
        store.push_stream(lambda: wheel.open("rb"), wheel.stat().st_size + 10)
    assert not store.blob_exists(_sha256(wheel))


def test_push_stream_counts_progress_and_returns_the_digest(
    factory: StoreFactory, tmp_path: Path
) -> None:
    wheel = _wheel(tmp_path / "dist")
    store = factory.open("streamed-pkg")
    moved: list[int] = []
    progress: ProgressCallback = moved.append
    digest = store.push_stream(lambda: wheel.open("rb"), wheel.stat().st_size, progress)
    assert digest == _sha256(wheel)
    assert sum(moved) == wheel.stat().st_size
    # Pushing the same bytes again is harmless, and gives the same digest.
    assert store.push_stream(lambda: wheel.open("rb"), wheel.stat().st_size) == digest


class _Counting:
    """A store that counts the blob uploads going through it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.uploads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def push_blob(self, *args: object, **kwargs: object) -> None:
        self.uploads += 1
        self._store.push_blob(*args, **kwargs)  # type: ignore[arg-type]

    def push_stream(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None = None,
        before_commit: Callable[[Digest], None] | None = None,
    ) -> Digest:
        self.uploads += 1
        return self._store.push_stream(open_source, size, progress, before_commit)


def test_a_listed_file_is_hashed_to_compare_and_never_sent_again(
    factory: StoreFactory, tmp_path: Path
) -> None:
    wheel = _wheel(tmp_path / "dist")
    publish(factory.open, [scan_distribution(wheel)], STREAM)
    counting: dict[str, _Counting] = {}

    def open_counting(project: str) -> Store:
        counting[project] = _Counting(factory.open(project))
        return counting[project]  # type: ignore[return-value]

    (again,) = publish(open_counting, [scan_distribution(wheel)], STREAM)
    assert again.status == "exists" and again.sha256 == _sha256(wheel).hex
    assert counting["streamed-pkg"].uploads == 0

    # Other bytes under the same name: refused, and nothing sent either.
    other = _wheel(tmp_path / "other", module_code="CHANGED = True\n")
    from setuptools_ghcr.errors import ConflictError

    with pytest.raises(ConflictError):
        publish(open_counting, [scan_distribution(other)], STREAM)
    assert counting["streamed-pkg"].uploads == 0


def test_the_same_file_given_twice_is_folded_and_a_clash_refused(
    factory: StoreFactory, tmp_path: Path
) -> None:
    wheel = _wheel(tmp_path / "dist")
    results = publish(factory.open, [scan_distribution(wheel), scan_distribution(wheel)], STREAM)
    # One upload; each argument gets its (same) result.
    assert [r.status for r in results] == ["uploaded", "uploaded"]
    assert results[0] == results[1]
    clash = _wheel(tmp_path / "clash", version="2.0", module_code="A = 1\n")
    twin = _wheel(tmp_path / "twin", version="2.0", module_code="B = 2\n")
    from setuptools_ghcr.errors import ConflictError

    with pytest.raises(ConflictError, match="twice"):
        publish(factory.open, [scan_distribution(clash), scan_distribution(twin)], STREAM)


def test_small_files_are_checked_before_anything_is_sent(tmp_path: Path) -> None:
    """Below ``stream_from`` a corrupt file fails before any store is even written to."""
    wheel = _corrupt(_wheel(tmp_path / "dist"))
    opened: list[str] = []

    def no_store(project: str) -> Store:
        opened.append(project)
        raise AssertionError("no store may be opened for a corrupt small file")

    with pytest.raises(InvalidDistributionError):
        publish(no_store, [scan_distribution(wheel)], PushOptions())
    assert opened == []


def test_a_scanned_file_validated_equals_read_distribution(tmp_path: Path) -> None:
    from setuptools_ghcr.core.dists import read_distribution

    wheel = _wheel(tmp_path / "dist")
    validated = scan_distribution(wheel).validated()
    assert isinstance(validated, Distribution)
    assert validated == read_distribution(wheel)
    with pytest.raises(InvalidDistributionError):
        scan_distribution(_corrupt(wheel)).validated()


def test_a_file_changed_during_the_upload_is_not_committed(
    factory: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(tmp_path / "dist")
    scanned = scan_distribution(wheel)
    original_open = ScannedDistribution.open

    def open_then_touch(self: ScannedDistribution) -> BinaryIO:
        stream = original_open(self)
        # Another process rewrites the file while it is being sent.
        wheel.write_bytes(wheel.read_bytes())
        return stream

    monkeypatch.setattr(ScannedDistribution, "open", open_then_touch)
    with pytest.raises((InvalidDistributionError, DigestMismatchError), match="changed"):
        publish(factory.open, [scanned], STREAM)
    store = factory.open("streamed-pkg")
    assert read_index(store, version_to_tag(scanned.version)) is None


# -- faults: the streamed upload starts over, and never stores twice or half ------------------


def test_a_cut_upload_starts_over_and_lands_whole(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    from support.fault_proxy import Fault, FaultProxy

    wheel = _wheel(tmp_path / "dist")
    with FaultProxy(plain_registry.host) as proxy:
        proxy.add(Fault("reset_request", "PATCH", r"/blobs/uploads/", after=64 << 10))
        stores = StoreFactory(parse_target(f"{proxy.host}/cut"), environ={})
        (result,) = publish(stores.open, [scan_distribution(wheel)], STREAM)
        patches = proxy.count("PATCH", "/blobs/uploads/")
        stores.close()
    assert result.status == "uploaded" and result.sha256 == _sha256(wheel).hex
    assert patches == 2  # the cut one, then the whole one
    direct = StoreFactory(parse_target(f"{plain_registry.host}/cut"), environ={})
    assert direct.open("streamed-pkg").blob_exists(_sha256(wheel))
    direct.close()


def test_a_commit_whose_answer_is_lost_is_not_uploaded_again(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    from support.fault_proxy import Fault, FaultProxy

    wheel = _wheel(tmp_path / "dist")
    with FaultProxy(plain_registry.host) as proxy:
        # The commit reaches the registry, but its answer never comes back.
        proxy.add(Fault("reset_response", "PUT", r"/blobs/uploads/.*digest=", after=0))
        stores = StoreFactory(parse_target(f"{proxy.host}/lost"), environ={})
        (result,) = publish(stores.open, [scan_distribution(wheel)], STREAM)
        patches = proxy.count("PATCH", "/blobs/uploads/")
        stores.close()
    assert result.status == "uploaded" and result.sha256 == _sha256(wheel).hex
    assert patches == 1  # the blob was found committed: no second upload


def test_the_pipelined_hash_equals_a_plain_one(tmp_path: Path) -> None:
    from setuptools_ghcr.usecases.publish import _hashed

    wheel = _wheel(tmp_path / "dist")
    scanned = scan_distribution(wheel)
    assert _hashed(scanned) == scanned.hashed()
    assert _hashed(scanned).sha256 == _sha256(wheel)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    from dataclasses import replace

    blank = _hashed(replace(scanned, path=empty, size=0))
    assert blank.sha256 == Digest.of_bytes(b"") and blank.size == 0
