"""Local distributions: read and validate a built sdist or wheel before it is published.

Everything here reads the file (a zip or a tar) but holds only its metadata in memory.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from setuptools_ghcr.core.oci import Digest, hash_file
from setuptools_ghcr.errors import InvalidDistributionError

#: What reading a damaged or hostile archive raises. zipfile signals encrypted members, unknown
#: compression methods or versions (NotImplementedError is a RuntimeError) and bad UTF-8 member
#: names with the last two.
_UNREADABLE_ZIP: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    zlib.error,
    RuntimeError,
    UnicodeDecodeError,
)
_UNREADABLE_ARCHIVE: tuple[type[Exception], ...] = (tarfile.TarError, *_UNREADABLE_ZIP)

__all__ = [
    "MAX_METADATA_SIZE",
    "Distribution",
    "DistKind",
    "MetadataFields",
    "parse_filename",
    "parse_metadata",
    "ScannedDistribution",
    "read_core_metadata",
    "read_distribution",
    "scan_distribution",
]

#: Core metadata beyond this is refused: real files are a few KiB, README included.
MAX_METADATA_SIZE = 1024 * 1024

DistKind = Literal["wheel", "sdist"]


@dataclass(frozen=True)
class MetadataFields:
    """The core metadata fields this tool uses."""

    name: str
    version: str
    requires_python: str | None
    summary: str | None
    license: str | None
    requires_dist: tuple[str, ...]


@dataclass(frozen=True)
class Distribution:
    """A validated local sdist or wheel."""

    path: Path
    filename: str
    project: NormalizedName
    version: Version
    kind: DistKind
    tags: frozenset[Tag]
    metadata: bytes
    fields: MetadataFields
    size: int
    sha256: Digest

    @property
    def requires_python(self) -> str | None:
        return self.fields.requires_python


def parse_filename(filename: str) -> tuple[NormalizedName, Version, DistKind, frozenset[Tag]]:
    """Name, version, kind and tags from a distribution file name (sdists have no tags)."""
    try:
        if filename.endswith(".whl"):
            name, version, _build, tags = parse_wheel_filename(filename)
            return name, version, "wheel", tags
        if filename.endswith(".tar.gz"):
            name, version = parse_sdist_filename(filename)
            return name, version, "sdist", frozenset()
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as error:
        raise InvalidDistributionError(f"{filename}: {error}") from error
    raise InvalidDistributionError(
        f"{filename}: not a distribution; expected a wheel (.whl) or an sdist (.tar.gz)"
    )


def parse_metadata(raw: bytes, what: str) -> MetadataFields:
    """Parse core metadata (RFC 822 style) leniently, keeping the fields resolution needs."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidDistributionError(f"{what}: core metadata is not UTF-8") from error
    message = email.parser.Parser(policy=email.policy.compat32).parsestr(text, headersonly=True)
    name, version = message.get("Name"), message.get("Version")
    if not name or not version:
        raise InvalidDistributionError(f"{what}: core metadata lacks Name or Version")
    return MetadataFields(
        name=str(name).strip(),
        version=str(version).strip(),
        requires_python=_optional(message.get("Requires-Python")),
        summary=_optional(message.get("Summary")),
        license=_optional(message.get("License-Expression") or message.get("License")),
        requires_dist=tuple(str(v).strip() for v in message.get_all("Requires-Dist") or ()),
    )


def _optional(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _read_capped(stream: object, size: int, what: str) -> bytes:
    if size > MAX_METADATA_SIZE:
        raise InvalidDistributionError(f"{what}: core metadata of {size} bytes is too large")
    data = stream.read(MAX_METADATA_SIZE + 1)  # type: ignore[attr-defined]
    if not isinstance(data, bytes) or len(data) > MAX_METADATA_SIZE:
        raise InvalidDistributionError(f"{what}: core metadata is too large")
    return data


def _wheel_metadata(path: Path, name: str, version: Version) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                info
                for info in archive.infolist()
                if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")
            ]
            wanted = [
                info
                for info in candidates
                if _dist_info_matches(info.filename.split("/")[0], name, version)
            ]
            if len(wanted) != 1:
                raise InvalidDistributionError(
                    f"{path.name}: expected one {name}-{version}.dist-info/METADATA, "
                    f"found {len(wanted)}"
                )
            with archive.open(wanted[0]) as stream:
                return _read_capped(stream, wanted[0].file_size, path.name)
    except _UNREADABLE_ZIP as error:
        raise InvalidDistributionError(f"{path.name}: not a readable wheel ({error})") from error


def _dist_info_matches(folder: str, name: str, version: Version) -> bool:
    stem = folder.removesuffix(".dist-info")
    folder_name, _, folder_version = stem.rpartition("-")
    try:
        return canonicalize_name(folder_name) == name and Version(folder_version) == version
    except InvalidVersion:
        return False


def _sdist_metadata(path: Path, name: str, version: Version) -> bytes:
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            # The top folder's PKG-INFO is the sdist's own; scanning stops at the first match
            # so a large sdist is not decompressed to its end.
            for member in archive:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if not _top_folder_matches(parts[0], name, version):
                        raise InvalidDistributionError(
                            f"{path.name}: top folder {parts[0]!r} does not match the file name"
                        )
                    stream = archive.extractfile(member)
                    if stream is None:
                        break
                    with stream:
                        return _read_capped(stream, member.size, path.name)
    except (tarfile.TarError, OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise InvalidDistributionError(f"{path.name}: not a readable sdist ({error})") from error
    raise InvalidDistributionError(f"{path.name}: no PKG-INFO in the sdist's top folder")


def _top_folder_matches(folder: str, name: str, version: Version) -> bool:
    folder_name, _, folder_version = folder.rpartition("-")
    try:
        return canonicalize_name(folder_name) == name and Version(folder_version) == version
    except InvalidVersion:
        return False


def _check_whole(path: Path, kind: DistKind) -> None:
    """Read the archive to its end, so that a truncated or corrupt file is never published.

    Reading the metadata alone stops early (a zip's directory is at its end, but its members
    are not checked; a tar.gz is only read up to PKG-INFO). This streams, holding nothing.
    """
    try:
        if kind == "wheel":
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise InvalidDistributionError(f"{path.name}: member {bad!r} is corrupt")
            return
        with gzip.open(path, "rb") as stream:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for _member in archive:
                    pass  # iterating a stream reads every member's data
            # The tar's end comes before the gzip's: read on, so that the CRC is checked.
            while stream.read(1 << 20):
                pass
    except _UNREADABLE_ARCHIVE as error:
        raise InvalidDistributionError(f"{path.name}: not a readable {kind} ({error})") from error


def read_core_metadata(path: Path, filename: str) -> bytes:
    """The core metadata file inside the sdist or wheel at ``path``, named ``filename``.

    ``path`` may be anywhere (a cache entry named by its digest); errors name ``filename``.
    """
    name, version, kind, _tags = parse_filename(filename)
    try:
        if kind == "wheel":
            return _wheel_metadata(path, name, version)
        return _sdist_metadata(path, name, version)
    except InvalidDistributionError as error:
        raise InvalidDistributionError(str(error).replace(path.name, filename)) from error


@dataclass(frozen=True)
class ScannedDistribution:
    """A local sdist or wheel whose name and metadata are checked, not yet its bytes.

    :func:`read_distribution` also reads the whole archive and hashes it. Publishing a big
    file starts from this instead, so that both happen while the file uploads (one read of
    the file rather than three before the first byte goes out).
    """

    path: Path
    filename: str
    project: NormalizedName
    version: Version
    kind: DistKind
    tags: frozenset[Tag]
    metadata: bytes
    fields: MetadataFields
    size: int

    def open(self) -> BinaryIO:
        return self.path.open("rb")

    def check_archive(self) -> None:
        """Read the archive to its end: InvalidDistributionError if it is truncated or corrupt."""
        _check_whole(self.path, self.kind)

    def hashed(self) -> Distribution:
        """This file with its digest (the archive itself unchecked)."""
        with self.open() as stream:
            sha256 = hash_file(stream)
            size = stream.tell()
        return self.with_digest(sha256, size)

    def validated(self) -> Distribution:
        """This file checked to its end and hashed, as :func:`read_distribution` gives it."""
        self.check_archive()
        return self.hashed()

    def with_digest(self, sha256: Digest, size: int | None = None) -> Distribution:
        """This file as a :class:`Distribution` with a digest computed elsewhere."""
        return Distribution(
            path=self.path,
            filename=self.filename,
            project=self.project,
            version=self.version,
            kind=self.kind,
            tags=self.tags,
            metadata=self.metadata,
            fields=self.fields,
            size=self.size if size is None else size,
            sha256=sha256,
        )


def _missing(path: Path) -> str:
    if any(char in str(path) for char in "*?["):
        # The shell passes a pattern that matched nothing on as it is.
        return f"{path}: no such file (no file matches the pattern; build the files first?)"
    return f"{path}: no such file"


def scan_distribution(path: Path) -> ScannedDistribution:
    """Check a built sdist or wheel's name and core metadata, which must agree.

    Anything wrong raises :class:`InvalidDistributionError` with one line naming the file.
    """
    if path.is_dir():
        raise InvalidDistributionError(
            f"{str(path)!r} is a folder, not a distribution; give the built files in it, "
            f"e.g. {path}{os.sep}*"
        )
    if not path.exists():
        raise InvalidDistributionError(_missing(path))
    filename = path.name
    name, version, kind, tags = parse_filename(filename)
    if not path.is_file():
        raise InvalidDistributionError(f"{path}: not a regular file")
    metadata = (
        _wheel_metadata(path, name, version)
        if kind == "wheel"
        else _sdist_metadata(path, name, version)
    )
    fields = parse_metadata(metadata, filename)
    if canonicalize_name(fields.name) != name:
        raise InvalidDistributionError(
            f"{filename}: metadata names project {fields.name!r}, the file name {name!r}"
        )
    try:
        metadata_version = Version(fields.version)
    except InvalidVersion as error:
        raise InvalidDistributionError(
            f"{filename}: metadata version {fields.version!r} is not a valid version"
        ) from error
    if metadata_version != version:
        raise InvalidDistributionError(
            f"{filename}: metadata says version {fields.version}, the file name {version}"
        )
    return ScannedDistribution(
        path=path,
        filename=filename,
        project=name,
        version=version,
        kind=kind,
        tags=tags,
        metadata=metadata,
        fields=fields,
        size=path.stat().st_size,
    )


def read_distribution(path: Path) -> Distribution:
    """Validate a built sdist or wheel and read what publishing needs from it.

    The file name, the metadata inside and (for wheels) the archive must agree, and the
    archive must read to its end; anything else raises :class:`InvalidDistributionError`
    with one line naming the file.
    """
    return scan_distribution(path).validated()
