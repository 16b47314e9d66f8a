"""What a target holds for one project, as data: versions, files, sizes, digests, annotations,
yanks, and for each file the plain command that fetches it without this tool.

The index of each version says most of it; file manifests are fetched only when their
annotations are asked for, or when an index entry lacks a file's digest or size (PyOCI).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.oci import Digest, Manifest
from setuptools_ghcr.core.selection import matching_versions
from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.core.wire_format import FileEntry, layer_of, version_to_tag
from setuptools_ghcr.errors import NotFoundError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.registry.challenge import GHCR_DUMMY_BEARER
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import (
    listed_blob,
    read_file_manifest,
    read_version,
    versions_of,
)

__all__ = [
    "FetchHint",
    "FileInfo",
    "ProjectInfo",
    "VersionInfo",
    "fetch_hint",
    "fetch_lines",
    "inspect_project",
    "annotation_lines",
    "yank_lines",
    "project_json",
    "table_rows",
]

TABLE_HEADER = ("VERSION", "FILE", "SIZE", "SHA256", "REQUIRES-PYTHON", "UPLOADED")


@dataclass(frozen=True)
class FetchHint:
    """How anyone fetches a project's files without this tool: the registry's blob URLs with
    ``curl`` (ghcr.io serves public blobs to any bearer), or a layout's blob files."""

    #: ``https://ghcr.io/v2/acme/mypkg/blobs/`` or a layout's ``.../blobs/``.
    base: str
    registry: bool
    header: str | None = None

    def command(self, digest: Digest, filename: str) -> str:
        """The shell command that writes the file ``filename`` from its blob."""
        if not self.registry:
            return shlex.join(["cp", f"{self.base}{digest.algorithm}/{digest.hex}", filename])
        words = ["curl", "-fL"]
        if self.header:
            words += ["-H", f"Authorization: {self.header}"]
        return shlex.join([*words, f"{self.base}{digest}", "-o", filename])


def fetch_hint(stores: StoreFactory, project: str) -> FetchHint:
    """Where the files of ``project`` are fetched from (ask after reading from the target:
    only then does a registry's challenge tell ghcr.io)."""
    target = stores.target
    if isinstance(target, LayoutTarget):
        return FetchHint(f"{target.layout_path(project)}/blobs/", registry=False)
    ghcr = stores.client().is_ghcr
    base = f"{target.base_url}/v2/{target.repository(project)}/blobs/"
    return FetchHint(base, registry=True, header=GHCR_DUMMY_BEARER if ghcr else None)


@dataclass(frozen=True)
class FileInfo:
    """One published file."""

    filename: str
    size: int | None
    sha256: Digest | None
    requires_python: str | None
    upload_time: str | None
    manifest_digest: Digest
    metadata_digest: Digest | None
    platform: Mapping[str, str] | None
    index_annotations: Mapping[str, str]
    #: None when the manifest was not read.
    manifest_annotations: Mapping[str, str] | None
    config_media_type: str | None


@dataclass(frozen=True)
class VersionInfo:
    """One published version: its index and its files."""

    version: Version
    tag: str
    index_digest: Digest
    annotations: Mapping[str, str]
    files: tuple[FileInfo, ...]
    #: PEP 592: the reason ("" for none) when the version is yanked, else None.
    yanked: str | None = None


@dataclass(frozen=True)
class ProjectInfo:
    """A project on a target."""

    project: NormalizedName
    location: str
    tags: tuple[str, ...]
    versions: tuple[VersionInfo, ...]


def _file_info(store: Store, entry: FileEntry, read_manifest: bool) -> FileInfo:
    blob = listed_blob(entry)
    manifest: Manifest | None = None
    if read_manifest or blob is None:
        manifest = read_file_manifest(store, entry)
        blob = layer_of(manifest, entry)  # with the entry's digest and size checked
    platform = entry.manifest.platform
    return FileInfo(
        filename=entry.filename,
        size=blob.size,
        sha256=blob.digest,
        requires_python=entry.requires_python,
        upload_time=entry.upload_time,
        manifest_digest=entry.manifest.digest,
        metadata_digest=entry.metadata.digest if entry.metadata is not None else None,
        platform=platform.to_json() if platform is not None else None,
        index_annotations=dict(entry.manifest.annotations),
        manifest_annotations=dict(manifest.annotations) if manifest is not None else None,
        config_media_type=manifest.config.media_type if manifest is not None else None,
    )


def inspect_project(
    store: Store,
    project: str,
    specifier: SpecifierSet | None = None,
    *,
    manifests: bool = False,
) -> ProjectInfo:
    """Read a project's versions (all, or those ``specifier`` allows, pre-releases included).

    With ``manifests``, every file's manifest is read too, for its annotations.
    """
    name = canonicalize_name(project)
    tags = store.list_tags()
    if not tags:
        raise NotFoundError(f"project {name} not found in {store.location}")
    versions = versions_of(tags)
    chosen = versions if specifier is None else matching_versions(versions, specifier, pre=True)
    if not chosen:
        shown = ", ".join(map(str, versions[:5])) or "none"
        raise NotFoundError(
            f"no version of {name} in {store.location} matches {specifier}; available: {shown}"
        )
    infos: list[VersionInfo] = []
    for version in chosen:
        published = read_version(store, name, version)
        if published is None:
            continue  # deleted since the listing
        infos.append(
            VersionInfo(
                version=version,
                tag=version_to_tag(version),
                index_digest=published.index.digest,
                annotations=dict(published.index.annotations),
                files=tuple(_file_info(store, e, manifests) for e in published.files),
                yanked=published.yanked,
            )
        )
    return ProjectInfo(name, store.location, tuple(sorted(tags)), tuple(infos))


def project_json(info: ProjectInfo, fetch: FetchHint | None = None) -> dict[str, Any]:
    """A JSON-ready document of everything :func:`inspect_project` found (with ``fetch``,
    each file's plain fetch command too)."""
    return {
        "project": info.project,
        "location": info.location,
        "tags": list(info.tags),
        "versions": [
            {
                "version": str(version.version),
                "tag": version.tag,
                "index_digest": str(version.index_digest),
                "yanked": version.yanked is not None,
                "yanked_reason": version.yanked or None,
                "annotations": dict(version.annotations),
                "files": [_file_json(file, fetch) for file in version.files],
            }
            for version in info.versions
        ],
    }


def yank_lines(info: ProjectInfo) -> list[str]:
    """One line per yanked version, with its reason."""
    return [
        f"{info.project} {v.version} is yanked" + (f": {v.yanked}" if v.yanked else "")
        for v in info.versions
        if v.yanked is not None
    ]


def fetch_lines(info: ProjectInfo, fetch: FetchHint) -> list[str]:
    """For each file: the command that fetches it without this tool, then the one that
    checks it (``sha256sum -c``)."""
    lines: list[str] = []
    for version in info.versions:
        for file in version.files:
            if file.sha256 is None:
                continue
            lines.append(fetch.command(file.sha256, file.filename))
            check = f"{file.sha256.hex}  {file.filename}"
            lines.append(f"echo {shlex.quote(check)} | sha256sum -c")
    return lines


def _file_json(file: FileInfo, fetch: FetchHint | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "filename": file.filename,
        "size": file.size,
        "sha256": file.sha256.hex if file.sha256 is not None else None,
        "digest": str(file.sha256) if file.sha256 is not None else None,
        "requires_python": file.requires_python,
        "upload_time": file.upload_time,
        "manifest_digest": str(file.manifest_digest),
        "metadata_digest": str(file.metadata_digest) if file.metadata_digest else None,
        "platform": dict(file.platform) if file.platform is not None else None,
        "index_annotations": dict(file.index_annotations),
    }
    if fetch is not None and file.sha256 is not None:
        value["fetch"] = fetch.command(file.sha256, file.filename)
    if file.manifest_annotations is not None:
        value["manifest_annotations"] = dict(file.manifest_annotations)
        value["config_media_type"] = file.config_media_type
    return value


def table_rows(info: ProjectInfo) -> list[tuple[str, ...]]:
    """One row per file (newest version first), the columns of :data:`TABLE_HEADER`."""
    rows: list[tuple[str, ...]] = []
    for version in info.versions:
        for file in version.files:
            rows.append(
                (
                    str(version.version) + (" (yanked)" if version.yanked is not None else ""),
                    file.filename,
                    str(file.size) if file.size is not None else "?",
                    file.sha256.hex if file.sha256 is not None else "?",
                    file.requires_python or "",
                    file.upload_time or "",
                )
            )
    return rows


def annotation_lines(info: ProjectInfo) -> list[str]:
    """The annotations of each version, as ``KEY: VALUE`` lines under a ``VERSION`` heading.

    A version's are its index's and those its files' manifests share; one that differs from
    file to file is shown as such (``--json`` has each file's). Needs the manifests read.
    """
    lines: list[str] = []
    for version in info.versions:
        shown = dict(version.annotations)
        per_file = [f.manifest_annotations for f in version.files]
        keys = sorted({key for found in per_file if found for key in found})
        for key in keys:
            values = {(found or {}).get(key) for found in per_file}
            (only,) = values if len(values) == 1 else (None,)
            shown[key] = only if only is not None else "(differs by file; see --json)"
        if shown:
            lines.append(f"{version.version} annotations:")
            lines.extend(f"  {key}: {shown[key]}" for key in sorted(shown))
    return lines
