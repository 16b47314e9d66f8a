"""The index WSGI application against an in-memory store."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version
from support.documents import EMPTY_DESCRIPTOR, publish_like_pyoci
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.oci import (
    MAX_MANIFEST_SIZE,
    Descriptor,
    Digest,
    Index,
    Manifest,
    media_type_of,
    verified_chunks,
)
from setuptools_ghcr.core.wire_format import (
    ARTIFACT_TYPE,
    LAYER_MEDIA_TYPE,
    OCI_TITLE,
    build_index,
    file_manifest,
    index_entry,
    version_to_tag,
)
from setuptools_ghcr.errors import AuthenticationError, NotFoundError, RegistryError
from setuptools_ghcr.serve.app import IndexApp, PostRequest, layout_projects
from setuptools_ghcr.serve.callers import ANONYMOUS
from setuptools_ghcr.serve.index_cache import IndexCache
from setuptools_ghcr.serve.pages import SIMPLE_JSON
from setuptools_ghcr.serve.projects import DEFAULT_WORKERS, ProjectReader, Source
from setuptools_ghcr.serve.warehouse import metadata_info
from setuptools_ghcr.storage.store import BlobSource, ProgressCallback, RawManifest

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
CREATED = "2026-01-02T03:04:05Z"


class FakeStore:
    """A repository in memory; counts calls so tests can see what a request cost."""

    def __init__(self, repository: str) -> None:
        self._repository = repository
        self.blobs: dict[Digest, bytes] = {}
        self.manifests: dict[Digest, tuple[bytes, str]] = {}
        self.tags: dict[str, Digest] = {}
        self.calls: list[str] = []
        self.fail: Exception | None = None

    @property
    def location(self) -> str:
        return f"fake/{self._repository}"

    @property
    def repository(self) -> str:
        return self._repository

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail is not None:
            raise self.fail

    def blob_exists(self, digest: Digest) -> bool:
        return digest in self.blobs

    def push_blob(self, blob: BlobSource, progress: ProgressCallback | None = None) -> None:
        with blob.open() as stream:
            self.blobs[blob.descriptor.digest] = stream.read()

    def mount_blob(self, digest: Digest, source_repository: str) -> bool:
        return False

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        self._call("read_blob")
        data = self.blobs.get(descriptor.digest)
        if data is None:
            raise NotFoundError(f"blob {descriptor.digest} is missing")
        return b"".join(verified_chunks(iter([data]), descriptor.digest, descriptor.size, "b"))

    def download_blob(
        self, descriptor: Descriptor, destination: Path, progress: ProgressCallback | None = None
    ) -> None:
        raise NotImplementedError

    def iter_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        self._call("iter_blob")
        data = self.blobs.get(descriptor.digest)
        if data is None:
            raise NotFoundError(f"blob {descriptor.digest} is missing")
        chunks = (data[i : i + 100] for i in range(0, len(data), 100))
        return verified_chunks(chunks, descriptor.digest, descriptor.size, "blob")

    def put_manifest(self, raw: bytes, media_type: str, reference: str | None = None) -> Digest:
        digest = Digest.of_bytes(raw)
        self.manifests[digest] = (raw, media_type)
        if reference is not None:
            self.tags[reference] = digest
        return digest

    def get_manifest(self, reference: str) -> RawManifest | None:
        self._call(f"get_manifest {reference}")
        digest = Digest.parse(reference) if ":" in reference else self.tags.get(reference)
        if digest is None or digest not in self.manifests:
            return None
        raw, media_type = self.manifests[digest]
        return RawManifest(raw, media_type, digest)

    def list_tags(self) -> list[str]:
        self._call("list_tags")
        return sorted(self.tags)

    # -- helpers for tests ---------------------------------------------------------------------

    def publish(self, dists: Iterable[Distribution], created: str = CREATED) -> None:
        by_version: dict[Version, list[Descriptor]] = {}
        for dist in dists:
            self.blobs[dist.sha256] = dist.path.read_bytes()
            self.blobs[Digest.of_bytes(dist.metadata)] = dist.metadata
            manifest = file_manifest(dist, created=created)
            self.put_manifest(manifest.raw, manifest.media_type)
            entry = index_entry(dist, manifest, created=created)
            by_version.setdefault(dist.version, []).append(entry)
        for version, entries in by_version.items():
            index = build_index(entries, version=version)
            self.put_manifest(index.raw, index.media_type, version_to_tag(version))


class FakeStores:
    def __init__(self) -> None:
        self.stores: dict[str, FakeStore] = {}

    def open(self, project: str) -> FakeStore:
        from setuptools_ghcr.core.targets import repository_name

        name = repository_name(project)
        return self.stores.setdefault(name, FakeStore(name))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Response:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.code = int(status.split(maxsplit=1)[0])
        self.headers = {name.lower(): value for name, value in headers}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: IndexApp,
    path: str,
    *,
    accept: str | None = None,
    method: str = "GET",
    query: str = "",
    body_limit: int | None = None,
) -> Response:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "HTTP_HOST": "localhost:8000",
    }
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    setup_testing_defaults(environ)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    result = app(environ, start_response)
    out = io.BytesIO()
    try:
        for chunk in result:
            out.write(chunk)
            if body_limit is not None and out.tell() >= body_limit:
                break
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    ((status, headers),) = started
    return Response(status, headers, out.getvalue())


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(stores: FakeStores, clock: Clock) -> Iterator[IndexApp]:
    application = IndexApp(stores, cache_ttl=30, workers=4, clock=clock)
    yield application
    application.close()


@pytest.fixture
def demo(tmp_path: Path, stores: FakeStores) -> list[Distribution]:
    dists = [
        read_distribution(make_wheel(tmp_path, "demo-pkg", "1.0", requires_python=">=3.8")),
        read_distribution(make_sdist(tmp_path, "demo-pkg", "1.0", requires_python=">=3.8")),
        read_distribution(make_wheel(tmp_path, "demo-pkg", "2.0")),
    ]
    stores.open("demo-pkg").publish(dists)
    return dists


def test_json_page_lists_every_file_with_hashes(app: IndexApp, demo: list[Distribution]) -> None:
    response = call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT)
    assert response.code == 200
    assert response.headers["content-type"] == SIMPLE_JSON
    assert response.headers["vary"] == "Accept"
    page = response.json()
    assert page["name"] == "demo-pkg"
    assert page["versions"] == ["1.0", "2.0"]
    by_name = {item["filename"]: item for item in page["files"]}
    assert set(by_name) == {d.filename for d in demo}
    for dist in demo:
        item = by_name[dist.filename]
        assert item["hashes"] == {"sha256": dist.sha256.hex}
        assert item["size"] == dist.size
        assert item["core-metadata"] == {"sha256": hashlib.sha256(dist.metadata).hexdigest()}
        assert item["upload-time"] == CREATED
        tag = version_to_tag(dist.version)
        assert item["url"] == f"../../files/demo-pkg/{tag}/{dist.filename}"
    assert by_name["demo_pkg-1.0.tar.gz"]["requires-python"] == ">=3.8"
    assert "requires-python" not in by_name["demo_pkg-2.0-py3-none-any.whl"]


def test_html_page_by_default(app: IndexApp, demo: list[Distribution]) -> None:
    response = call(app, "/simple/demo-pkg/")
    assert response.code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for dist in demo:
        assert f"{dist.filename}#sha256={dist.sha256.hex}".encode() in response.body
    assert b'data-requires-python="&gt;=3.8"' in response.body


def test_format_query_overrides_accept(app: IndexApp, demo: list[Distribution]) -> None:
    response = call(app, "/simple/demo-pkg/", query=f"format={SIMPLE_JSON}")
    assert response.headers["content-type"] == SIMPLE_JSON


def test_unacceptable_type_is_406(app: IndexApp, demo: list[Distribution]) -> None:
    assert call(app, "/simple/demo-pkg/", accept="application/json").code == 406


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        # Relative: a redirect never names the host the request claimed.
        ("/simple/Demo_Pkg/", "", "/simple/demo-pkg/"),
        ("/simple/demo.pkg", "", "/simple/demo-pkg/"),
        ("/simple/demo-pkg", "format=text/html", "/simple/demo-pkg/?format=text/html"),
        ("/simple", "", "/simple/"),
        ("/", "", "/simple/"),
    ],
)
def test_redirects_to_the_normalized_url(
    app: IndexApp, path: str, query: str, location: str
) -> None:
    response = call(app, path, query=query)
    assert response.code == 301
    assert response.headers["location"] == location


def test_missing_project_is_404(app: IndexApp, demo: list[Distribution]) -> None:
    response = call(app, "/simple/nothing-here/")
    assert response.code == 404
    assert response.body == b"no project nothing-here in this index\n"
    assert call(app, "/simple/-/").code == 404  # not even a repository name


def test_unknown_paths_and_methods(app: IndexApp) -> None:
    assert call(app, "/other").code == 404
    assert call(app, "/simple/a/b/c").code == 404
    response = call(app, "/simple/", method="POST")
    assert response.code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_file_and_metadata_are_served_verified(app: IndexApp, demo: list[Distribution]) -> None:
    page = call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()
    for item in page["files"]:
        path = "/" + item["url"].removeprefix("../../")
        response = call(app, path)
        assert response.code == 200
        assert int(response.headers["content-length"]) == len(response.body) == item["size"]
        assert hashlib.sha256(response.body).hexdigest() == item["hashes"]["sha256"]
        metadata = call(app, path + ".metadata")
        assert metadata.code == 200
        assert hashlib.sha256(metadata.body).hexdigest() == item["core-metadata"]["sha256"]
        assert b"Name: demo-pkg" in metadata.body


def test_download_without_a_cached_page_reads_one_version(
    app: IndexApp, stores: FakeStores, demo: list[Distribution]
) -> None:
    store = stores.open("demo-pkg")
    response = call(app, "/files/demo-pkg/2.0/demo_pkg-2.0-py3-none-any.whl")
    assert response.code == 200
    assert response.body == demo[2].path.read_bytes()
    assert store.calls == ["get_manifest 2.0", "iter_blob"]


def test_missing_files(app: IndexApp, demo: list[Distribution]) -> None:
    assert call(app, "/files/demo-pkg/2.0/demo_pkg-2.0.tar.gz").code == 404
    assert call(app, "/files/demo-pkg/3.0/demo_pkg-3.0.tar.gz").code == 404
    assert call(app, "/files/demo-pkg/latest/demo_pkg-2.0.tar.gz").code == 404
    assert call(app, "/files/demo-pkg/2.0/demo_pkg-2.0.tar.gz.metadata").code == 404


def test_corrupted_blob_is_cut_short(
    app: IndexApp, stores: FakeStores, demo: list[Distribution]
) -> None:
    wheel = demo[2]
    store = stores.open("demo-pkg")
    original = store.blobs[wheel.sha256]
    store.blobs[wheel.sha256] = original[:-1] + bytes([original[-1] ^ 1])
    response = call(app, f"/files/demo-pkg/2.0/{wheel.filename}")
    # Headers promised the full size; the body stops before the last chunk.
    assert response.code == 200
    assert int(response.headers["content-length"]) == wheel.size
    assert len(response.body) < wheel.size


def test_missing_blob_is_an_error_status(
    app: IndexApp, stores: FakeStores, demo: list[Distribution]
) -> None:
    wheel = demo[2]
    del stores.open("demo-pkg").blobs[wheel.sha256]
    response = call(app, f"/files/demo-pkg/2.0/{wheel.filename}")
    assert response.code == 404
    assert response.body.count(b"\n") == 1


def test_registry_errors_are_502_one_line(
    app: IndexApp, stores: FakeStores, demo: list[Distribution]
) -> None:
    stores.open("demo-pkg").fail = RegistryError("registry answered 503 Service Unavailable")
    response = call(app, "/simple/demo-pkg/")
    assert response.code == 502
    assert response.body == b"registry answered 503 Service Unavailable\n"


def test_pages_are_cached_for_the_ttl(
    app: IndexApp, stores: FakeStores, clock: Clock, demo: list[Distribution], tmp_path: Path
) -> None:
    store = stores.open("demo-pkg")
    first = call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()
    # One tag listing and one index per version.
    assert sorted(store.calls) == ["get_manifest 1.0", "get_manifest 2.0", "list_tags"]
    store.calls.clear()
    store.publish([read_distribution(make_wheel(tmp_path, "demo-pkg", "3.0"))])
    clock.now += 29
    assert call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT).json() == first
    assert store.calls == []
    # A download of a listed file uses the cached entry: no index fetch.
    call(app, "/files/demo-pkg/2.0/demo_pkg-2.0-py3-none-any.whl")
    assert store.calls == ["iter_blob"]
    clock.now += 2
    assert call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()["versions"] == [
        "1.0",
        "2.0",
        "3.0",
    ]


def test_no_cache_with_ttl_zero(stores: FakeStores, demo: list[Distribution]) -> None:
    app = IndexApp(stores, cache_ttl=0)
    try:
        call(app, "/simple/demo-pkg/")
        call(app, "/simple/demo-pkg/")
    finally:
        app.close()
    assert stores.open("demo-pkg").calls.count("list_tags") == 2


def test_pyoci_files_get_size_from_their_manifest_and_no_metadata(
    app: IndexApp, stores: FakeStores, tmp_path: Path
) -> None:
    wheel = read_distribution(make_wheel(tmp_path, "old-pkg", "0.1"))
    publish_like_pyoci(stores.open("old-pkg"), wheel)
    (item,) = call(app, "/simple/old-pkg/", accept=PIP_ACCEPT).json()["files"]
    assert item["filename"] == wheel.filename
    assert item["size"] == wheel.size
    assert item["hashes"] == {"sha256": wheel.sha256.hex}
    assert "core-metadata" not in item
    html = call(app, "/simple/old-pkg/").body
    assert b"data-core-metadata" not in html
    path = "/" + item["url"].removeprefix("../../")
    assert call(app, path).body == wheel.path.read_bytes()
    assert call(app, path + ".metadata").code == 404


def test_metadata_that_disagrees_with_the_index_is_refused(
    app: IndexApp, stores: FakeStores, tmp_path: Path
) -> None:
    wheel = read_distribution(make_wheel(tmp_path, "demo-pkg", "1.0"))
    store = stores.open("demo-pkg")
    store.publish([wheel])
    # Point the file's manifest at other metadata, keeping the index as it was.
    (raw, media_type) = store.manifests[store.tags["1.0"]]
    index = Index.from_bytes(raw)
    entry = index.manifests[0]
    manifest = Manifest.from_bytes(store.manifests[entry.digest][0])
    other = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\nSummary: evil\n"
    store.blobs[Digest.of_bytes(other)] = other
    forged = Manifest.build(
        config=Descriptor(manifest.config.media_type, Digest.of_bytes(other), len(other)),
        layers=manifest.layers,
        artifact_type=ARTIFACT_TYPE,
    )
    store.put_manifest(forged.raw, forged.media_type)
    moved = Descriptor(
        entry.media_type,
        forged.digest,
        len(forged.raw),
        annotations=entry.annotations,
        artifact_type=entry.artifact_type,
        platform=entry.platform,
    )
    forged_index = Index.build((moved,), annotations=index.annotations, artifact_type=ARTIFACT_TYPE)
    store.put_manifest(forged_index.raw, media_type, "1.0")
    response = call(app, f"/files/demo-pkg/1.0/{wheel.filename}.metadata")
    assert response.code == 502
    assert b"Summary: evil" not in response.body


def test_broken_version_is_left_out_not_fatal(
    app: IndexApp, stores: FakeStores, demo: list[Distribution]
) -> None:
    store = stores.open("demo-pkg")
    # A tag that names an image manifest, not an index.
    layer = Descriptor(LAYER_MEDIA_TYPE, Digest.of_bytes(b"x"), 1, annotations={OCI_TITLE: "x"})
    manifest = Manifest.build(EMPTY_DESCRIPTOR, (layer,), artifact_type=ARTIFACT_TYPE)
    store.put_manifest(manifest.raw, manifest.media_type, "3.0")
    assert media_type_of(manifest.raw) is not None
    page = call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()
    assert page["versions"] == ["1.0", "2.0"]


def test_head_has_headers_and_no_body(
    app: IndexApp, stores: FakeStores, demo: list[Distribution]
) -> None:
    wheel = demo[2]
    response = call(app, f"/files/demo-pkg/2.0/{wheel.filename}", method="HEAD")
    assert response.code == 200
    assert response.body == b""
    assert int(response.headers["content-length"]) == wheel.size
    assert "iter_blob" not in stores.open("demo-pkg").calls
    page = call(app, "/simple/demo-pkg/", method="HEAD")
    assert page.code == 200
    assert page.body == b""
    assert int(page.headers["content-length"]) > 0


def test_project_list(stores: FakeStores) -> None:
    app = IndexApp(stores, list_projects=lambda: ["b_pkg", "A.Pkg"])
    try:
        response = call(app, "/simple/", accept=SIMPLE_JSON)
    finally:
        app.close()
    assert response.json() == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "a-pkg"}, {"name": "b-pkg"}],
    }


@pytest.mark.parametrize("failing", [True, False])
def test_project_list_that_cannot_be_read_is_empty_with_a_note(
    stores: FakeStores, failing: bool
) -> None:
    def broken() -> list[str]:
        raise RegistryError("catalog: 401 Unauthorized")

    lister: Callable[[], list[str]] | None = broken if failing else None
    app = IndexApp(stores, list_projects=lister)
    try:
        response = call(app, "/simple/", accept=SIMPLE_JSON)
    finally:
        app.close()
    assert response.code == 200
    value = response.json()
    assert value["projects"] == []
    assert "_note" in value["meta"]


def test_layout_projects(tmp_path: Path) -> None:
    for name in ("demo_pkg", "other", "not_a_layout"):
        (tmp_path / name).mkdir()
    (tmp_path / "demo_pkg" / "oci-layout").write_text("{}")
    (tmp_path / "other" / "oci-layout").write_text("{}")
    (tmp_path / "stray-file").write_text("")
    assert layout_projects(tmp_path) == ["demo-pkg", "other"]
    assert layout_projects(tmp_path / "absent") == []


# --- refreshes, the disk cache, and who gets a kept page --------------------------------------


def test_a_new_version_costs_its_index_only(
    app: IndexApp, stores: FakeStores, clock: Clock, demo: list[Distribution], tmp_path: Path
) -> None:
    store = stores.open("demo-pkg")
    call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT)
    store.calls.clear()
    store.publish([read_distribution(make_wheel(tmp_path, "demo-pkg", "3.0"))])
    clock.now += 31
    page = call(app, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()
    assert page["versions"] == ["1.0", "2.0", "3.0"]
    # The old versions were published long ago: their checks are not due.
    assert store.calls == ["list_tags", "get_manifest 3.0"]


def test_a_restarted_service_reads_no_index_it_has_on_disk(
    stores: FakeStores, demo: list[Distribution], tmp_path: Path
) -> None:
    disk = IndexCache(tmp_path / "cache")
    first = IndexApp(stores, disk=disk)
    try:
        before = call(first, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()
    finally:
        first.close()
    store = stores.open("demo-pkg")
    store.calls.clear()
    second = IndexApp(stores, disk=IndexCache(tmp_path / "cache"))
    try:
        assert call(second, "/simple/demo-pkg/", accept=PIP_ACCEPT).json() == before
    finally:
        second.close()
    assert store.calls == ["list_tags"]


def test_a_damaged_cache_entry_is_read_again(
    stores: FakeStores, demo: list[Distribution], tmp_path: Path
) -> None:
    first = IndexApp(stores, disk=IndexCache(tmp_path / "cache"))
    try:
        before = call(first, "/simple/demo-pkg/", accept=PIP_ACCEPT).json()
        wheel = demo[2]
        url = f"/files/demo-pkg/2.0/{wheel.filename}.metadata"
        assert call(first, url).body == wheel.metadata
    finally:
        first.close()
    store = stores.open("demo-pkg")
    # A tag map that cannot be read whole is ignored: every index is read again...
    (tag_map,) = (tmp_path / "cache" / "serve" / "tags").iterdir()
    tag_map.write_bytes(tag_map.read_bytes()[:-10])
    # ...and a damaged metadata file is read again from the registry, never served.
    entry = tmp_path / "cache" / "blobs" / "sha256" / Digest.of_bytes(wheel.metadata).hex
    entry.write_bytes(wheel.metadata.replace(b"demo", b"evil"))
    store.calls.clear()
    second = IndexApp(stores, disk=IndexCache(tmp_path / "cache"))
    try:
        assert call(second, "/simple/demo-pkg/", accept=PIP_ACCEPT).json() == before
        assert sorted(store.calls) == ["get_manifest 1.0", "get_manifest 2.0", "list_tags"]
        assert call(second, url).body == wheel.metadata
        assert "read_blob" in store.calls
    finally:
        second.close()


def _reader_source(stores: FakeStores, caller: str) -> Source:
    return Source("fake-target", caller, stores)


def test_recent_versions_are_checked_again_and_old_ones_later(
    stores: FakeStores, clock: Clock, tmp_path: Path
) -> None:
    wall = [time.time()]
    reader = ProjectReader(cache_ttl=30, clock=clock, wall_clock=lambda: wall[0])
    store = stores.open("demo-pkg")
    old = read_distribution(make_wheel(tmp_path, "demo-pkg", "1.0"))
    store.publish([old])  # uploaded at CREATED, long ago
    now = datetime.datetime.fromtimestamp(wall[0], datetime.timezone.utc)
    fresh_time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "b").mkdir()
    fresh = read_distribution(make_wheel(tmp_path / "b", "demo-pkg", "2.0"))
    store.publish([fresh], created=fresh_time)
    (tmp_path / "c").mkdir()
    source = _reader_source(stores, "alice")
    try:
        reader.project(source, canonicalize_name("demo-pkg"))
        # A second wheel lands in the fresh version (a matrix build) and in the old one.
        late = read_distribution(make_wheel(tmp_path / "c", "demo-pkg", "2.0", tag="py2-none-any"))
        store.publish([fresh, late], created=fresh_time)
        older = read_distribution(make_wheel(tmp_path / "c", "demo-pkg", "1.0", tag="py2-none-any"))
        store.publish([old, older])
        store.calls.clear()
        clock.now += 31
        wall[0] += 31
        project = reader.project(source, canonicalize_name("demo-pkg"))
        assert project is not None
        assert sorted(store.calls) == ["get_manifest 2.0", "list_tags"]
        files = {name for _, name in project.files}
        assert late.filename in files and older.filename not in files
        # An hour later even the old version has been checked again.
        clock.now += 3600
        wall[0] += 3600
        project = reader.project(source, canonicalize_name("demo-pkg"))
        assert project is not None
        assert older.filename in {name for _, name in project.files}
    finally:
        reader.close()


class _Refusing:
    """The stores of a caller the registry refuses."""

    def __init__(self) -> None:
        self.calls = 0

    def open(self, project: str) -> FakeStore:
        self.calls += 1
        store = FakeStore(project)
        store.fail = AuthenticationError("refused", status=401)
        return store


def test_a_kept_page_goes_only_to_callers_who_proved_access(
    stores: FakeStores, clock: Clock, demo: list[Distribution]
) -> None:
    reader = ProjectReader(cache_ttl=30, clock=clock)
    name = canonicalize_name("demo-pkg")
    try:
        assert reader.project(_reader_source(stores, "alice"), name) is not None
        refusing = _Refusing()
        with pytest.raises(AuthenticationError):
            reader.project(Source("fake-target", "bob", refusing), name)
        with pytest.raises(AuthenticationError):
            reader.project(Source("fake-target", ANONYMOUS, refusing), name)
        assert refusing.calls == 2
        # Nor the files of the kept page.
        with pytest.raises(AuthenticationError):
            reader.find_file(Source("fake-target", "bob", refusing), "demo-pkg", "2.0", "x.whl")
        # bob proves access with a request of his own: from then on, the kept page is his.
        store = stores.open("demo-pkg")
        store.calls.clear()
        assert reader.project(_reader_source(stores, "bob"), name) is not None
        assert store.calls == ["list_tags"]
        assert reader.project(_reader_source(stores, "bob"), name) is not None
        assert store.calls == ["list_tags"]
    finally:
        reader.close()


def _fallback_app(stores: FakeStores) -> IndexApp:
    return IndexApp(stores, fallback_index="https://pypi.example.org/simple")


def test_a_project_the_target_does_not_hold_redirects_to_the_fallback(
    stores: FakeStores, demo: list[Distribution]
) -> None:
    app = _fallback_app(stores)
    try:
        response = call(app, "/simple/requests/")
        assert response.code == 302
        assert response.headers["location"] == "https://pypi.example.org/simple/requests/"
        assert call(app, "/simple/demo-pkg/").code == 200
    finally:
        app.close()


def test_refusals_and_failures_never_redirect_to_the_fallback(
    stores: FakeStores, demo: list[Distribution]
) -> None:
    app = _fallback_app(stores)
    try:
        stores.open("private-pkg").fail = AuthenticationError("denied", status=403)
        response = call(app, "/simple/private-pkg/")
        assert response.code == 401
        assert response.headers["www-authenticate"].startswith("Basic ")
        stores.open("broken-pkg").fail = RegistryError("answered 503", status=503)
        assert call(app, "/simple/broken-pkg/").code == 502
        # Tags that are not versions still make the name the target's: an empty page.
        stores.open("odd-pkg").tags["latest"] = Digest.of_bytes(b"x")
        response = call(app, "/simple/odd-pkg/", accept=PIP_ACCEPT)
        assert response.code == 200
        assert response.json()["files"] == []
    finally:
        app.close()


def test_a_post_handler_takes_the_upload_paths(
    stores: FakeStores, demo: list[Distribution]
) -> None:
    seen: list[PostRequest] = []

    def handler(request: PostRequest) -> tuple[str, list[tuple[str, str]], list[bytes]]:
        seen.append(request)
        request.forget("demo-pkg")
        return "200 OK", [], [b"ok\n"]

    app = IndexApp(stores, post=handler)
    try:
        for path in ("/", "/legacy/"):
            assert call(app, path, method="POST").code == 200
        assert [request.rest for request in seen] == [("",), ("legacy", "")]
        assert seen[0].view.caller.anonymous
        assert call(app, "/simple/", method="POST").code == 405
    finally:
        app.close()


def test_health_reads_no_target(stores: FakeStores) -> None:
    app = IndexApp(stores)
    try:
        response = call(app, "/health")
        assert response.code == 200 and response.body == b"ok\n"
        assert stores.stores == {}
    finally:
        app.close()


def test_warehouse_json_of_a_project(app: IndexApp, demo: list[Distribution]) -> None:
    response = call(app, "/pypi/Demo_Pkg/json")
    assert response.code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    info = document["info"]
    assert (info["name"], info["version"]) == ("demo-pkg", "2.0")
    assert info["yanked"] is False
    assert sorted(document["releases"]) == ["1.0", "2.0"]
    by_name = {item["filename"]: item for files in document["releases"].values() for item in files}
    for dist in demo:
        item = by_name[dist.filename]
        assert item["digests"] == {"sha256": dist.sha256.hex}
        assert item["size"] == dist.size
        assert item["upload_time_iso_8601"] == CREATED
        assert item["upload_time"] == CREATED.removesuffix("Z")
        assert item["packagetype"] == ("sdist" if dist.kind == "sdist" else "bdist_wheel")
        # Absolute, as on PyPI, and served: the file itself.
        assert item["url"].startswith("http://localhost:8000/files/demo-pkg/")
        path = item["url"].removeprefix("http://localhost:8000")
        assert call(app, path).body == dist.path.read_bytes()
    assert [item["filename"] for item in document["urls"]] == [demo[2].filename]


def test_warehouse_json_of_a_version(app: IndexApp, demo: list[Distribution]) -> None:
    document = call(app, "/pypi/demo-pkg/1.0/json").json()
    assert document["info"]["version"] == "1.0"
    assert document["info"]["requires_python"] == ">=3.8"
    assert "releases" not in document
    assert sorted(item["filename"] for item in document["urls"]) == sorted(
        d.filename for d in demo[:2]
    )
    assert call(app, "/pypi/demo-pkg/3.0/json").code == 404
    assert call(app, "/pypi/demo-pkg/not-a-version/json").code == 404
    assert call(app, "/pypi/nothing-here/json").code == 404


def test_warehouse_json_takes_the_newest_final_release_as_latest(
    app: IndexApp, stores: FakeStores, tmp_path: Path
) -> None:
    store = stores.open("pre-pkg")
    for version in ("1.0", "1.1", "2.0rc1"):
        store.publish([read_distribution(make_wheel(tmp_path, "pre-pkg", version))])
    assert call(app, "/pypi/pre-pkg/json").json()["info"]["version"] == "1.1"


def test_metadata_info_reads_core_metadata() -> None:
    raw = (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: A demo\n"
        b"Requires-Python: >=3.9\nRequires-Dist: requests>=2\nRequires-Dist: rich\n"
        b"Classifier: Programming Language :: Python :: 3\n"
        b"Project-URL: Source, https://example.com/demo\nLicense-Expression: MIT\n"
        b"Description-Content-Type: text/markdown\n\n# Demo\nLong text.\n"
    )
    info = metadata_info(raw)
    assert info["summary"] == "A demo"
    assert info["requires_python"] == ">=3.9"
    assert info["requires_dist"] == ["requests>=2", "rich"]
    assert info["classifiers"] == ["Programming Language :: Python :: 3"]
    assert info["project_urls"] == {"Source": "https://example.com/demo"}
    assert info["license_expression"] == "MIT"
    assert info["description"] == "# Demo\nLong text.\n"
    assert info["home_page"] is None


def test_a_cold_page_keeps_many_index_reads_in_flight(stores: FakeStores, tmp_path: Path) -> None:
    # Over a link with a round trip of tens of milliseconds (a runner to ghcr.io), a page of
    # thousands of versions takes as long as its index reads queue: eight at a time made
    # 5,000 versions about 19 s of waiting at 30 ms each, 32 make it under 5 s.
    WANTED = 32
    store = stores.open("many")
    store.publish(read_distribution(make_wheel(tmp_path, "many", f"1.{n}")) for n in range(WANTED))
    lock = threading.Lock()
    in_flight = [0, 0]  # now, highest
    everyone_waiting = threading.Barrier(WANTED, timeout=10)
    get_manifest = store.get_manifest

    def slow_get_manifest(reference: str) -> RawManifest | None:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            everyone_waiting.wait()  # breaks (and fails the page) if fewer come at once
            return get_manifest(reference)
        finally:
            with lock:
                in_flight[0] -= 1

    store.get_manifest = slow_get_manifest  # type: ignore[method-assign]
    application = IndexApp(stores)
    try:
        page = call(application, "/simple/many/", accept=PIP_ACCEPT)
    finally:
        application.close()
    assert page.code == 200
    assert len(page.json()["versions"]) == WANTED
    assert in_flight[1] == WANTED


def test_a_registry_client_keeps_as_many_connections_as_it_has_requests_in_flight() -> None:
    from setuptools_ghcr.storage.registry.transport import POOL_SIZE, Transport

    # requests keeps 10 connections to a host by default: the 11th of 32 concurrent index
    # reads would open a connection, use it once and drop it.
    transport = Transport("registry.example", "https", None)
    try:
        adapter = transport._session.get_adapter("https://registry.example/v2/")
        assert adapter._pool_maxsize == POOL_SIZE >= DEFAULT_WORKERS  # type: ignore[attr-defined]
    finally:
        transport.close()
