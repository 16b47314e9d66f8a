"""The wire format (``core.wire_format``): tags, manifests, index entries, indexes."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from packaging.version import Version
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    Index,
    Manifest,
    Platform,
    canonical_json,
    is_valid_tag,
)
from setuptools_ghcr.core.wire_format import (
    ANNOTATION_PREFIX,
    ARTIFACT_TYPE,
    LAYER_MEDIA_TYPE,
    METADATA_MEDIA_TYPE,
    FileEntry,
    build_index,
    described,
    file_entries,
    file_layer,
    file_manifest,
    index_entry,
    layer_of,
    merge_index,
    tag_to_version,
    utc_timestamp,
    version_to_tag,
)
from setuptools_ghcr.errors import InvalidDistributionError, TooLargeError

CREATED = "2025-01-02T03:04:05Z"
SOURCE = "https://github.com/acme/demo-pkg"
FILENAME = ANNOTATION_PREFIX + "filename"
SIZE = ANNOTATION_PREFIX + "size"
REQUIRES_PYTHON = ANNOTATION_PREFIX + "requires-python"
METADATA_DIGEST = ANNOTATION_PREFIX + "metadata-digest"
PROJECT = ANNOTATION_PREFIX + "project"
PYOCI_SHA256 = "com.pyoci.sha256_digest"


# --- version <-> tag -------------------------------------------------------------------------

_local_segment = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)


@st.composite
def versions(draw: st.DrawFn) -> Version:
    """PEP 440 versions of every shape: epochs, pre, post, dev and local segments."""
    epoch = draw(st.integers(min_value=0, max_value=2000))
    release = draw(st.lists(st.integers(min_value=0, max_value=99999), min_size=1, max_size=5))
    text = (f"{epoch}!" if epoch else "") + ".".join(map(str, release))
    pre = draw(st.none() | st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(0, 999)))
    if pre is not None:
        text += f"{pre[0]}{pre[1]}"
    post = draw(st.none() | st.integers(0, 999))
    if post is not None:
        text += f".post{post}"
    dev = draw(st.none() | st.integers(0, 999))
    if dev is not None:
        text += f".dev{dev}"
    local = draw(st.lists(_local_segment, max_size=4))
    if local:
        text += "+" + ".".join(local)
    return Version(text)


@given(version=versions())
def test_version_tag_round_trip(version: Version) -> None:
    tag = version_to_tag(version)
    assert is_valid_tag(tag)
    assert re.fullmatch(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", tag)
    assert "+" not in tag
    assert "!" not in tag
    assert tag_to_version(tag) == version
    assert str(tag_to_version(tag)) == str(version)


@given(
    tag=st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,24}", fullmatch=True)
    | versions().map(version_to_tag)
)
def test_every_tag_read_as_a_version_is_that_versions_tag(tag: str) -> None:
    # No two tags name the same version: reading is the exact inverse of writing.
    version = tag_to_version(tag)
    if version is not None:
        assert version_to_tag(version) == tag


@pytest.mark.parametrize(
    ("version", "tag"),
    [
        ("1.0", "1.0"),
        ("1.0.0", "1.0.0"),
        ("2.0rc1", "2.0rc1"),
        ("1.0.post2", "1.0.post2"),
        ("1.0.dev3", "1.0.dev3"),
        ("1.0a1.post2.dev3", "1.0a1.post2.dev3"),
        ("1.0+local", "1.0-local"),
        ("1.0+ubuntu.1", "1.0-ubuntu.1"),
        ("1!2.0", "1_2.0"),
        ("1!2.0+abc.7", "1_2.0-abc.7"),
        # Written the way PEP 440 normalizes them.
        ("1.0-1", "1.0.post1"),
        ("1.0.0-alpha.1", "1.0.0a1"),
        ("v1.0", "1.0"),
        ("1.0+Local_Name-2", "1.0-local.name.2"),
        ("0!1.0", "1.0"),
    ],
)
def test_version_to_tag_examples(version: str, tag: str) -> None:
    assert version_to_tag(Version(version)) == tag
    assert tag_to_version(tag) == Version(version)


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "main",
        "sha256-" + "a" * 64,
        "v1.0",  # the canonical spelling is 1.0
        "1.0.0-alpha",  # reads as 1.0.0+alpha only if written so: it is, see below
        "01.0",
        "1.0a",
        "1.0.post",
        "1.0.dev",
        "1.0A1",
        "1.0-LOCAL",
        "1.0-local-x",  # two '+'
        "1_2_3",  # two '!'
        "0_1.0",  # epoch 0 is never written
        "1.0.post1-",
        "",
        "+1.0",
    ],
)
def test_tags_that_are_not_canonical_versions(tag: str) -> None:
    if tag == "1.0.0-alpha":
        # Hyphens stand for '+': this tag is the local version 1.0.0+alpha, written canonically.
        assert tag_to_version(tag) == Version("1.0.0+alpha")
        return
    assert tag_to_version(tag) is None


def test_version_too_long_for_a_tag() -> None:
    version = Version("1." + ".".join(["1234567"] * 20))
    with pytest.raises(InvalidDistributionError, match="too long"):
        version_to_tag(version)


def test_utc_timestamp() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2025, 6, 1, 12, 30, 5, 999, tzinfo=timezone(timedelta(hours=2)))
    assert utc_timestamp(moment) == "2025-06-01T10:30:05Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_timestamp())


# --- one file's manifest -------------------------------------------------------------------


@pytest.fixture
def wheel(tmp_path: Path) -> Distribution:
    return read_distribution(
        make_wheel(
            tmp_path,
            "Demo.Pkg",
            "1.2.0",
            requires_python=">=3.10",
            summary="A tiny demonstration package",
            license_expression="MIT",
            requires_dist=["requests>=2.28"],
        )
    )


@pytest.fixture
def sdist(tmp_path: Path) -> Distribution:
    return read_distribution(make_sdist(tmp_path, "Demo.Pkg", "1.2.0", summary="A tiny one"))


def test_file_manifest_fields(wheel: Distribution) -> None:
    manifest = file_manifest(wheel, created=CREATED, source=SOURCE)
    value = json.loads(manifest.raw)
    assert value["schemaVersion"] == 2
    assert value["mediaType"] == OCI_MANIFEST
    assert value["artifactType"] == ARTIFACT_TYPE == "application/pyoci.package.v1"
    assert value["config"] == {
        "mediaType": METADATA_MEDIA_TYPE,
        "digest": str(Digest.of_bytes(wheel.metadata)),
        "size": len(wheel.metadata),
    }
    assert METADATA_MEDIA_TYPE == "application/vnd.setuptools-ghcr.core-metadata.v1"
    assert value["layers"] == [
        {
            "mediaType": LAYER_MEDIA_TYPE,
            "digest": str(wheel.sha256),
            "size": wheel.size,
            "annotations": {"org.opencontainers.image.title": wheel.filename},
        }
    ]
    assert LAYER_MEDIA_TYPE == "application/pyoci.package.v1"
    assert value["annotations"] == {
        "org.opencontainers.image.created": CREATED,
        "org.opencontainers.image.version": "1.2.0",
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.description": "A tiny demonstration package",
        "org.opencontainers.image.licenses": "MIT",
        PROJECT: "Demo.Pkg",
    }
    assert manifest.layers == (file_layer(wheel),)
    assert manifest == Manifest.from_bytes(manifest.raw)


def test_file_manifest_is_canonical_json(wheel: Distribution) -> None:
    manifest = file_manifest(wheel, created=CREATED)
    value = json.loads(manifest.raw)
    assert manifest.raw == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    assert manifest.raw == file_manifest(wheel, created=CREATED).raw


def test_file_manifest_leaves_out_what_is_unknown(sdist: Distribution) -> None:
    bare = replace(sdist, fields=replace(sdist.fields, summary=None, license=None))
    annotations = json.loads(file_manifest(bare, created=CREATED).raw)["annotations"]
    assert set(annotations) == {
        "org.opencontainers.image.created",
        "org.opencontainers.image.version",
        PROJECT,
    }


def test_description_is_truncated_at_512(wheel: Distribution) -> None:
    long = replace(wheel, fields=replace(wheel.fields, summary="x" * 600))
    description = file_manifest(long, created=CREATED).annotations[
        "org.opencontainers.image.description"
    ]
    assert len(description) == 512
    assert description.startswith("x" * 511)
    exact = replace(wheel, fields=replace(wheel.fields, summary="y" * 512))
    assert file_manifest(exact, created=CREATED).annotations[
        "org.opencontainers.image.description"
    ] == ("y" * 512)


@pytest.mark.parametrize(("length", "kept"), [(256, True), (257, False)])
def test_licenses_longer_than_256_are_left_out(
    wheel: Distribution, length: int, kept: bool
) -> None:
    licensed = replace(wheel, fields=replace(wheel.fields, license="L" * length))
    annotations = file_manifest(licensed, created=CREATED).annotations
    assert ("org.opencontainers.image.licenses" in annotations) is kept


def test_extra_annotations_never_override_the_formats(wheel: Distribution) -> None:
    extra = {
        "org.opencontainers.image.version": "9.9",
        "org.opencontainers.image.created": "yesterday",
        PROJECT: "evil",
        "org.opencontainers.image.url": "https://example.org",
    }
    annotations = file_manifest(wheel, created=CREATED, extra=extra).annotations
    assert annotations["org.opencontainers.image.version"] == "1.2.0"
    assert annotations["org.opencontainers.image.created"] == CREATED
    assert annotations[PROJECT] == "Demo.Pkg"
    assert annotations["org.opencontainers.image.url"] == "https://example.org"


# --- index entries ---------------------------------------------------------------------------


def test_index_entry_of_a_wheel(wheel: Distribution) -> None:
    manifest = file_manifest(wheel, created=CREATED)
    entry = index_entry(wheel, manifest, created=CREATED)
    assert entry.media_type == OCI_MANIFEST
    assert entry.digest == manifest.digest == Digest.of_bytes(manifest.raw)
    assert entry.size == len(manifest.raw)
    # The manifest carries the artifactType; the entry leaves it out for older skopeo.
    assert entry.artifact_type is None
    assert entry.platform == Platform("py3-none-any.whl", "any")
    assert dict(entry.annotations) == {
        PYOCI_SHA256: wheel.sha256.hex,
        "org.opencontainers.image.created": CREATED,
        FILENAME: "demo_pkg-1.2.0-py3-none-any.whl",
        SIZE: str(wheel.size),
        METADATA_DIGEST: str(Digest.of_bytes(wheel.metadata)),
        REQUIRES_PYTHON: ">=3.10",
    }
    assert re.fullmatch(r"[0-9a-f]{64}", entry.annotations[PYOCI_SHA256])


def test_index_entry_of_an_sdist(sdist: Distribution) -> None:
    entry = index_entry(sdist, file_manifest(sdist, created=CREATED), created=CREATED)
    assert entry.platform == Platform(".tar.gz", "any")
    assert entry.annotations[FILENAME] == "demo_pkg-1.2.0.tar.gz"
    assert REQUIRES_PYTHON not in entry.annotations


@pytest.mark.parametrize(
    ("tag", "build", "architecture"),
    [
        ("py3-none-any", None, "py3-none-any.whl"),
        ("py2.py3-none-any", None, "py2.py3-none-any.whl"),
        ("cp311-cp311-manylinux_2_17_x86_64", None, "cp311-cp311-manylinux_2_17_x86_64.whl"),
        ("py3-none-any", "7", "7-py3-none-any.whl"),
    ],
)
def test_platform_is_what_follows_name_and_version(
    tmp_path: Path, tag: str, build: str | None, architecture: str
) -> None:
    dist = read_distribution(make_wheel(tmp_path, "demo", "1.0", tag=tag, build=build))
    entry = index_entry(dist, file_manifest(dist, created=CREATED), created=CREATED)
    assert entry.platform == Platform(architecture, "any")


# --- indexes ------------------------------------------------------------------------------------


def _as_set(descriptors: Iterable[Descriptor]) -> list[bytes]:
    # Descriptors hold a dict, so they are compared as sorted canonical JSON instead of a set.
    return sorted(canonical_json(d.to_json()) for d in descriptors)


def _entries(tmp_path: Path, count: int = 4) -> list[Descriptor]:
    tags = ["py3-none-any", "cp310-cp310-linux_x86_64", "cp311-cp311-win_amd64", "py2-none-any"]
    dists = [read_distribution(make_sdist(tmp_path, "demo", "1.0"))]
    dists += [read_distribution(make_wheel(tmp_path, "demo", "1.0", tag=t)) for t in tags]
    return [index_entry(d, file_manifest(d, created=CREATED), created=CREATED) for d in dists][
        :count
    ]


def test_build_index(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    index = build_index(entries, version=Version("1.0"))
    value = json.loads(index.raw)
    assert value["mediaType"] == OCI_INDEX
    assert value["schemaVersion"] == 2
    assert value["artifactType"] == ARTIFACT_TYPE
    assert value["annotations"] == {"org.opencontainers.image.version": "1.0"}
    assert len(value["manifests"]) == len(entries)
    assert _as_set(index.manifests) == _as_set(entries)
    assert index == Index.from_bytes(index.raw)


@pytest.fixture(scope="module")
def five_entries(tmp_path_factory: pytest.TempPathFactory) -> list[Descriptor]:
    # Hypothesis runs a test body many times; the distributions are built once.
    return _entries(tmp_path_factory.mktemp("entries"), 5)


@given(order=st.permutations(range(5)))
def test_build_index_bytes_do_not_depend_on_input_order(
    five_entries: list[Descriptor], order: list[int]
) -> None:
    expected = build_index(five_entries, version=Version("1.0")).raw
    shuffled = [five_entries[i] for i in order]
    assert build_index(shuffled, version=Version("1.0")).raw == expected


def test_build_index_is_sorted(tmp_path: Path) -> None:
    index = build_index(reversed(_entries(tmp_path, 5)), version=Version("1.0"))
    architectures = [d.platform.architecture for d in index.manifests if d.platform]
    assert architectures == sorted(architectures)
    assert len(architectures) == 5


def test_build_index_keeps_the_last_entry_of_a_file(tmp_path: Path) -> None:
    first, *_ = _entries(tmp_path, 1)
    again = replace(first, annotations={**first.annotations, "x": "newer"})
    index = build_index([first, again], version=Version("1.0"))
    assert index.manifests == (again,)


def _padded_index_size(entry: Descriptor, padding: int) -> tuple[int, Descriptor]:
    padded = replace(entry, annotations={**entry.annotations, "pad": "p" * padding})
    return len(
        Index.build((padded,), {"org.opencontainers.image.version": "1.0"}, ARTIFACT_TYPE).raw
    ), padded


def test_build_index_refuses_4_mib(tmp_path: Path) -> None:
    entry = _entries(tmp_path, 1)[0]
    base, _ = _padded_index_size(entry, 0)
    # Just under the limit is fine; exactly at it is refused (ghcr.io answers 500).
    size, under = _padded_index_size(entry, MAX_MANIFEST_SIZE - 1 - base)
    assert size == MAX_MANIFEST_SIZE - 1
    assert len(build_index([under], version=Version("1.0")).raw) == MAX_MANIFEST_SIZE - 1
    size, at = _padded_index_size(entry, MAX_MANIFEST_SIZE - base)
    assert size == MAX_MANIFEST_SIZE
    with pytest.raises(TooLargeError, match="publish fewer files"):
        build_index([at], version=Version("1.0"))


def test_merge_index_replaces_the_same_file_and_keeps_the_others(tmp_path: Path) -> None:
    sdist_entry, wheel_entry, other_wheel = _entries(tmp_path, 3)
    existing = build_index(
        [sdist_entry, wheel_entry], version=Version("1.0"), annotations={"keep": "me"}
    )
    replacement = replace(wheel_entry, annotations={**wheel_entry.annotations, "x": "new"})
    merged = merge_index(existing, [replacement, other_wheel], version=Version("1.0"))
    assert _as_set(merged.manifests) == _as_set([sdist_entry, replacement, other_wheel])
    assert merged.annotations == {"keep": "me", "org.opencontainers.image.version": "1.0"}
    assert merge_index(None, [other_wheel], version=Version("1.0")).manifests == (other_wheel,)
    # Merging what is already there changes nothing, byte for byte.
    assert merge_index(merged, [other_wheel], version=Version("1.0")).raw == merged.raw


def _pyoci_entry(entry: Descriptor) -> Descriptor:
    """``entry`` as PyOCI writes it: platform, digest and created, none of our annotations."""
    keep = {PYOCI_SHA256, "org.opencontainers.image.created"}
    return replace(entry, annotations={k: v for k, v in entry.annotations.items() if k in keep})


def test_merge_index_sets_new_annotations_and_keeps_the_others(tmp_path: Path) -> None:
    wheel = read_distribution(make_wheel(tmp_path, "demo", "1.0"))
    entry = index_entry(wheel, file_manifest(wheel, created=CREATED), created=CREATED)
    yanked = ANNOTATION_PREFIX + "yanked"
    existing = build_index(
        [entry],
        version=Version("1.0"),
        annotations={yanked: "true", "org.opencontainers.image.description": "old"},
    )
    merged = merge_index(
        existing,
        [],
        version=Version("1.0"),
        annotations={"org.opencontainers.image.description": "new"},
    )
    assert merged.annotations[yanked] == "true"
    assert merged.annotations["org.opencontainers.image.description"] == "new"
    assert merged.manifests == existing.manifests


def test_described_names_source_summary_and_licenses(tmp_path: Path) -> None:
    wheel = read_distribution(
        make_wheel(tmp_path, "demo", "1.0", summary="Short.", license_expression="MIT")
    )
    assert described(wheel.fields, "https://github.com/acme/demo") == {
        "org.opencontainers.image.source": "https://github.com/acme/demo",
        "org.opencontainers.image.description": "Short.",
        "org.opencontainers.image.licenses": "MIT",
    }
    (tmp_path / "bare").mkdir()
    bare = read_distribution(make_wheel(tmp_path / "bare", "demo", "1.0"))
    assert described(bare.fields, None) == {}


def test_merge_index_replaces_a_pyoci_entry_of_the_same_file(tmp_path: Path) -> None:
    sdist_entry, wheel_entry = _entries(tmp_path, 2)
    existing = build_index(
        [_pyoci_entry(sdist_entry), _pyoci_entry(wheel_entry)], version=Version("1.0")
    )
    merged = merge_index(existing, [wheel_entry], version=Version("1.0"))
    assert _as_set(merged.manifests) == _as_set([_pyoci_entry(sdist_entry), wheel_entry])


# --- reading entries back ------------------------------------------------------------------------


def test_file_entries_reads_our_entries(wheel: Distribution, sdist: Distribution) -> None:
    entries = {
        dist.filename: index_entry(dist, file_manifest(dist, created=CREATED), created=CREATED)
        for dist in (wheel, sdist)
    }
    index = build_index(entries.values(), version=Version("1.2.0"))
    files = {f.filename: f for f in file_entries(index, "demo-pkg", Version("1.2.0"))}
    assert set(files) == {"demo_pkg-1.2.0-py3-none-any.whl", "demo_pkg-1.2.0.tar.gz"}
    whl = files[wheel.filename]
    assert whl == FileEntry(
        filename=wheel.filename,
        project=canonicalize_name("Demo.Pkg"),
        version=Version("1.2.0"),
        manifest=entries[wheel.filename],
        sha256=wheel.sha256,
        size=wheel.size,
        requires_python=">=3.10",
        metadata=whl.metadata,
        upload_time=CREATED,
    )
    assert whl.metadata is not None
    assert whl.metadata.digest == Digest.of_bytes(wheel.metadata)
    assert whl.metadata.media_type == METADATA_MEDIA_TYPE
    assert files[sdist.filename].requires_python is None


@pytest.mark.parametrize("project", ["Demo.Pkg", "demo-pkg", "DEMO_PKG"])
def test_file_entries_reconstructs_pyoci_file_names(
    wheel: Distribution, sdist: Distribution, project: str
) -> None:
    pyoci = [
        _pyoci_entry(index_entry(d, file_manifest(d, created=CREATED), created=CREATED))
        for d in (wheel, sdist)
    ]
    index = build_index(pyoci, version=Version("1.2.0"))
    files = sorted(file_entries(index, project, Version("1.2.0")), key=lambda f: f.filename)
    assert [f.filename for f in files] == [
        "demo_pkg-1.2.0-py3-none-any.whl",
        "demo_pkg-1.2.0.tar.gz",
    ]
    assert [f.sha256 for f in files] == [wheel.sha256, sdist.sha256]
    assert all(f.size is None and f.metadata is None for f in files)
    assert all(f.upload_time == CREATED for f in files)


def _entry_with(
    template: Descriptor, annotations: dict[str, str], platform: Platform | None
) -> Descriptor:
    return replace(template, annotations=annotations, platform=platform)


@pytest.mark.parametrize(
    ("filename", "architecture"),
    [
        ("../demo_pkg-1.2.0-py3-none-any.whl", None),
        ("a/demo_pkg-1.2.0-py3-none-any.whl", None),
        ("a\\demo_pkg-1.2.0-py3-none-any.whl", None),
        ("/tmp/demo_pkg-1.2.0-py3-none-any.whl", None),
        ("C:demo_pkg-1.2.0-py3-none-any.whl", None),
        ("demo_pkg-1.2.0-py3-none-any.whl\x00.txt", None),
        ("demo_pkg-1.2.0-py3-none-any\n.whl", None),
        ("..", None),
        ("x" * 300 + ".whl", None),
        (None, "../../../etc/evil.whl"),
        (None, "py3-none-any.whl/../../x"),
        (None, None),  # neither our file name nor a platform: nothing to name it by
        ("other-1.2.0-py3-none-any.whl", None),  # another project
        ("demo_pkg-1.2.1-py3-none-any.whl", None),  # another version
        ("demo_pkg-1.2.0.zip", None),  # not a distribution
        ("notes.txt", None),
    ],
)
def test_file_entries_skips_unsafe_or_foreign_entries(
    wheel: Distribution,
    filename: str | None,
    architecture: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = index_entry(wheel, file_manifest(wheel, created=CREATED), created=CREATED)
    annotations = {PYOCI_SHA256: wheel.sha256.hex}
    if filename is not None:
        annotations[FILENAME] = filename
    platform = Platform(architecture, "any") if architecture is not None else None
    bad = _entry_with(good, annotations, platform)
    index = Index.build((bad, good))
    with caplog.at_level(logging.WARNING, logger="setuptools_ghcr.core.wire_format"):
        files = file_entries(index, "demo-pkg", Version("1.2.0"))
    assert [f.filename for f in files] == [wheel.filename]
    assert "skipping an entry" in caplog.text


@pytest.mark.parametrize(
    "annotations",
    [
        {PYOCI_SHA256: "not-hex"},
        {PYOCI_SHA256: "A" * 64},
        {METADATA_DIGEST: "sha256:short"},
    ],
)
def test_file_entries_skips_entries_with_malformed_digests(
    wheel: Distribution, annotations: dict[str, str]
) -> None:
    good = index_entry(wheel, file_manifest(wheel, created=CREATED), created=CREATED)
    bad = replace(good, annotations={**good.annotations, **annotations})
    assert file_entries(Index.build((bad,)), "demo-pkg", Version("1.2.0")) == []


def test_file_entries_tolerates_a_malformed_size(wheel: Distribution) -> None:
    good = index_entry(wheel, file_manifest(wheel, created=CREATED), created=CREATED)
    odd = replace(good, annotations={**good.annotations, SIZE: "-5"})
    (entry,) = file_entries(Index.build((odd,)), "demo-pkg", Version("1.2.0"))
    assert entry.size is None


# --- layer_of -----------------------------------------------------------------------------------


def _file_entry(dist: Distribution) -> tuple[Manifest, FileEntry]:
    manifest = file_manifest(dist, created=CREATED)
    descriptor = index_entry(dist, manifest, created=CREATED)
    (entry,) = file_entries(Index.build((descriptor,)), dist.project, dist.version)
    return manifest, entry


def test_layer_of(wheel: Distribution) -> None:
    manifest, entry = _file_entry(wheel)
    assert layer_of(manifest, entry) == file_layer(wheel)
    anonymous = replace(entry, sha256=None, size=None)
    assert layer_of(manifest, anonymous) == file_layer(wheel)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("two-layers", "2 layers"),
        ("no-layers", "0 layers"),
        ("digest", "digest"),
        ("size", "size"),
    ],
)
def test_layer_of_refuses(wheel: Distribution, change: str, fragment: str) -> None:
    manifest, entry = _file_entry(wheel)
    layer = file_layer(wheel)
    if change == "two-layers":
        manifest = Manifest.build(manifest.config, (layer, layer), artifact_type=ARTIFACT_TYPE)
    elif change == "no-layers":
        manifest = Manifest.build(manifest.config, (), artifact_type=ARTIFACT_TYPE)
    elif change == "digest":
        entry = replace(entry, sha256=Digest.of_bytes(b"other"))
    else:
        entry = replace(entry, size=wheel.size + 1)
    with pytest.raises(InvalidDistributionError, match=fragment) as caught:
        layer_of(manifest, entry)
    assert str(caught.value).startswith(wheel.filename)


# --- the example in docs/format.md ----------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def format_example(directory: Path) -> dict[str, Any]:
    """The documented example: a tiny project's wheel and sdist, as this code writes them."""
    options: dict[str, Any] = {
        "requires_python": ">=3.10",
        "summary": "A tiny demonstration package",
        "license_expression": "MIT",
        "requires_dist": ["requests>=2.28"],
        "module_code": 'def greet(name):\n    return f"Hello, {name}!"\n',
    }
    wheel = read_distribution(make_wheel(directory, "demo-pkg", "1.2.0", **options))
    sdist = read_distribution(make_sdist(directory, "demo-pkg", "1.2.0", **options))
    manifests = {
        d.filename: file_manifest(d, created=CREATED, source=SOURCE) for d in (wheel, sdist)
    }
    entries = [index_entry(d, manifests[d.filename], created=CREATED) for d in (wheel, sdist)]
    index = build_index(entries, version=wheel.version, annotations=described(wheel.fields, SOURCE))
    return {
        "wheel": wheel,
        "sdist": sdist,
        "manifest": manifests[wheel.filename],
        "entry": entries[0],
        "index": index,
    }


def _pretty(raw: bytes) -> str:
    return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)


def test_the_documented_example_is_what_the_code_writes(tmp_path: Path) -> None:
    if not DOC.is_file():
        pytest.skip("docs/format.md is not part of this tree")
    text = DOC.read_text(encoding="utf-8")
    example = format_example(tmp_path)
    wheel: Distribution = example["wheel"]
    if wheel.sha256.hex not in text:
        pytest.skip("this zlib compresses the example wheel to other bytes than documented")
    assert wheel.metadata.decode() in text
    assert _pretty(example["manifest"].raw) in text
    assert _pretty(example["index"].raw) in text
    assert example["manifest"].raw.decode() in text  # the compact bytes, as stored
    assert str(example["index"].digest) in text
    assert str(example["manifest"].digest) in text
