"""Handing cache entries out: a hard link where possible, a verified copy elsewhere."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from setuptools_ghcr.storage.cache import BlobCache

DATA = b"wheel bytes " * 5000


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_fresh_entry_is_linked_not_copied(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    digest = cache.store_small(DATA)
    out = tmp_path / "out"
    out.mkdir()
    assert cache.place(digest, len(DATA), out / "a.whl", just_verified=True)
    assert (out / "a.whl").read_bytes() == DATA
    assert os.path.samefile(out / "a.whl", cache.path(digest))
    assert _leftovers(out) == []


def test_placing_the_same_entry_twice_leaves_one_file(tmp_path: Path) -> None:
    """rename() over another link to the same file does nothing: no temporary name may stay."""
    cache = BlobCache(tmp_path / "cache")
    digest = cache.store_small(DATA)
    out = tmp_path / "out"
    out.mkdir()
    assert cache.place(digest, len(DATA), out / "a.whl", just_verified=True)
    assert cache.place(digest, len(DATA), out / "a.whl")
    assert [p.name for p in out.iterdir()] == ["a.whl"]


def test_a_damaged_entry_is_refused_and_dropped(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    digest = cache.store_small(DATA)
    cache.path(digest).write_bytes(b"tampered" + DATA[8:])
    out = tmp_path / "out"
    out.mkdir()
    assert not cache.place(digest, len(DATA), out / "a.whl")
    assert not (out / "a.whl").exists()
    assert _leftovers(out) == []
    assert not cache.has(digest)


def test_without_links_the_entry_is_copied_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = BlobCache(tmp_path / "cache")
    digest = cache.store_small(DATA)
    out = tmp_path / "out"
    out.mkdir()

    def cross_device(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    assert cache.place(digest, len(DATA), out / "a.whl", just_verified=True)
    assert (out / "a.whl").read_bytes() == DATA
    assert not os.path.samefile(out / "a.whl", cache.path(digest))
    # The copy verifies even an entry said to be verified: damage is still caught.
    cache.path(digest).write_bytes(b"tampered" + DATA[8:])
    assert not cache.place(digest, len(DATA), out / "b.whl", just_verified=True)
    assert not (out / "b.whl").exists()


def test_a_symbolic_link_entry_is_never_handed_out(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    digest = cache.store_small(DATA)
    secret = tmp_path / "secret"
    secret.write_bytes(DATA)
    cache.path(digest).unlink()
    cache.path(digest).symlink_to(secret)
    out = tmp_path / "out"
    out.mkdir()
    assert not cache.place(digest, len(DATA), out / "a.whl", just_verified=True)
    assert list(out.iterdir()) == []


def test_an_absent_entry_is_not_placed(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    digest = cache.store_small(DATA)
    cache.path(digest).unlink()
    out = tmp_path / "out"
    out.mkdir()
    assert not cache.place(digest, len(DATA), out / "a.whl", just_verified=True)
    assert list(out.iterdir()) == []
