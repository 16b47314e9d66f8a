"""The low-level steps on local files, each written once: the layout, the cache and downloads
all go through them.

- :class:`PendingFile`: content is written (or hard-linked) under a temporary name beside its
  final one (``.<final name>.<random>.part``) and renamed over the final name. A reader never
  sees a partial file; a failure leaves no temporary name behind. Files are created with mode
  ``0o666`` narrowed by the umask, like any file the user creates. One rule for flushing to
  disk: a store's own files (a layout's blobs, ``index.json``, ``oci-layout``) are flushed
  before the rename and their folder after it, so a crash never loses what a push reported
  as stored; downloaded copies (cache entries, files handed out) are not, as curl's are not:
  flushing a 1 GiB download added about 30 % to its time, and what a crash could tear is a
  copy, which the cache verifies on every later use and fetches again.
- :func:`copy_hashing` / :func:`copy_verified`: read a stream to its end through a hasher,
  copying it on the way when asked, and stop as soon as it runs past the expected size;
  :func:`hash_reading_ahead` hashes a whole file while the next chunk is being read.
- :func:`open_regular` / :func:`is_regular`: open or test a file without following a symbolic
  link, so a link planted in a cache or a layout never leads outside it.

Where the platform has ``O_NOFOLLOW``, ``O_CLOEXEC`` and ``O_NONBLOCK`` (Linux, macOS) they
are used; where it lacks them (Windows) the same guarantees come from ``lstat`` before the
open and a check afterwards that the file opened is the one looked at.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from setuptools_ghcr.core.oci import Digest, DigestWriter, page_buffer
from setuptools_ghcr.errors import DigestMismatchError, UnsafeResponseError
from setuptools_ghcr.storage.store import ProgressCallback

__all__ = [
    "CHUNK_SIZE",
    "CLOEXEC",
    "DIRECTORY_FLAGS",
    "FILE_MODE",
    "NOFOLLOW",
    "PendingFile",
    "copy_hashing",
    "copy_verified",
    "fsync_folder",
    "hash_reading_ahead",
    "is_regular",
    "is_temp_name",
    "open_regular",
    "write_atomically",
]

CHUNK_SIZE = 1 << 20
_READ_AHEAD_CHUNK = 4 << 20
#: The umask narrows it, as for any file a user creates.
FILE_MODE = 0o666
#: The suffix of every temporary name (``.<final name>.<random>.part``).
TEMP_SUFFIX = ".part"


def _flag(name: str) -> int:
    """An ``os.O_*`` flag, or 0 where the platform does not have it."""
    value: int = getattr(os, name, 0)
    return value


#: 0 where the platform cannot refuse a link at open time (then lstat does the refusing).
NOFOLLOW = _flag("O_NOFOLLOW")
CLOEXEC = _flag("O_CLOEXEC")
# Windows opens in text mode unless told otherwise.
_BINARY = _flag("O_BINARY")
# O_NONBLOCK keeps a planted FIFO from hanging the open; regular files ignore it.
_NONBLOCK = _flag("O_NONBLOCK")
_READ_FLAGS = os.O_RDONLY | NOFOLLOW | CLOEXEC | _NONBLOCK | _BINARY
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC | _BINARY
#: Opening a folder to use as ``dir_fd`` (and to fsync it).
DIRECTORY_FLAGS = os.O_RDONLY | _flag("O_DIRECTORY") | CLOEXEC
# Without linkat() (Windows), os.link cannot be told not to follow a link: the file linked is
# checked once opened instead (PendingFile.open_linked).
_LINK_NOFOLLOW = os.link in os.supports_follow_symlinks

Name = str | Path


def temp_name(final: str) -> str:
    """A fresh hidden temporary name for a file that will be renamed to ``final``."""
    return f".{final}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary name of an interrupted write (``.tmp``: older ones)."""
    return name.startswith(".") and name.endswith((TEMP_SUFFIX, ".tmp"))


def is_regular(name: Name, *, dir_fd: int | None = None) -> bool:
    """Whether ``name`` is a regular file itself (a link to one is not)."""
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def open_regular(name: Name, what: str, *, dir_fd: int | None = None) -> BinaryIO | None:
    """Open a regular file to read without following a link; None when it is absent.

    :class:`UnsafeResponseError` when ``name`` is a symbolic link or not a regular file.
    """
    seen = None
    if not (NOFOLLOW and _NONBLOCK):
        # Look before opening: a link must not be followed, nor a FIFO block the open.
        try:
            seen = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        _refuse_unless_regular(seen, what)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeResponseError(
                f"{what} is a symbolic link; refusing to follow it"
            ) from error
        raise
    try:
        opened = os.fstat(fd)
        _refuse_unless_regular(opened, what)
        if seen is not None and (seen.st_dev, seen.st_ino) != (opened.st_dev, opened.st_ino):
            raise UnsafeResponseError(f"{what} was replaced while being opened; refusing it")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _refuse_unless_regular(status: os.stat_result, what: str) -> None:
    if stat.S_ISLNK(status.st_mode):
        raise UnsafeResponseError(f"{what} is a symbolic link; refusing to follow it")
    if not stat.S_ISREG(status.st_mode):
        raise UnsafeResponseError(f"{what} is not a regular file; refusing it")


def copy_hashing(
    source: BinaryIO,
    writer: DigestWriter,
    out: BinaryIO | None = None,
    *,
    limit: int | None = None,
    what: str = "a file",
    progress: ProgressCallback | None = None,
) -> None:
    """Read ``source`` to its end through ``writer``, into ``out`` too when given.

    :class:`DigestMismatchError` as soon as more than ``limit`` bytes arrive.
    """
    # Page-aligned (see oci.page_buffer): reading a file into it is a cheaper copy.
    buffer = memoryview(page_buffer(CHUNK_SIZE))
    readinto = getattr(source, "readinto", None)
    while True:
        if readinto is not None:
            count: int = readinto(buffer)
        else:  # a bare stream: same loop, one copy more
            data = source.read(CHUNK_SIZE)
            count = len(data)
            buffer[:count] = data
        if not count:
            return
        chunk = buffer[:count]
        writer.update(chunk)
        if limit is not None and writer.size > limit:
            raise DigestMismatchError(f"{what}: more than the expected {limit} bytes")
        if out is not None:
            out.write(chunk)
        if progress is not None:
            progress(count)


def hash_reading_ahead(source: BinaryIO) -> DigestWriter:
    """Hash ``source`` to its end, reading the next chunk on another thread meanwhile.

    File reads and hashlib both release the GIL, so copying out of the page cache costs no
    time on top of the hashing: worth a thread for a whole big file read just to hash it.
    """
    writer = DigestWriter()
    views = [memoryview(page_buffer(_READ_AHEAD_CHUNK)) for _ in range(2)]
    read: Callable[[memoryview], int] = source.readinto  # type: ignore[attr-defined]
    with ThreadPoolExecutor(1, "hash-read") as reader:
        turn = 0
        pending = reader.submit(read, views[turn])
        while count := pending.result():
            current = views[turn]
            turn ^= 1
            pending = reader.submit(read, views[turn])
            writer.update(current[:count])
    return writer


def copy_verified(
    source: BinaryIO,
    out: BinaryIO | None,
    digest: Digest,
    size: int | None,
    *,
    what: str,
    progress: ProgressCallback | None = None,
) -> None:
    """:func:`copy_hashing`, then :class:`DigestMismatchError` unless it matched ``digest``."""
    writer = digest.hasher()
    copy_hashing(source, writer, out, limit=size, what=what, progress=progress)
    writer.verify(digest, size, what)


def fsync_folder(folder: Name | int) -> None:
    """Flush a folder's entries (a rename into it) to disk; a path or an open descriptor.

    Windows cannot open a folder as a file, and its file systems journal renames anyway.
    """
    if isinstance(folder, int):
        os.fsync(folder)
        return
    if os.name != "posix":
        return
    fd = os.open(folder, DIRECTORY_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PendingFile:
    """A file made under a temporary name beside ``final``; :meth:`commit` renames it over.

    Use it as a context manager: leaving the block removes the temporary name whatever
    happened, so a failure (or a decision not to commit) leaves nothing behind::

        with PendingFile(destination) as pending:
            with pending.writing() as out:
                out.write(data)
            pending.commit()

    ``final`` is a path, or with ``dir_fd`` a name in that open folder (no link is followed
    there: a planted link cannot redirect the write). ``durable`` (the default) flushes the
    content to disk before the rename and the folder after it; downloads pass False (see the
    module's docstring for the rule).
    """

    def __init__(self, final: Name, *, dir_fd: int | None = None, durable: bool = True) -> None:
        self.final = final
        self._dir_fd = dir_fd
        self._durable = durable
        if dir_fd is None:
            path = Path(final)
            self.temp: Name = path.parent / temp_name(path.name)
        else:
            self.temp = temp_name(str(final))

    def __enter__(self) -> PendingFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()

    @contextmanager
    def writing(self) -> Iterator[BinaryIO]:
        """The temporary file, created and open for writing; flushed on closing when durable."""
        fd = os.open(self.temp, _CREATE_FLAGS, FILE_MODE, dir_fd=self._dir_fd)
        with os.fdopen(fd, "wb") as out:
            yield out
            if self._durable:
                out.flush()
                os.fsync(out.fileno())

    def link_from(self, source: Name, *, src_dir_fd: int | None = None) -> None:
        """Make the temporary name a hard link to ``source`` (never to what a link names)."""
        os.link(
            source,
            self.temp,
            src_dir_fd=src_dir_fd,
            dst_dir_fd=self._dir_fd,
            follow_symlinks=not _LINK_NOFOLLOW,
        )

    def open_linked(self, what: str) -> BinaryIO:
        """The file :meth:`link_from` linked, open for reading (it must be a regular file)."""
        opened = open_regular(self.temp, what, dir_fd=self._dir_fd)
        if opened is None:
            raise FileNotFoundError(errno.ENOENT, "vanished while linking", str(self.temp))
        return opened

    def commit(self, final: Name | None = None) -> None:
        """Rename the temporary file over ``final`` (default: the one given at the start).

        A durable rename is flushed to disk. When ``final`` already was another link to the
        same file, rename() changes nothing: the temporary name then goes when the block ends.
        """
        target = self.final if final is None else final
        os.replace(self.temp, target, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        if not self._durable:
            return
        if self._dir_fd is not None:
            fsync_folder(self._dir_fd)
        else:
            fsync_folder(Path(target).parent)

    def discard(self) -> None:
        """Remove the temporary name if it is still there."""
        with suppress(FileNotFoundError):
            os.unlink(self.temp, dir_fd=self._dir_fd)


def write_atomically(
    final: Name, data: bytes, *, dir_fd: int | None = None, durable: bool = True
) -> None:
    """Replace a small file with ``data`` atomically (and durably, unless told otherwise)."""
    with PendingFile(final, dir_fd=dir_fd, durable=durable) as pending:
        with pending.writing() as out:
            out.write(data)
        pending.commit()
