"""Reading and validating local sdists and wheels (``setuptools_ghcr.core.dists``)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.version import Version
from support.wheels import core_metadata, make_sdist, make_wheel, write_tar_gz, write_zip

from setuptools_ghcr.core.dists import (
    MAX_METADATA_SIZE,
    parse_filename,
    parse_metadata,
    read_distribution,
)
from setuptools_ghcr.errors import InvalidDistributionError


def _refused(path: Path) -> str:
    """The one-line message read_distribution refuses ``path`` with; it names the file."""
    with pytest.raises(InvalidDistributionError) as caught:
        read_distribution(path)
    message = str(caught.value)
    assert path.name in message
    assert "\n" not in message
    return message


# --- valid distributions --------------------------------------------------------------------


def test_read_wheel(tmp_path: Path) -> None:
    path = make_wheel(
        tmp_path,
        "Demo.Pkg",
        "1.0.post1",
        tag="py2.py3-none-any",
        requires_python=">=3.10",
        requires_dist=["requests>=2", "rich; extra == 'cli'"],
        summary="A demo",
        license_expression="MIT",
    )
    dist = read_distribution(path)
    assert dist.path == path
    assert dist.filename == "demo_pkg-1.0.post1-py2.py3-none-any.whl"
    assert dist.project == "demo-pkg"
    assert dist.version == Version("1.0.post1")
    assert dist.kind == "wheel"
    assert dist.tags == frozenset({Tag("py2", "none", "any"), Tag("py3", "none", "any")})
    assert dist.requires_python == ">=3.10"
    assert dist.fields.name == "Demo.Pkg"
    assert dist.fields.summary == "A demo"
    assert dist.fields.license == "MIT"
    assert dist.fields.requires_dist == ("requests>=2", "rich; extra == 'cli'")
    data = path.read_bytes()
    assert dist.size == len(data)
    assert dist.sha256.hex == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(path) as archive:
        assert dist.metadata == archive.read("demo_pkg-1.0.post1.dist-info/METADATA")


def test_read_sdist(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "demo-pkg", "2.0rc1", requires_python=">=3.9", summary="s")
    dist = read_distribution(path)
    assert (dist.filename, dist.project, dist.version) == (
        "demo_pkg-2.0rc1.tar.gz",
        "demo-pkg",
        Version("2.0rc1"),
    )
    assert dist.kind == "sdist"
    assert dist.tags == frozenset()
    assert dist.requires_python == ">=3.9"
    assert dist.metadata == core_metadata(
        "demo-pkg", "2.0rc1", requires_python=">=3.9", summary="s"
    )
    assert dist.sha256.hex == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dist.size == path.stat().st_size


@pytest.mark.parametrize(
    ("filename", "version"),
    [
        ("demo-1.0-py3-none-any.whl", "1.0"),
        ("demo-1.0-1-py3-none-any.whl", "1.0"),  # build tag
        ("demo-1!2.0-py3-none-any.whl", "1!2.0"),
        ("demo-1.0+local.7-py3-none-any.whl", "1.0+local.7"),
        ("Demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "1.0"),
    ],
)
def test_read_wheel_spellings(tmp_path: Path, filename: str, version: str) -> None:
    wheel = make_wheel(tmp_path, "demo", version, filename=filename)
    dist = read_distribution(wheel)
    assert dist.version == Version(version)
    assert dist.filename == filename


def test_metadata_may_spell_the_name_and_version_differently(tmp_path: Path) -> None:
    # Normalized comparison: "Demo_Pkg" / "1.0.0" agree with demo_pkg-1.0 / "1.0".
    metadata = core_metadata("Demo_Pkg", "1.0.0")
    dist = read_distribution(make_wheel(tmp_path, "demo-pkg", "1.0", metadata=metadata))
    assert dist.fields.name == "Demo_Pkg"


def test_metadata_larger_than_a_chunk_but_under_the_cap(tmp_path: Path) -> None:
    metadata = core_metadata("demo", "1.0", description="x" * 300_000)
    assert read_distribution(make_wheel(tmp_path, "demo", "1.0", metadata=metadata)).metadata == (
        metadata
    )


# --- file names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("demo-1.0-py3-none-any.whl", "wheel"),
        ("demo-1.0.tar.gz", "sdist"),
        ("demo_pkg-1.0.tar.gz", "sdist"),
    ],
)
def test_parse_filename(filename: str, kind: str) -> None:
    _name, version, parsed_kind, _tags = parse_filename(filename)
    assert (version, parsed_kind) == (Version("1.0"), kind)


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0.zip",
        "demo-1.0.tar.bz2",
        "demo-1.0.egg",
        "README.md",
        "demo-1.0.whl",
        "demo-1.0-py3-none.whl",
        "demo-one-py3-none-any.whl",
        "demo-1.0.0.0.0-x-py3-none-any.whl",
        "demo-latest.tar.gz",
        "demo.tar.gz",
        "demo-1.0a-b.tar.gz",
    ],
)
def test_parse_filename_refuses(filename: str) -> None:
    with pytest.raises(InvalidDistributionError) as caught:
        parse_filename(filename)
    assert str(caught.value).startswith(filename)


# --- refusals --------------------------------------------------------------------------------


def test_refuses_a_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "demo-1.0-py3-none-any.whl")


@pytest.mark.parametrize("filename", ["notes.txt", "demo-1.0.zip", "demo-1.0.egg"])
def test_refuses_non_distributions(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"whatever")
    assert "not a distribution" in _refused(path)


@pytest.mark.parametrize("filename", ["demo-one-py3-none-any.whl", "demo-1.0.x.y-1.tar.gz"])
def test_refuses_invalid_versions_in_names(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"whatever")
    _refused(path)


def test_refuses_a_text_file_named_like_a_wheel(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_text("not a zip")
    assert "not a readable wheel" in _refused(path)


def test_refuses_a_text_file_named_like_an_sdist(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0.tar.gz"
    path.write_text("not a tarball")
    assert "not a readable sdist" in _refused(path)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9])
def test_refuses_a_truncated_wheel(tmp_path: Path, keep: float) -> None:
    path = make_wheel(tmp_path, "demo", "1.0", module_code="x = 1\n" * 2000)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    _refused(path)


def test_refuses_a_truncated_sdist(tmp_path: Path) -> None:
    # PKG-INFO after a big member, so reading it needs the part that was cut off.
    path = make_sdist(tmp_path, "demo", "1.0", pkg_info=False)
    full = write_tar_gz(
        tmp_path / "demo-1.0.tar.gz",
        {
            "demo-1.0/big.bin": bytes(range(256)) * 4000,
            "demo-1.0/PKG-INFO": core_metadata("demo", "1.0"),
        },
    )
    assert full == path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(path)


def _corrupt_member_data(path: Path, member: str) -> None:
    """Overwrite bytes inside ``member``'s compressed data, leaving the zip's structure."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    # Local header: 30 fixed bytes, then the name and the extra field.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for offset in range(start + 2, start + min(info.compress_size - 2, 64)):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def test_refuses_corrupt_compressed_metadata(tmp_path: Path) -> None:
    metadata = core_metadata("demo", "1.0", description="some long description\n" * 500)
    path = make_wheel(tmp_path, "demo", "1.0", metadata=metadata)
    _corrupt_member_data(path, "demo-1.0.dist-info/METADATA")
    _refused(path)


def test_refuses_stored_metadata_with_a_bad_crc(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "demo-1.0-py3-none-any.whl",
        {"demo-1.0.dist-info/METADATA": core_metadata("demo", "1.0")},
        compression=zipfile.ZIP_STORED,
    )
    data = bytearray(path.read_bytes())
    data[data.index(b"Name: demo") + 6] = ord("X")
    path.write_bytes(bytes(data))
    _refused(path)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_every_single_byte_corruption_is_read_or_refused_cleanly(tmp_path: Path, kind: str) -> None:
    # Whatever zlib, zipfile or tarfile trip over must come out as InvalidDistributionError.
    code = "print(1)\n" * 1000
    if kind == "wheel":
        path = make_wheel(
            tmp_path, "demo", "1.0", metadata=core_metadata("demo", "1.0", description=code)
        )
    else:
        path = write_tar_gz(
            tmp_path / "demo-1.0.tar.gz",
            {"demo-1.0/setup.py": code, "demo-1.0/PKG-INFO": core_metadata("demo", "1.0")},
        )
    original = path.read_bytes()
    refused = 0
    for offset in range(len(original)):
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            read_distribution(path)
        except InvalidDistributionError as error:
            message = str(error)
            refused += 1
        else:
            message = ""
        assert "\n" not in message
    assert refused >= 20  # the damage was noticed, not just survived


@pytest.mark.parametrize(("flag_offset", "value"), [(6, 0x01), (8, 99)])
def test_refuses_encrypted_or_unknown_compression(
    tmp_path: Path, flag_offset: int, value: int
) -> None:
    # Flag bit 0 marks an encrypted member; method 99 is AES. zipfile cannot read either.
    path = write_zip(
        tmp_path / "demo-1.0-py3-none-any.whl",
        {"demo-1.0.dist-info/METADATA": core_metadata("demo", "1.0")},
        compression=zipfile.ZIP_STORED,
    )
    data = bytearray(path.read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + flag_offset] |= value
    data[central + flag_offset + 2] |= value
    path.write_bytes(bytes(data))
    _refused(path)


@pytest.mark.parametrize(
    "members",
    [
        pytest.param({"demo/__init__.py": ""}, id="no-dist-info"),
        pytest.param({"other-1.0.dist-info/METADATA": "Name: other\n"}, id="other-project"),
        pytest.param({"demo-2.0.dist-info/METADATA": "Name: demo\n"}, id="other-version"),
        pytest.param({"x/demo-1.0.dist-info/METADATA": "Name: demo\n"}, id="nested"),
        pytest.param(
            {
                "demo-1.0.dist-info/METADATA": core_metadata("demo", "1.0"),
                "Demo-1.0.dist-info/METADATA": core_metadata("demo", "1.0"),
            },
            id="two",
        ),
    ],
)
def test_refuses_wheels_without_exactly_one_matching_metadata(
    tmp_path: Path, members: dict[str, str]
) -> None:
    path = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    assert "dist-info/METADATA" in _refused(path)


def test_refuses_an_sdist_without_pkg_info(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "demo", "1.0", pkg_info=False)
    assert "no PKG-INFO" in _refused(path)


def test_refuses_an_sdist_whose_pkg_info_is_only_nested(tmp_path: Path) -> None:
    path = make_sdist(
        tmp_path, "demo", "1.0", pkg_info=False, extra_files={"src/demo.egg-info/PKG-INFO": "x"}
    )
    assert "no PKG-INFO" in _refused(path)


def test_refuses_an_sdist_whose_top_folder_disagrees(tmp_path: Path) -> None:
    path = make_sdist(tmp_path, "other", "1.0", filename="demo-1.0.tar.gz")
    assert "top folder" in _refused(path)


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        (core_metadata("other", "1.0"), "names project 'other'"),
        (core_metadata("demo", "2.0"), "says version 2.0"),
        (core_metadata("demo", "not-a-version"), "not a valid version"),
        (b"Metadata-Version: 2.1\nVersion: 1.0\n", "lacks Name or Version"),
        (b"Metadata-Version: 2.1\nName: demo\n", "lacks Name or Version"),
        (b"", "lacks Name or Version"),
        (b"Name: d\xe9mo\nVersion: 1.0\n", "not UTF-8"),
    ],
)
@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_refuses_metadata_disagreeing_with_the_file_name(
    tmp_path: Path, metadata: bytes, fragment: str, kind: str
) -> None:
    make = make_wheel if kind == "wheel" else make_sdist
    path = make(tmp_path, "demo", "1.0", metadata=metadata)
    assert fragment in _refused(path)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_refuses_huge_metadata(tmp_path: Path, kind: str) -> None:
    metadata = core_metadata("demo", "1.0", description="x" * MAX_METADATA_SIZE)
    make = make_wheel if kind == "wheel" else make_sdist
    path = make(tmp_path, "demo", "1.0", metadata=metadata)
    assert "too large" in _refused(path)


def test_refuses_a_wheel_whose_metadata_lies_about_its_size(tmp_path: Path) -> None:
    # The central directory claims a small size; reading is still capped.
    metadata = core_metadata("demo", "1.0", description="x" * (MAX_METADATA_SIZE + 10))
    path = write_zip(
        tmp_path / "demo-1.0-py3-none-any.whl",
        {"demo-1.0.dist-info/METADATA": metadata},
        compression=zipfile.ZIP_STORED,
    )
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))
    _refused(path)


# --- metadata parsing ----------------------------------------------------------------------------


def test_parse_metadata_fields() -> None:
    raw = (
        b"Metadata-Version: 2.1\nName:  demo \nVersion: 1.0\nSummary: \n"
        b"License: BSD\nRequires-Dist: a\nRequires-Dist: b>1\n\nBody: not a header\n"
    )
    fields = parse_metadata(raw, "demo.whl")
    assert fields.name == "demo"
    assert fields.summary is None
    assert fields.license == "BSD"
    assert fields.requires_python is None
    assert fields.requires_dist == ("a", "b>1")


def test_parse_metadata_prefers_license_expression() -> None:
    raw = b"Name: demo\nVersion: 1.0\nLicense: long text\nLicense-Expression: MIT\n"
    assert parse_metadata(raw, "x").license == "MIT"
