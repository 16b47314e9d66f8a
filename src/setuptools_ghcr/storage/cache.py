"""A content-addressed cache of downloaded blobs: ``<root>/blobs/<algorithm>/<hex>``.

The root is ``$SETUPTOOLS_GHCR_CACHE_DIR``, else ``$XDG_CACHE_HOME/setuptools-ghcr``, else
``~/.cache/setuptools-ghcr``. Entries are only ever written whole (a temporary file in the
same folder, renamed into place once verified) and are verified again on every use, so a
damaged or tampered entry is dropped and fetched anew rather than handed out. Concurrent
processes may fill the same entry: each writes its own temporary file, and the rename of
identical, verified content is atomic, so whoever wins, readers see a whole blob.

Where the file system allows, a file handed out (:meth:`BlobCache.place`) is a hard link to
its entry rather than a copy: a big download is then written once, not twice. The two names
are one file, so a later change through either is a change to the entry, which the next use
catches (and fetches the blob again).

An entry is hashed before it is handed out, except one this process has just fetched: that
one was verified as it arrived, under a private name, and is handed out only when the file
linked is that very file (same device, inode, size and time), so another process replacing
the entry between the fetch and the link is caught, and the entry then hashed.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from setuptools_ghcr.core.oci import Descriptor, Digest
from setuptools_ghcr.errors import DigestMismatchError, TooLargeError, UnsafeResponseError
from setuptools_ghcr.storage.files import (
    PendingFile,
    copy_verified,
    is_regular,
    open_regular,
    temp_name,
    write_atomically,
)
from setuptools_ghcr.storage.store import ProgressCallback, Store

__all__ = ["CACHE_DIR_ENV", "BlobCache", "default_cache_root"]

CACHE_DIR_ENV = "SETUPTOOLS_GHCR_CACHE_DIR"

logger = logging.getLogger(__name__)


def default_cache_root(environ: Mapping[str, str], home: Path | None = None) -> Path:
    """Where the cache lives for this environment."""
    explicit = environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(os.path.expanduser(explicit))
    xdg = environ.get("XDG_CACHE_HOME")
    # XDG says a relative value is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "setuptools-ghcr"
    return (home or Path.home()) / ".cache" / "setuptools-ghcr"


class BlobCache:
    """Verified blobs on local disk, shared by every target and project."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        #: The identity of each entry this instance fetched (and so verified) itself.
        self._fetched: dict[Digest, tuple[int, int, int, int]] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], home: Path | None = None) -> BlobCache:
        return cls(default_cache_root(environ, home))

    def path(self, digest: Digest) -> Path:
        """Where the entry of ``digest`` lives (whether or not it is there)."""
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has(self, digest: Digest) -> bool:
        """Whether an entry exists (it is still verified when used)."""
        try:
            return is_regular(self.path(digest))
        except OSError:
            return False

    def fetch(
        self, store: Store, descriptor: Descriptor, progress: ProgressCallback | None = None
    ) -> Path:
        """Download a blob into the cache unless it is already there; returns the entry's path.

        The store verifies what it writes; the entry is verified again when it is used.
        """
        path = self.path(descriptor.digest)
        if not self.has(descriptor.digest):
            path.parent.mkdir(parents=True, exist_ok=True)
            # Under a private name first, so that what is recorded as verified is the file
            # the store wrote, not whatever another process may have put at the entry's name.
            private = path.parent / temp_name(path.name)
            try:
                store.download_blob(descriptor, private, progress)
                written = _identity(os.lstat(private))
                os.replace(private, path)
                self._fetched[descriptor.digest] = written
            finally:
                with suppress(FileNotFoundError):
                    private.unlink()
        return path

    def read_small(self, digest: Digest, limit: int) -> bytes | None:
        """A small entry's bytes, verified; None when absent or damaged (then it is dropped)."""
        source = self._open(digest)
        if source is None:
            return None
        with source:
            data = source.read(limit + 1)
            if len(data) > limit:
                raise TooLargeError(f"cached blob {digest} is over the {limit} bytes accepted")
            if Digest.of_bytes(data, digest.algorithm) == digest:
                return data
            self._drop(digest, source)
        return None

    def store_small(self, data: bytes) -> Digest:
        """Add a small blob held in memory (e.g. core metadata read from a store)."""
        digest = Digest.of_bytes(data)
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, durable=False)
        return digest

    def verify(self, digest: Digest, size: int | None) -> bool:
        """Hash an entry in place; a damaged entry is dropped and False returned."""
        source = self._open(digest)
        if source is None:
            return False
        with source:
            if not _intact(source, digest, size):
                self._drop(digest, source)
                return False
        return True

    def place(
        self, digest: Digest, size: int | None, destination: Path, *, just_verified: bool = False
    ) -> bool:
        """Put an entry at ``destination`` atomically: a hard link where possible, else a copy.

        The entry is hashed on the way unless ``just_verified`` (fetched and verified by this
        instance a moment ago) and the file linked is the very file that fetch wrote. False
        (nothing written) when the entry is absent or damaged; a damaged entry is dropped so
        the next :meth:`fetch` downloads it again.
        """
        with PendingFile(destination, durable=False) as pending:
            try:
                pending.link_from(self.path(digest))
            except FileNotFoundError:
                return False
            except OSError as error:
                # Another file system, a file system without links, or too many links: copy.
                logger.debug("cannot link the cache entry of %s (%s); copying it", digest, error)
                return self.copy_to(digest, size, destination)
            try:
                source = pending.open_linked(f"cache entry {digest}")
            except UnsafeResponseError:
                # A symbolic link (or a FIFO...) in the cache is never handed out.
                logger.warning("ignoring cache entry %s: not a regular file", digest)
                return False
            with source:
                verified = just_verified and self._fetched.get(digest) == _identity(
                    os.fstat(source.fileno())
                )
                if not verified and not _intact(source, digest, size):
                    self._drop(digest, source)
                    return False
            # When ``destination`` already is a link to the entry (another process placed it),
            # rename() leaves both names as they were; the temporary one goes with the block.
            pending.commit()
        return True

    def copy_to(self, digest: Digest, size: int | None, destination: Path) -> bool:
        """Copy an entry to ``destination`` atomically, verifying while copying.

        False (and nothing written) when the entry is absent or damaged; a damaged entry is
        dropped so the next :meth:`fetch` downloads it again.
        """
        source = self._open(digest)
        if source is None:
            return False
        with source, PendingFile(destination, durable=False) as pending:
            try:
                with pending.writing() as out:
                    copy_verified(source, out, digest, size, what=f"cached blob {digest}")
            except DigestMismatchError as error:
                logger.warning("dropping a damaged cache entry: %s", error)
                self._drop(digest, source)
                return False
            pending.commit()
        return True

    def _open(self, digest: Digest) -> BinaryIO | None:
        """The entry, opened without following links; None when absent or not a file."""
        try:
            return open_regular(self.path(digest), f"cache entry {digest}")
        except UnsafeResponseError:
            pass
        except OSError as error:
            if error.errno != errno.ENOTDIR:
                raise
        logger.warning("ignoring cache entry %s: not a regular file", digest)
        return None

    def _drop(self, digest: Digest, opened: BinaryIO) -> None:
        """Remove a damaged entry, unless another process has replaced it meanwhile."""
        path = self.path(digest)
        with suppress(OSError):
            now, was = os.lstat(path), os.fstat(opened.fileno())
            if (now.st_dev, now.st_ino) == (was.st_dev, was.st_ino):
                path.unlink()


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _intact(source: BinaryIO, digest: Digest, size: int | None) -> bool:
    """Whether an open entry hashes to ``digest`` (and has ``size`` bytes); logs when not."""
    try:
        copy_verified(source, None, digest, size, what=f"cached blob {digest}")
    except DigestMismatchError as error:
        logger.warning("dropping a damaged cache entry: %s", error)
        return False
    return True
