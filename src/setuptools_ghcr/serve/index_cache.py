"""Version indexes kept on disk, shared by every worker and every restart of the service.

Two kinds of entry under the cache root (``$SETUPTOOLS_GHCR_CACHE_DIR``, else the user's
cache folder):

- ``blobs/sha256/<hex>``: a version's image index (and a PyOCI file's manifest), addressed by
  its digest, as the download cache keeps blobs: written whole, hashed again on every read,
  so a damaged entry is dropped and read from the registry again.
- ``serve/tags/<hash of host/repository>.json``: what the service knows of a repository's
  tags: for each, the digest of its index, when it was last read or checked, when it last
  changed, and the file entries read from that index (so that a restarted service builds a
  page of thousands of versions without parsing thousands of indexes). It is a hint,
  replaced whole on each change (last writer wins): a tag the registry no longer lists is
  gone from the next page whatever the map says, and a tag is read again once its check is
  due (see ``serve.projects``). A map that cannot be read whole is ignored.

Nothing here is a credential or a page: a caller is shown what these entries hold only after
the registry accepted a request of its own for that repository (see ``serve.access``).
A cache that cannot be written (a read-only or full disk) is used as far as it can be read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.oci import MAX_MANIFEST_SIZE, Descriptor, Digest
from setuptools_ghcr.core.wire_format import FileEntry, tag_to_version
from setuptools_ghcr.errors import GhcrError
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.files import write_atomically

__all__ = ["IndexCache", "TagRecord"]

logger = logging.getLogger(__name__)

#: The tag map's format; another value is ignored (read as an empty map).
FORMAT = 2
#: A tag map bigger than this is not read (a repository with ~100,000 tags fits).
MAX_TAG_MAP = 32 << 20


@dataclass(frozen=True)
class TagRecord:
    """What was known of a tag: its index's digest, when it was last read or checked, and
    when the version last changed (wall-clock seconds)."""

    digest: Digest
    checked: float
    changed: float
    #: The files the index lists (None: not kept; read the index).
    files: tuple[FileEntry, ...] | None = None


class IndexCache:
    """Indexes by digest and tag maps by repository, in one folder on disk."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = BlobCache(self.root)
        self._tags = self.root / "serve" / "tags"
        self._warned = False

    def read(self, digest: Digest) -> bytes | None:
        """An index (or manifest) by digest, verified; None when absent or damaged."""
        try:
            return self._blobs.read_small(digest, MAX_MANIFEST_SIZE)
        except (OSError, GhcrError) as error:
            self._trouble("read", error)
            return None

    def write(self, raw: bytes) -> None:
        """Keep an index (or manifest) read from a registry."""
        if self._blobs.has(Digest.of_bytes(raw)):
            return
        try:
            self._blobs.store_small(raw)
        except OSError as error:
            self._trouble("write", error)

    def load_tags(self, location: str) -> dict[str, TagRecord]:
        """The tag map of the repository at ``location`` (``host/repository``); may be empty."""
        path = self._tag_path(location)
        try:
            with path.open("rb") as source:
                data = source.read(MAX_TAG_MAP + 1)
        except FileNotFoundError:
            return {}
        except OSError as error:
            self._trouble("read", error)
            return {}
        if len(data) > MAX_TAG_MAP:
            return {}
        try:
            return _parse_tag_map(json.loads(data), location)
        except (ValueError, TypeError, KeyError, GhcrError):
            logger.warning("ignoring a damaged tag map in the cache: %s", path.name)
            return {}

    def save_tags(self, location: str, records: Mapping[str, TagRecord]) -> None:
        """Replace the tag map of ``location`` (atomically; other workers may read it now)."""
        document = {
            "format": FORMAT,
            "location": location,
            "tags": {
                tag: [
                    str(record.digest),
                    round(record.checked, 3),
                    round(record.changed, 3),
                    None if record.files is None else [_entry_json(e) for e in record.files],
                ]
                for tag, record in records.items()
            },
        }
        path = self._tag_path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = json.dumps(document, separators=(",", ":")).encode()
            write_atomically(path, data, durable=False)
        except OSError as error:
            self._trouble("write", error)

    def _tag_path(self, location: str) -> Path:
        name = hashlib.sha256(location.encode("utf-8")).hexdigest()[:40]
        return self._tags / f"{name}.json"

    def _trouble(self, what: str, error: Exception) -> None:
        # Said once: a cache that cannot be used only costs registry requests.
        if not self._warned:
            self._warned = True
            logger.warning("cannot %s the index cache in %s: %s", what, self.root, error)


def _entry_json(entry: FileEntry) -> list[Any]:
    """A file entry as the tag map keeps it: what a page and a download need, no more."""
    metadata = entry.metadata
    return [
        entry.filename,
        entry.manifest.media_type,
        str(entry.manifest.digest),
        entry.manifest.size,
        None if entry.sha256 is None else entry.sha256.hex,
        entry.size,
        entry.requires_python,
        None if metadata is None else [metadata.media_type, str(metadata.digest), metadata.size],
        entry.upload_time,
    ]


def _entry_of(value: Sequence[Any], project: NormalizedName, version: Version) -> FileEntry:
    filename, media_type, digest, size, sha256, file_size, requires, metadata, uploaded = value
    meta = None
    if metadata is not None:
        meta = Descriptor(str(metadata[0]), Digest.parse(str(metadata[1])), int(metadata[2]))
    return FileEntry(
        filename=str(filename),
        project=project,
        version=version,
        manifest=Descriptor(str(media_type), Digest.parse(str(digest)), int(size)),
        sha256=None if sha256 is None else Digest.sha256(str(sha256)),
        size=None if file_size is None else int(file_size),
        requires_python=None if requires is None else str(requires),
        metadata=meta,
        upload_time=None if uploaded is None else str(uploaded),
    )


def _parse_tag_map(document: object, location: str) -> dict[str, TagRecord]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return {}
    if document.get("location") != location:
        return {}  # a hash collision, or a file copied from elsewhere
    tags = document["tags"]
    if not isinstance(tags, dict):
        raise ValueError("tags is not an object")
    project = canonicalize_name(location.rsplit("/", 1)[-1])
    records: dict[str, TagRecord] = {}
    for tag, value in tags.items():
        digest, checked, changed, files = value
        entries = None
        version = tag_to_version(str(tag))
        if files is not None and version is not None:
            entries = tuple(_entry_of(item, project, version) for item in files)
        records[str(tag)] = TagRecord(
            Digest.parse(str(digest)), float(checked), float(changed), entries
        )
    return records
