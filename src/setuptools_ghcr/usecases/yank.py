"""Use case: yank a version (PEP 592), or take the yank back.

A yank is two annotations on the version's index (``wire_format.YANKED`` and its reason):
the files, their manifests and digests stay as they were, so a pin keeps getting the same
bytes, while resolvers and the index service leave the version out unless it is pinned
exactly. Other tags that named the version's index (``latest``) are moved to the new one,
so that they go on naming the same version.

Registries have no compare-and-swap: a publisher adding files to the version at the same
moment may write an index it built before the yank. So, as publishing does, the index is
read back after a pause and the yank written again when it is gone (a layout is locked
instead).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.oci import Digest, Index
from setuptools_ghcr.core.wire_format import (
    tag_to_version,
    version_to_tag,
    yank_state,
    yanked_index,
)
from setuptools_ghcr.errors import GhcrError, NotFoundError
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import read_index

__all__ = ["YankResult", "other_tags", "yank"]

#: Writes of the yank before giving up on a version whose index keeps changing.
ATTEMPTS = 6
#: The pause before a registry's index is read back (a concurrent merge lands meanwhile).
SETTLE = 0.5


@dataclass(frozen=True)
class YankResult:
    """A version's yank state after the command, and what changed."""

    project: NormalizedName
    version: Version
    reference: str
    #: The reason ("" for none) when the version is now yanked; None when it is not.
    yanked: str | None
    changed: bool
    moved_tags: tuple[str, ...]

    def line(self) -> str:
        """e.g. ``yanked: mypkg 1.0 -> ghcr.io/acme/mypkg:1.0 (broken on Windows)``."""
        if self.changed:
            verb = "yanked" if self.yanked is not None else "yank undone"
        else:
            verb = "already yanked" if self.yanked is not None else "not yanked"
        why = f" ({self.yanked})" if self.yanked else ""
        moved = f"; also moved {', '.join(self.moved_tags)}" if self.moved_tags else ""
        return f"{verb}: {self.project} {self.version} -> {self.reference}{why}{moved}"


def other_tags(store: Store, digest: Digest, tag: str) -> list[str]:
    """The tags other than ``tag`` that name the document ``digest`` (``latest`` and such;
    the tags of other versions name other indexes and are not read)."""
    found = []
    for other in store.list_tags():
        if other == tag or tag_to_version(other) is not None:
            continue
        manifest = store.get_manifest(other)
        if manifest is not None and manifest.digest == digest:
            found.append(other)
    return found


def _write(store: Store, current: Index, wanted: Index, tag: str) -> list[str]:
    """Put ``wanted`` under ``tag`` and under the other tags that named ``current``."""
    others = other_tags(store, current.digest, tag)
    store.put_manifest(wanted.raw, wanted.media_type, tag)
    for other in others:
        store.put_manifest(wanted.raw, wanted.media_type, other)
    return others


def yank(
    store: Store,
    project: str,
    version: Version,
    *,
    reason: str | None = None,
    undo: bool = False,
) -> YankResult:
    """Yank ``version`` of ``project`` (with ``reason``), or take the yank back (``undo``)."""
    name = canonicalize_name(project)
    tag = version_to_tag(version)
    changed = False
    moved: set[str] = set()
    for _attempt in range(ATTEMPTS):
        with store.lock() as locked:
            current = read_index(store, tag)
            if current is None:
                raise NotFoundError(f"{name} {version} is not in {store.location}")
            wanted = yanked_index(current, version=version, reason=reason, undo=undo)
            if wanted.raw != current.raw:
                moved.update(_write(store, current, wanted, tag))
                changed = True
        if locked or not changed:
            break
        time.sleep(SETTLE)
        landed = read_index(store, tag)
        if landed is not None and yank_state(landed.annotations) == yank_state(wanted.annotations):
            break
    else:
        raise GhcrError(
            f"could not record the yank of {name} {version} in {store.location}: its index "
            f"kept changing ({ATTEMPTS} attempts); try again"
        )
    return YankResult(
        name,
        version,
        f"{store.location}:{tag}",
        yank_state(wanted.annotations),
        changed,
        tuple(sorted(moved)),
    )
