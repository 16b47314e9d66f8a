"""Resolving, downloading and installing against real registries and ``oci:`` layouts."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.documents import EMPTY_JSON, OCI_EMPTY
from support.registry_harness import RunningRegistry
from support.stores import CountingStores, publish_files
from support.wheels import make_sdist, make_wheel, sha256_of

from setuptools_ghcr.cli import build_parser, main
from setuptools_ghcr.commands.install import split_pip_args
from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.oci import OCI_INDEX, OCI_MANIFEST, canonical_json
from setuptools_ghcr.core.targets import LayoutTarget, RegistryTarget, parse_target
from setuptools_ghcr.core.wire_format import PYOCI_SHA256
from setuptools_ghcr.errors import DigestMismatchError, NotFoundError
from setuptools_ghcr.storage.cache import BlobCache
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.install import install
from setuptools_ghcr.usecases.resolve import ResolveOptions, Resolver, download, parse_requirement

pytestmark = pytest.mark.integration


def namespace_target(registry: RunningRegistry) -> RegistryTarget:
    target = parse_target(f"{registry.host}/dl{secrets.token_hex(4)}")
    assert isinstance(target, RegistryTarget)
    return target


@pytest.fixture
def cache(tmp_path: Path) -> BlobCache:
    return BlobCache(tmp_path / "cache")


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[StoreFactory]:
    factory = StoreFactory(LayoutTarget(tmp_path / "packages"), environ={})
    yield factory
    factory.close()


# -- registry: verified, cached ---------------------------------------------------------------


def test_download_newest_then_from_cache_without_blob_get(
    plain_registry: RunningRegistry, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    old = make_wheel(built, "demo-pkg", "1.0")
    sdist = make_sdist(built, "demo-pkg", "1.1")
    wheel = make_wheel(built, "demo-pkg", "1.1")
    pre = make_wheel(built, "demo-pkg", "2.0b1")
    target = namespace_target(plain_registry)
    publish_files(CountingStores(target), old, sdist, wheel, pre)

    first = CountingStores(target)
    got = download(first, ["demo-pkg"], tmp_path / "one", cache=cache)
    assert [d.path for d in got] == [tmp_path / "one" / wheel.name]
    assert got[0].path.read_bytes() == wheel.read_bytes()
    assert not got[0].from_cache
    assert list((tmp_path / "one").iterdir()) == [got[0].path]  # no temporary file left behind
    # One tag listing, one index, the metadata blob and the file: no manifest per file.
    gets = [url for method, url in first.session.sent if method == "GET"]
    assert sum("/tags/list" in url for url in gets) == 1
    assert (
        sum("/manifests/" in url for url in gets) == 2
    )  # the 1.1 index, and the file's manifest for its metadata
    assert len(first.session.blob_gets()) == 2

    second = CountingStores(target)
    again = download(second, ["demo-pkg"], tmp_path / "two", cache=cache)
    assert again[0].path.read_bytes() == wheel.read_bytes()
    assert again[0].from_cache
    assert second.session.blob_gets() == []
    assert [m for m, u in second.session.sent if "/manifests/" in u] == ["GET"]  # the index only

    # --pre and a pinned pre-release both reach 2.0b1.
    pre_got = download(
        CountingStores(target),
        ["demo-pkg"],
        tmp_path / "pre",
        cache=cache,
        options=ResolveOptions(pre=True),
    )
    assert pre_got[0].path.name == pre.name
    pinned = download(CountingStores(target), ["demo-pkg==2.0b1"], tmp_path / "pin", cache=cache)
    assert pinned[0].path.name == pre.name


def test_sdist_when_no_wheel_fits(
    plain_registry: RunningRegistry, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    foreign = make_wheel(built, "native", "1.0", tag="cp27-cp27mu-linux_armv6l")
    sdist = make_sdist(built, "native", "1.0")
    target = namespace_target(plain_registry)
    publish_files(CountingStores(target), foreign, sdist)
    got = download(CountingStores(target), ["native"], tmp_path / "out", cache=cache)
    assert [d.path.name for d in got] == [sdist.name]
    assert sha256_of(got[0].path) == sha256_of(sdist)
    with pytest.raises(NotFoundError, match="no wheel of native"):
        download(
            CountingStores(target),
            ["native"],
            tmp_path / "out2",
            cache=cache,
            options=ResolveOptions(only_binary=True),
        )


def test_corrupted_registry_blob_reaches_neither_output_nor_cache(
    plain_registry: RunningRegistry, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    wheel = make_wheel(built, "fragile", "1.0", module_code="VALUE = 1\n" + "#" * 4000)
    target = namespace_target(plain_registry)
    publish_files(CountingStores(target), wheel)
    digest = sha256_of(wheel)
    data = plain_registry.blob_data_path(digest)
    original = data.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))
    try:
        out = tmp_path / "out"
        with pytest.raises(DigestMismatchError):
            download(
                CountingStores(target),
                ["fragile"],
                out,
                cache=cache,
                options=ResolveOptions(deps=False),
            )
        assert not out.exists() or list(out.iterdir()) == []
        assert not cache.has(read_distribution(wheel).sha256)
        blob_folder = cache.root / "blobs" / "sha256"
        assert not blob_folder.exists() or list(blob_folder.iterdir()) == []
    finally:
        data.write_bytes(original)


def test_damaged_cache_entry_is_dropped_and_fetched_again(
    plain_registry: RunningRegistry, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    wheel = make_wheel(built, "cached-pkg", "1.0")
    target = namespace_target(plain_registry)
    publish_files(CountingStores(target), wheel)
    download(CountingStores(target), ["cached-pkg"], tmp_path / "one", cache=cache)
    entry = cache.path(read_distribution(wheel).sha256)
    entry.write_bytes(b"tampered" + entry.read_bytes()[8:])

    stores = CountingStores(target)
    got = download(stores, ["cached-pkg"], tmp_path / "two", cache=cache)
    assert got[0].path.read_bytes() == wheel.read_bytes()
    assert not got[0].from_cache
    assert len(stores.session.blob_gets()) == 1  # the file again; the metadata was fine
    assert entry.read_bytes() == wheel.read_bytes()


# -- PyOCI's layout -----------------------------------------------------------------------------


def _upload_blob(base: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(f"{base}/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    location = requests.compat.urljoin(base, started.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = requests.put(
        f"{location}{separator}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert done.status_code == 201, done.text
    return digest


def push_like_pyoci(registry: RunningRegistry, repository: str, version: str, wheel: Path) -> None:
    """What PyOCI writes: empty config, one layer, an index with platform and sha256 only."""
    base = f"{registry.url}/v2/{repository}"
    data = wheel.read_bytes()
    layer_digest = _upload_blob(base, data)
    _upload_blob(base, EMPTY_JSON)
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/pyoci.package.v1",
            "config": {
                "mediaType": OCI_EMPTY,
                "digest": "sha256:" + hashlib.sha256(EMPTY_JSON).hexdigest(),
                "size": 2,
            },
            "layers": [
                {
                    "mediaType": "application/pyoci.package.v1",
                    "digest": layer_digest,
                    "size": len(data),
                }
            ],
        }
    )
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    put = requests.put(
        f"{base}/manifests/{manifest_digest}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    _name, _version, rest = wheel.name.split("-", 2)
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": "application/pyoci.package.v1",
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": rest, "os": "any"},
                    "annotations": {
                        PYOCI_SHA256: layer_digest.split(":", 1)[1],
                        "org.opencontainers.image.created": "2025-01-02T03:04:05Z",
                    },
                }
            ],
        }
    )
    put = requests.put(
        f"{base}/manifests/{version}", data=index, headers={"Content-Type": OCI_INDEX}, timeout=10
    )
    assert put.status_code == 201, put.text


def test_pyoci_package_resolves_with_its_dependencies(
    plain_registry: RunningRegistry, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    legacy = make_wheel(built, "legacy-app", "0.3", requires_dist=["modern-lib>=2"])
    lib_old = make_wheel(built, "modern-lib", "1.0")
    lib = make_wheel(built, "modern-lib", "2.1")
    target = namespace_target(plain_registry)
    push_like_pyoci(plain_registry, target.repository("legacy-app"), "0.3", legacy)
    publish_files(CountingStores(target), lib_old, lib)

    got = download(CountingStores(target), ["legacy-app"], tmp_path / "out", cache=cache)
    assert [d.path.name for d in got] == [legacy.name, lib.name]
    assert got[0].path.read_bytes() == legacy.read_bytes()
    assert got[1].path.read_bytes() == lib.read_bytes()


# -- token registry: pushed with credentials, read anonymously ------------------------------


def test_anonymous_download_from_token_registry(
    token_registry: RunningRegistry, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    wheel = make_wheel(built, "public-pkg", "3.2", requires_dist=["public-dep"])
    dep = make_wheel(built, "public-dep", "0.1")
    target = namespace_target(token_registry)
    publish_files(CountingStores(target, token_registry.credentials), wheel, dep)

    anonymous = StoreFactory(target, environ={}, home=tmp_path / "home")
    try:
        got = download(anonymous, ["public-pkg"], tmp_path / "out", cache=cache)
    finally:
        anonymous.close()
    assert [d.path.name for d in got] == [wheel.name, dep.name]
    assert got[0].path.read_bytes() == wheel.read_bytes()
    assert token_registry.token_server is not None
    pulls = [r for r in token_registry.token_server.requests if not r.authenticated]
    assert pulls, "the download should have asked for anonymous tokens"


# -- dependencies, on an oci: layout ------------------------------------------------------------


def test_dependencies_in_the_target_are_resolved(
    layout: StoreFactory, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    files = [
        make_wheel(
            built,
            "app",
            "1.0",
            requires_dist=[
                "lib>=1.1",
                "not-in-target>=1",
                "speedup; extra == 'fast'",
                "winonly; sys_platform == 'win32'",
            ],
        ),
        make_wheel(built, "lib", "1.0"),
        make_wheel(built, "lib", "1.1", requires_dist=["app"]),  # a cycle
        make_wheel(built, "lib", "1.2", requires_python="<3"),  # never fits
        make_wheel(built, "speedup", "0.5"),
        make_wheel(built, "winonly", "1.0"),
    ]
    publish_files(layout, *files)

    names = [d.path.name for d in download(layout, ["app"], tmp_path / "a", cache=cache)]
    assert names == ["app-1.0-py3-none-any.whl", "lib-1.1-py3-none-any.whl"]

    names = [d.path.name for d in download(layout, ["app[fast]"], tmp_path / "b", cache=cache)]
    assert names == [
        "app-1.0-py3-none-any.whl",
        "lib-1.1-py3-none-any.whl",
        "speedup-0.5-py3-none-any.whl",
    ]

    no_deps = download(
        layout, ["app"], tmp_path / "c", cache=cache, options=ResolveOptions(deps=False)
    )
    assert [d.path.name for d in no_deps] == ["app-1.0-py3-none-any.whl"]


def test_conflicting_requirements_fail_clearly(
    layout: StoreFactory, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    publish_files(
        layout,
        make_wheel(built, "app", "1.0", requires_dist=["lib>=1.1"]),
        make_wheel(built, "lib", "1.0"),
        make_wheel(built, "lib", "1.1"),
    )
    with pytest.raises(NotFoundError, match=r"no version of lib .* matches .*required by app"):
        download(layout, ["app", "lib<1.1"], tmp_path / "out", cache=cache)


def test_combined_specifiers_pick_a_version_both_allow(
    layout: StoreFactory, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    publish_files(
        layout,
        make_wheel(built, "app", "1.0", requires_dist=["lib>=1.1"]),
        *(make_wheel(built, "lib", v) for v in ("1.0", "1.1", "1.2", "1.3")),
    )
    got = download(layout, ["app", "lib<1.3"], tmp_path / "out", cache=cache)
    assert [d.path.name for d in got] == ["app-1.0-py3-none-any.whl", "lib-1.2-py3-none-any.whl"]


def test_errors_name_the_project_and_versions(
    layout: StoreFactory, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    publish_files(
        layout,
        *(
            make_wheel(built, "many", v)
            for v in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "2.0b1")
        ),
    )
    with pytest.raises(NotFoundError, match="project absent not found in oci:"):
        download(layout, ["absent"], tmp_path / "out", cache=cache)
    with pytest.raises(NotFoundError) as caught:
        download(layout, ["many>=3"], tmp_path / "out", cache=cache)
    message = str(caught.value)
    assert "no version of many in oci:" in message
    assert "matches >=3" in message
    assert "available: 2.0b1, 1.5, 1.4, 1.3, 1.2 and 2 older" in message
    # Only a pre-release matches: it is taken, as pip would.
    got = download(layout, ["many>1.5"], tmp_path / "out", cache=cache)
    assert [d.path.name for d in got] == ["many-2.0b1-py3-none-any.whl"]


def test_resolver_reads_each_index_once(
    layout: StoreFactory, tmp_path: Path, cache: BlobCache
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    publish_files(
        layout,
        make_wheel(built, "app", "1.0", requires_dist=["lib", "util"]),
        make_wheel(built, "util", "1.0", requires_dist=["lib"]),
        make_wheel(built, "lib", "1.0"),
    )
    reads: list[str] = []

    class Spy:
        target = layout.target

        def open(self, project: str) -> Store:
            store = layout.open(project)
            original = store.get_manifest

            def get_manifest(reference: str) -> Any:
                reads.append(f"{project}:{reference}")
                return original(reference)

            store.get_manifest = get_manifest  # type: ignore[method-assign]
            return store

    resolver = Resolver(Spy(), cache)
    assert resolver.resolve([]) == []
    chosen = resolver.resolve([parse_requirement("app")])
    assert [s.project for s in chosen] == ["app", "lib", "util"]
    tag_reads = [r for r in reads if "sha256:" not in r]
    assert sorted(tag_reads) == ["app:1.0", "lib:1.0", "util:1.0"]


# -- the command line ---------------------------------------------------------------------------


def test_cli_download_prints_paths(
    plain_registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    app = make_wheel(built, "cli-app", "1.0", requires_dist=["cli-lib"])
    lib = make_wheel(built, "cli-lib", "1.0")
    target = namespace_target(plain_registry)
    publish_files(CountingStores(target), app, lib)
    monkeypatch.setenv("SETUPTOOLS_GHCR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    status = main(["download", "-r", str(target), "-d", "out", "cli-app"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert captured.out.splitlines() == [f"out/{app.name}", f"out/{lib.name}"]
    assert (tmp_path / "out" / app.name).read_bytes() == app.read_bytes()
    assert (tmp_path / "cache" / "blobs" / "sha256" / sha256_of(app)).is_file()

    status = main(["download", "-r", str(target), "-d", "out", "cli-app>=2"])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "no version of cli-app" in captured.err
    assert "available: 1.0" in captured.err


# -- install ------------------------------------------------------------------------------------


def _private_pair(built: Path) -> list[Path]:
    return [
        make_wheel(
            built,
            "private-app",
            "1.0",
            requires_dist=["private-lib>=2"],
            module_code=(
                "from private_lib import greeting\n\ndef hello():\n    return greeting() + '!'\n"
            ),
        ),
        make_wheel(built, "private-lib", "1.0", module_code="def greeting():\n    return 'old'\n"),
        make_wheel(
            built, "private-lib", "2.0", module_code="def greeting():\n    return 'hello'\n"
        ),
    ]


def test_install_into_a_fresh_venv(layout: StoreFactory, tmp_path: Path, cache: BlobCache) -> None:
    built = tmp_path / "built"
    built.mkdir()
    publish_files(layout, *_private_pair(built))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    status = install(
        layout,
        ["private-app"],
        cache=cache,
        pip_args=["--no-index", "--quiet", "--disable-pip-version-check"],
        python=python,
    )
    assert status == 0
    ran = subprocess.run(
        [python, "-c", "import private_app; print(private_app.hello())"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert ran.stdout.strip() == "hello!"


def test_cli_install_passes_pip_arguments(
    plain_registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    built = tmp_path / "built"
    built.mkdir()
    target = namespace_target(plain_registry)
    publish_files(CountingStores(target), *_private_pair(built))
    monkeypatch.setenv("SETUPTOOLS_GHCR_CACHE_DIR", str(tmp_path / "cache"))
    installed = tmp_path / "site"
    argv = ["install", "-r", str(target), "--pre", "private-app", "--"]
    status = main([*argv, "--no-index", "--target", str(installed), "--disable-pip-version-check"])
    output = capfd.readouterr()
    assert status == 0, output.err
    assert (installed / "private_app" / "__init__.py").is_file()
    assert "greeting() + '!'" in (installed / "private_app" / "__init__.py").read_text()
    assert "'hello'" in (installed / "private_lib" / "__init__.py").read_text()

    # pip's failure is the command's failure: --no-index with an unknown extra requirement.
    status = main(
        [
            *argv[:-1],
            "--",
            "--no-index",
            "--target",
            str(tmp_path / "x"),
            "-r",
            str(tmp_path / "missing.txt"),
        ]
    )
    assert status != 0
    capfd.readouterr()


@pytest.mark.parametrize(
    ("argv", "requirements", "pip_args"),
    [
        (
            ["a", "b", "--", "--no-index", "--find-links", "X"],
            ["a", "b"],
            ["--no-index", "--find-links", "X"],
        ),
        (["--pre", "-r", "oci:x", "a", "--", "--target", "D"], ["a"], ["--target", "D"]),
        (["a"], ["a"], []),
        (["a>=1", "--", "-r", "reqs.txt", "--", "x"], ["a>=1"], ["-r", "reqs.txt", "--", "x"]),
    ],
)
def test_install_arguments_split_at_double_dash(
    argv: list[str], requirements: list[str], pip_args: list[str]
) -> None:
    parser, _commands = build_parser()
    args = parser.parse_args(["install", *argv])
    assert split_pip_args(args) == (requirements, pip_args)
    # A command line that split them itself is taken at its word.
    args.pip_args = ["--user"]
    assert split_pip_args(args)[1] == ["--user"]
