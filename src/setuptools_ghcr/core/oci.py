"""Pure OCI values: digests, descriptors, image manifests and indexes.

Manifests and indexes keep the exact bytes they were parsed from (or built as), because a
manifest's digest is the hash of those bytes and a registry stores them unchanged.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from setuptools_ghcr.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    MalformedDocumentError,
    TooLargeError,
)

__all__ = [
    "load_json",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "MAX_MANIFEST_SIZE",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Digest",
    "DigestWriter",
    "Index",
    "Manifest",
    "Platform",
    "canonical_json",
    "hash_file",
    "page_buffer",
    "is_valid_repository",
    "is_valid_tag",
    "verified_chunks",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)

#: What registries must accept at least; ghcr.io refuses an index of this size or more.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
#: Deepest JSON nesting accepted in a manifest; real ones are 4 levels deep.
MAX_JSON_DEPTH = 32

_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_HEX_RE = re.compile(r"[a-f0-9]+")
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


#: Compiled once: a page of thousands of files checks tens of thousands of digests.
_HEX_RE = re.compile(r"[a-f0-9]+")


def is_valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a valid OCI tag."""
    return _TAG_RE.fullmatch(tag) is not None


def is_valid_repository(name: str) -> bool:
    """Whether ``name`` is a valid OCI repository name (without the registry host)."""
    return len(name) <= 255 and _REPOSITORY_RE.fullmatch(name) is not None


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest such as ``sha256:<64 hex>``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        expected = _ALGORITHMS.get(self.algorithm)
        if expected is None:
            raise InvalidReferenceError(f"unsupported digest algorithm {self.algorithm!r}")
        if len(self.hex) != expected or not _HEX_RE.fullmatch(self.hex):
            raise InvalidReferenceError(f"malformed {self.algorithm} digest {self.hex[:80]!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.fullmatch(text)
        if match is None:
            raise InvalidReferenceError(f"malformed digest {text[:80]!r}")
        return cls(match.group(1), match.group(2))

    @classmethod
    def sha256(cls, hex_digest: str) -> Digest:
        return cls("sha256", hex_digest)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> DigestWriter:
        """A fresh hasher for this digest's algorithm."""
        return DigestWriter(self.algorithm)

    @property
    def short(self) -> str:
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class DigestWriter:
    """Hashes and counts bytes as they stream past."""

    __slots__ = ("_hash", "algorithm", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())

    def verify(self, expected: Digest, expected_size: int | None, what: str) -> None:
        """Raise :class:`DigestMismatchError` unless what was hashed matches."""
        if expected_size is not None and self.size != expected_size:
            raise DigestMismatchError(
                f"{what}: got {self.size} bytes, expected {expected_size}; refusing it"
            )
        actual = self.digest()
        if actual != expected:
            raise DigestMismatchError(
                f"{what}: content hashes to {actual.algorithm}:{actual.short}..., "
                f"expected {expected}; refusing it"
            )


def page_buffer(size: int) -> mmap.mmap:
    """A writable buffer of ``size`` bytes that starts on a page boundary.

    Reading a file or a socket into it costs the kernel whole-page copies. A ``bytearray``'s
    bytes start a few words into their allocation, and the same reads into one took about
    five times the system time on the machine measured (docs/performance.md).
    """
    return mmap.mmap(-1, max(size, 1))


def hash_file(stream: BinaryIO, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> Digest:
    """Hash a binary stream to its end without holding it in memory."""
    writer = DigestWriter(algorithm)
    view = memoryview(page_buffer(chunk_size))
    while True:
        count = stream.readinto(view)  # type: ignore[attr-defined]
        if not count:
            return writer.digest()
        writer.update(view[:count])


def verified_chunks(
    chunks: Iterator[bytes], expected: Digest, expected_size: int | None, what: str
) -> Iterator[bytes]:
    """Pass chunks through, holding the last one back until the whole stream verifies.

    A consumer therefore never receives all the bytes of content that fails verification.
    """
    writer = expected.hasher()
    pending: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        writer.update(chunk)
        if expected_size is not None and writer.size > expected_size:
            raise DigestMismatchError(f"{what}: more than the expected {expected_size} bytes")
        if pending is not None:
            yield pending
        pending = chunk
    writer.verify(expected, expected_size, what)
    if pending is not None:
        yield pending


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` the way this tool writes every manifest: sorted, compact, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def load_json(raw: bytes | str) -> Any:
    """``json.loads`` for what a registry or another program sends: nesting too deep for
    the parser is a ``ValueError`` like any other malformed JSON, never a ``RecursionError``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parse_json_document(raw: bytes, what: str) -> dict[str, Any]:
    """Parse a manifest-sized JSON object defensively (size, depth, type)."""
    if len(raw) > MAX_MANIFEST_SIZE:
        raise TooLargeError(f"{what} is {len(raw)} bytes, over the {MAX_MANIFEST_SIZE} accepted")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise MalformedDocumentError(f"{what} is not valid JSON") from error
    if not isinstance(value, dict):
        raise MalformedDocumentError(f"{what} is not a JSON object")
    # No deeper than it has brackets: counting them is cheap, while the walk costs a tuple
    # per value, which a page reading thousands of indexes feels.
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > MAX_JSON_DEPTH and _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise MalformedDocumentError(f"{what} is nested too deeply")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MalformedDocumentError(f"{what}: annotations must map strings to strings")
    return dict(value)


def _opt_str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedDocumentError(f"{what} must be a string")


@dataclass(frozen=True)
class Platform:
    """The ``platform`` of an index entry (PyOCI stores the wheel's tag triple here)."""

    architecture: str
    os: str

    def to_json(self) -> dict[str, str]:
        return {"architecture": self.architecture, "os": self.os}

    @classmethod
    def from_json(cls, value: Any) -> Platform:
        if not isinstance(value, dict):
            raise MalformedDocumentError("descriptor platform is not an object")
        arch, os_ = value.get("architecture"), value.get("os")
        if not isinstance(arch, str) or not isinstance(os_, str):
            raise MalformedDocumentError("descriptor platform lacks architecture or os")
        return cls(arch, os_)


@dataclass(frozen=True)
class Descriptor:
    """A typed, sized pointer to content by digest."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            value["artifactType"] = self.artifact_type
        if self.platform is not None:
            value["platform"] = self.platform.to_json()
        if self.annotations:
            value["annotations"] = dict(self.annotations)
        return value

    @classmethod
    def from_json(cls, value: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(value, dict):
            raise MalformedDocumentError(f"{what} is not an object")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise MalformedDocumentError(f"{what} lacks mediaType or digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedDocumentError(f"{what} has no valid size")
        platform = value.get("platform")
        try:
            parsed = Digest.parse(digest)
        except InvalidReferenceError as error:
            raise MalformedDocumentError(f"{what}: {error}") from None
        return cls(
            media_type=media_type,
            digest=parsed,
            size=size,
            annotations=_str_map(value.get("annotations"), what),
            artifact_type=_opt_str(value.get("artifactType"), f"{what} artifactType"),
            platform=None if platform is None else Platform.from_json(platform),
        )


@dataclass(frozen=True)
class Manifest:
    """An image manifest and the exact bytes it is stored as."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.raw)

    @classmethod
    def build(
        cls,
        config: Descriptor,
        layers: tuple[Descriptor, ...],
        annotations: Mapping[str, str] | None = None,
        artifact_type: str | None = None,
    ) -> Manifest:
        value: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        if artifact_type:
            value["artifactType"] = artifact_type
        if annotations:
            value["annotations"] = dict(annotations)
        return cls(config, layers, canonical_json(value), dict(annotations or {}), artifact_type)

    @classmethod
    def from_bytes(cls, raw: bytes, what: str = "manifest") -> Manifest:
        value = parse_json_document(raw, what)
        media_type = value.get("mediaType", OCI_MANIFEST)
        if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST) or value.get("schemaVersion") != 2:
            raise MalformedDocumentError(f"{what} is not an image manifest ({media_type!r})")
        layers = value.get("layers")
        if not isinstance(layers, list):
            raise MalformedDocumentError(f"{what} has no layers list")
        return cls(
            config=Descriptor.from_json(value.get("config"), f"{what} config"),
            layers=tuple(Descriptor.from_json(item, f"{what} layer") for item in layers),
            raw=raw,
            annotations=_str_map(value.get("annotations"), what),
            artifact_type=_opt_str(value.get("artifactType"), f"{what} artifactType"),
            media_type=media_type,
        )


@dataclass(frozen=True)
class Index:
    """An image index and the exact bytes it is stored as."""

    manifests: tuple[Descriptor, ...]
    raw: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    media_type: str = OCI_INDEX

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.raw)

    @classmethod
    def build(
        cls,
        manifests: tuple[Descriptor, ...],
        annotations: Mapping[str, str] | None = None,
        artifact_type: str | None = None,
    ) -> Index:
        value: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [item.to_json() for item in manifests],
        }
        if artifact_type:
            value["artifactType"] = artifact_type
        if annotations:
            value["annotations"] = dict(annotations)
        return cls(manifests, canonical_json(value), dict(annotations or {}), artifact_type)

    @classmethod
    def from_bytes(cls, raw: bytes, what: str = "index") -> Index:
        value = parse_json_document(raw, what)
        media_type = value.get("mediaType", OCI_INDEX)
        if media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST) or value.get("schemaVersion") != 2:
            raise MalformedDocumentError(f"{what} is not an image index ({media_type!r})")
        manifests = value.get("manifests")
        if not isinstance(manifests, list):
            raise MalformedDocumentError(f"{what} has no manifests list")
        return cls(
            manifests=tuple(Descriptor.from_json(item, f"{what} entry") for item in manifests),
            raw=raw,
            annotations=_str_map(value.get("annotations"), what),
            artifact_type=_opt_str(value.get("artifactType"), f"{what} artifactType"),
            media_type=media_type,
        )


def media_type_of(raw: bytes) -> str | None:
    """The ``mediaType`` a manifest document declares, if any (for stores without headers)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    media_type = value.get("mediaType") if isinstance(value, dict) else None
    return media_type if isinstance(media_type, str) else None
