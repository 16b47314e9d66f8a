"""The store interface over an OCI image layout folder (``oci:PATH``), the embedded default.

A layout is one folder, as image-spec's ``image-layout.md`` describes it (see
:mod:`~setuptools_ghcr.storage.layout_folder`, which handles the folder, its lock and
``index.json``). skopeo and oras read it as ``oci:PATH:TAG``. A target ``oci:ROOT`` holds one
layout per project, at ``ROOT/<repository name>/``.

Writers never leave a partial file where a reader could see it: content goes to a temporary
file in its final folder, is verified, flushed to disk and renamed into place
(:class:`~setuptools_ghcr.storage.files.PendingFile`). Tags are written under the folder's
lock, so concurrent writers never lose each other's tags.

POSIX only, like the tools that share these folders: elsewhere opening one says so in one line.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import BinaryIO

from setuptools_ghcr.core.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    DigestWriter,
    Index,
    Manifest,
    is_valid_repository,
    is_valid_tag,
    media_type_of,
    parse_json_document,
    verified_chunks,
)
from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
)
from setuptools_ghcr.storage.files import (
    CHUNK_SIZE,
    PendingFile,
    copy_hashing,
    copy_verified,
)
from setuptools_ghcr.storage.layout_folder import LAYOUT_VERSION, REF_NAME, LayoutFolder
from setuptools_ghcr.storage.store import BlobSource, BytesBlob, ProgressCallback, RawManifest

__all__ = ["LAYOUT_VERSION", "REF_NAME", "LayoutStore"]

_DOCUMENTS = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

_LOG = logging.getLogger(__name__)


class LayoutStore:
    """One OCI image layout folder, behind the :class:`~setuptools_ghcr.storage.store.Store` port.

    The folder is created on the first write; until then it reads as an empty repository.

    :meth:`lock` is the exclusive, cross-process lock that guards ``index.json``. Hold it
    around a read-modify-write of a tag, e.g. merging a version's index::

        with store.lock():
            current = store.get_manifest(tag)
            store.put_manifest(merged(current), OCI_INDEX, tag)

    It is re-entrant within a thread for the same ``LayoutStore`` instance, so
    :meth:`put_manifest` may be called while holding it. Do not hold it on one instance while
    writing through another instance of the same folder in the same thread: that deadlocks.
    """

    def __init__(self, path: Path, repository: str) -> None:
        if not is_valid_repository(repository):
            raise InvalidReferenceError(f"{repository!r} is not a valid OCI repository name")
        self._folder = LayoutFolder(path)
        self._repository = repository
        #: Blobs found (or written) intact, by the identity of their file when they were.
        self._intact: dict[Digest, tuple[int, int, int, int]] = {}

    @classmethod
    def for_project(cls, target: LayoutTarget, project: str) -> LayoutStore:
        """The layout of ``project`` under an ``oci:ROOT`` target."""
        return cls(target.layout_path(project), target.repository(project))

    @property
    def path(self) -> Path:
        return self._folder.path

    @property
    def location(self) -> str:
        return self._folder.location

    @property
    def repository(self) -> str:
        return self._repository

    def __repr__(self) -> str:
        return f"LayoutStore({self.location!r})"

    @contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold the layout's exclusive lock (threads and processes); creates the folder.

        Yields True: while it is held, no other writer changes ``index.json``.
        """
        with self._folder.lock():
            yield True

    # -- blobs ---------------------------------------------------------------------------------

    def blob_exists(self, digest: Digest) -> bool:
        """Whether the layout holds the blob intact: a damaged one counts as absent (so that
        pushing its content again replaces it). Each file is hashed once per store."""
        if not self._folder.has_blob(digest):
            return False
        source = self._folder.open_blob(digest)
        if source is None:
            return False
        with source:
            identity = _identity(os.fstat(source.fileno()))
            if self._intact.get(digest) == identity:
                return True
            writer = digest.hasher()
            copy_hashing(source, writer)
        if writer.digest() != digest:
            _LOG.warning(
                "%s is damaged; pushing its content again replaces it", self._folder.what(digest)
            )
            return False
        self._intact[digest] = identity
        return True

    def _remember(self, digest: Digest, folder: int) -> None:
        """Note a blob just written and verified, so that it is not hashed again."""
        with suppress(OSError):
            status = os.stat(digest.hex, dir_fd=folder, follow_symlinks=False)
            self._intact[digest] = _identity(status)

    def push_blob(self, blob: BlobSource, progress: ProgressCallback | None = None) -> None:
        """Stream a blob in, verified against its descriptor; a blob already there is kept."""
        descriptor = blob.descriptor
        self._folder.ensure_layout()
        with self._folder.writable_blob_folder(descriptor.digest.algorithm) as folder:
            if self.blob_exists(descriptor.digest):
                return
            with blob.open() as source:
                self._ingest(source, descriptor, folder, progress)

    def push_stream(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None = None,
        before_commit: Callable[[Digest], None] | None = None,
    ) -> Digest:
        """Copy a blob in under a temporary name while hashing it, then rename it to its digest."""
        what = f"a blob of {size} bytes for {self.location}"
        self._folder.ensure_layout()
        with (
            self._folder.writable_blob_folder("sha256") as folder,
            PendingFile("upload", dir_fd=folder) as pending,
        ):
            writer = DigestWriter()
            with pending.writing() as out, open_source() as source:
                copy_hashing(source, writer, out, limit=size, what=what, progress=progress)
            if writer.size != size:
                raise DigestMismatchError(f"{what}: the source ended after {writer.size} bytes")
            digest = writer.digest()
            if before_commit is not None:
                before_commit(digest)
            # When the same bytes are there already, the temporary file just goes.
            if not self.blob_exists(digest):
                pending.commit(digest.hex)
                self._remember(digest, folder)
        return digest

    def mount_blob(self, digest: Digest, source_repository: str) -> bool:
        """Take a blob from the sibling layout ``../<source_repository>`` (same ``oci:`` root).

        The blob is hard-linked when the file system allows it, else copied, and verified
        either way. False when the sibling lacks the blob or its copy fails verification (the
        caller then pushes its own bytes), or when ``source_repository`` has a ``/``: layouts
        under a root are one folder deep.
        """
        if not is_valid_repository(source_repository):
            raise InvalidReferenceError(f"{source_repository!r} is not a valid OCI repository")
        if self.blob_exists(digest):
            return True
        if source_repository == self._repository or "/" in source_repository:
            return False
        source = LayoutFolder(self.path.parent / source_repository)
        if not source.has_blob(digest):
            return False
        self._folder.ensure_layout()
        with (
            source.blob_folder(digest.algorithm) as source_folder,
            self._folder.writable_blob_folder(digest.algorithm) as folder,
        ):
            if source_folder is None:
                return False
            try:
                return self._link_verified(source_folder, folder, digest)
            except OSError as error:
                if error.errno == errno.ENOENT:
                    return False
                # Another file system, or links not allowed: copy instead.
                _LOG.debug("hard link from %s failed (%s); copying", source.location, error)
            return self._copy_from(source, folder, digest)

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        what = self._folder.what(descriptor.digest)
        if descriptor.size > limit:
            raise TooLargeError(f"{what} is {descriptor.size} bytes, over the {limit} accepted")
        with self._open_blob(descriptor.digest) as source:
            data = source.read(descriptor.size + 1)
        writer = descriptor.digest.hasher()
        writer.update(data)
        writer.verify(descriptor.digest, descriptor.size, what)
        return data

    def download_blob(
        self, descriptor: Descriptor, destination: Path, progress: ProgressCallback | None = None
    ) -> None:
        what = self._folder.what(descriptor.digest)
        # A download is a copy: not flushed to disk (see storage.files).
        with (
            self._open_blob(descriptor.digest) as source,
            PendingFile(destination, durable=False) as pending,
        ):
            with pending.writing() as out:
                copy_verified(
                    source, out, descriptor.digest, descriptor.size, what=what, progress=progress
                )
            pending.commit()

    def iter_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        what = self._folder.what(descriptor.digest)
        with self._open_blob(descriptor.digest) as source:
            chunks = iter(partial(source.read, CHUNK_SIZE), b"")
            yield from verified_chunks(chunks, descriptor.digest, descriptor.size, what)

    # -- manifests and tags --------------------------------------------------------------------

    def put_manifest(self, raw: bytes, media_type: str, reference: str | None = None) -> Digest:
        """Store a manifest or index; with a tag, point that tag at it in ``index.json``.

        Like a registry, the layout refuses a manifest whose blobs (or an index whose
        manifests) it does not hold yet, so that what it holds can always be copied out whole.
        """
        digest = Digest.of_bytes(raw)
        tag = _tag_of(reference, digest)
        artifact_type = self._check_manifest(raw, media_type)
        self.push_blob(BytesBlob(raw, media_type))
        if tag is not None:
            self._folder.set_tag(
                tag,
                Descriptor(
                    media_type,
                    digest,
                    len(raw),
                    annotations={REF_NAME: tag},
                    artifact_type=artifact_type,
                ),
            )
        return digest

    def get_manifest(self, reference: str) -> RawManifest | None:
        if ":" in reference:
            return self._manifest_by_digest(Digest.parse(reference))
        if not is_valid_tag(reference):
            raise InvalidReferenceError(f"{reference!r} is not a valid tag")
        index = self._folder.load_index()
        descriptor = None
        for entry in index.manifests if index else ():
            if entry.annotations.get(REF_NAME) == reference:
                descriptor = entry  # the last one wins, should a foreign tool repeat a name
        if descriptor is None:
            return None
        if descriptor.size > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"tag {reference} in {self.location} names a document of {descriptor.size} "
                f"bytes, over the {MAX_MANIFEST_SIZE} accepted"
            )
        try:
            raw = self.read_blob(descriptor)
        except NotFoundError as error:
            raise NotFoundError(
                f"tag {reference} in {self.location} names {descriptor.digest}, "
                "which is missing from blobs/; the layout is damaged"
            ) from error
        return RawManifest(raw, descriptor.media_type, descriptor.digest)

    def list_tags(self) -> list[str]:
        index = self._folder.load_index()
        if index is None:
            return []
        names = {entry.annotations.get(REF_NAME, "") for entry in index.manifests}
        # ref.name may also hold a full reference; only plain tags are ours to list.
        return sorted(name for name in names if is_valid_tag(name))

    def delete_version(self, index: RawManifest) -> None:
        """Delete a version's index, every tag naming it, its manifests, and the blobs that
        nothing else in the layout names any more (a layout has no garbage collector)."""
        top = Descriptor(index.media_type, index.digest, len(index.raw))
        with self.lock():
            self._folder.drop_entries(index.digest)
            doomed = self._reachable([top])
            for digest in doomed - self._reachable(self._entries()):
                self._folder.remove_blob(digest)

    def _entries(self) -> list[Descriptor]:
        index = self._folder.load_index()
        return list(index.manifests) if index else []

    def _named_by(self, descriptor: Descriptor) -> list[Descriptor]:
        """What a manifest or an index names (nothing for other blobs, or a missing one)."""
        if descriptor.media_type not in _DOCUMENTS or descriptor.size > MAX_MANIFEST_SIZE:
            return []
        try:
            raw = self.read_blob(descriptor)
        except NotFoundError:
            return []
        if descriptor.media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            return list(Index.from_bytes(raw).manifests)
        manifest = Manifest.from_bytes(raw)
        return [manifest.config, *manifest.layers]

    def _reachable(self, roots: Sequence[Descriptor]) -> set[Digest]:
        """Every blob ``roots`` lead to, themselves included."""
        pending = list(roots)
        seen: set[Digest] = set()
        while pending:
            descriptor = pending.pop()
            if descriptor.digest not in seen:
                seen.add(descriptor.digest)
                pending.extend(self._named_by(descriptor))
        return seen

    # -- internals -----------------------------------------------------------------------------

    def _open_blob(self, digest: Digest) -> BinaryIO:
        """The blob's file, opened without following links; NotFoundError when absent."""
        source = self._folder.open_blob(digest)
        if source is None:
            raise NotFoundError(f"{self._folder.what(digest)} is missing")
        return source

    def _ingest(
        self,
        source: BinaryIO,
        descriptor: Descriptor,
        folder: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Copy ``source`` into the blob folder under a temporary name, verify, rename."""
        digest = descriptor.digest
        with PendingFile(digest.hex, dir_fd=folder) as pending:
            with pending.writing() as out:
                what = self._folder.what(digest)
                copy_verified(source, out, digest, descriptor.size, what=what, progress=progress)
            pending.commit()
        self._remember(digest, folder)

    def _link_verified(self, source_folder: int, folder: int, digest: Digest) -> bool:
        """Hard-link a sibling's blob under a temporary name, hash it, rename it into place."""
        with PendingFile(digest.hex, dir_fd=folder) as pending:
            pending.link_from(digest.hex, src_dir_fd=source_folder)
            with pending.open_linked(self._folder.what(digest)) as linked:
                writer = digest.hasher()
                copy_hashing(linked, writer)
            if writer.digest() != digest:
                _LOG.warning("not mounting %s: the sibling's copy is damaged", digest)
                return False
            pending.commit()
        return True

    def _copy_from(self, source: LayoutFolder, folder: int, digest: Digest) -> bool:
        """Copy a sibling's blob in, verified; False when it is gone or damaged."""
        blob = source.open_blob(digest)
        if blob is None:
            return False
        with blob:
            size = os.fstat(blob.fileno()).st_size
            try:
                self._ingest(blob, Descriptor("application/octet-stream", digest, size), folder)
            except DigestMismatchError as error:
                _LOG.warning("not mounting from %s: %s", source.location, error)
                return False
        return True

    def _check_manifest(self, raw: bytes, media_type: str) -> str | None:
        """Validate a manifest before storing it; returns its ``artifactType``."""
        if len(raw) > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"manifest of {len(raw)} bytes is over the {MAX_MANIFEST_SIZE} registries accept"
            )
        declared = media_type_of(raw)
        if declared is not None and declared != media_type:
            raise MalformedDocumentError(
                f"manifest declares mediaType {declared!r} but is stored as {media_type!r}"
            )
        document: Manifest | Index
        if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST):
            document = Index.from_bytes(raw)
            required = [entry.digest for entry in document.manifests]
        elif media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
            document = Manifest.from_bytes(raw)
            required = [document.config.digest, *(layer.digest for layer in document.layers)]
        else:
            raise MalformedDocumentError(f"unsupported manifest media type {media_type!r}")
        missing = [digest for digest in required if not self.blob_exists(digest)]
        if missing:
            raise NotFoundError(
                f"{self.location} lacks {len(missing)} blob(s) the manifest names "
                f"(first: {missing[0]}); store them before the manifest"
            )
        return document.artifact_type

    def _manifest_by_digest(self, digest: Digest) -> RawManifest | None:
        source = self._folder.open_blob(digest)
        if source is None:
            return None
        with source:
            size = os.fstat(source.fileno()).st_size
        if size > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"{self._folder.what(digest)} is {size} bytes, over the {MAX_MANIFEST_SIZE} "
                "accepted for a manifest"
            )
        raw = self.read_blob(Descriptor("application/octet-stream", digest, size))
        index = self._folder.load_index()
        for entry in index.manifests if index else ():
            if entry.digest == digest:
                return RawManifest(raw, entry.media_type, digest)
        media_type = media_type_of(raw) or _guess_media_type(raw)
        # A layer or config blob is not a manifest, as a registry would also say.
        return None if media_type is None else RawManifest(raw, media_type, digest)


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _tag_of(reference: str | None, digest: Digest) -> str | None:
    """The tag to write for ``put_manifest``; a digest reference must be the content's."""
    if reference is None:
        return None
    if ":" in reference:
        if Digest.parse(reference) != digest:
            raise DigestMismatchError(
                f"manifest hashes to {digest}, not to the reference {reference}"
            )
        return None
    if not is_valid_tag(reference):
        raise InvalidReferenceError(f"{reference!r} is not a valid tag")
    return reference


def _guess_media_type(raw: bytes) -> str | None:
    """The media type of a manifest that does not declare one (it is optional in OCI)."""
    try:
        value = parse_json_document(raw, "manifest")
    except MalformedDocumentError:
        return None
    if value.get("schemaVersion") != 2:
        return None
    if isinstance(value.get("manifests"), list):
        return OCI_INDEX
    if isinstance(value.get("layers"), list):
        return OCI_MANIFEST
    return None
