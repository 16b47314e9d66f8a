"""Transient faults between the tool and a real registry: resets in the middle of a blob
download and of an upload body, 503 and 429 with Retry-After, answers that stall past the
client's timeout, and the registry process killed in the middle of a push.

Push, download, install and serve must get through them (or fail with one line once a fault
outlasts the retries), never leave a partial file, never publish an index that names missing
content, and a push that failed must finish when run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from support.cli import Cli, assert_refused
from support.fault_proxy import Fault, FaultProxy, Outage
from support.folders import no_partial_files
from support.http import get, serving
from support.registry_harness import RunningRegistry
from support.stores import ClientStores, fast_client, filenames, missing_content, publish_files
from support.wheels import make_sdist, make_wheel, sha256_of

from setuptools_ghcr.serve.app import IndexApp
from setuptools_ghcr.serve.server import IndexServer
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.usecases.resolve import ResolveOptions, download

pytestmark = pytest.mark.integration

BLOB = r"/blobs/sha256:"
UPLOAD = r"/blobs/uploads/."
#: A quick client: the stalls below last longer than this.
TIMEOUT = 1.5
#: Big enough that a cut lands in the middle, small enough for CI.
PAYLOAD = 4 << 20


def _namespace(tmp_path: Path) -> str:
    return f"faults{abs(hash(tmp_path)) % 10**8}"


def _big_wheel(folder: Path, name: str, version: str = "1.0", tag: str = "py3-none-any") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return make_wheel(
        folder,
        name,
        version,
        tag=tag,
        extra_files={f"{name.replace('-', '_')}/payload.bin": os.urandom(PAYLOAD)},
        module_code=f"VALUE = {version!r}\n",
    )


def _stores(registry: RunningRegistry, proxy: FaultProxy, namespace: str) -> ClientStores:
    client = fast_client(proxy.host, registry.credentials, timeout=TIMEOUT)
    return ClientStores(f"{proxy.host}/{namespace}", client)


def _direct(registry: RunningRegistry, namespace: str) -> ClientStores:
    """Stores that bypass the proxy, to check what the registry really holds."""
    client = fast_client(registry.host, registry.credentials)
    return ClientStores(f"{registry.host}/{namespace}", client)


# --------------------------------------------------------------------------- push


def test_push_gets_through_resets_503_and_429(
    proxied: tuple[FaultProxy, RunningRegistry], tmp_path: Path
) -> None:
    proxy, registry = proxied
    namespace = _namespace(tmp_path)
    paths = [
        _big_wheel(tmp_path / "dist", "flaky-push"),
        make_sdist(tmp_path / "dist", "flaky-push", "1.0"),
    ]
    cut_upload = Fault("reset_request", "PUT", UPLOAD, after=(3 << 20) // 2)
    busy_head = Fault("status", "HEAD", BLOB, status=503, retry_after="0", times=2)
    refused_manifest = Fault("status", "PUT", r"/manifests/sha256:", status=503, retry_after="0")
    rate_limited_index = Fault("status", "PUT", r"/manifests/1\.0$", status=429, retry_after="1")
    proxy.add(cut_upload, busy_head, refused_manifest, rate_limited_index)
    stores = _stores(registry, proxy, namespace)

    started = time.monotonic()
    results = publish_files(stores, *paths, workers=2)
    elapsed = time.monotonic() - started

    assert [r.status for r in results] == ["uploaded", "uploaded"]
    for fault in (cut_upload, busy_head, refused_manifest, rate_limited_index):
        assert fault.fired == fault.times, fault
    assert elapsed >= 1.0, "Retry-After: 1 was not waited for"
    direct = _direct(registry, namespace).open("flaky-push")
    assert filenames(direct, "flaky-push", "1.0") == sorted(p.name for p in paths)
    assert missing_content(direct, "flaky-push") == []


def test_push_whose_answer_stalls_checks_before_uploading_again(
    proxy: FaultProxy, plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    namespace = _namespace(tmp_path)
    wheel = _big_wheel(tmp_path / "dist", "stalled-push")
    # The upload reaches the registry, but its answer never comes back in time.
    stall = Fault("stall", "PUT", UPLOAD, after=-1, seconds=TIMEOUT * 3)
    proxy.add(stall)
    stores = _stores(plain_registry, proxy, namespace)

    (result,) = publish_files(stores, wheel)

    assert result.status == "uploaded"
    assert stall.fired == 1
    # Layer and metadata, each uploaded once: the lost answer was a success, and the
    # client asked (HEAD) rather than sending 4 MiB again.
    assert proxy.count("PUT", UPLOAD) == 2
    assert (
        missing_content(_direct(plain_registry, namespace).open("stalled-push"), "stalled-push")
        == []
    )


def test_registry_killed_mid_push_and_restarted(
    own_registry: RunningRegistry, tmp_path: Path
) -> None:
    namespace = _namespace(tmp_path)
    paths = [
        _big_wheel(tmp_path / "dist", "killed-push"),
        _big_wheel(tmp_path / "dist", "killed-push", tag="py2.py3-none-any"),
    ]
    outage = Outage(own_registry, down_for=0.5)
    with FaultProxy(own_registry.host) as proxy:
        proxy.add(Fault("reset_request", "PUT", UPLOAD, after=2 << 20, then=outage))
        # A registry just restarted may take a moment for its first answer.
        client = fast_client(proxy.host, timeout=10, retries=10)
        stores = ClientStores(f"{proxy.host}/{namespace}", client)
        results = publish_files(stores, *paths)
    outage.restore()

    assert outage.started_at is not None, "the registry was never killed"
    assert [r.status for r in results] == ["uploaded", "uploaded"]
    direct = _direct(own_registry, namespace).open("killed-push")
    assert filenames(direct, "killed-push", "1.0") == sorted(p.name for p in paths)
    assert missing_content(direct, "killed-push") == []


def test_push_cut_off_for_good_fails_in_one_line_and_a_rerun_finishes(
    own_registry: RunningRegistry, cli: Cli, tmp_path: Path
) -> None:
    namespace = _namespace(tmp_path)
    paths = [
        _big_wheel(tmp_path / "dist", "rerun-push"),
        make_sdist(tmp_path / "dist", "rerun-push", "1.0"),
    ]
    quick = {"SETUPTOOLS_GHCR_TIMEOUT": "3", "SETUPTOOLS_GHCR_RETRIES": "1"}
    outage = Outage(own_registry, down_for=None)
    with FaultProxy(own_registry.host) as proxy:
        target = f"{proxy.host}/{namespace}"
        proxy.add(Fault("reset_request", "PUT", UPLOAD, after=2 << 20, then=outage))
        failed = cli.run("push", "--repository", target, *map(str, paths), env=quick)
        assert_refused(failed, "rerun_push", "cannot reach")
        assert outage.started_at is not None
        outage.restore()

        # Whatever landed before the cut, no index names what is missing.
        direct = _direct(own_registry, namespace).open("rerun-push")
        assert missing_content(direct, "rerun-push") == []
        assert filenames(direct, "rerun-push", "1.0") == []

        # The registry is back: the same command finishes the job.
        again = cli.run("push", "--repository", target, *map(str, paths), env=quick)
    assert again.returncode == 0, str(again)
    assert filenames(direct, "rerun-push", "1.0") == sorted(p.name for p in paths)
    assert missing_content(direct, "rerun-push") == []


def test_index_that_cannot_be_written_is_not_half_published(
    proxy: FaultProxy, plain_registry: RunningRegistry, cli: Cli, tmp_path: Path
) -> None:
    namespace = _namespace(tmp_path)
    paths = [make_wheel(tmp_path, "no-index", "2.0"), make_sdist(tmp_path, "no-index", "2.0")]
    target = f"{proxy.host}/{namespace}"
    # Every blob and manifest lands; the version's index never does.
    proxy.add(Fault("status", "PUT", r"/manifests/2\.0$", status=503, retry_after="0", times=None))
    quick = {"SETUPTOOLS_GHCR_RETRIES": "1"}

    failed = cli.run("push", "--repository", target, *map(str, paths), env=quick)

    assert_refused(failed, "503")
    direct = _direct(plain_registry, namespace).open("no-index")
    assert direct.list_tags() == []
    proxy.clear()
    again = cli.run("push", "--repository", target, *map(str, paths), env=quick)
    assert again.returncode == 0, str(again)
    assert filenames(direct, "no-index", "2.0") == sorted(p.name for p in paths)
    assert missing_content(direct, "no-index") == []


# --------------------------------------------------------------------------- download


@pytest.fixture
def published(plain_registry: RunningRegistry, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A 4 MiB wheel published on the plain registry: (namespace, its file)."""
    namespace = _namespace(tmp_path)
    wheel = _big_wheel(tmp_path / "dist", "flaky-pull")
    stores = _direct(plain_registry, namespace)
    publish_files(stores, wheel)
    yield namespace, wheel
    stores.client.close()


def test_download_gets_through_resets_stalls_503_and_429(
    proxy: FaultProxy,
    plain_registry: RunningRegistry,
    published: tuple[str, Path],
    tmp_path: Path,
) -> None:
    namespace, wheel = published
    proxy.add(
        Fault("status", "GET", r"/tags/list", status=429, retry_after="1"),
        Fault("status", "GET", r"/manifests/1\.0$", status=503, retry_after="0"),
        Fault("reset_response", "GET", BLOB, after=(5 << 20) // 2),
        Fault("stall", "GET", BLOB, after=(3 << 20) // 2, seconds=TIMEOUT * 3),
        Fault("status", "GET", BLOB, status=503),
    )
    stores = _stores(plain_registry, proxy, namespace)
    cache = BlobCache(tmp_path / "cache")
    out = tmp_path / "out"

    (done,) = download(stores, ["flaky-pull"], out, cache=cache, options=ResolveOptions(deps=False))

    assert done.path == out / wheel.name
    assert sha256_of(done.path) == sha256_of(wheel)
    ranges = [r.headers.get("range") for r in proxy.requests if BLOB in r.target]
    assert any(ranges), f"no download resumed with Range: {ranges}"
    assert sorted(p.name for p in out.iterdir()) == [wheel.name]
    assert no_partial_files(out, cache.root) == []


def test_download_fault_outlasting_retries_fails_in_one_line_leaving_nothing(
    proxy: FaultProxy, published: tuple[str, Path], cli: Cli
) -> None:
    namespace, _wheel = published
    # Cut before a whole 1 MiB read completes: no attempt makes progress.
    proxy.add(Fault("reset_response", "GET", BLOB, after=256 << 10, times=None))
    out = cli.cwd / "out"

    result = cli.run(
        "download",
        "--repository",
        f"{proxy.host}/{namespace}",
        "-d",
        str(out),
        "flaky-pull",
        env={"SETUPTOOLS_GHCR_RETRIES": "1", "SETUPTOOLS_GHCR_TIMEOUT": "3"},
    )

    assert_refused(result, "blob")
    assert not out.exists() or list(out.iterdir()) == []
    assert no_partial_files(cli.cache) == []
    cached = list((cli.cache / "blobs").rglob("*")) if (cli.cache / "blobs").exists() else []
    assert [p for p in cached if p.is_file() and p.stat().st_size >= PAYLOAD] == []


def test_install_gets_through_faults(
    proxy: FaultProxy, published: tuple[str, Path], cli: Cli
) -> None:
    namespace, _wheel = published
    proxy.add(
        Fault("status", "GET", r"/manifests/1\.0$", status=503, retry_after="0"),
        Fault("reset_response", "GET", BLOB, after=(5 << 20) // 2),
    )
    site = cli.cwd / "site"

    result = cli.run(
        "install",
        "--repository",
        f"{proxy.host}/{namespace}",
        "flaky-pull",
        "--",
        "--no-index",
        "--no-deps",
        "--target",
        str(site),
        "--disable-pip-version-check",
        "--quiet",
        env={"SETUPTOOLS_GHCR_TIMEOUT": "5"},
    )

    assert result.returncode == 0, str(result)
    assert (site / "flaky_pull" / "__init__.py").read_text() == "VALUE = '1.0'\n"
    assert (site / "flaky_pull" / "payload.bin").stat().st_size == PAYLOAD
    assert proxy.count("GET", BLOB) >= 2


# --------------------------------------------------------------------------- serve


@pytest.fixture
def served(
    proxy: FaultProxy, plain_registry: RunningRegistry, published: tuple[str, Path]
) -> Iterator[IndexServer]:
    namespace, _wheel = published
    with serving(IndexApp(_stores(plain_registry, proxy, namespace), cache_ttl=0)) as server:
        yield server


def _file_url(server: IndexServer) -> tuple[str, str]:
    page_url = server.url + "flaky-pull/"
    status, _, body = get(page_url, "application/vnd.pypi.simple.v1+json")
    assert status == 200, body
    (item,) = json.loads(body)["files"]
    return urljoin(page_url, item["url"]), item["hashes"]["sha256"]


def test_serve_gets_through_faults(
    served: IndexServer, proxy: FaultProxy, published: tuple[str, Path]
) -> None:
    _namespace, wheel = published
    proxy.add(Fault("status", "GET", r"/tags/list", status=503, retry_after="0"))
    url, sha256 = _file_url(served)
    proxy.add(
        Fault("reset_response", "GET", BLOB, after=(5 << 20) // 2),
        Fault("stall", "GET", BLOB, after=1 << 20, seconds=TIMEOUT * 3),
    )

    status, headers, body = get(url)

    assert status == 200
    assert int(headers["content-length"]) == len(body) == wheel.stat().st_size
    assert hashlib.sha256(body).hexdigest() == sha256 == sha256_of(wheel)


def test_serve_never_hands_out_a_whole_wrong_file_when_faults_persist(
    served: IndexServer, proxy: FaultProxy, published: tuple[str, Path]
) -> None:
    _namespace, wheel = published
    url, _sha256_hex = _file_url(served)
    # Broken before the first chunk: an error status, not a 200.
    broken = Fault("reset_response", "GET", BLOB, after=256 << 10, times=None)
    proxy.add(broken)
    status, _headers, body = get(url)
    assert status == 502, body
    assert broken.fired >= 2

    # Broken after most of the file went out: the body stops short of its Content-Length,
    # which pip and uv refuse; the last chunk is never sent unverified.
    proxy.clear()
    proxy.add(
        # A stall, not a reset: a reset may drop what was in flight, this delivers 3 MiB.
        Fault("stall", "GET", BLOB, after=3 << 20, seconds=TIMEOUT * 3),
        Fault("reset_response", "GET", BLOB, after=256 << 10, times=None),
    )
    status, headers, body = get(url)
    assert status == 200
    assert 0 < len(body) < int(headers["content-length"]) == wheel.stat().st_size
