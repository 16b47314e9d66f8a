"""Use case step: record a version's new files in its index, against concurrent publishers.

A registry offers no compare-and-swap on tags: each publisher reads the version's index,
merges its entries in and writes the result, and a writer whose read came before another's
write erases that write's entries when its own lands. What is done about it:

- An index write is never sent twice as is. When it fails (a 429, a 503, a lost
  connection), the index is read and merged again, and the new result is written: a stale
  body re-sent after a pause would erase whatever landed meanwhile.
- After a write, the index is read back; once it lists our entries, it is read again after
  a pause scaled to how long a read-modify-write takes now, so that a writer that read
  before ours landed has landed too. If our entries are gone, the merge is done again.
- While our write is on its way (a slow registry, a proxy holding it), the index is watched:
  entries of other publishers that appear meanwhile would be erased when ours lands, so
  once it has landed, those that are missing are merged back in. This covers writers whose
  writes land long after the others checked.

What it cannot cover: a publisher that dies between its write landing and the end of its
watch, or an index write that lingers in the network after its sender gave up on it. When
the outcome cannot be checked (the index cannot be read back, or keeps changing), the push
fails, saying to re-run it: a re-run merges again and re-uploads nothing.

An ``oci:`` layout is locked instead (``store.lock()`` yields True): exact, no watching.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

from packaging.version import InvalidVersion, Version

from setuptools_ghcr.core.oci import Descriptor, Index
from setuptools_ghcr.core.wire_format import OCI_VERSION, entry_key, merge_index, version_to_tag
from setuptools_ghcr.errors import GhcrError, RegistryError
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import read_index

__all__ = ["MERGE_ATTEMPTS", "record_entries", "point_tags"]

logger = logging.getLogger(__name__)

#: How many read-merge-write rounds a publisher tries before giving up on a busy version.
MERGE_ATTEMPTS = 12
#: Bounds of the pause before an index that lists our files is checked a second time.
SETTLE_MIN = 0.25
SETTLE_MAX = 2.0
#: While an index write is on its way, the index is read this often to see who else wrote.
WATCH_EVERY = 0.1
#: Failed index writes ("try later", lost connections) tolerated in a row.
WRITE_FAILURES = 4

RERUN = "re-run push to finish (files already uploaded are not sent again)"


def _key_digests(index: Index | None) -> set[tuple[str, str]]:
    return {(entry_key(e), str(e.digest)) for e in index.manifests} if index else set()


def _listed(index: Index | None, entries: Sequence[Descriptor]) -> bool:
    present = _key_digests(index)
    return all((entry_key(e), str(e.digest)) in present for e in entries)


class _Watch:
    """Entries of other writers seen in the index while our write was on its way."""

    def __init__(self, ours: Index) -> None:
        self._ours = _key_digests(ours)
        self.seen: dict[tuple[str, str], Descriptor] = {}

    def look(self, index: Index | None) -> None:
        for entry in index.manifests if index else ():
            key = (entry_key(entry), str(entry.digest))
            if key not in self._ours:
                self.seen[key] = entry

    def erased(self, landed: Index | None) -> list[Descriptor]:
        """What we saw of others that is not in the index now (our write erased it).

        An entry whose file was given another entry since (same key) is not brought back.
        """
        keys = {entry_key(e) for e in landed.manifests} if landed else set()
        return [entry for (key, _), entry in self.seen.items() if key not in keys]


def _write_watching(store: Store, merged: Index, tag: str) -> _Watch:
    """Write ``merged`` under ``tag``, reading the index meanwhile while the write is slow."""
    watch = _Watch(merged)
    with ThreadPoolExecutor(1, thread_name_prefix="index-write") as pool:
        writing: Future[object] = pool.submit(
            store.put_manifest, merged.raw, merged.media_type, tag
        )
        while not _done(writing, WATCH_EVERY):
            try:
                watch.look(read_index(store, tag))
            except GhcrError as error:
                logger.info(
                    "could not watch %s:%s while writing it: %s", store.location, tag, error
                )
        writing.result()
    return watch


def _done(future: Future[object], seconds: float) -> bool:
    finished, _pending = wait([future], timeout=seconds)
    return bool(finished)


def _pause_after(error: RegistryError, attempt: int) -> None:
    """Wait before reading and merging again after a failed write; raise a lasting failure."""
    if not error.temporary:
        raise error
    wait = error.retry_after if error.retry_after is not None else 0.2 * min(attempt + 1, 5)
    logger.info("index write refused for now (%s); reading and merging again", error)
    time.sleep(min(wait, 60.0) + random.uniform(0.0, 0.2))  # noqa: S311


def record_entries(
    store: Store,
    version: Version,
    entries: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> Index:
    """Merge ``entries`` into the version's index until it surely lists them; returns it.

    ``annotations`` are set on the index (source, description, licenses); others it has stay.
    """
    tag = version_to_tag(version)
    erased: list[Descriptor] = []
    failures = 0
    for attempt in range(MERGE_ATTEMPTS):
        started = time.monotonic()
        try:
            with store.lock() as locked:
                current = read_index(store, tag)
                merged = merge_index(
                    current, [*erased, *entries], version=version, annotations=annotations
                )
                erased = []
                if current is None or merged.raw != current.raw:
                    if locked:
                        store.put_manifest(merged.raw, merged.media_type, tag)
                    else:
                        watch = _write_watching(store, merged, tag)
                        if watch.seen:
                            erased = watch.erased(read_index(store, tag))
        except RegistryError as error:
            failures += 1
            if failures >= WRITE_FAILURES:
                raise GhcrError(
                    f"could not write the index of {store.location}:{tag} ({error}); {RERUN}"
                ) from error
            _pause_after(error, attempt)
            continue
        failures = 0
        if erased:
            logger.info(
                "%d entries of other publishers were overwritten; merging them back", len(erased)
            )
            continue
        window = time.monotonic() - started
        if attempt:
            # Someone else's merge overwrote ours: let it finish, and do not collide again.
            time.sleep(random.uniform(0.05, 0.25) * min(attempt + 1, 4))  # noqa: S311
        landed = _read_back(store, tag)
        if _listed(landed, entries) and not locked:
            # Seen once is not enough: a writer that read the index before ours landed may
            # still overwrite it with its own merge. Look again once it surely has.
            time.sleep(min(SETTLE_MAX, max(SETTLE_MIN, 4 * window)))
            landed = _read_back(store, tag)
        if _listed(landed, entries):
            assert landed is not None
            return landed
        logger.info("index of %s changed under us; merging again (%d)", tag, attempt + 1)
    raise GhcrError(
        f"could not record the files in {store.location}:{tag}: the index kept changing or "
        f"could not be written ({MERGE_ATTEMPTS} attempts); {RERUN}"
    )


def _read_back(store: Store, tag: str) -> Index | None:
    try:
        return read_index(store, tag)
    except GhcrError as error:
        raise GhcrError(
            f"wrote {store.location}:{tag} but cannot check that it lists the files "
            f"({error}); {RERUN}"
        ) from error


def _names_newer(store: Store, extra: str, version: Version) -> bool:
    """Whether the extra tag names a version higher than ``version`` already (by its index's
    version annotation; an index without one, as PyOCI writes them, names none)."""
    held = read_index(store, extra)
    named = held.annotations.get(OCI_VERSION) if held is not None else None
    try:
        newer = named is not None and Version(named) > version
    except InvalidVersion:
        return False
    if newer:
        logger.warning("%s stays on %s, which is newer than %s", extra, named, version)
    return newer


def point_tags(store: Store, version: Version, tags: Sequence[str]) -> None:
    """Point extra tags at the version's index as it is now (re-read after each failure).

    A tag that names a higher version stays: publishing a backport (1.4.2 after 2.0.0)
    never moves ``latest`` back.
    """
    tag = version_to_tag(version)
    for extra in tags:
        if _names_newer(store, extra, version):
            continue
        for attempt in range(MERGE_ATTEMPTS):
            current = read_index(store, tag)
            if current is None:
                return
            try:
                store.put_manifest(current.raw, current.media_type, extra)
                break
            except RegistryError as error:
                if attempt == MERGE_ATTEMPTS - 1:
                    raise
                _pause_after(error, attempt)
