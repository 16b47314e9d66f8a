"""Publishing a file received through the upload API: the form's claims, the file's own
metadata, and the same publish as ``push`` (into a real ``oci:`` folder)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from support.wheels import core_metadata, make_sdist, make_wheel

from setuptools_ghcr.core.oci import Digest
from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.core.wire_format import OCI_SOURCE
from setuptools_ghcr.errors import ConflictError, DigestMismatchError, InvalidDistributionError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.usecases.upload import ReceivedUpload, publish_upload, source_of
from setuptools_ghcr.usecases.versions import list_versions, read_file_manifest, read_version


def received(
    tmp_path: Path, dist: Path, fields: Mapping[str, Sequence[str]] | None = None, **extra: str
) -> ReceivedUpload:
    """``dist`` as the service receives it: copied alone into a folder, with twine's fields."""
    folder = Path(tmp_path / "incoming")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    spooled = folder / "content.part"
    shutil.copyfile(dist, spooled)
    data = spooled.read_bytes()
    name, version = dist.name.split("-")[:2]
    if dist.name.endswith(".tar.gz"):
        version = version.removesuffix(".tar.gz")
    form: dict[str, tuple[str, ...]] = {
        ":action": ("file_upload",),
        "name": (name.replace("_", "-"),),
        "version": (version,),
        "filetype": ("bdist_wheel" if dist.name.endswith(".whl") else "sdist",),
        "sha256_digest": (hashlib.sha256(data).hexdigest(),),
    }
    form.update({key: tuple(value) for key, value in (fields or {}).items()})
    form.update({key: (value,) for key, value in extra.items()})
    return ReceivedUpload(
        spooled, dist.name, len(data), Digest.of_bytes(data), {k: v for k, v in form.items() if v}
    )


@pytest.fixture
def stores(tmp_path: Path) -> StoreFactory:
    return StoreFactory(LayoutTarget(tmp_path / "target"))


def test_an_upload_is_published_like_a_push(tmp_path: Path, stores: StoreFactory) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    result = publish_upload(stores.open, received(tmp_path, wheel))
    assert result.status == "uploaded"
    assert result.filename == wheel.name
    assert result.reference.endswith("demo_pkg:1.0")
    files = read_version(stores.open("demo-pkg"), "demo-pkg", result.version)
    assert files is not None
    assert [entry.filename for entry in files.files] == [wheel.name]


def test_the_same_file_again_writes_nothing(tmp_path: Path, stores: StoreFactory) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    publish_upload(stores.open, received(tmp_path, wheel))
    layout = tmp_path / "target" / "demo_pkg"
    before = {p: p.stat().st_mtime_ns for p in layout.rglob("*") if p.is_file()}
    again = publish_upload(stores.open, received(tmp_path, wheel))
    assert again.status == "exists"
    assert {p: p.stat().st_mtime_ns for p in layout.rglob("*") if p.is_file()} == before


def test_other_bytes_under_a_published_name_conflict(tmp_path: Path, stores: StoreFactory) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    publish_upload(stores.open, received(tmp_path, wheel))
    (tmp_path / "other").mkdir()
    other = make_wheel(tmp_path / "other", "demo-pkg", "1.0", module_code="x = 2\n")
    with pytest.raises(ConflictError, match="already exists with other contents"):
        publish_upload(stores.open, received(tmp_path, other))


def test_files_of_one_version_merge(tmp_path: Path, stores: StoreFactory) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0", tag="cp311-cp311-linux_x86_64")
    sdist = make_sdist(tmp_path, "demo-pkg", "1.0")
    publish_upload(stores.open, received(tmp_path, wheel))
    publish_upload(stores.open, received(tmp_path, sdist))
    store = stores.open("demo-pkg")
    found = read_version(store, "demo-pkg", list_versions(store)[0])
    assert found is not None
    assert sorted(entry.filename for entry in found.files) == sorted([wheel.name, sdist.name])


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"name": ["other-pkg"]}, InvalidDistributionError, "form names project 'other-pkg'"),
        ({"version": ["1.1"]}, InvalidDistributionError, "form says version '1.1'"),
        ({"version": ["not a version"]}, InvalidDistributionError, "form says version"),
        ({"name": []}, InvalidDistributionError, "lacks the name or the version"),
        ({"filetype": ["sdist"]}, InvalidDistributionError, "filetype is 'sdist'"),
        ({"filetype": ["bdist_egg"]}, InvalidDistributionError, "only wheels and sdists"),
        ({"sha256_digest": ["0" * 64]}, DigestMismatchError, "upload was damaged"),
        ({"sha256_digest": ["abc"]}, InvalidDistributionError, "not 64 hex digits"),
        (
            {"classifiers": ["setuptools-ghcr :: source :: not-a-url"]},
            InvalidDistributionError,
            "needs an http",
        ),
    ],
)
def test_a_form_that_disagrees_with_the_file_is_refused_and_nothing_published(
    tmp_path: Path,
    stores: StoreFactory,
    fields: Mapping[str, Sequence[str]],
    error: type[Exception],
    message: str,
) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    with pytest.raises(error, match=message) as caught:
        publish_upload(stores.open, received(tmp_path, wheel, fields))
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize(
    "filename", ["../demo_pkg-1.0-py3-none-any.whl", "a/b.whl", "..", "x\\y.whl", ""]
)
def test_a_file_name_with_a_folder_is_refused(
    tmp_path: Path, stores: StoreFactory, filename: str
) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    upload = received(tmp_path, wheel)
    upload = ReceivedUpload(upload.path, filename, upload.size, upload.sha256, upload.fields)
    with pytest.raises(InvalidDistributionError, match="plain file name"):
        publish_upload(stores.open, upload)
    assert not (tmp_path / "target").exists()


def test_a_file_whose_metadata_disagrees_with_its_name_is_refused(
    tmp_path: Path, stores: StoreFactory
) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0", metadata=core_metadata("demo-pkg", "2.0"))
    with pytest.raises(InvalidDistributionError, match=r"metadata says version 2\.0"):
        publish_upload(stores.open, received(tmp_path, wheel))
    assert not (tmp_path / "target").exists()


def test_a_corrupt_archive_is_refused(tmp_path: Path, stores: StoreFactory) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0", module_code="x = 1\n" * 2000)
    data = bytearray(wheel.read_bytes())
    data[60:80] = b"\x00" * 20  # inside the first member's compressed data
    wheel.write_bytes(bytes(data))
    with pytest.raises(InvalidDistributionError):
        publish_upload(stores.open, received(tmp_path, wheel))
    assert list_versions(stores.open("demo-pkg")) == []


def test_the_source_annotation_comes_from_the_upload(tmp_path: Path, stores: StoreFactory) -> None:
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    upload = received(
        tmp_path,
        wheel,
        {"project_urls": ["Homepage, https://example.org", "Source, https://github.com/acme/demo"]},
    )
    result = publish_upload(stores.open, upload)
    store = stores.open("demo-pkg")
    found = read_version(store, "demo-pkg", result.version)
    assert found is not None
    manifest = read_file_manifest(store, found.files[0])
    assert manifest.annotations[OCI_SOURCE] == "https://github.com/acme/demo"


def test_the_source_annotation_from_the_file_metadata(tmp_path: Path, stores: StoreFactory) -> None:
    metadata = core_metadata("demo-pkg", "1.0") + (
        b"Classifier: setuptools-ghcr :: source :: https://github.com/acme/from-file\n"
    )
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0", metadata=metadata)
    result = publish_upload(stores.open, received(tmp_path, wheel))
    store = stores.open("demo-pkg")
    found = read_version(store, "demo-pkg", result.version)
    assert found is not None
    manifest = read_file_manifest(store, found.files[0])
    assert manifest.annotations[OCI_SOURCE] == "https://github.com/acme/from-file"


@pytest.mark.parametrize(
    ("classifiers", "urls", "expected"),
    [
        ([], [], None),
        (["setuptools-ghcr :: source :: https://github.com/a/b"], [], "https://github.com/a/b"),
        (
            ["Programming Language :: Python", "setuptools-ghcr :: source :: https://x.org/a"],
            ["Source, https://github.com/a/b"],
            "https://x.org/a",
        ),
        ([], ["Source, https://github.com/a/b"], "https://github.com/a/b"),
        ([], ["Source Code, https://github.com/a/c"], "https://github.com/a/c"),
        ([], ["repository,https://github.com/a/d"], "https://github.com/a/d"),
        ([], ["Homepage, https://x.org", "Issues, https://x.org/i"], None),
        ([], ["Source, ftp://x.org/a"], None),
        ([], ["Source"], None),
    ],
)
def test_source_of(classifiers: list[str], urls: list[str], expected: str | None) -> None:
    assert source_of(classifiers, urls) == expected
