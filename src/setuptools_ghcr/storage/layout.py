"""The store interface over an OCI image layout folder (``oci:PATH``), the embedded default.

A layout is one folder, as image-spec's ``image-layout.md`` describes it: ``oci-layout``,
``index.json`` (an image index whose entries carry their tag in the annotation
``org.opencontainers.image.ref.name``) and ``blobs/<algorithm>/<hex>``. skopeo and oras read
it as ``oci:PATH:TAG``. A target ``oci:ROOT`` holds one layout per project, at
``ROOT/<repository name>/``.

Writers never leave a partial file where a reader could see it: content goes to a temporary
file in its final folder, is verified, flushed to disk and renamed into place. ``index.json``
is rewritten under an exclusive ``flock`` on ``.lock`` beside it, so concurrent writers
(threads or processes) never lose each other's tags. Blobs are opened relative to folder
descriptors with ``O_NOFOLLOW``, so a symbolic link planted in a layout never leads outside it.

POSIX only (``fcntl.flock`` and ``dir_fd``), like the tools that share these folders.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

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
    canonical_json,
    is_valid_repository,
    is_valid_tag,
    media_type_of,
    page_buffer,
    parse_json_document,
    verified_chunks,
)
from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.errors import (
    DamagedLayoutError,
    DigestMismatchError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.store import BlobSource, BytesBlob, ProgressCallback, RawManifest

__all__ = ["LAYOUT_VERSION", "REF_NAME", "LayoutStore"]

#: The annotation that names a tag in ``index.json``.
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"

_LAYOUT_FILE = "oci-layout"
_INDEX_FILE = "index.json"
# A dotfile: the spec allows other files in a layout, and skopeo ignores it.
_LOCK_FILE = ".lock"
_CHUNK_SIZE = 1 << 20
_FILE_MODE = 0o666  # the umask narrows it, as for any file a user creates

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK keeps a planted FIFO from hanging the open; regular files ignore it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_LOG = logging.getLogger(__name__)


class _LockDepth(threading.local):
    """How deeply the current thread holds a store's lock (it is re-entrant per thread)."""

    depth = 0


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
        self._path = Path(path)
        self._repository = repository
        self._held = _LockDepth()

    @classmethod
    def for_project(cls, target: LayoutTarget, project: str) -> LayoutStore:
        """The layout of ``project`` under an ``oci:ROOT`` target."""
        return cls(target.layout_path(project), target.repository(project))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def location(self) -> str:
        return f"oci:{self._path}"

    @property
    def repository(self) -> str:
        return self._repository

    def __repr__(self) -> str:
        return f"LayoutStore({self.location!r})"

    # -- locking -------------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the layout's exclusive lock (threads and processes); creates the folder."""
        if self._held.depth:
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        self._path.mkdir(parents=True, exist_ok=True)
        # Checked before the lock file is made (so a foreign folder is left untouched) and
        # again under the lock.
        self._refuse_foreign_folder()
        fd = os.open(
            self._path / _LOCK_FILE,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            _FILE_MODE,
        )
        try:
            # flock belongs to the open file description, so two threads that each open the
            # file exclude each other just as two processes do.
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Checked under the lock: another writer's temporary files are gone by then.
            self._refuse_foreign_folder()
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0
        finally:
            os.close(fd)  # releases the lock

    # -- blobs ---------------------------------------------------------------------------------

    def blob_exists(self, digest: Digest) -> bool:
        with self._blob_folder(digest.algorithm) as folder:
            return folder is not None and _is_regular_at(folder, digest.hex)

    def push_blob(self, blob: BlobSource, progress: ProgressCallback | None = None) -> None:
        """Stream a blob in, verified against its descriptor; a blob already there is kept."""
        descriptor = blob.descriptor
        self._ensure_layout()
        with self._writable_blob_folder(descriptor.digest.algorithm) as folder:
            if _is_regular_at(folder, descriptor.digest.hex):
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
        self._ensure_layout()
        with self._writable_blob_folder("sha256") as folder:
            temp = f".tmp-{secrets.token_hex(8)}"
            fd = os.open(temp, _CREATE_FLAGS, _FILE_MODE, dir_fd=folder)
            try:
                writer = DigestWriter()
                with os.fdopen(fd, "wb") as out, open_source() as source:
                    _copy_hashing(source, out, writer, limit=size, what=what, progress=progress)
                if writer.size != size:
                    raise DigestMismatchError(f"{what}: the source ended after {writer.size} bytes")
                digest = writer.digest()
                if before_commit is not None:
                    before_commit(digest)
                if _is_regular_at(folder, digest.hex):
                    os.unlink(temp, dir_fd=folder)  # the same bytes are there already
                else:
                    os.replace(temp, digest.hex, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=folder)
                raise
            os.fsync(folder)
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
        source = LayoutStore(self._path.parent / source_repository, source_repository)
        if not source.blob_exists(digest):
            return False
        self._ensure_layout()
        with (
            source._blob_folder(digest.algorithm) as source_folder,
            self._writable_blob_folder(digest.algorithm) as folder,
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
            blob = source._open_blob(digest)
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

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        what = self._what(descriptor.digest)
        if descriptor.size > limit:
            raise TooLargeError(f"{what} is {descriptor.size} bytes, over the {limit} accepted")
        source = self._open_blob(descriptor.digest)
        if source is None:
            raise NotFoundError(f"{what} is missing")
        with source:
            data = source.read(descriptor.size + 1)
        writer = descriptor.digest.hasher()
        writer.update(data)
        writer.verify(descriptor.digest, descriptor.size, what)
        return data

    def download_blob(
        self, descriptor: Descriptor, destination: Path, progress: ProgressCallback | None = None
    ) -> None:
        what = self._what(descriptor.digest)
        source = self._open_blob(descriptor.digest)
        if source is None:
            raise NotFoundError(f"{what} is missing")
        with source:
            temp = destination.parent / f".{destination.name}.{secrets.token_hex(6)}.part"
            fd = os.open(temp, _CREATE_FLAGS, _FILE_MODE)
            try:
                with os.fdopen(fd, "wb") as out:
                    _copy_verified(source, out, descriptor, what, progress)
                os.replace(temp, destination)
            except BaseException:
                with suppress(FileNotFoundError):
                    temp.unlink()
                raise

    def iter_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        what = self._what(descriptor.digest)
        source = self._open_blob(descriptor.digest)
        if source is None:
            raise NotFoundError(f"{what} is missing")
        with source:
            chunks = iter(partial(source.read, _CHUNK_SIZE), b"")
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
            self._set_tag(
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
        index = self._load_index()
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
        index = self._load_index()
        if index is None:
            return []
        names = {entry.annotations.get(REF_NAME, "") for entry in index.manifests}
        # ref.name may also hold a full reference; only plain tags are ours to list.
        return sorted(name for name in names if is_valid_tag(name))

    # -- internals -----------------------------------------------------------------------------

    def _what(self, digest: Digest) -> str:
        return f"blob {digest} in {self.location}"

    @contextmanager
    def _blob_folder(self, algorithm: str) -> Iterator[int | None]:
        """A descriptor of ``blobs/<algorithm>`` that refuses links; None when it is absent."""
        fd = _open_folder(self._path, None, self.location, follow=True)
        try:
            for name in ("blobs", algorithm):
                if fd is None:
                    break
                child = _open_folder(name, fd, f"{self.location}/{name}")
                os.close(fd)
                fd = child
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    @contextmanager
    def _writable_blob_folder(self, algorithm: str) -> Iterator[int]:
        """``blobs/<algorithm>``, created step by step so no link can redirect the creation."""
        fd = os.open(self._path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in ("blobs", algorithm):
                with suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
                child = _open_folder(name, fd, f"{self.location}/{name}")
                if child is None:  # removed between mkdir and open: try once more
                    os.mkdir(name, 0o777, dir_fd=fd)
                    child = _open_folder(name, fd, f"{self.location}/{name}")
                    if child is None:
                        raise NotFoundError(f"{self.location}/{name} vanished while writing")
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _open_blob(self, digest: Digest) -> BinaryIO | None:
        """The blob's file, opened without following links; None when it is absent."""
        with self._blob_folder(digest.algorithm) as folder:
            if folder is None:
                return None
            try:
                fd = os.open(digest.hex, _READ_FLAGS, dir_fd=folder)
            except FileNotFoundError:
                return None
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise UnsafeResponseError(
                        f"{self._what(digest)} is a symbolic link; refusing to follow it"
                    ) from error
                raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafeResponseError(f"{self._what(digest)} is not a regular file; refusing it")
        return os.fdopen(fd, "rb")

    def _ingest(
        self,
        source: BinaryIO,
        descriptor: Descriptor,
        folder: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Copy ``source`` into the blob folder under a temporary name, verify, rename."""
        temp = f".tmp-{secrets.token_hex(8)}"
        fd = os.open(temp, _CREATE_FLAGS, _FILE_MODE, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy_verified(source, out, descriptor, self._what(descriptor.digest), progress)
            os.replace(temp, descriptor.digest.hex, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=folder)
            raise
        os.fsync(folder)

    def _link_verified(self, source_folder: int, folder: int, digest: Digest) -> bool:
        """Hard-link a sibling's blob under a temporary name, hash it, rename it into place."""
        temp = f".tmp-{secrets.token_hex(8)}"
        os.link(
            digest.hex, temp, src_dir_fd=source_folder, dst_dir_fd=folder, follow_symlinks=False
        )
        try:
            fd = os.open(temp, _READ_FLAGS, dir_fd=folder)
            with os.fdopen(fd, "rb") as linked:
                if not stat.S_ISREG(os.fstat(linked.fileno()).st_mode):
                    raise UnsafeResponseError(f"{self._what(digest)}: source is not a file")
                writer = digest.hasher()
                for chunk in iter(partial(linked.read, _CHUNK_SIZE), b""):
                    writer.update(chunk)
            if writer.digest() != digest:
                _LOG.warning("not mounting %s: the sibling's copy is damaged", digest)
                os.unlink(temp, dir_fd=folder)
                return False
            os.replace(temp, digest.hex, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=folder)
            raise
        os.fsync(folder)
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
        source = self._open_blob(digest)
        if source is None:
            return None
        with source:
            size = os.fstat(source.fileno()).st_size
        if size > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"{self._what(digest)} is {size} bytes, over the {MAX_MANIFEST_SIZE} accepted "
                "for a manifest"
            )
        raw = self.read_blob(Descriptor("application/octet-stream", digest, size))
        index = self._load_index()
        for entry in index.manifests if index else ():
            if entry.digest == digest:
                return RawManifest(raw, entry.media_type, digest)
        media_type = media_type_of(raw) or _guess_media_type(raw)
        # A layer or config blob is not a manifest, as a registry would also say.
        return None if media_type is None else RawManifest(raw, media_type, digest)

    def _load_index(self) -> Index | None:
        document = self._read_index_document()
        return None if document is None else document[1]

    def _read_index_document(self) -> tuple[dict[str, Any], Index] | None:
        """``index.json`` as parsed JSON (to keep fields we do not model) and as an Index."""
        raw = _read_small(self._path / _INDEX_FILE, MAX_MANIFEST_SIZE)
        if raw is None:
            return None
        what = f"{self.location}/{_INDEX_FILE}"
        return parse_json_document(raw, what), Index.from_bytes(raw, what)

    def _set_tag(self, tag: str, descriptor: Descriptor) -> None:
        with self.lock():
            self._create_layout()
            loaded = self._read_index_document()
            if loaded is None:
                raise NotFoundError(f"{self.location}/{_INDEX_FILE} vanished while writing")
            document, _ = loaded
            entries: list[Any] = []
            added = False
            for entry in document["manifests"]:
                if _ref_name(entry) == tag:
                    if not added:  # keep the tag's place in the list
                        entries.append(descriptor.to_json())
                        added = True
                    continue
                entries.append(entry)
            if not added:
                entries.append(descriptor.to_json())
            document["manifests"] = entries
            self._write_file(_INDEX_FILE, canonical_json(document))

    def _layout_ready(self) -> bool:
        """Whether ``oci-layout`` (of a version we write) and ``index.json`` both exist."""
        raw = _read_small(self._path / _LAYOUT_FILE, 4096)
        if raw is None:
            return False
        what = f"{self.location}/{_LAYOUT_FILE}"
        version = parse_json_document(raw, what).get("imageLayoutVersion")
        if version != LAYOUT_VERSION:
            raise DamagedLayoutError(
                f"{what} says imageLayoutVersion {version!r}; only {LAYOUT_VERSION} is supported"
            )
        return (self._path / _INDEX_FILE).is_file()

    def _ensure_layout(self) -> None:
        if not self._layout_ready():
            with self.lock():
                self._create_layout()

    def _create_layout(self) -> None:
        """Write ``oci-layout`` and an empty ``index.json`` where missing (lock held)."""
        if self._layout_ready():
            return
        if not (self._path / _LAYOUT_FILE).exists():
            self._refuse_foreign_folder()
            self._write_file(_LAYOUT_FILE, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        if not (self._path / _INDEX_FILE).exists():
            empty = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            self._write_file(_INDEX_FILE, canonical_json(empty))

    def _refuse_foreign_folder(self) -> None:
        """Refuse to write into an existing folder that holds other things than a layout."""
        # One listing decides: another writer may create the layout while we look.
        names = os.listdir(self._path)
        if _LAYOUT_FILE in names:
            return
        others = sorted(
            name
            for name in names
            if name != _LOCK_FILE and not (name.startswith(".") and name.endswith(".tmp"))
        )
        if others:
            raise DamagedLayoutError(
                f"{self._path} holds files ({others[0]}, ...) but no {_LAYOUT_FILE}; "
                "refusing to turn it into an OCI image layout"
            )

    def _write_file(self, name: str, data: bytes) -> None:
        """Replace a small file of the layout atomically and durably."""
        temp = self._path / f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(temp, _CREATE_FLAGS, _FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self._path / name)
        except BaseException:
            with suppress(FileNotFoundError):
                temp.unlink()
            raise
        folder = os.open(self._path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


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


def _ref_name(entry: Any) -> str | None:
    annotations = entry.get("annotations") if isinstance(entry, dict) else None
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


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


def _open_folder(
    name: str | Path, dir_fd: int | None, what: str, follow: bool = False
) -> int | None:
    """Open a folder for ``dir_fd`` use; None when absent; refuses a link unless ``follow``."""
    flags = _DIR_FLAGS & ~os.O_NOFOLLOW if follow else _DIR_FLAGS
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        # O_DIRECTORY|O_NOFOLLOW on a link fails with ELOOP or ENOTDIR depending on the system.
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeResponseError(
                f"{what} is a symbolic link or not a folder; refusing to use it"
            ) from error
        raise


def _is_regular_at(folder: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _read_small(path: Path, limit: int) -> bytes | None:
    """A small file of the layout (not a link), read up to ``limit`` + 1 bytes; None if absent."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeResponseError(
                f"{path} is a symbolic link; refusing to follow it"
            ) from error
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise UnsafeResponseError(f"{path} is not a regular file; refusing it")
        return file.read(limit + 1)


def _copy_verified(
    source: BinaryIO,
    out: BinaryIO,
    expected: Descriptor,
    what: str,
    progress: ProgressCallback | None,
) -> None:
    """Copy while hashing; fail as soon as there are too many bytes; flush to disk at the end."""
    writer = expected.digest.hasher()
    _copy_hashing(source, out, writer, limit=expected.size, what=what, progress=progress)
    writer.verify(expected.digest, expected.size, what)
    out.flush()
    os.fsync(out.fileno())


def _copy_hashing(
    source: BinaryIO,
    out: BinaryIO,
    writer: DigestWriter,
    *,
    limit: int,
    what: str,
    progress: ProgressCallback | None,
) -> None:
    """Copy ``source`` to its end through ``writer``; fail beyond ``limit`` bytes; fsync."""
    buffer = memoryview(page_buffer(_CHUNK_SIZE))
    readinto = getattr(source, "readinto", None)
    while True:
        if readinto is not None:
            count: int = readinto(buffer)
        else:  # a bare stream: same loop, one copy more
            data = source.read(_CHUNK_SIZE)
            count = len(data)
            buffer[:count] = data
        if not count:
            break
        chunk = buffer[:count]
        writer.update(chunk)
        if writer.size > limit:
            raise DigestMismatchError(f"{what}: more than the expected {limit} bytes")
        out.write(chunk)
        if progress is not None:
            progress(count)
    out.flush()
    os.fsync(out.fileno())
