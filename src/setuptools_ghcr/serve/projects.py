"""What the index shows of a project: its versions and files, read from the target and kept.

A page is kept in memory for ``cache_ttl`` seconds and handed only to callers who proved,
within that time, that the registry lets them read the project (see ``serve.access``):
any other caller's request reads the tag list with its own credentials first. That read
also refreshes the page, and a refresh re-reads only what changed:

- the tag list, in pages (every refresh: it is the proof, and it shows new and deleted
  versions at once);
- the index of each new tag (one request each, 32 in flight: at a round trip of 30 ms,
  eight made a page of 5,000 versions wait about 19 s);
- the index of each known tag whose check is due: a version is checked again after a tenth
  of its age (since its newest file was uploaded), at least every ``cache_ttl`` seconds and
  at most every hour, no more than 64 of them per refresh, the most overdue first. New files
  in a version come soon after its first (a matrix build); old versions rarely change.

The indexes and each repository's tag map live in the disk cache (``serve.index_cache``)
when there is one, so another worker or a restarted service starts from what is known.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.dists import MAX_METADATA_SIZE
from setuptools_ghcr.core.oci import DOCKER_MANIFEST_LIST, OCI_INDEX, Index, media_type_of
from setuptools_ghcr.core.targets import repository_name
from setuptools_ghcr.core.wire_format import FileEntry, file_entries, layer_of, tag_to_version
from setuptools_ghcr.errors import (
    DigestMismatchError,
    InvalidDistributionError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
)
from setuptools_ghcr.serve.access import AccessLedger
from setuptools_ghcr.serve.index_cache import IndexCache, TagRecord
from setuptools_ghcr.serve.pages import ProjectPage, project_page, render_project
from setuptools_ghcr.storage.store import RawManifest, Store
from setuptools_ghcr.usecases.versions import listed_blob, read_file_manifest

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_WORKERS",
    "MAX_CACHED_PROJECTS",
    "Project",
    "ProjectReader",
    "Source",
    "StoreOpener",
    "VersionState",
    "check_due",
]

logger = logging.getLogger(__name__)

#: Seconds a project page is reused: long enough for one pip run, short enough that a
#: version published a moment ago shows up without restarting the server.
DEFAULT_CACHE_TTL = 30.0
#: Index fetches in flight at once for one page.
DEFAULT_WORKERS = 32
#: Project pages kept at most; the least recently refreshed goes first.
MAX_CACHED_PROJECTS = 512
#: A version is checked again after this fraction of its age...
RECHECK_FRACTION = 0.1
#: ...but at least this often (seconds)...
MAX_RECHECK_INTERVAL = 3600.0
#: ...and no more than this many known versions are checked by one refresh.
RECHECK_BUDGET = 64

# Problems with what one version or file holds: that version or file is left out of the page,
# while transport and registry errors fail the whole page (a partial page must not be cached).
_CONTENT_ERRORS = (
    InvalidReferenceError,
    MalformedDocumentError,
    InvalidDistributionError,
    DigestMismatchError,
    TooLargeError,
)


class StoreOpener(Protocol):
    """Opens the store of a project (a :class:`~setuptools_ghcr.storage.factory.StoreFactory`)."""

    def open(self, project: str) -> Store: ...


@dataclass(frozen=True)
class Source:
    """A target as one caller reads it: the target's name (what pages are kept under), the
    caller's key, and its stores, opened with the caller's credentials."""

    target: str
    caller: str
    stores: StoreOpener
    #: Whether indexes go to the disk cache (not for an ``oci:`` folder: it is a disk).
    persistent: bool = True

    def resource(self, project: str) -> str:
        return f"{self.target}\0{project}"


@dataclass(frozen=True)
class VersionState:
    """A version as last read: its tag's record and its files (empty when unreadable)."""

    version: Version
    record: TagRecord
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class Project:
    """A project as the index shows it: its page, its files by (tag, filename), its versions."""

    page: ProjectPage
    files: Mapping[tuple[str, str], FileEntry]
    states: Mapping[str, VersionState] = field(default_factory=dict, repr=False)
    #: The page rendered, by content type: rendering hundreds of files costs more than
    #: serving them, and a page is asked for again and again while it is kept.
    bodies: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def versions(self) -> dict[Version, tuple[FileEntry, ...]]:
        """The files of each version that has any."""
        return {state.version: state.files for state in self.states.values() if state.files}

    def body(self, content_type: str) -> bytes:
        found = self.bodies.get(content_type)
        if found is None:
            # Two threads may render the same page at once; both get the same bytes.
            found = self.bodies[content_type] = render_project(self.page, content_type)
        return found


def check_due(record: TagRecord, now: float, ttl: float) -> bool:
    """Whether a known tag is to be read again (see the module's docstring)."""
    if ttl <= 0:
        return True
    age = max(0.0, now - record.changed)
    interval = min(MAX_RECHECK_INTERVAL, max(ttl, age * RECHECK_FRACTION))
    return now - record.checked >= interval


def _upload_seconds(files: tuple[FileEntry, ...]) -> float | None:
    newest: float | None = None
    for entry in files:
        if not entry.upload_time:
            continue
        try:
            moment = datetime.fromisoformat(entry.upload_time.replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            seconds = moment.timestamp()
            newest = seconds if newest is None else max(newest, seconds)
    return newest


class _Reading:
    """One refresh of one project: the caller's store, the disk cache, the clocks."""

    def __init__(
        self, store: Store, name: str, disk: IndexCache | None, now: float, ttl: float
    ) -> None:
        self.store = store
        self.name = name
        self.disk = disk
        self.now = now
        self.ttl = ttl

    def read(self, tag: str, version: Version, prior: VersionState | None) -> VersionState | None:
        """Read a tag's index from the store; None when the tag went meanwhile."""
        found = self.store.get_manifest(tag)
        if found is None:
            return None
        if prior is not None and prior.record.digest == found.digest and prior.files:
            return replace(prior, record=replace(prior.record, checked=self.now))
        if self.disk is not None:
            self.disk.write(found.raw)
        files = self._files(found, version)
        changed = self.now if prior is not None else (_upload_seconds(files) or self.now)
        return VersionState(version, TagRecord(found.digest, self.now, changed), files)

    def load(self, tag: str, version: Version, record: TagRecord) -> VersionState | None:
        """A known tag's version from the disk cache: the files the tag map kept, else its
        index by digest; None when the cache has neither."""
        if record.files is not None:
            return VersionState(version, replace(record, files=None), record.files)
        raw = self.disk.read(record.digest) if self.disk is not None else None
        if raw is None:
            return None
        found = RawManifest(raw, media_type_of(raw) or "", record.digest)
        return VersionState(version, record, self._files(found, version))

    def _files(self, found: RawManifest, version: Version) -> tuple[FileEntry, ...]:
        what = f"{self.store.location}:{version}"
        try:
            if found.media_type not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
                raise MalformedDocumentError(f"{what} is a {found.media_type}, not an image index")
            index = Index.from_bytes(found.raw, f"index {what}")
            entries = file_entries(index, self.name, version)
        except _CONTENT_ERRORS as error:
            logger.warning("leaving %s %s out of its page: %s", self.name, version, error)
            return ()
        complete = []
        for entry in entries:
            try:
                complete.append(self._complete(entry))
            except (*_CONTENT_ERRORS, NotFoundError) as error:
                logger.warning("leaving %s out of its page: %s", entry.filename, error)
        return tuple(complete)

    def _complete(self, entry: FileEntry) -> FileEntry:
        """``entry`` with its sha256 and size, from its manifest when the index lacks them."""
        if listed_blob(entry) is not None:
            return entry
        from setuptools_ghcr.core.oci import Manifest

        digest = entry.manifest.digest
        raw = self.disk.read(digest) if self.disk is not None else None
        if raw is None:
            found = self.store.get_manifest(str(digest))
            if found is None:
                raise NotFoundError(f"{entry.filename}: manifest {digest} is missing")
            raw = found.raw
            if self.disk is not None:
                self.disk.write(raw)
        blob = layer_of(Manifest.from_bytes(raw, f"manifest of {entry.filename}"), entry)
        return replace(entry, sha256=blob.digest, size=blob.size)


class ProjectReader:
    """Reads projects for callers, keeps them, and hands each only to callers with access."""

    def __init__(
        self,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        disk: IndexCache | None = None,
    ) -> None:
        self._ttl = cache_ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._disk = disk
        self.ledger = AccessLedger(cache_ttl, clock)
        self._lock = threading.Lock()
        # resource -> (when read, project); kept past the TTL as the base of the next refresh.
        self._projects: OrderedDict[str, tuple[float, Project]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="index-fetch")

    def close(self) -> None:
        """Stop the fetch threads (after the server stopped taking requests)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def open(source: Source, name: str) -> Store | None:
        """The store of project ``name``; None when no OCI repository could hold it."""
        try:
            repository_name(name)
        except InvalidReferenceError:
            return None  # no OCI repository can hold it, so no store has it
        return source.stores.open(name)

    def _kept(self, resource: str) -> tuple[float, Project] | None:
        with self._lock:
            return self._projects.get(resource)

    def _fresh(self, resource: str) -> Project | None:
        kept = self._kept(resource)
        if kept is None or self._ttl <= 0 or self._clock() - kept[0] >= self._ttl:
            return None
        return kept[1]

    def project(self, source: Source, name: NormalizedName) -> Project | None:
        """The project as ``source``'s caller may see it; None when the target does not hold
        it. A refusal of the caller's credentials raises (an ``AuthenticationError``)."""
        resource = source.resource(name)
        answer = self.ledger.answer(resource, source.caller)
        if answer is False:
            return None
        if answer:
            fresh = self._fresh(resource)
            if fresh is not None:
                return fresh
        with self._lock:
            key_lock = self._loading.setdefault(resource, threading.Lock())
        with key_lock:
            try:
                if self.ledger.proved(resource, source.caller):
                    fresh = self._fresh(resource)
                    if fresh is not None:
                        return fresh
                return self._refresh(source, name, resource)
            finally:
                with self._lock:
                    self._loading.pop(resource, None)

    def _refresh(self, source: Source, name: NormalizedName, resource: str) -> Project | None:
        started = time.monotonic()
        store = self.open(source, name)
        if store is None:
            return None
        tags = store.list_tags()  # the caller's own request: its proof, or its refusal
        # A repository with tags holds the name, readable versions or not: such a name must
        # never be handed to a fallback index (its page is then empty, not missing).
        self.ledger.record(resource, source.caller, found=bool(tags))
        if not tags:
            return None
        versions = {tag: v for tag in tags if (v := tag_to_version(tag)) is not None}
        disk = self._disk if source.persistent else None
        reading = _Reading(store, name, disk, self._wall_clock(), self._ttl)
        kept = self._kept(resource)
        known = self._known(reading, versions, kept[1].states if kept else None)
        states, read = self._read_due(reading, versions, known)
        found = {s.version: s.files for s in states.values() if s.files}
        if disk is not None and (read or len(states) != len(known)):
            disk.save_tags(
                store.location,
                {tag: replace(s.record, files=s.files) for tag, s in states.items()},
            )
        files = {(tag, entry.filename): entry for tag, s in states.items() for entry in s.files}
        project = Project(project_page(name, found), files, states)
        self._keep(resource, project)
        logger.debug(
            "read %s: %d versions, %d files in %.2f s",
            store.location,
            len(found),
            len(files),
            time.monotonic() - started,
        )
        return project

    def _known(
        self,
        reading: _Reading,
        versions: Mapping[str, Version],
        kept: Mapping[str, VersionState] | None,
    ) -> dict[str, VersionState]:
        """What is already known of the listed tags: from memory, else from the disk cache."""
        if kept is not None:
            return {tag: kept[tag] for tag in versions if tag in kept}
        if reading.disk is None:
            return {}
        records = reading.disk.load_tags(reading.store.location)
        known: dict[str, VersionState] = {}
        for tag, version in versions.items():
            record = records.get(tag)
            state = reading.load(tag, version, record) if record is not None else None
            if state is not None:
                known[tag] = state
        return known

    def _read_due(
        self,
        reading: _Reading,
        versions: Mapping[str, Version],
        known: Mapping[str, VersionState],
    ) -> tuple[dict[str, VersionState], int]:
        """Read the new tags and the known ones whose check is due; keep the rest.

        Returns the versions and how many tags were read."""
        new = [tag for tag in versions if tag not in known]
        due = sorted(
            (tag for tag, s in known.items() if check_due(s.record, reading.now, reading.ttl)),
            key=lambda tag: known[tag].record.checked,
        )
        if reading.ttl > 0:
            due = due[:RECHECK_BUDGET]
        futures = [
            (tag, self._pool.submit(reading.read, tag, versions[tag], known.get(tag)))
            for tag in (*new, *due)
        ]
        states = dict(known)
        for tag, future in futures:
            state = future.result()
            if state is None:
                states.pop(tag, None)  # untagged between the listing and now
            else:
                states[tag] = state
        return states, len(futures)

    def _keep(self, resource: str, project: Project) -> None:
        with self._lock:
            self._projects.pop(resource, None)
            while len(self._projects) >= MAX_CACHED_PROJECTS:
                self._projects.popitem(last=False)
            self._projects[resource] = (self._clock(), project)

    def metadata(self, source: Source, name: str, entry: FileEntry) -> bytes:
        """The core metadata file of ``entry`` (a caller of ``source`` proved access): from
        the disk cache by digest, else through its manifest from the caller's store."""
        if entry.metadata is None:
            raise NotFoundError(f"{entry.filename} has no metadata file in this index")
        disk = self._disk if source.persistent else None
        raw = disk.read(entry.metadata.digest) if disk is not None else None
        if raw is not None:
            return raw
        store = self.open(source, name)
        if store is None:
            raise NotFoundError(f"no project {name} in this index")
        config = read_file_manifest(store, entry).config
        # The index named this digest: serve only bytes that hash to it.
        if config.digest != entry.metadata.digest:
            raise DigestMismatchError(
                f"{entry.filename}: the manifest's metadata disagrees with the index's digest"
            )
        raw = store.read_blob(config, limit=MAX_METADATA_SIZE)
        if disk is not None:
            disk.write(raw)
        return raw

    def forget(self, source: Source, name: NormalizedName) -> None:
        """Drop the kept page of a project that changed (an upload): the next request reads
        it again, and every caller proves access anew."""
        with self._lock:
            self._projects.pop(source.resource(name), None)
        self.ledger.forget(source.resource(name))

    def find_file(
        self, source: Source, project: str, tag: str, filename: str
    ) -> tuple[Store, FileEntry] | None:
        """A file and the caller's store of it: the entry from the kept page when the caller
        may see it, else from its version's index, read with the caller's credentials."""
        name = canonicalize_name(project)
        version = tag_to_version(tag)
        store = self.open(source, name) if version is not None else None
        if version is None or store is None:
            return None
        resource = source.resource(name)
        kept = self._kept(resource)
        entry = None
        if kept is not None and self.ledger.proved(resource, source.caller):
            state = kept[1].states.get(tag)
            entry = (
                next((e for e in state.files if e.filename == filename), None) if state else None
            )
        if entry is None:
            # A download needs one version only: do not load the whole page for it.
            disk = self._disk if source.persistent else None
            reading = _Reading(store, name, disk, self._wall_clock(), self._ttl)
            state = reading.read(tag, version, None)
            if state is not None:
                # The registry let the caller read the project: its kept page is theirs too.
                self.ledger.record(resource, source.caller)
            files = state.files if state is not None else ()
            entry = next((item for item in files if item.filename == filename), None)
        return None if entry is None else (store, entry)
