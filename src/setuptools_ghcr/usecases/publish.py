"""Use case: publish distributions to a store.

Order of writes: the file and metadata blobs, then each file's manifest (by digest), then
the version's index (by tag), so a reader never sees a version that points at missing
content. Adding files to a version merges them into its index (see ``record`` for what
concurrent publishers of one version can and cannot count on).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from packaging.utils import NormalizedName
from packaging.version import Version

from setuptools_ghcr.core.dependencies import ProjectPatterns, dependency_names
from setuptools_ghcr.core.dists import Distribution, ScannedDistribution
from setuptools_ghcr.core.oci import Descriptor, Digest, Index
from setuptools_ghcr.core.wire_format import (
    METADATA_MEDIA_TYPE,
    FileEntry,
    build_index,
    described,
    extra_tag_problem,
    file_entries,
    file_layer,
    file_manifest,
    index_entry,
    utc_timestamp,
    version_to_tag,
)
from setuptools_ghcr.errors import (
    ConflictError,
    InvalidDistributionError,
    InvalidReferenceError,
    NotFoundError,
)
from setuptools_ghcr.storage.files import hash_reading_ahead
from setuptools_ghcr.storage.store import (
    BytesBlob,
    FileBlob,
    ProgressCallback,
    ProgressFactory,
    Store,
)
from setuptools_ghcr.usecases.dependencies import held_dependencies
from setuptools_ghcr.usecases.record import point_tags, record_entries
from setuptools_ghcr.usecases.versions import read_index

__all__ = ["FileResult", "PushOptions", "publish"]

logger = logging.getLogger(__name__)

Status = Literal["uploaded", "exists", "skipped"]

#: How many times a file's manifest is tried when the registry says its blobs are missing.
MANIFEST_ATTEMPTS = 3
#: Files at least this big are hashed and checked while they upload rather than before:
#: reading a big file three times over (check, hash, send) would cost more than sending it.
STREAM_FROM = 32 << 20

#: A file to publish: validated and hashed, or only scanned (see ``PushOptions.stream_from``).
LocalFile = Distribution | ScannedDistribution


@dataclass(frozen=True)
class PushOptions:
    """How to publish (from the command line and ``[tool.setuptools-ghcr]``)."""

    source: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra_tags: tuple[str, ...] = ()
    skip_existing: bool = False
    created: str | None = None
    workers: int = 4
    #: Scanned files this big or bigger stream (see :data:`STREAM_FROM`); smaller ones are
    #: checked and hashed before anything is sent.
    stream_from: int = STREAM_FROM
    #: How the face that publishes spells "skip existing files", for the conflict error.
    skip_advice: str = "give --skip-existing"
    #: Projects that live in the target whatever it answers (recorded as such when required).
    internal_projects: ProjectPatterns = field(default_factory=ProjectPatterns)


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    filename: str
    project: NormalizedName
    version: Version
    status: Status
    sha256: str
    size: int
    location: str
    manifest: str | None

    @property
    def reference(self) -> str:
        return f"{self.location}:{version_to_tag(self.version)}"


@dataclass(frozen=True)
class _Planned:
    dist: LocalFile
    status: Status
    manifest: Descriptor | None = None


def _prepare(dists: Sequence[LocalFile], stream_from: int) -> list[LocalFile]:
    """Check and hash what will not stream: small files, and any file name given twice."""
    names = Counter(dist.filename for dist in dists)
    return [
        dist.validated()
        if isinstance(dist, ScannedDistribution)
        and (dist.size < stream_from or names[dist.filename] > 1)
        else dist
        for dist in dists
    ]


def _known_digest(dist: LocalFile) -> Digest | None:
    return dist.sha256 if isinstance(dist, Distribution) else None


def _group(
    dists: Sequence[LocalFile],
) -> dict[tuple[NormalizedName, Version], list[LocalFile]]:
    groups: dict[tuple[NormalizedName, Version], list[LocalFile]] = {}
    for dist in dists:
        group = groups.setdefault((dist.project, dist.version), [])
        if any(other.filename == dist.filename for other in group):
            # _prepare hashed every file whose name comes twice.
            mine = _known_digest(dist)
            if mine is not None and all(
                _known_digest(other) == mine for other in group if other.filename == dist.filename
            ):
                continue
            raise ConflictError(f"{dist.filename} is given twice with different contents")
        group.append(dist)
    return groups


def _hashed(scanned: ScannedDistribution) -> Distribution:
    """The file with its digest; reading ahead makes hashing the whole cost of a re-push."""
    with scanned.open() as stream:
        writer = hash_reading_ahead(stream)
    return scanned.with_digest(writer.digest(), writer.size)


def _plan(index: Index | None, dists: Sequence[LocalFile], options: PushOptions) -> list[_Planned]:
    """Decide each file's fate before anything is sent, so a refusal publishes nothing.

    A file already listed is hashed to compare it; one not listed yet needs no digest here.
    """
    published: dict[str, FileEntry] = {}
    if index is not None and dists:
        # file_entries also names the files of entries that PyOCI wrote.
        for listed in file_entries(index, dists[0].project, dists[0].version):
            published[listed.filename] = listed
    plans: list[_Planned] = []
    for dist in dists:
        entry = published.get(dist.filename)
        if entry is None:
            plans.append(_Planned(dist, "uploaded"))
            continue
        if isinstance(dist, ScannedDistribution):
            # Nothing of it will be sent, whatever the comparison says: no archive check.
            dist = _hashed(dist)  # noqa: PLW2901
        if entry.sha256 == dist.sha256:
            plans.append(_Planned(dist, "exists", entry.manifest))
        elif options.skip_existing:
            plans.append(_Planned(dist, "skipped", entry.manifest))
        else:
            theirs = entry.sha256.short if entry.sha256 is not None else "unknown"
            raise ConflictError(
                f"{dist.filename} is already published with other contents "
                f"(sha256 {theirs}..., yours {dist.sha256.short}...); "
                f"bump the version, or {options.skip_advice} to leave it"
            )
    return plans


def _file_identity(path: os.PathLike[str]) -> tuple[int, int, int, int]:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev


def _stream_layer(
    store: Store, scanned: ScannedDistribution, progress: ProgressCallback | None
) -> Distribution:
    """Upload a file while hashing it, its archive checked meanwhile on another thread.

    The upload is committed only once the check passed and the file is the one scanned and
    unchanged, so a corrupt or truncated file is never stored; the digest is that of the
    bytes sent, which the store checks on commit.
    """
    before = _file_identity(scanned.path)
    if before[0] != scanned.size:
        raise InvalidDistributionError(f"{scanned.filename} changed since it was read")
    with ThreadPoolExecutor(1, thread_name_prefix="archive-check") as checker:
        checked = checker.submit(scanned.check_archive)

        def commit(_digest: Digest) -> None:
            checked.result()
            if _file_identity(scanned.path) != before:
                raise InvalidDistributionError(
                    f"{scanned.filename} changed while it was uploading; push it again"
                )

        digest = store.push_stream(scanned.open, scanned.size, progress, commit)
    return scanned.with_digest(digest)


def _repair(store: Store, dist: Distribution) -> None:
    """Push again the blobs of a file already listed that the store lost or damaged.

    An ``oci:`` folder counts a blob whose bytes no longer hash to its name as absent; a
    registry answers for its own blobs. The manifest and index are left as published.
    """
    for blob in (
        FileBlob(dist.path, file_layer(dist)),
        BytesBlob(dist.metadata, METADATA_MEDIA_TYPE),
    ):
        if not store.blob_exists(blob.descriptor.digest):
            logger.warning(
                "%s: %s lacks or holds a damaged %s; pushing it again",
                dist.filename,
                store.location,
                "copy of the file"
                if blob.descriptor.media_type != METADATA_MEDIA_TYPE
                else "metadata blob",
            )
            store.push_blob(blob)


def _push_file(
    store: Store,
    local: LocalFile,
    options: PushOptions,
    created: str,
    progress: ProgressFactory | None,
    *,
    held: set[NormalizedName],
) -> tuple[Distribution, Descriptor]:
    """Upload one file's blobs and manifest; returns the file, hashed, and its index entry.

    The manifest records which of the file's dependencies are ``held`` in the target.
    """
    callback = progress(local.filename, local.size) if progress is not None else None
    if isinstance(local, ScannedDistribution):
        dist = _stream_layer(store, local, callback)
        layer = FileBlob(dist.path, file_layer(dist))
    else:
        dist = local
        layer = FileBlob(dist.path, file_layer(dist))
        if not store.blob_exists(layer.descriptor.digest):
            store.push_blob(layer, callback)
        elif callback is not None:
            callback(dist.size)
    config = BytesBlob(dist.metadata, METADATA_MEDIA_TYPE)
    if not store.blob_exists(config.descriptor.digest):
        store.push_blob(config)
    manifest = file_manifest(
        dist,
        created=created,
        source=options.source,
        extra=options.annotations,
        target_dependencies=[
            name
            for name in dependency_names(dist.fields.requires_dist, dist.project)
            if name in held
        ],
    )
    for attempt in range(MANIFEST_ATTEMPTS):
        try:
            store.put_manifest(manifest.raw, manifest.media_type, None)
            break
        except NotFoundError:
            # Two publishers uploading the same blob (files of one version share their
            # metadata) can make a registry briefly deny knowing it: push what is missing
            # again, then retry the manifest. Other refusals are final.
            if attempt == MANIFEST_ATTEMPTS - 1:
                raise
            logger.info("manifest of %s refused; checking its blobs", dist.filename)
            time.sleep(random.uniform(0.05, 0.2))  # noqa: S311
            for blob in (layer, config):
                if not store.blob_exists(blob.descriptor.digest):
                    store.push_blob(blob)
    return dist, index_entry(dist, manifest, created=created)


def _results(
    plans: Mapping[tuple[NormalizedName, Version], Sequence[_Planned]],
    done: Mapping[str, tuple[Distribution, Descriptor]],
    locations: Mapping[NormalizedName, str],
) -> dict[str, FileResult]:
    """What happened to each file, by file name."""
    results: dict[str, FileResult] = {}
    for (project, version), group_plans in plans.items():
        for plan in group_plans:
            uploaded = done.get(plan.dist.filename)
            entry = uploaded[1] if uploaded is not None else plan.manifest
            dist = uploaded[0] if uploaded is not None else plan.dist
            assert isinstance(dist, Distribution)  # uploaded files were hashed, others planned
            results[plan.dist.filename] = FileResult(
                filename=dist.filename,
                project=project,
                version=version,
                status=plan.status,
                sha256=dist.sha256.hex,
                size=dist.size,
                location=locations[project],
                manifest=str(entry.digest) if entry is not None else None,
            )
    return results


def publish(
    open_store: Callable[[str], Store],
    dists: Sequence[LocalFile],
    options: PushOptions | None = None,
    progress: ProgressFactory | None = None,
) -> list[FileResult]:
    """Publish ``dists``; returns a result per file in the order given (duplicates folded).

    Files given as :class:`ScannedDistribution` of at least ``options.stream_from`` bytes
    are hashed and checked while they upload; all others before anything is sent.
    """
    options = options or PushOptions()
    for tag in options.extra_tags:
        problem = extra_tag_problem(tag)
        if problem:
            raise InvalidReferenceError(f"extra tag {problem}")
    created = options.created or utc_timestamp()
    groups = _group(_prepare(dists, options.stream_from))
    stores = {project: open_store(project) for project, _ in groups}
    # Refuse conflicts of every group before the first byte goes out.
    plans = {
        key: _plan(read_index(stores[key[0]], version_to_tag(key[1])), group, options)
        for key, group in groups.items()
    }
    uploads = [
        (project, plan.dist)
        for (project, _), group_plans in plans.items()
        for plan in group_plans
        if plan.status == "uploaded"
    ]
    held = held_dependencies(
        open_store,
        [(dist.project, dist.fields) for _project, dist in uploads],
        options.internal_projects,
        published=list(stores),
        workers=options.workers,
    )
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        pushed = pool.map(
            lambda item: _push_file(
                stores[item[0]], item[1], options, created, progress, held=held
            ),
            uploads,
        )
        done = {dist.filename: (dist, entry) for dist, entry in pushed}
        listed = [
            (stores[project], plan.dist)
            for (project, _), group_plans in plans.items()
            for plan in group_plans
            if plan.status == "exists" and isinstance(plan.dist, Distribution)
        ]
        list(pool.map(lambda item: _repair(*item), listed))
        by_name = {name: entry for name, (_dist, entry) in done.items()}

        def record(key: tuple[NormalizedName, Version]) -> None:
            project, version = key
            store = stores[project]
            uploaded = [p.dist for p in plans[key] if p.status == "uploaded"]
            mine = [by_name[dist.filename] for dist in uploaded]
            if mine:
                # Fails early, before any index is written, when the index would be too big.
                build_index(mine, version=version)
                notes: dict[str, str] = {}
                for dist in uploaded:  # files of a version may not all say everything
                    for name, value in described(dist.fields, options.source).items():
                        notes.setdefault(name, value)
                record_entries(store, version, mine, notes)
                point_tags(store, version, options.extra_tags)
            elif any(p.status == "exists" for p in plans[key]):
                point_tags(store, version, options.extra_tags)

        list(pool.map(record, plans))
    results = _results(plans, done, {p: store.location for p, store in stores.items()})
    return [results[d.filename] for d in dists if d.filename in results]
