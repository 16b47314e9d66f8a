"""One repository of a registry behind the ``Store`` interface.

:class:`RegistryStore` binds the client's verbs to one repository and adds what the store
contract promises on top of them: every blob read is verified against its digest as it
streams (the last chunk is held back until it matches), and a download lands in its
destination only once whole and verified, received, written and hashed on three threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from setuptools_ghcr.core.oci import MAX_MANIFEST_SIZE, Descriptor, Digest, Index, verified_chunks
from setuptools_ghcr.errors import DigestMismatchError, TooLargeError
from setuptools_ghcr.storage.files import PendingFile
from setuptools_ghcr.storage.registry.streams import Buffers, Worker
from setuptools_ghcr.storage.store import BlobSource, ProgressCallback, RawManifest

if TYPE_CHECKING:
    from setuptools_ghcr.storage.registry.client import RegistryClient

__all__ = ["RegistryStore"]


class RegistryStore:
    """One repository of a registry, behind the ``store.Store`` interface."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self._repository = repository

    @property
    def location(self) -> str:
        return self._client.location(self._repository)

    @property
    def repository(self) -> str:
        return self._repository

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Take no lock, and say so (False): a registry has none to take.

        The distribution API offers neither locks nor compare-and-swap on tags, so a writer
        that merges into a tag re-reads what landed to catch a concurrent overwrite.
        """
        yield False

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, digest: Digest) -> bool:
        return self._client.blob_exists(self._repository, digest)

    def mount_blob(self, digest: Digest, source_repository: str) -> bool:
        return self._client.mount_blob(self._repository, digest, source_repository)

    def push_blob(self, blob: BlobSource, progress: ProgressCallback | None = None) -> None:
        self._client.push_blob(self._repository, blob, progress)

    def push_stream(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None = None,
        before_commit: Callable[[Digest], None] | None = None,
    ) -> Digest:
        return self._client.push_stream(
            self._repository, open_source, size, progress, before_commit
        )

    def iter_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        what = f"blob {descriptor.digest.short} of {self.location}"
        return verified_chunks(
            self._client.blob_chunks(self._repository, descriptor, f"reading {what}"),
            descriptor.digest,
            descriptor.size,
            what,
        )

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        if descriptor.size > limit:
            raise TooLargeError(
                f"blob {descriptor.digest.short} of {self.location} is {descriptor.size} bytes, "
                f"over the {limit} accepted"
            )
        return b"".join(self.iter_blob(descriptor))

    def download_blob(
        self, descriptor: Descriptor, destination: Path, progress: ProgressCallback | None = None
    ) -> None:
        what = f"blob {descriptor.digest.short} of {self.location}"
        # A download is a copy: not flushed to disk (see storage.files).
        with PendingFile(destination, durable=False) as pending:
            with pending.writing() as out:
                # Receive here, write and hash on two more threads (see streams.Worker).
                buffers = Buffers()
                writer = descriptor.digest.hasher()
                hashing = Worker(writer.update, buffers.release)
                writing = Worker(out.write, hashing.submit)
                try:
                    received = 0
                    chunks = self._client.blob_chunks(
                        self._repository, descriptor, f"downloading {what}", buffers
                    )
                    for chunk in chunks:
                        writing.check()
                        received += len(chunk)
                        if received > descriptor.size:
                            raise DigestMismatchError(
                                f"{what}: more than the expected {descriptor.size} bytes"
                            )
                        writing.submit(chunk)
                        if progress is not None:
                            progress(len(chunk))
                finally:
                    # Both threads end whatever happened: a write that failed (a full disk)
                    # must not leave the hashing thread waiting for chunks forever.
                    try:
                        writing.finish()
                    finally:
                        hashing.finish()
                writer.verify(descriptor.digest, descriptor.size, what)
            pending.commit()

    # ------------------------------------------------------------------ manifests and tags

    def put_manifest(self, raw: bytes, media_type: str, reference: str | None = None) -> Digest:
        return self._client.put_manifest(self._repository, raw, media_type, reference)

    def get_manifest(self, reference: str) -> RawManifest | None:
        return self._client.get_manifest(self._repository, reference)

    def list_tags(self) -> list[str]:
        return self._client.list_tags(self._repository)

    def delete_version(self, index: RawManifest) -> None:
        """``DELETE`` the index (its tags go with it), then each file manifest it lists; the
        blobs stay until the registry's garbage collection."""
        children = Index.from_bytes(index.raw, f"index {index.digest.short}").manifests
        self._client.delete_manifest(self._repository, index.digest)
        for child in children:
            self._client.delete_manifest(self._repository, child.digest)
