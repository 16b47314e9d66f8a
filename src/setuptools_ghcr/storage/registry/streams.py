"""Blob bodies on the wire: upload bodies that hash and count as they are sent, and the
receive side of a download (pooled buffers, a worker thread per step, a body read into them).

Nothing here holds a whole blob: uploads are read from their source a big chunk at a time,
downloads pass through a few reused buffers.
"""

from __future__ import annotations

import http.client
import mmap
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, cast

import requests

from setuptools_ghcr.core.oci import DigestWriter, page_buffer
from setuptools_ghcr.errors import DigestMismatchError, UnsafeResponseError
from setuptools_ghcr.storage.store import BlobSource, ProgressCallback

if TYPE_CHECKING:
    from _typeshed import SupportsRead

__all__ = [
    "BROKEN_BODY",
    "CHUNK_SIZE",
    "Body",
    "Buffers",
    "HashedStream",
    "Worker",
    "open_body",
    "resumed_chunks",
]

#: Blobs move in chunks this big: small chunks cost a Python round trip each, and at a MiB
#: the per-chunk overhead is lost in the noise of hashing and copying. A download that
#: breaks loses at most the chunk being read, so it is not bigger.
CHUNK_SIZE = 1 << 20


class HashedStream:
    """A request body of known length whose digest is computed as it is sent.

    Each send opens the source afresh and starts a new hash (a body refused with a 401 is
    sent again), so :attr:`hasher` always holds what the last send read.
    """

    def __init__(self, open_source: Callable[[], BinaryIO], size: int) -> None:
        self._open = open_source
        self.size = size
        self.hasher = DigestWriter()

    def start(self) -> BinaryIO:
        self.hasher = DigestWriter()
        return self._open()


Body = bytes | BlobSource | HashedStream | None


class _UploadBody:
    """A request body of known length read from a stream in big chunks, counting progress.

    Having ``__len__`` makes requests send ``Content-Length`` and hand this object to the
    connection, which then calls ``read`` until it is drained: the file is streamed, never
    loaded. The connection asks for small blocks (16 KiB); ``read`` deliberately returns
    bigger ones, read into one reused buffer, so that Python-level reads, socket writes and
    allocations stay few. Reusing the buffer is safe because the connection sends each block
    before it asks for the next.
    """

    def __init__(
        self,
        stream: BinaryIO,
        size: int,
        progress: ProgressCallback | None,
        what: str,
        hasher: DigestWriter | None = None,
    ) -> None:
        self._stream = stream
        self._size = size
        self._left = size
        self._progress = progress
        self._what = what
        self._hasher = hasher
        self._view = memoryview(page_buffer(min(CHUNK_SIZE, size)))[: min(CHUNK_SIZE, size)]

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes | memoryview:
        if self._left <= 0:
            return b""
        view = self._view[: min(len(self._view), self._left)]
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            count = readinto(view) or 0
            data: bytes | memoryview = view[:count]
        else:
            data = self._stream.read(len(view))
            count = len(data)
        if not count:
            raise DigestMismatchError(
                f"{self._what}: the file ended {self._left} bytes early; did it change?"
            )
        self._left -= count
        if self._hasher is not None:
            # Hashing here, between reading a block and sending it, costs no extra pass
            # over the file: the registry is slower to take the block than this is to hash it.
            self._hasher.update(data)
        if self._progress is not None:
            self._progress(count)
        return data


def open_body(
    body: Body, progress: ProgressCallback | None, what: str
) -> tuple[BinaryIO | None, bytes | SupportsRead[bytes] | None]:
    """What to hand requests as one send's body, and the stream to close after the send.

    Each send reads a source again from its start; nothing is buffered.
    """
    if body is None or isinstance(body, bytes):
        return None, body
    if isinstance(body, HashedStream):
        stream = body.start()
        upload = _UploadBody(stream, body.size, progress, what, body.hasher)
    else:
        stream = body.open()
        upload = _UploadBody(stream, body.descriptor.size, progress, what)
    # Blocks may be memoryviews: the connection sends any buffer as is.
    return stream, cast("SupportsRead[bytes]", upload)


class _ShortBody(Exception):
    """The connection ended before the announced ``Content-Length`` arrived."""


#: How a body stream breaks: requests' wrappers, or socket and http.client errors when the
#: body is read straight from the connection.
BROKEN_BODY = (
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    http.client.HTTPException,
    OSError,
    _ShortBody,
)


class Buffers:
    """A few reused receive buffers for one download.

    A buffer is taken before a chunk is read into it and released once the chunk has been
    written and hashed; waiting for a free one is the back-pressure that bounds memory.
    Reusing buffers spares a fresh allocation (and its page faults) per chunk, which is most
    of what a download costs beyond the copies themselves.
    """

    def __init__(self, count: int = 8, size: int = CHUNK_SIZE) -> None:
        # Page-aligned (see oci.page_buffer): a socket read into them is a cheaper copy.
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._count = count
        self._size = size
        self._created = 0

    def take(self) -> mmap.mmap:
        """A free buffer; only one thread (the receiving one) takes."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            # Created on demand, so that a small download allocates one buffer, not all.
            if self._created < self._count:
                self._created += 1
                return page_buffer(self._size)
        return self._free.get()

    def give_back(self, buffer: mmap.mmap) -> None:
        self._free.put(buffer)

    def release(self, chunk: bytes | memoryview) -> None:
        """Return the buffer behind a chunk (chunks that are plain bytes have none)."""
        if isinstance(chunk, memoryview) and isinstance(chunk.obj, mmap.mmap):
            self._free.put(chunk.obj)


_Chunk = bytes | memoryview


class Worker:
    """Does one step to every chunk of a download, in order, on its own thread.

    A download receives, writes and hashes; socket reads, file writes and hashlib all
    release the GIL, so with each step on its own thread they overlap on several cores and
    the download takes about as long as its slowest step rather than the sum of the three.
    Each chunk is handed on (``then``) once done, even after a failure, so that buffers
    always flow back; the failure is raised by :meth:`check` or :meth:`finish`.
    """

    def __init__(self, work: Callable[[_Chunk], object], then: Callable[[_Chunk], None]) -> None:
        self._work = work
        self._then = then
        self._queue: queue.SimpleQueue[_Chunk | None] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="blob-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            try:
                if self._failure is None:
                    self._work(chunk)
            except BaseException as error:  # raised again in the caller's thread
                self._failure = error
            finally:
                self._then(chunk)

    def submit(self, chunk: _Chunk) -> None:
        self._queue.put(chunk)

    def check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def finish(self) -> None:
        """Wait until every submitted chunk is done; raise the step's failure if any."""
        self._queue.put(None)
        self._thread.join()
        self.check()


def _body_chunks(
    response: requests.Response, buffers: Buffers | None
) -> Iterator[bytes | memoryview]:
    """The chunks of a streamed body: views of pooled buffers when it can be read into them.

    Reading into a buffer needs the standard library response under urllib3's (present in
    urllib3 1 and 2); without it, or for an encoded body, requests' own iteration is used.
    """
    raw = getattr(response.raw, "_fp", None)
    if (
        buffers is None
        or not isinstance(raw, http.client.HTTPResponse)
        or response.headers.get("Content-Encoding", "identity").lower() != "identity"
    ):
        yield from response.iter_content(CHUNK_SIZE)
        return
    declared = response.headers.get("Content-Length", "")
    expected = int(declared) if declared.isdigit() else None
    received = 0
    while True:
        buffer = buffers.take()
        try:
            count = raw.readinto(buffer)
        except BaseException:
            buffers.give_back(buffer)
            raise
        if not count:
            buffers.give_back(buffer)
            break
        received += count
        yield memoryview(buffer)[:count]
    # http.client reports a connection that closed early as a plain end of body.
    if expected is not None and received < expected:
        raise _ShortBody(f"got {received} of {expected} bytes")


def resumed_chunks(
    response: requests.Response, offset: int, operation: str, buffers: Buffers | None
) -> Iterator[bytes | memoryview]:
    """The chunks of a blob download (re)started at byte ``offset``, from ``response`` on."""
    skip = 0
    if offset and response.status_code == 206:
        content_range = response.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {offset}-"):
            raise UnsafeResponseError(
                f"{operation}: asked to resume at byte {offset}, got {content_range[:60]!r}"
            )
    elif offset:
        # The server ignored the range and sends everything again: drop what was already
        # received (equivalent to starting over, with less disk I/O).
        skip = offset
    for chunk in _body_chunks(response, buffers):
        if skip:
            if len(chunk) <= skip:
                skip -= len(chunk)
                if buffers is not None:
                    buffers.release(chunk)
                continue
            chunk = chunk[skip:]  # noqa: PLW2901
            skip = 0
        yield chunk
