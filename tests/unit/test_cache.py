"""The content-addressed download cache: where it lives, and never handing out bad bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from setuptools_ghcr.core.oci import Digest
from setuptools_ghcr.storage.cache import BlobCache, default_cache_root


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "/home/u/.cache/setuptools-ghcr"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/setuptools-ghcr"),
        ({"XDG_CACHE_HOME": "relative/ignored"}, "/home/u/.cache/setuptools-ghcr"),
        ({"XDG_CACHE_HOME": "/xdg", "SETUPTOOLS_GHCR_CACHE_DIR": "/mine"}, "/mine"),
    ],
)
def test_default_cache_root(environ: dict[str, str], expected: str) -> None:
    assert default_cache_root(environ, home=Path("/home/u")) == Path(expected)


def test_small_entries_round_trip_and_damage_is_dropped(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    digest = cache.store_small(b"Metadata-Version: 2.4\n")
    assert cache.path(digest) == tmp_path / "blobs" / "sha256" / digest.hex
    assert cache.read_small(digest, 1024) == b"Metadata-Version: 2.4\n"
    cache.path(digest).write_bytes(b"Metadata-Version: 6.6\n")
    assert cache.read_small(digest, 1024) is None
    assert not cache.has(digest)
    assert cache.read_small(Digest.of_bytes(b"never stored"), 1024) is None


def test_copy_out_verifies_and_leaves_nothing_on_damage(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    data = b"wheel bytes " * 1000
    digest = cache.store_small(data)
    out = tmp_path / "out"
    out.mkdir()
    assert cache.copy_to(digest, len(data), out / "a.whl")
    assert (out / "a.whl").read_bytes() == data
    assert cache.verify(digest, len(data))

    cache.path(digest).write_bytes(data[:-1] + b"!")
    assert not cache.copy_to(digest, len(data), out / "b.whl")
    assert sorted(p.name for p in out.iterdir()) == ["a.whl"]  # no partial or temporary file
    assert not cache.has(digest)
    assert not cache.copy_to(digest, len(data), out / "b.whl")


def test_wrong_size_is_damage(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path)
    digest = cache.store_small(b"12345")
    assert not cache.verify(digest, 6)
    assert not cache.has(digest)


def test_links_are_not_followed(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b"not yours")
    digest = Digest.of_bytes(b"not yours")
    cache.path(digest).parent.mkdir(parents=True)
    cache.path(digest).symlink_to(secret)
    assert not cache.has(digest)
    assert cache.read_small(digest, 100) is None
    assert not cache.copy_to(digest, None, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
