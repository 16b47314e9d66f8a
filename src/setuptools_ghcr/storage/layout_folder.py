"""The folder of an OCI image layout on disk: its lock, its blob folders and ``index.json``.

:class:`~setuptools_ghcr.storage.layout.LayoutStore` speaks the store interface on top of it.
The folder holds ``oci-layout``, ``index.json`` (an image index whose entries carry their tag
in the annotation ``org.opencontainers.image.ref.name``) and ``blobs/<algorithm>/<hex>``.

``index.json`` is rewritten under an exclusive ``flock`` on ``.lock`` beside it, so concurrent
writers (threads or processes) never lose each other's tags. Blob folders are opened one step
at a time relative to folder descriptors with ``O_NOFOLLOW``, so a symbolic link planted in a
layout never leads outside it.

POSIX only (``fcntl.flock``, ``dir_fd``, ``O_NOFOLLOW``), like the tools that share these
folders; elsewhere :func:`require_layout_support` says so in one line.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    Digest,
    Index,
    canonical_json,
    parse_json_document,
)
from setuptools_ghcr.errors import (
    ConfigError,
    DamagedLayoutError,
    NotFoundError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.files import (
    CLOEXEC,
    DIRECTORY_FLAGS,
    FILE_MODE,
    NOFOLLOW,
    is_regular,
    is_temp_name,
    open_regular,
    write_atomically,
)

try:
    import fcntl
except ImportError:  # Windows: no flock, so no oci: folders (require_layout_support says so)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LAYOUT_VERSION", "REF_NAME", "LayoutFolder", "require_layout_support"]

#: The annotation that names a tag in ``index.json``.
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
# A dotfile: the spec allows other files in a layout, and skopeo ignores it.
_LOCK_FILE = ".lock"
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW_FOLDER_FLAGS = DIRECTORY_FLAGS | NOFOLLOW


def require_layout_support() -> None:
    """:class:`ConfigError` unless this platform has what a layout folder needs."""
    missing = [
        need
        for need, present in (
            ("file locks (fcntl)", fcntl is not None),
            ("no-follow opens (O_NOFOLLOW, O_DIRECTORY)", bool(NOFOLLOW and _DIRECTORY)),
            ("folder-relative opens (dir_fd)", os.open in os.supports_dir_fd),
        )
        if not present
    ]
    if missing:
        raise ConfigError(
            f"oci: folders need POSIX {' and '.join(missing)}, which this platform "
            f"({sys.platform}) lacks; use a registry target (HOST/NAMESPACE) here"
        )


class _LockDepth(threading.local):
    """How deeply the current thread holds a folder's lock (it is re-entrant per thread)."""

    depth = 0


class LayoutFolder:
    """One layout folder: created on the first write, read as empty until then."""

    def __init__(self, path: Path) -> None:
        require_layout_support()
        self.path = Path(path)
        self.location = f"oci:{self.path}"
        self._held = _LockDepth()

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
        self.path.mkdir(parents=True, exist_ok=True)
        # Checked before the lock file is made (so a foreign folder is left untouched) and
        # again under the lock.
        self._refuse_foreign_folder()
        fd = os.open(self.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC, FILE_MODE)
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

    def what(self, digest: Digest) -> str:
        return f"blob {digest} in {self.location}"

    def has_blob(self, digest: Digest) -> bool:
        with self.blob_folder(digest.algorithm) as folder:
            return folder is not None and is_regular(digest.hex, dir_fd=folder)

    @contextmanager
    def blob_folder(self, algorithm: str) -> Iterator[int | None]:
        """A descriptor of ``blobs/<algorithm>`` that refuses links; None when it is absent."""
        fd = _open_folder(self.path, None, self.location, follow=True)
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
    def writable_blob_folder(self, algorithm: str) -> Iterator[int]:
        """``blobs/<algorithm>``, created step by step so no link can redirect the creation."""
        fd = os.open(self.path, DIRECTORY_FLAGS)
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

    def open_blob(self, digest: Digest) -> BinaryIO | None:
        """The blob's file, opened without following links; None when it is absent."""
        with self.blob_folder(digest.algorithm) as folder:
            if folder is None:
                return None
            return open_regular(digest.hex, self.what(digest), dir_fd=folder)

    # -- index.json ----------------------------------------------------------------------------

    def load_index(self) -> Index | None:
        document = self._read_index_document()
        return None if document is None else document[1]

    def _read_index_document(self) -> tuple[dict[str, Any], Index] | None:
        """``index.json`` as parsed JSON (to keep fields we do not model) and as an Index."""
        raw = self._read_small(INDEX_FILE, MAX_MANIFEST_SIZE)
        if raw is None:
            return None
        what = f"{self.location}/{INDEX_FILE}"
        return parse_json_document(raw, what), Index.from_bytes(raw, what)

    def set_tag(self, tag: str, descriptor: Descriptor) -> None:
        """Point ``tag`` at ``descriptor`` in ``index.json``, in the tag's place if it had one."""
        with self.lock():
            self._create_layout()
            loaded = self._read_index_document()
            if loaded is None:
                raise NotFoundError(f"{self.location}/{INDEX_FILE} vanished while writing")
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
            self._write_file(INDEX_FILE, canonical_json(document))

    def drop_entries(self, digest: Digest) -> list[str]:
        """Remove every ``index.json`` entry naming ``digest``; returns their tags."""
        with self.lock():
            loaded = self._read_index_document()
            if loaded is None:
                return []
            document, _ = loaded
            kept: list[Any] = []
            dropped: list[str] = []
            for entry in document["manifests"]:
                if isinstance(entry, dict) and entry.get("digest") == str(digest):
                    dropped.append(_ref_name(entry) or "")
                    continue
                kept.append(entry)
            if dropped:
                document["manifests"] = kept
                self._write_file(INDEX_FILE, canonical_json(document))
            return [tag for tag in dropped if tag]

    def remove_blob(self, digest: Digest) -> None:
        """Delete a blob (nothing when absent); the caller holds the lock and knows that
        nothing still names it."""
        with self.blob_folder(digest.algorithm) as folder:
            if folder is not None and is_regular(digest.hex, dir_fd=folder):
                os.unlink(digest.hex, dir_fd=folder)

    # -- the layout's own files ----------------------------------------------------------------

    def ensure_layout(self) -> None:
        """Make the folder a layout (``oci-layout`` and an empty ``index.json``) if it is not."""
        if not self._layout_ready():
            with self.lock():
                self._create_layout()

    def _layout_ready(self) -> bool:
        """Whether ``oci-layout`` (of a version we write) and ``index.json`` both exist."""
        raw = self._read_small(LAYOUT_FILE, 4096)
        if raw is None:
            return False
        what = f"{self.location}/{LAYOUT_FILE}"
        version = parse_json_document(raw, what).get("imageLayoutVersion")
        if version != LAYOUT_VERSION:
            raise DamagedLayoutError(
                f"{what} says imageLayoutVersion {version!r}; only {LAYOUT_VERSION} is supported"
            )
        return (self.path / INDEX_FILE).is_file()

    def _create_layout(self) -> None:
        """Write ``oci-layout`` and an empty ``index.json`` where missing (lock held)."""
        if self._layout_ready():
            return
        if not (self.path / LAYOUT_FILE).exists():
            self._refuse_foreign_folder()
            self._write_file(LAYOUT_FILE, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        if not (self.path / INDEX_FILE).exists():
            empty = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            self._write_file(INDEX_FILE, canonical_json(empty))

    def _refuse_foreign_folder(self) -> None:
        """Refuse to write into an existing folder that holds other things than a layout."""
        # One listing decides: another writer may create the layout while we look.
        names = os.listdir(self.path)
        if LAYOUT_FILE in names:
            return
        others = sorted(name for name in names if name != _LOCK_FILE and not is_temp_name(name))
        if others:
            raise DamagedLayoutError(
                f"{self.path} holds files ({others[0]}, ...) but no {LAYOUT_FILE}; "
                "refusing to turn it into an OCI image layout"
            )

    def _write_file(self, name: str, data: bytes) -> None:
        """Replace a small file of the layout atomically and durably."""
        write_atomically(self.path / name, data)

    def _read_small(self, name: str, limit: int) -> bytes | None:
        """A small file of the layout (not a link), up to ``limit`` + 1 bytes; None if absent."""
        path = self.path / name
        source = open_regular(path, str(path))
        if source is None:
            return None
        with source:
            return source.read(limit + 1)


def _ref_name(entry: Any) -> str | None:
    annotations = entry.get("annotations") if isinstance(entry, dict) else None
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def _open_folder(
    name: str | Path, dir_fd: int | None, what: str, follow: bool = False
) -> int | None:
    """Open a folder for ``dir_fd`` use; None when absent; refuses a link unless ``follow``."""
    flags = DIRECTORY_FLAGS if follow else _NOFOLLOW_FOLDER_FLAGS
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
