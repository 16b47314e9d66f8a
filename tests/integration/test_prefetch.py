"""A chosen file downloads while the resolution goes on; a dropped choice stops downloading.

The stores are real ``oci:`` layouts; a thin wrapper only records (and, where a test needs
a moment to be certain, holds) the calls the resolver makes to them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.stores import publish_files
from support.wheels import make_wheel

from setuptools_ghcr.core.oci import Descriptor
from setuptools_ghcr.core.targets import LayoutTarget
from setuptools_ghcr.errors import DigestMismatchError
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import ProgressCallback, Store
from setuptools_ghcr.usecases.resolve import download

pytestmark = pytest.mark.integration

#: How long a test waits for something that must happen; only reached when it does not.
PATIENCE = 10.0

DownloadHook = Callable[[str, Descriptor, ProgressCallback | None], None]


class Watched:
    """Opens the layout's stores, calling ``on_download`` before each blob download and
    ``on_index`` before each version index read (with the project's name)."""

    def __init__(self, factory: StoreFactory) -> None:
        self._factory = factory
        self.target = factory.target
        self.on_download: DownloadHook = lambda _project, _blob, _progress: None
        self.on_index: Callable[[str, str], None] = lambda _project, _tag: None

    def open(self, project: str) -> Store:
        store = self._factory.open(project)
        download_blob, get_manifest = store.download_blob, store.get_manifest

        def watched_download(
            blob: Descriptor, destination: Path, progress: ProgressCallback | None = None
        ) -> None:
            self.on_download(project, blob, progress)
            download_blob(blob, destination, progress)

        def watched_manifest(reference: str) -> Any:
            if not reference.startswith("sha256:"):
                self.on_index(project, reference)
            return get_manifest(reference)

        store.download_blob = watched_download  # type: ignore[method-assign]
        store.get_manifest = watched_manifest  # type: ignore[method-assign]
        return store


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[StoreFactory]:
    factory = StoreFactory(LayoutTarget(tmp_path / "packages"), environ={})
    yield factory
    factory.close()


@pytest.fixture
def built(tmp_path: Path) -> Path:
    folder = tmp_path / "built"
    folder.mkdir()
    return folder


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".part")]


def test_the_chosen_file_downloads_while_its_dependencies_are_read(
    layout: StoreFactory, built: Path, tmp_path: Path
) -> None:
    app = make_wheel(built, "app", "1.0", requires_dist=["lib"])
    lib = make_wheel(built, "lib", "1.0")
    publish_files(layout, app, lib)
    watched = Watched(layout)
    app_downloading = threading.Event()
    overlapped: list[bool] = []

    def on_download(project: str, _blob: Descriptor, _progress: object) -> None:
        if project == "app":
            app_downloading.set()

    def on_index(project: str, _tag: str) -> None:
        # The dependency is read only once app's file is on its way (or never: a failure).
        if project == "lib":
            overlapped.append(app_downloading.wait(PATIENCE))

    watched.on_download = on_download
    watched.on_index = on_index
    cache = BlobCache(tmp_path / "cache")
    started = time.monotonic()
    got = download(watched, ["app"], tmp_path / "out", cache=cache)
    assert overlapped == [True]
    assert time.monotonic() - started < PATIENCE
    assert [d.path.name for d in got] == [app.name, lib.name]
    assert [d.path.read_bytes() for d in got] == [app.read_bytes(), lib.read_bytes()]
    assert not any(d.from_cache for d in got)
    assert _leftovers(tmp_path) == []

    # Cached now: nothing is downloaded again, and both are reported as from the cache.
    watched.on_index = lambda _project, _tag: None
    watched.on_download = lambda project, _blob, _progress: pytest.fail(f"{project} fetched")
    again = download(watched, ["app"], tmp_path / "again", cache=cache)
    assert [d.from_cache for d in again] == [True, True]


def test_a_file_the_resolution_drops_stops_downloading(
    layout: StoreFactory, built: Path, tmp_path: Path
) -> None:
    # lib is asked for first and 1.3 chosen; app then requires lib<1.3, so 1.3 is dropped.
    publish_files(
        layout,
        make_wheel(built, "app", "1.0", requires_dist=["lib<1.3"]),
        make_wheel(built, "lib", "1.2"),
        newest := make_wheel(built, "lib", "1.3"),
    )
    watched = Watched(layout)
    first_lib: list[Descriptor] = []
    outcome: list[str] = []

    def on_download(project: str, blob: Descriptor, progress: ProgressCallback | None) -> None:
        if project != "lib" or first_lib:
            return
        first_lib.append(blob)
        # Hold the first lib download, reporting progress, until the resolver stops it.
        assert progress is not None
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                progress(0)
            except Exception as error:
                outcome.append(type(error).__name__)
                raise
            time.sleep(0.01)
        outcome.append("never stopped")

    watched.on_download = on_download
    cache = BlobCache(tmp_path / "cache")
    got = download(watched, ["lib", "app"], tmp_path / "out", cache=cache)
    assert [d.path.name for d in got] == ["lib-1.2-py3-none-any.whl", "app-1.0-py3-none-any.whl"]
    assert len(outcome) == 1
    assert outcome != ["never stopped"]
    assert first_lib[0].size == newest.stat().st_size
    assert not cache.has(first_lib[0].digest)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(d.path.name for d in got)
    assert _leftovers(tmp_path) == []


def test_a_failed_download_is_reported_and_no_thread_outlives_the_call(
    layout: StoreFactory, built: Path, tmp_path: Path
) -> None:
    publish_files(layout, make_wheel(built, "app", "1.0"))
    watched = Watched(layout)

    def on_download(_project: str, blob: Descriptor, _progress: object) -> None:
        raise DigestMismatchError(f"blob {blob.digest.short}: damaged on the way")

    watched.on_download = on_download
    before = set(threading.enumerate())
    with pytest.raises(DigestMismatchError, match="damaged on the way"):
        download(watched, ["app"], tmp_path / "out", cache=BlobCache(tmp_path / "cache"))
    assert [t.name for t in set(threading.enumerate()) - before] == []
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert _leftovers(tmp_path) == []
