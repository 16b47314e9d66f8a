"""Downloads that start as soon as a file is chosen, while resolution goes on.

Choosing a file takes the tag listing and the version's index; reading its dependencies then
takes its manifest and metadata blob (and the same again for each dependency in the target).
A :class:`Prefetcher` starts the chosen file's download into the blob cache on another
thread the moment the index names its digest and size, so those requests, and the choice of
every other file, overlap the transfer instead of preceding it. A download whose file the
resolution later drops is cancelled (its partial file removed, as after any failure); one
that fails is reported when its file is placed, as a download made then would be.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor

from setuptools_ghcr.core.oci import Descriptor, Digest
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.store import ProgressCallback, Store

__all__ = ["Prefetcher"]

logger = logging.getLogger(__name__)

#: Downloads in flight at once; more wait their turn (each also writes and hashes on two
#: threads of its own).
WORKERS = 4


class _Cancelled(Exception):
    """Raised inside a download whose file is no longer wanted; never leaves this module."""


class _Download:
    def __init__(self, future: Future[None], cancel: threading.Event) -> None:
        self.future = future
        self.cancel = cancel


class Prefetcher:
    """Blob downloads into a cache on background threads, waited for or cancelled by digest.

    Use it as a context manager: leaving the block cancels what nobody waited for and waits
    until every thread has stopped, so no partial file outlives it.
    """

    def __init__(self, cache: BlobCache, workers: int = WORKERS) -> None:
        self._cache = cache
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="prefetch")
        self._downloads: dict[Digest, _Download] = {}

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(
        self,
        store: Store,
        blob: Descriptor,
        progress: Callable[[], ProgressCallback | None] | None = None,
    ) -> bool:
        """Start downloading ``blob`` unless it is cached or under way; True when started.

        ``progress`` makes the transfer's callback once the download really begins (so a
        progress bar appears only for a transfer that happens).
        """
        if blob.digest in self._downloads or self._cache.has(blob.digest):
            return False
        cancel = threading.Event()

        def fetch() -> None:
            if cancel.is_set():
                return
            report = progress() if progress is not None else None

            def advance(count: int) -> None:
                # Checked once a chunk: a dropped file stops within a chunk of its decision.
                if cancel.is_set():
                    raise _Cancelled
                if report is not None:
                    report(count)

            try:
                self._cache.fetch(store, blob, advance)
            except _Cancelled:
                logger.debug("dropped the download of %s: no longer needed", blob.digest)

        self._downloads[blob.digest] = _Download(self._pool.submit(fetch), cancel)
        return True

    def started(self, digest: Digest) -> bool:
        """Whether this prefetcher started the download of ``digest``."""
        return digest in self._downloads

    def wait(self, digest: Digest) -> bool:
        """Wait for the download of ``digest``; True when it completed, verified, just now.

        False when none was started or it was cancelled; a failed download raises its error.
        """
        download = self._downloads.get(digest)
        if download is None:
            return False
        download.future.result()
        return not download.cancel.is_set()

    def cancel(self, digest: Digest) -> None:
        """Stop the download of ``digest`` (a file the resolution no longer wants)."""
        download = self._downloads.get(digest)
        if download is not None:
            download.cancel.set()

    def keep_only(self, wanted: Collection[Digest]) -> None:
        """Cancel every download whose digest is not in ``wanted``."""
        for digest, download in self._downloads.items():
            if digest not in wanted:
                download.cancel.set()

    def close(self) -> None:
        """Cancel whatever is still running and wait for every thread to stop."""
        for download in self._downloads.values():
            if not download.future.done():
                download.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
