"""The store interface that the use cases talk to, and the blob sources they push.

Two adapters implement :class:`Store`: ``registry.repository.RegistryStore`` (the OCI
distribution API) and ``layout.LayoutStore`` (a folder holding an OCI image layout). A store
is bound to one OCI repository, that is, to one Python project.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from setuptools_ghcr.core.oci import MAX_MANIFEST_SIZE, Descriptor, Digest

__all__ = [
    "BlobSource",
    "BytesBlob",
    "FileBlob",
    "ProgressCallback",
    "ProgressFactory",
    "RawManifest",
    "Store",
    "VersionDeleter",
]

#: Called with the number of bytes just transferred (not a running total).
ProgressCallback = Callable[[int], None]
#: Called once a transfer starts, with a name and the total size; returns its callback.
ProgressFactory = Callable[[str, int], ProgressCallback]


class BlobSource(Protocol):
    """Content to push: its descriptor, and a way to (re)open it from the start."""

    @property
    def descriptor(self) -> Descriptor: ...

    def open(self) -> BinaryIO:
        """A fresh binary stream positioned at the first byte; retries reopen it."""
        ...


@dataclass(frozen=True)
class FileBlob:
    """A blob backed by a file on disk, whose digest and size are already known."""

    path: Path
    descriptor: Descriptor

    def open(self) -> BinaryIO:
        return self.path.open("rb")


@dataclass(frozen=True)
class BytesBlob:
    """A small blob held in memory (config, metadata, an empty JSON)."""

    data: bytes
    media_type: str

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, Digest.of_bytes(self.data), len(self.data))

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class RawManifest:
    """A manifest or index as stored: exact bytes, media type and digest."""

    raw: bytes
    media_type: str
    digest: Digest


class Store(Protocol):
    """One OCI repository, wherever it lives."""

    @property
    def location(self) -> str:
        """Where this store is, for messages: ``host/namespace/repo`` or ``oci:PATH``."""
        ...

    @property
    def repository(self) -> str:
        """The OCI repository name (for a layout: its folder name)."""
        ...

    def blob_exists(self, digest: Digest) -> bool:
        """Whether the repository already holds the blob."""
        ...

    def push_blob(self, blob: BlobSource, progress: ProgressCallback | None = None) -> None:
        """Store a blob, streaming it; the store verifies nothing, the caller's digest rules."""
        ...

    def push_stream(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None = None,
        before_commit: Callable[[Digest], None] | None = None,
    ) -> Digest:
        """Store a blob whose digest is not known yet, hashing it on the way; returns it.

        Each stream ``open_source`` returns (a retry opens another) must hold ``size`` bytes.
        ``before_commit`` runs once every byte is stored and hashed but before the blob
        becomes visible: if it raises, the upload is abandoned and nothing is stored. The
        digest returned is the one of the bytes stored (a registry checks it on commit).
        """
        ...

    def mount_blob(self, digest: Digest, source_repository: str) -> bool:
        """Link a blob from another repository of the same store; False when not possible."""
        ...

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        """A small blob, verified against the descriptor, refused beyond ``limit`` bytes."""
        ...

    def download_blob(
        self, descriptor: Descriptor, destination: Path, progress: ProgressCallback | None = None
    ) -> None:
        """Stream a blob into ``destination``: verified, then renamed into place atomically."""
        ...

    def iter_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        """Stream a blob's chunks; the final chunk only comes once the whole blob verified."""
        ...

    def put_manifest(self, raw: bytes, media_type: str, reference: str | None = None) -> Digest:
        """Store a manifest or index under a tag (or only by digest when ``reference`` is None)."""
        ...

    def get_manifest(self, reference: str) -> RawManifest | None:
        """A manifest or index by tag or digest (verified when by digest); None when absent."""
        ...

    def list_tags(self) -> list[str]:
        """Every tag of the repository (all pages); empty when the repository does not exist."""
        ...

    def lock(self) -> AbstractContextManager[bool]:
        """Hold the repository's writer lock around a read-modify-write of a tag.

        Yields True when, while it is held, no other writer can change the repository's tags
        (a layout folder's lock), False when the store has no lock to take (a registry): the
        caller then re-reads what it wrote to catch a concurrent overwrite.
        """
        ...


class VersionDeleter(Protocol):
    """Deletes a version's image index and what it holds, where the target allows it.

    A registry deletes through its API (``DELETE`` of each manifest), a layout removes the
    entries and blobs itself, ghcr.io goes through GitHub's REST API.
    """

    def delete_version(self, index: RawManifest) -> None:
        """Delete ``index``, every tag that names it, and the file manifests it lists (their
        blobs too, where the store collects its own garbage). Raises when the target
        refuses, saying why."""
        ...
