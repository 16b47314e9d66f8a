"""The wire format: how a distribution becomes an OCI manifest, and a version an OCI index.

Pure policy, no I/O. ``docs/format.md`` is the prose version of this module; keep them
together. The layout is PyOCI's (artifact type, platform, ``com.pyoci.sha256_digest``, one
layer holding the file unmodified) plus the core metadata file as the config blob and a few
annotations of our own so a resolver can work from the index alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from setuptools_ghcr.core.dists import Distribution, MetadataFields, parse_filename
from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    Descriptor,
    Digest,
    Index,
    Manifest,
    Platform,
    is_valid_tag,
)
from setuptools_ghcr.errors import (
    GhcrError,
    InvalidDistributionError,
    InvalidReferenceError,
    TooLargeError,
)

__all__ = [
    "ANNOTATION_PREFIX",
    "ARTIFACT_TYPE",
    "FileEntry",
    "LAYER_MEDIA_TYPE",
    "METADATA_MEDIA_TYPE",
    "build_index",
    "described",
    "extra_tag_problem",
    "entry_key",
    "file_entries",
    "file_layer",
    "file_manifest",
    "format_names",
    "index_entry",
    "merge_index",
    "parse_names",
    "tag_to_version",
    "version_to_tag",
    "yank_state",
    "yanked_index",
]

logger = logging.getLogger(__name__)

ARTIFACT_TYPE = "application/pyoci.package.v1"
LAYER_MEDIA_TYPE = "application/pyoci.package.v1"
#: The config blob is the distribution's core metadata file, byte for byte.
METADATA_MEDIA_TYPE = "application/vnd.setuptools-ghcr.core-metadata.v1"
ANNOTATION_PREFIX = "io.github.setuptools-ghcr."

PYOCI_SHA256 = "com.pyoci.sha256_digest"
OCI_CREATED = "org.opencontainers.image.created"
OCI_TITLE = "org.opencontainers.image.title"
OCI_VERSION = "org.opencontainers.image.version"
OCI_SOURCE = "org.opencontainers.image.source"
OCI_DESCRIPTION = "org.opencontainers.image.description"
OCI_LICENSES = "org.opencontainers.image.licenses"
FILENAME = ANNOTATION_PREFIX + "filename"
SIZE = ANNOTATION_PREFIX + "size"
REQUIRES_PYTHON = ANNOTATION_PREFIX + "requires-python"
METADATA_DIGEST = ANNOTATION_PREFIX + "metadata-digest"
PROJECT = ANNOTATION_PREFIX + "project"
#: The file's dependencies that the target held when it was published (comma-separated,
#: normalized names): they must come from the target, whoever installs the file.
TARGET_DEPENDENCIES = ANNOTATION_PREFIX + "target-dependencies"
#: On a version's index: the version is yanked (PEP 592), and why.
YANKED = ANNOTATION_PREFIX + "yanked"
YANKED_REASON = ANNOTATION_PREFIX + "yanked-reason"
#: A yank's reason is one line of at most this many characters.
YANK_REASON_LIMIT = 1000

#: ghcr.io shows at most this many characters of these annotations.
DESCRIPTION_LIMIT = 512
LICENSES_LIMIT = 256


def version_to_tag(version: Version) -> str:
    """The tag of a version: normalized, ``+`` as ``-`` (PyOCI's rule), ``!`` as ``_``.

    Normalized versions never contain ``-`` or ``_``, so the mapping is reversible.
    """
    tag = str(version).replace("+", "-").replace("!", "_")
    if not is_valid_tag(tag):
        raise InvalidDistributionError(
            f"version {version} is too long to be an OCI tag (128 characters at most)"
        )
    return tag


def tag_to_version(tag: str) -> Version | None:
    """The version a tag stands for, or None for tags that are not versions (``latest``)."""
    if not is_valid_tag(tag):
        return None
    text = tag.replace("_", "!").replace("-", "+")
    try:
        version = Version(text)
    except InvalidVersion:
        return None
    # Only the canonical spelling counts, so that no two tags name one version.
    return version if str(version) == text else None


def extra_tag_problem(tag: str) -> str | None:
    """Why ``tag`` cannot be an extra tag of a version's index (None when it can)."""
    if not is_valid_tag(tag):
        return f"{tag!r} is not a valid OCI tag"
    version = tag_to_version(tag)
    if version is not None:
        return (
            f"{tag!r} is the tag of version {version}: every version is tagged with its own "
            f"version already, and this would point version {version}'s tag at the files "
            "published with it; give extra tags names that are not versions (latest, stable)"
        )
    return None


def utc_timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC, seconds precision: ``2026-11-28T03:04:05Z``."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def described(fields: MetadataFields, source: str | None) -> dict[str, str]:
    """The annotations that describe a project on registries' web pages: its source
    repository (which also links a new ghcr.io package to it), summary and licenses.

    ghcr.io shows a multi-file package's description from the version's index, so both the
    index and each file's manifest carry these.
    """
    annotations: dict[str, str] = {}
    if source:
        annotations[OCI_SOURCE] = source
    if fields.summary:
        annotations[OCI_DESCRIPTION] = _truncate(fields.summary, DESCRIPTION_LIMIT)
    if fields.license and len(fields.license) <= LICENSES_LIMIT:
        annotations[OCI_LICENSES] = fields.license
    return annotations


def file_layer(dist: Distribution) -> Descriptor:
    """The layer descriptor of a distribution: the file itself, named for oras."""
    return Descriptor(
        LAYER_MEDIA_TYPE, dist.sha256, dist.size, annotations={OCI_TITLE: dist.filename}
    )


def metadata_descriptor(dist: Distribution) -> Descriptor:
    return Descriptor(METADATA_MEDIA_TYPE, Digest.of_bytes(dist.metadata), len(dist.metadata))


def file_manifest(
    dist: Distribution,
    *,
    created: str,
    source: str | None = None,
    extra: Mapping[str, str] | None = None,
    target_dependencies: Iterable[str] = (),
) -> Manifest:
    """The image manifest of one distribution file.

    ``extra`` annotations (from configuration) may not override the ones this format defines.
    """
    annotations: dict[str, str] = dict(extra or {})
    annotations.update(
        {
            OCI_CREATED: created,
            OCI_VERSION: str(dist.version),
            PROJECT: dist.fields.name,
        }
    )
    annotations.update(described(dist.fields, source))
    recorded = format_names(target_dependencies)
    if recorded:
        annotations[TARGET_DEPENDENCIES] = recorded
    return Manifest.build(
        config=metadata_descriptor(dist),
        layers=(file_layer(dist),),
        annotations=annotations,
        artifact_type=ARTIFACT_TYPE,
    )


def _platform_of(filename: str, project: str, version: Version) -> Platform:
    if filename.endswith(".tar.gz"):
        return Platform(".tar.gz", "any")
    # PyOCI keeps what follows "name-version-" of a wheel's file name.
    _name, _version, rest = filename.split("-", 2)
    return Platform(rest, "any")


def index_entry(dist: Distribution, manifest: Manifest, *, created: str) -> Descriptor:
    """The index descriptor of a file's manifest, with what a resolver needs from it.

    The dependencies recorded as living in the target are copied from the manifest.
    """
    annotations = {
        PYOCI_SHA256: dist.sha256.hex,
        OCI_CREATED: created,
        FILENAME: dist.filename,
        SIZE: str(dist.size),
        METADATA_DIGEST: str(Digest.of_bytes(dist.metadata)),
    }
    if dist.requires_python:
        annotations[REQUIRES_PYTHON] = dist.requires_python
    recorded = manifest.annotations.get(TARGET_DEPENDENCIES)
    if recorded:
        annotations[TARGET_DEPENDENCIES] = recorded
    # No artifactType on the entry: skopeo before 1.15 drops it when it re-encodes an index,
    # and then refuses `copy --preserve-digests`; the manifest itself carries it.
    return Descriptor(
        manifest.media_type,
        manifest.digest,
        len(manifest.raw),
        annotations=annotations,
        platform=_platform_of(dist.filename, dist.project, dist.version),
    )


def build_index(
    entries: Iterable[Descriptor], *, version: Version, annotations: Mapping[str, str] | None = None
) -> Index:
    """An index over ``entries``, one per file, sorted so that every writer builds the same bytes.

    A later entry for the same file replaces an earlier one.
    """
    by_name: dict[str, Descriptor] = {}
    for entry in entries:
        by_name[entry_key(entry)] = entry
    merged = dict(annotations or {})
    merged[OCI_VERSION] = str(version)
    index = Index.build(
        tuple(by_name[name] for name in sorted(by_name)),
        annotations=merged,
        artifact_type=ARTIFACT_TYPE,
    )
    if len(index.raw) >= MAX_MANIFEST_SIZE:
        raise TooLargeError(
            f"the index of version {version} would be {len(index.raw)} bytes; registries such "
            f"as ghcr.io refuse {MAX_MANIFEST_SIZE} bytes or more; publish fewer files"
        )
    return index


def entry_key(entry: Descriptor) -> str:
    """What identifies an entry's file within its version (one entry per key)."""
    # Within one version the platform's architecture (what follows "name-version-", or
    # ".tar.gz") identifies the file, and PyOCI's entries carry it but not our file name.
    if entry.platform is not None:
        return entry.platform.architecture
    return entry_filename(entry) or str(entry.digest)


def merge_index(
    existing: Index | None,
    new: Iterable[Descriptor],
    *,
    version: Version,
    annotations: Mapping[str, str] | None = None,
) -> Index:
    """``existing`` with ``new`` entries added, replacing entries of the same file name.

    ``annotations`` are set on the index, over those it had; the others (a yank) stay.
    """
    old = list(existing.manifests) if existing is not None else []
    merged = dict(existing.annotations) if existing is not None else {}
    merged.update(annotations or {})
    return build_index([*old, *new], version=version, annotations=merged)


def format_names(names: Iterable[str]) -> str:
    """Project names as one annotation value: normalized, sorted, comma-separated."""
    return ",".join(sorted({canonicalize_name(name) for name in names}))


def parse_names(value: str | None) -> frozenset[NormalizedName]:
    """The project names of an annotation written by :func:`format_names` (or by hand)."""
    if not value:
        return frozenset()
    return frozenset(canonicalize_name(part.strip()) for part in value.split(",") if part.strip())


def yank_state(annotations: Mapping[str, str]) -> str | None:
    """Whether a version's index says it is yanked: its reason ("" for none), else None."""
    if annotations.get(YANKED) != "true":
        return None
    return annotations.get(YANKED_REASON, "")


def yanked_index(index: Index, *, version: Version, reason: str | None, undo: bool) -> Index:
    """The version's index yanked (with ``reason``), or no longer yanked with ``undo``.

    The entries, hence every file's manifest and digest, stay as they are.
    """
    annotations = {
        key: value for key, value in index.annotations.items() if key not in (YANKED, YANKED_REASON)
    }
    if not undo:
        annotations[YANKED] = "true"
        text = " ".join((reason or "").split())
        if len(text) > YANK_REASON_LIMIT:
            raise InvalidReferenceError(
                f"the reason is {len(text)} characters long; at most {YANK_REASON_LIMIT} fit"
            )
        if text:
            annotations[YANKED_REASON] = text
    return build_index(index.manifests, version=version, annotations=annotations)


def entry_filename(entry: Descriptor) -> str | None:
    """The file name an index entry stands for, as written (unvalidated)."""
    name = entry.annotations.get(FILENAME)
    if name:
        return name
    return None


@dataclass(frozen=True)
class FileEntry:
    """One file of a published version, as read from the version's index."""

    filename: str
    project: NormalizedName
    version: Version
    manifest: Descriptor
    sha256: Digest | None
    size: int | None
    requires_python: str | None
    metadata: Descriptor | None
    upload_time: str | None
    #: Dependencies the publisher recorded as living in the target (never from elsewhere).
    target_dependencies: frozenset[NormalizedName] = frozenset()
    #: Yanked (PEP 592) with this reason ("" for none), or None; a version's files share it.
    yanked: str | None = None


def _safe_filename(name: str) -> bool:
    return (
        0 < len(name) <= 255
        and name not in (".", "..")
        and not any(char in name for char in "/\\\x00:")
        and name.isprintable()
    )


def _pyoci_filename(platform: Platform | None, project: str, version: Version) -> str | None:
    if platform is None:
        return None
    stem = f"{canonicalize_name(project).replace('-', '_')}-{version}"
    if platform.architecture == ".tar.gz":
        return stem + ".tar.gz"
    return f"{stem}-{platform.architecture}"


def _entry(
    descriptor: Descriptor, project: NormalizedName, version: Version, yanked: str | None
) -> FileEntry:
    notes = descriptor.annotations
    filename = notes.get(FILENAME) or _pyoci_filename(descriptor.platform, project, version)
    if filename is None or not _safe_filename(filename):
        raise InvalidDistributionError(f"index entry {descriptor.digest} has no usable file name")
    name, file_version, _kind, _tags = parse_filename(filename)
    if name != project or file_version != version:
        raise InvalidDistributionError(
            f"index entry {filename!r} does not belong to {project} {version}"
        )
    sha256 = Digest.sha256(notes[PYOCI_SHA256]) if PYOCI_SHA256 in notes else None
    size_text = notes.get(SIZE)
    size = int(size_text) if size_text and size_text.isdigit() else None
    metadata_text = notes.get(METADATA_DIGEST)
    metadata = None
    if metadata_text:
        # The metadata size is unknown until the manifest is read; the digest is what matters.
        metadata = Descriptor(METADATA_MEDIA_TYPE, Digest.parse(metadata_text), -1)
    return FileEntry(
        filename=filename,
        project=project,
        version=version,
        manifest=descriptor,
        sha256=sha256,
        size=size,
        requires_python=notes.get(REQUIRES_PYTHON) or None,
        metadata=metadata,
        upload_time=notes.get(OCI_CREATED) or None,
        target_dependencies=parse_names(notes.get(TARGET_DEPENDENCIES)),
        yanked=yanked,
    )


def file_entries(index: Index, project: str, version: Version) -> list[FileEntry]:
    """The files an index lists; entries that do not name a safe, matching file are skipped."""
    name = canonicalize_name(project)
    yanked = yank_state(index.annotations)
    entries: list[FileEntry] = []
    for descriptor in index.manifests:
        try:
            entries.append(_entry(descriptor, name, version, yanked))
        except GhcrError as error:
            logger.warning("skipping an entry of %s %s: %s", name, version, error)
    return entries


def layer_of(manifest: Manifest, entry: FileEntry) -> Descriptor:
    """The one layer of a file's manifest, checked against its index entry."""
    if len(manifest.layers) != 1:
        raise InvalidDistributionError(
            f"{entry.filename}: manifest has {len(manifest.layers)} layers, expected exactly 1"
        )
    layer = manifest.layers[0]
    if entry.sha256 is not None and layer.digest != entry.sha256:
        raise InvalidDistributionError(
            f"{entry.filename}: the manifest's layer disagrees with the index's digest"
        )
    if entry.size is not None and layer.size != entry.size:
        raise InvalidDistributionError(
            f"{entry.filename}: the manifest's layer disagrees with the index's size"
        )
    return layer
