"""What the index shows of a project: its versions and files, read from the target and kept
for a while.

A project page costs one tag listing and one index fetch per version, fetched concurrently
and kept for ``cache_ttl`` seconds on the :class:`ProjectReader` instance. A file the page
lists whose index entry lacks its digest or size (PyOCI) costs its manifest as well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.targets import repository_name
from setuptools_ghcr.core.wire_format import FileEntry, tag_to_version, version_to_tag
from setuptools_ghcr.errors import (
    DigestMismatchError,
    InvalidDistributionError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
)
from setuptools_ghcr.serve.pages import ProjectPage, project_page, render_project
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import file_blob, list_versions, read_version

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_WORKERS",
    "MAX_CACHED_PROJECTS",
    "Project",
    "ProjectReader",
    "StoreOpener",
    "TTLCache",
]

logger = logging.getLogger(__name__)

#: Seconds a project page is reused: long enough for one pip run, short enough that a
#: version published a moment ago shows up without restarting the server.
DEFAULT_CACHE_TTL = 30.0
#: Index fetches in flight at once for one cold page.
DEFAULT_WORKERS = 8
#: Project pages kept at most; the oldest goes first.
MAX_CACHED_PROJECTS = 512

# Problems with what one version or file holds: that version or file is left out of the page,
# while transport and registry errors fail the whole page (a partial page must not be cached).
_CONTENT_ERRORS = (
    InvalidReferenceError,
    MalformedDocumentError,
    InvalidDistributionError,
    DigestMismatchError,
    TooLargeError,
)

T = TypeVar("T")


class StoreOpener(Protocol):
    """Opens the store of a project (a :class:`~setuptools_ghcr.storage.factory.StoreFactory`)."""

    def open(self, project: str) -> Store: ...


@dataclass(frozen=True)
class Project:
    """A project as the index shows it: its page, and its files by (tag, filename)."""

    page: ProjectPage
    files: Mapping[tuple[str, str], FileEntry]
    #: The page rendered, by content type: rendering hundreds of files costs more than
    #: serving them, and a page is asked for again and again while it is cached.
    bodies: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def body(self, content_type: str) -> bytes:
        found = self.bodies.get(content_type)
        if found is None:
            # Two threads may render the same page at once; both get the same bytes.
            found = self.bodies[content_type] = render_project(self.page, content_type)
        return found


class TTLCache(Generic[T]):
    """Values kept for ``ttl`` seconds; one load at a time per key (others wait and reuse it)."""

    def __init__(self, ttl: float, clock: Callable[[], float], max_entries: int) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, T]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def peek(self, key: str) -> T | None:
        with self._lock:
            found = self._values.get(key)
            if found is None:
                return None
            expires, value = found
            if expires <= self._clock():
                del self._values[key]
                return None
            return value

    def get(self, key: str, load: Callable[[], T | None]) -> T | None:
        """The cached value, else ``load()``'s (cached unless None)."""
        if self._ttl <= 0:
            return load()
        value = self.peek(key)
        if value is not None:
            return value
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            value = self.peek(key)
            if value is not None:
                return value
            try:
                value = load()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            if value is not None:
                self._put(key, value)
            return value

    def _put(self, key: str, value: T) -> None:
        with self._lock:
            now = self._clock()
            for old in [k for k, (expires, _) in self._values.items() if expires <= now]:
                del self._values[old]
            while len(self._values) >= self._max_entries:
                del self._values[next(iter(self._values))]
            self._values[key] = (now + self._ttl, value)


def _complete(store: Store, entry: FileEntry) -> FileEntry:
    """``entry`` with its sha256 and size, from its manifest when the index lacks them (PyOCI)."""
    blob = file_blob(store, entry)
    return replace(entry, sha256=blob.digest, size=blob.size)


def _load_version(store: Store, project: str, version: Version) -> list[FileEntry] | None:
    try:
        found = read_version(store, project, version)
    except _CONTENT_ERRORS as error:
        logger.warning("leaving %s %s out of its page: %s", project, version, error)
        return None
    if found is None:
        return None  # untagged between the listing and now
    entries = []
    for entry in found.files:
        try:
            entries.append(_complete(store, entry))
        except (*_CONTENT_ERRORS, NotFoundError) as error:
            logger.warning("leaving %s out of its page: %s", entry.filename, error)
    return entries


class ProjectReader:
    """Reads projects from the stores ``stores`` opens, and keeps each for ``cache_ttl`` s."""

    def __init__(
        self,
        stores: StoreOpener,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stores = stores
        self._pages: TTLCache[Project] = TTLCache(cache_ttl, clock, MAX_CACHED_PROJECTS)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="index-fetch")

    def close(self) -> None:
        """Stop the fetch threads (after the server stopped taking requests)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def open(self, name: str) -> Store | None:
        """The store of project ``name``; None when no OCI repository could hold it."""
        try:
            repository_name(name)
        except InvalidReferenceError:
            return None  # no OCI repository can hold it, so no store has it
        return self._stores.open(name)

    def project(self, name: NormalizedName) -> Project | None:
        """The project, from the cache or the target; None when the target has no such files."""
        return self._pages.get(name, lambda: self._load_project(name))

    def _load_project(self, name: NormalizedName) -> Project | None:
        started = time.monotonic()
        store = self.open(name)
        if store is None:
            return None
        versions = list_versions(store)
        if not versions:
            return None
        futures = [(v, self._pool.submit(_load_version, store, name, v)) for v in versions]
        loaded = {version: future.result() for version, future in futures}
        found = {version: files for version, files in loaded.items() if files is not None}
        if not found:
            return None
        files = {
            (version_to_tag(version), entry.filename): entry
            for version, entries in found.items()
            for entry in entries
        }
        logger.debug(
            "read %s: %d versions, %d files in %.2f s",
            store.location,
            len(found),
            len(files),
            time.monotonic() - started,
        )
        return Project(project_page(name, found), files)

    def find_file(self, project: str, tag: str, filename: str) -> tuple[Store, FileEntry] | None:
        """A file and its store; from the cached page when there is one, else from its version."""
        name = canonicalize_name(project)
        version = tag_to_version(tag)
        store = self.open(name) if version is not None else None
        if version is None or store is None:
            return None
        cached = self._pages.peek(name)
        entry = cached.files.get((tag, filename)) if cached is not None else None
        if entry is None:
            # A download needs one version only: do not load the whole page for it.
            files = _load_version(store, name, version) or []
            entry = next((item for item in files if item.filename == filename), None)
        return None if entry is None else (store, entry)
