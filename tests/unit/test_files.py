"""The low-level file steps: temporary file then rename, hashing while copying, no-follow opens.

Each runs twice where the platform matters: with ``O_NOFOLLOW``/``O_NONBLOCK`` as Linux has
them, and without (as on Windows), where lstat before the open does the refusing.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from setuptools_ghcr.core.oci import Digest, DigestWriter
from setuptools_ghcr.errors import DigestMismatchError, UnsafeResponseError
from setuptools_ghcr.storage import files
from setuptools_ghcr.storage.files import (
    PendingFile,
    copy_hashing,
    copy_verified,
    hash_reading_ahead,
    is_regular,
    is_temp_name,
    open_regular,
    write_atomically,
)

DATA = b"0123456789" * 1000


@pytest.fixture(params=["posix", "fallback"])
def platform(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test twice: with the platform's no-follow flags, and as if it had none."""
    if request.param == "fallback":
        monkeypatch.setattr(files, "NOFOLLOW", 0)
        monkeypatch.setattr(files, "_NONBLOCK", 0)
        monkeypatch.setattr(files, "_READ_FLAGS", os.O_RDONLY)
        monkeypatch.setattr(files, "_CREATE_FLAGS", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    return str(request.param)


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def umask() -> Iterator[int]:
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_a_committed_file_lands_whole_with_the_umask_mode(
    tmp_path: Path, platform: str, umask: int
) -> None:
    final = tmp_path / "a.whl"
    with PendingFile(final) as pending:
        assert isinstance(pending.temp, Path)
        assert pending.temp.parent == tmp_path
        assert is_temp_name(pending.temp.name)
        with pending.writing() as out:
            out.write(DATA)
        assert not final.exists()  # nothing visible before the rename
        pending.commit()
    assert final.read_bytes() == DATA
    assert stat.S_IMODE(final.stat().st_mode) == 0o666 & ~umask
    assert _names(tmp_path) == ["a.whl"]


def test_a_failure_leaves_the_old_file_and_no_temporary_one(tmp_path: Path, platform: str) -> None:
    final = tmp_path / "a.whl"
    final.write_bytes(b"old")

    def interrupted_write() -> None:
        with PendingFile(final) as pending:
            with pending.writing() as out:
                out.write(DATA)
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted_write()
    assert final.read_bytes() == b"old"
    assert _names(tmp_path) == ["a.whl"]


def test_leaving_without_commit_discards(tmp_path: Path) -> None:
    with PendingFile(tmp_path / "a.whl") as pending, pending.writing() as out:
        out.write(DATA)
    assert _names(tmp_path) == []


@pytest.mark.parametrize(("durable", "flushed"), [(True, ["file", "folder"]), (False, [])])
def test_a_durable_file_and_its_folder_are_flushed_to_disk(
    tmp_path: Path, fsyncs: list[str], durable: bool, flushed: list[str]
) -> None:
    """A store's own files are flushed; a downloaded copy is not (as curl's is not)."""
    write_atomically(tmp_path / "index.json", b"{}", durable=durable)
    assert fsyncs == flushed
    assert (tmp_path / "index.json").read_bytes() == b"{}"


def test_commit_may_name_the_file_once_it_is_known(tmp_path: Path) -> None:
    folder = os.open(tmp_path, files.DIRECTORY_FLAGS)
    try:
        with PendingFile("upload", dir_fd=folder) as pending:
            assert isinstance(pending.temp, str)
            assert pending.temp.startswith(".upload.")
            with pending.writing() as out:
                out.write(DATA)
            pending.commit(Digest.of_bytes(DATA).hex)
    finally:
        os.close(folder)
    assert _names(tmp_path) == [Digest.of_bytes(DATA).hex]


def test_a_link_to_the_same_file_leaves_one_name(tmp_path: Path) -> None:
    source = tmp_path / "entry"
    source.write_bytes(DATA)
    final = tmp_path / "a.whl"
    for _ in range(2):  # the second rename finds the same file there: no name may stay
        with PendingFile(final) as pending:
            pending.link_from(source)
            with pending.open_linked("entry") as linked:
                assert linked.read() == DATA
            pending.commit()
    assert _names(tmp_path) == ["a.whl", "entry"]
    assert os.path.samefile(final, source)


def test_a_linked_symbolic_link_is_refused(tmp_path: Path, platform: str) -> None:
    (tmp_path / "outside").write_bytes(DATA)
    (tmp_path / "entry").symlink_to(tmp_path / "outside")
    with PendingFile(tmp_path / "a.whl") as pending:
        pending.link_from(tmp_path / "entry")
        with pytest.raises(UnsafeResponseError, match="symbolic link"):
            pending.open_linked("entry")
    assert _names(tmp_path) == ["entry", "outside"]


def test_open_regular_reads_a_file_and_says_none_when_absent(tmp_path: Path, platform: str) -> None:
    (tmp_path / "blob").write_bytes(DATA)
    opened = open_regular(tmp_path / "blob", "blob")
    assert opened is not None
    with opened:
        assert opened.read() == DATA
    assert open_regular(tmp_path / "absent", "absent") is None


def test_open_regular_refuses_links_folders_and_fifos(tmp_path: Path, platform: str) -> None:
    (tmp_path / "outside").write_bytes(DATA)
    (tmp_path / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")  # opening it to read without O_NONBLOCK would hang
    with pytest.raises(UnsafeResponseError, match="link is a symbolic link"):
        open_regular(tmp_path / "link", "link")
    for name in ("folder", "fifo"):
        with pytest.raises(UnsafeResponseError, match=f"{name} is not a regular file"):
            open_regular(tmp_path / name, name)
    assert not is_regular(tmp_path / "link")
    assert not is_regular(tmp_path / "fifo")
    assert not is_regular(tmp_path / "absent")
    assert not is_regular(tmp_path / "outside" / "below")
    assert is_regular(tmp_path / "outside")


def test_without_o_nofollow_a_file_swapped_for_a_link_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the lstat and the open, an attacker replaces the file by a link."""
    monkeypatch.setattr(files, "NOFOLLOW", 0)
    monkeypatch.setattr(files, "_READ_FLAGS", os.O_RDONLY)
    (tmp_path / "blob").write_bytes(b"checked")
    (tmp_path / "secret").write_bytes(b"secret")
    real_open = os.open

    def swapping_open(path: str | Path, flags: int, *args: object, **kwargs: object) -> int:
        os.unlink(path)
        os.symlink(tmp_path / "secret", path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", swapping_open)
    with pytest.raises(UnsafeResponseError, match="replaced while being opened"):
        open_regular(tmp_path / "blob", "blob")


def test_copy_hashing_copies_hashes_and_reports_progress() -> None:
    writer, out, seen = DigestWriter(), io.BytesIO(), []
    copy_hashing(io.BytesIO(DATA), writer, out, limit=len(DATA), progress=seen.append)
    assert out.getvalue() == DATA
    assert writer.digest() == Digest.of_bytes(DATA)
    assert sum(seen) == len(DATA)


def test_copy_hashing_stops_as_soon_as_the_source_runs_long() -> None:
    class Endless(io.RawIOBase):
        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            buffer[:] = b"x" * len(buffer)
            return len(buffer)

    with pytest.raises(DigestMismatchError, match="more than the expected 5 bytes"):
        copy_hashing(Endless(), DigestWriter(), limit=5, what="blob")  # type: ignore[arg-type]


def test_copy_hashing_reads_a_stream_without_readinto() -> None:
    class Bare:
        def __init__(self) -> None:
            self._stream = io.BytesIO(DATA)

        def read(self, size: int) -> bytes:
            return self._stream.read(min(size, 7))

    writer = DigestWriter()
    copy_hashing(Bare(), writer)  # type: ignore[arg-type]
    assert writer.digest() == Digest.of_bytes(DATA)


@pytest.mark.parametrize("size", [0, 1, (4 << 20) - 1, (4 << 20) * 2 + 3])
def test_hashing_ahead_hashes_every_byte_once(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    writer = hash_reading_ahead(io.BytesIO(data))
    assert (writer.digest(), writer.size) == (Digest.of_bytes(data), size)


def test_copy_verified_refuses_other_bytes() -> None:
    copy_verified(io.BytesIO(DATA), None, Digest.of_bytes(DATA), len(DATA), what="blob")
    with pytest.raises(DigestMismatchError, match="blob: content hashes to"):
        copy_verified(io.BytesIO(DATA), None, Digest.of_bytes(b"other"), len(DATA), what="blob")
    with pytest.raises(DigestMismatchError, match="more than the expected 3 bytes"):
        copy_verified(io.BytesIO(DATA), None, Digest.of_bytes(DATA), 3, what="blob")
    with pytest.raises(DigestMismatchError, match="got 10000 bytes, expected 20000"):
        copy_verified(io.BytesIO(DATA), None, Digest.of_bytes(DATA), 20000, what="blob")


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        (".a.whl.0123456789ab.part", True),
        (".index.json.0123456789ab.tmp", True),
        ("a.whl", False),
        ("a.part", False),
        (".lock", False),
    ],
)
def test_temporary_names(name: str, temporary: bool) -> None:
    assert is_temp_name(name) is temporary
