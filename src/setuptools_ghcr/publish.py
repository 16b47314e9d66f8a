"""Use case: publish distributions to a store.

Order of writes: the file and metadata blobs, then each file's manifest (by digest), then
the version's index (by tag), so a reader never sees a version that points at missing
content. Adding files to a version merges them into its index; concurrent publishers of one
version converge because each re-reads, merges and verifies until its files are listed.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Literal

from packaging.utils import NormalizedName
from packaging.version import Version

from setuptools_ghcr.artifact import (
    METADATA_MEDIA_TYPE,
    FileEntry,
    build_index,
    entry_filename,
    extra_tag_problem,
    file_entries,
    file_layer,
    file_manifest,
    index_entry,
    merge_index,
    utc_timestamp,
    version_to_tag,
)
from setuptools_ghcr.catalog import read_index
from setuptools_ghcr.dists import Distribution
from setuptools_ghcr.errors import ConflictError, GhcrError, InvalidReferenceError
from setuptools_ghcr.oci import Descriptor, Index
from setuptools_ghcr.store import BytesBlob, FileBlob, ProgressFactory, Store

__all__ = ["FileResult", "PushOptions", "publish"]

logger = logging.getLogger(__name__)

Status = Literal["uploaded", "exists", "skipped"]

#: How many times an index merge is retried before giving up on a busy version.
MERGE_ATTEMPTS = 12
#: How many times a file's manifest is tried when the registry says its blobs are missing.
MANIFEST_ATTEMPTS = 3
#: Bounds of the pause before a registry index that lists our files is checked a second time.
SETTLE_MIN = 0.25
SETTLE_MAX = 2.0


@dataclass(frozen=True)
class PushOptions:
    """How to publish (from the command line and ``[tool.setuptools-ghcr]``)."""

    source: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra_tags: tuple[str, ...] = ()
    skip_existing: bool = False
    created: str | None = None
    workers: int = 4


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
    dist: Distribution
    status: Status
    manifest: Descriptor | None = None


def _group(
    dists: Sequence[Distribution],
) -> dict[tuple[NormalizedName, Version], list[Distribution]]:
    groups: dict[tuple[NormalizedName, Version], list[Distribution]] = {}
    for dist in dists:
        group = groups.setdefault((dist.project, dist.version), [])
        if any(other.filename == dist.filename for other in group):
            if all(
                other.sha256 == dist.sha256 for other in group if other.filename == dist.filename
            ):
                continue
            raise ConflictError(f"{dist.filename} is given twice with different contents")
        group.append(dist)
    return groups


def _plan(
    index: Index | None, dists: Sequence[Distribution], skip_existing: bool
) -> list[_Planned]:
    """Decide each file's fate before anything is sent, so a refusal publishes nothing."""
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
        elif entry.sha256 == dist.sha256:
            plans.append(_Planned(dist, "exists", entry.manifest))
        elif skip_existing:
            plans.append(_Planned(dist, "skipped", entry.manifest))
        else:
            theirs = entry.sha256.short if entry.sha256 is not None else "unknown"
            raise ConflictError(
                f"{dist.filename} is already published with other contents "
                f"(sha256 {theirs}..., yours {dist.sha256.short}...); "
                "bump the version, or pass --skip-existing to leave it"
            )
    return plans


def _push_file(
    store: Store,
    dist: Distribution,
    options: PushOptions,
    created: str,
    progress: ProgressFactory | None,
) -> Descriptor:
    """Upload one file's blobs and manifest; returns its index entry."""
    layer = FileBlob(dist.path, file_layer(dist))
    config = BytesBlob(dist.metadata, METADATA_MEDIA_TYPE)
    callback = progress(dist.filename, dist.size) if progress is not None else None
    if not store.blob_exists(layer.descriptor.digest):
        store.push_blob(layer, callback)
    elif callback is not None:
        callback(dist.size)
    if not store.blob_exists(config.descriptor.digest):
        store.push_blob(config)
    manifest = file_manifest(
        dist, created=created, source=options.source, extra=options.annotations
    )
    for attempt in range(MANIFEST_ATTEMPTS):
        try:
            store.put_manifest(manifest.raw, manifest.media_type, None)
            break
        except GhcrError:
            # Two publishers uploading the same blob (files of one version share their
            # metadata) can make a registry briefly deny knowing it: push what is missing
            # again, then retry the manifest.
            if attempt == MANIFEST_ATTEMPTS - 1:
                raise
            logger.info("manifest of %s refused; checking its blobs", dist.filename)
            time.sleep(random.uniform(0.05, 0.2))  # noqa: S311
            for blob in (layer, config):
                if not store.blob_exists(blob.descriptor.digest):
                    store.push_blob(blob)
    return index_entry(dist, manifest, created=created)


def _listed(index: Index | None, entries: Sequence[Descriptor]) -> bool:
    if index is None:
        return False
    present = {(entry_filename(e), e.digest) for e in index.manifests}
    return all((entry_filename(e), e.digest) in present for e in entries)


@contextlib.contextmanager
def _no_lock() -> Iterator[None]:
    yield


def _merge(
    store: Store, version: Version, entries: Sequence[Descriptor], tags: Sequence[str]
) -> Index:
    """Read, merge, write and verify the version's index until it lists ``entries``.

    Registries have no compare-and-swap, so a concurrent writer may overwrite our index
    with one built before ours landed; re-reading after a short random pause catches that,
    and the merge is simply done again. Layouts are locked instead.
    """
    tag = version_to_tag(version)
    locked = hasattr(store, "lock")
    lock: Callable[[], AbstractContextManager[None]] = getattr(store, "lock", _no_lock)
    for attempt in range(MERGE_ATTEMPTS):
        started = time.monotonic()
        with lock():
            current = read_index(store, tag)
            merged = merge_index(current, entries, version=version)
            if current is None or merged.raw != current.raw:
                store.put_manifest(merged.raw, merged.media_type, tag)
        # About how long a concurrent writer's read-modify-write takes under today's load.
        window = time.monotonic() - started
        # Let a concurrent writer's read-modify-write finish before we check.
        time.sleep(random.uniform(0.05, 0.25) * min(attempt + 1, 4))  # noqa: S311
        landed = read_index(store, tag)
        if _listed(landed, entries) and not locked:
            # Seen once is not enough: a writer that read the index before ours landed may
            # still overwrite it with its own merge. Look again once it surely has.
            time.sleep(min(SETTLE_MAX, max(SETTLE_MIN, 4 * window)))
            landed = read_index(store, tag)
        if _listed(landed, entries):
            assert landed is not None
            for extra in tags:
                store.put_manifest(landed.raw, landed.media_type, extra)
            return landed
        logger.info("index of %s changed under us; merging again (%d)", tag, attempt + 1)
    raise GhcrError(
        f"could not record the files in {store.location}:{tag}: the index kept changing "
        f"({MERGE_ATTEMPTS} attempts); push again to finish"
    )


def publish(
    open_store: Callable[[str], Store],
    dists: Sequence[Distribution],
    options: PushOptions | None = None,
    progress: ProgressFactory | None = None,
) -> list[FileResult]:
    """Publish ``dists``; returns a result per file in the order given (duplicates folded)."""
    options = options or PushOptions()
    for tag in options.extra_tags:
        problem = extra_tag_problem(tag)
        if problem:
            raise InvalidReferenceError(f"extra tag {problem}")
    created = options.created or utc_timestamp()
    results: dict[str, FileResult] = {}
    groups = _group(dists)
    stores = {project: open_store(project) for project, _ in groups}
    # Refuse conflicts of every group before the first byte goes out.
    plans = {
        key: _plan(read_index(stores[key[0]], version_to_tag(key[1])), group, options.skip_existing)
        for key, group in groups.items()
    }
    uploads = [
        (project, plan.dist)
        for (project, _), group_plans in plans.items()
        for plan in group_plans
        if plan.status == "uploaded"
    ]
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        entries = list(
            pool.map(
                lambda item: _push_file(stores[item[0]], item[1], options, created, progress),
                uploads,
            )
        )
        by_name = {dist.filename: entry for (_, dist), entry in zip(uploads, entries, strict=True)}

        def record(key: tuple[NormalizedName, Version]) -> None:
            project, version = key
            store = stores[project]
            mine = [by_name[p.dist.filename] for p in plans[key] if p.status == "uploaded"]
            if mine:
                # Fails early, before any index is written, when the index would be too big.
                build_index(mine, version=version)
                _merge(store, version, mine, options.extra_tags)
            elif options.extra_tags and any(p.status == "exists" for p in plans[key]):
                current = read_index(store, version_to_tag(version))
                if current is not None:
                    for extra in options.extra_tags:
                        store.put_manifest(current.raw, current.media_type, extra)

        list(pool.map(record, plans))
    for (project, version), group_plans in plans.items():
        for plan in group_plans:
            entry = by_name.get(plan.dist.filename) or plan.manifest
            results[plan.dist.filename] = FileResult(
                filename=plan.dist.filename,
                project=project,
                version=version,
                status=plan.status,
                sha256=plan.dist.sha256.hex,
                size=plan.dist.size,
                location=stores[project].location,
                manifest=str(entry.digest) if entry is not None else None,
            )
    return [results[d.filename] for d in dists if d.filename in results]
