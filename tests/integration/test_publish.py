"""Publishing against real registries (plain, htpasswd, token) and the layout store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.cli import copy_example, run_process, user_environment
from support.registry_harness import RunningRegistry
from support.stores import publish_files
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr import cli
from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.oci import OCI_MANIFEST, Descriptor, Index, Manifest
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.core.wire_format import (
    ARTIFACT_TYPE,
    LAYER_MEDIA_TYPE,
    METADATA_MEDIA_TYPE,
    file_entries,
    version_to_tag,
)
from setuptools_ghcr.errors import ConflictError, InvalidDistributionError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import read_index

pytestmark = pytest.mark.integration

CREATED = "2026-01-02T03:04:05Z"


@dataclass
class Where:
    """A target under test: its text, a store factory with the right credentials."""

    text: str
    factory: StoreFactory
    registry: RunningRegistry | None

    def store(self, project: str) -> Store:
        return self.factory.open(project)

    def cli_args(self) -> list[str]:
        args = ["--repository", self.text]
        if self.registry is not None and self.registry.username:
            args += [
                "--username",
                self.registry.username,
                "--password",
                str(self.registry.password),
            ]
        return args


def _registry_where(registry: RunningRegistry, namespace: str) -> Where:
    text = f"{registry.host}/{namespace}"
    factory = StoreFactory(
        parse_target(text),
        username=registry.username,
        password=registry.password,
        environ={},
    )
    return Where(text, factory, registry)


@pytest.fixture(params=["layout", "plain", "htpasswd", "token", "ghcr"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Where]:
    namespace = f"pub{abs(hash(request.node.nodeid)) % 10**8}"
    if request.param == "layout":
        text = f"oci:{tmp_path / 'store'}"
        yield Where(text, StoreFactory(parse_target(text), environ={}), None)
        return
    registry: RunningRegistry = request.getfixturevalue(f"{request.param}_registry")
    where = _registry_where(registry, namespace)
    yield where
    where.factory.close()


def _dists(tmp_path: Path, name: str = "demo-pkg", version: str = "1.0.0") -> list[Path]:
    out = tmp_path / "dist"
    out.mkdir(exist_ok=True)
    return [
        make_wheel(out, name, version, requires_python=">=3.9", summary="A demo."),
        make_wheel(out, name, version, tag="cp311-cp311-manylinux_2_17_x86_64"),
        make_sdist(out, name, version, requires_python=">=3.9"),
    ]


def test_wire_format_field_by_field(where: Where, tmp_path: Path) -> None:
    paths = _dists(tmp_path)
    results = publish_files(
        where.factory, *paths, created=CREATED, source="https://github.com/acme/demo"
    )
    assert [r.status for r in results] == ["uploaded"] * 3

    store = where.store("demo-pkg")
    assert store.repository.endswith("demo_pkg")
    index = read_index(store, "1.0.0")
    assert index is not None
    assert index.artifact_type == ARTIFACT_TYPE
    assert index.annotations["org.opencontainers.image.version"] == "1.0.0"
    # ghcr.io shows a multi-file package's description from the index: it says it too.
    assert index.annotations["org.opencontainers.image.source"] == "https://github.com/acme/demo"
    assert index.annotations["org.opencontainers.image.description"] == "A demo."
    assert sorted(
        d.annotations["io.github.setuptools-ghcr.filename"] for d in index.manifests
    ) == sorted(p.name for p in paths)
    for path in paths:
        data = path.read_bytes()
        dist = read_distribution(path)
        (entry,) = [
            d
            for d in index.manifests
            if d.annotations["io.github.setuptools-ghcr.filename"] == path.name
        ]
        assert entry.media_type == OCI_MANIFEST
        assert entry.artifact_type is None  # old skopeo cannot copy indexes that carry it
        assert entry.platform is not None
        expected_arch = ".tar.gz" if path.name.endswith(".tar.gz") else path.name.split("-", 2)[2]
        assert entry.platform.architecture == expected_arch
        assert entry.platform.os == "any"
        notes = entry.annotations
        assert notes["com.pyoci.sha256_digest"] == hashlib.sha256(data).hexdigest()
        assert notes["io.github.setuptools-ghcr.size"] == str(len(data))
        assert notes["io.github.setuptools-ghcr.metadata-digest"] == (
            "sha256:" + hashlib.sha256(dist.metadata).hexdigest()
        )
        assert notes["org.opencontainers.image.created"] == CREATED
        if dist.requires_python:
            assert notes["io.github.setuptools-ghcr.requires-python"] == dist.requires_python

        found = store.get_manifest(str(entry.digest))
        assert found is not None and found.digest == entry.digest
        manifest = Manifest.from_bytes(found.raw)
        assert manifest.artifact_type == ARTIFACT_TYPE
        assert manifest.config.media_type == METADATA_MEDIA_TYPE
        assert store.read_blob(manifest.config) == dist.metadata
        (layer,) = manifest.layers
        assert layer.media_type == LAYER_MEDIA_TYPE
        assert layer.digest.hex == hashlib.sha256(data).hexdigest()
        assert layer.size == len(data)
        assert layer.annotations["org.opencontainers.image.title"] == path.name
        assert manifest.annotations["org.opencontainers.image.source"] == (
            "https://github.com/acme/demo"
        )
        assert manifest.annotations["org.opencontainers.image.version"] == "1.0.0"
        target = tmp_path / "back" / path.name
        target.parent.mkdir(exist_ok=True)
        store.download_blob(layer, target)
        assert target.read_bytes() == data

    entries = file_entries(index, "demo-pkg", dist.version)
    assert {e.filename for e in entries} == {p.name for p in paths}


def test_republish_same_bytes_is_a_noop_and_other_bytes_are_refused(
    where: Where, tmp_path: Path
) -> None:
    paths = _dists(tmp_path)
    publish_files(where.factory, *paths, created=CREATED)
    store = where.store("demo-pkg")
    before = store.get_manifest("1.0.0")
    assert before is not None

    again = publish_files(where.factory, *paths, created=CREATED)
    assert [r.status for r in again] == ["exists"] * 3

    other = tmp_path / "other"
    other.mkdir()
    changed = make_wheel(other, "demo-pkg", "1.0.0", summary="different bytes")
    new_file = make_wheel(other, "demo-pkg", "1.0.0", tag="py2-none-any")
    with pytest.raises(ConflictError, match="already published with other contents"):
        publish_files(where.factory, new_file, changed, created=CREATED)
    after = store.get_manifest("1.0.0")
    assert after is not None and after.raw == before.raw, "a refused push changed the index"

    results = publish_files(where.factory, new_file, changed, created=CREATED, skip_existing=True)
    assert [r.status for r in results] == ["uploaded", "skipped"]
    index = read_index(store, "1.0.0")
    assert index is not None and len(index.manifests) == 4


def test_files_added_later_merge_into_the_version(where: Where, tmp_path: Path) -> None:
    first, second, sdist = _dists(tmp_path)
    publish_files(where.factory, first, created=CREATED)
    publish_files(where.factory, second, sdist, created=CREATED, extra_tags=("latest",))
    store = where.store("demo-pkg")
    index = read_index(store, "1.0.0")
    assert index is not None
    names = {d.annotations["io.github.setuptools-ghcr.filename"] for d in index.manifests}
    assert names == {first.name, second.name, sdist.name}
    latest = store.get_manifest("latest")
    assert latest is not None and latest.digest == index.digest


def test_concurrent_publishers_of_one_version_all_land(where: Where, tmp_path: Path) -> None:
    out = tmp_path / "many"
    out.mkdir()
    tags = [f"cp3{minor}-cp3{minor}-manylinux_2_17_x86_64" for minor in range(6, 14)]
    paths = [make_wheel(out, "racer", "2.0", tag=tag) for tag in tags]
    errors: list[BaseException] = []

    def one(path: Path) -> None:
        # Each publisher has its own factory: its own session and tokens, like its own process.
        factory = (
            StoreFactory(parse_target(where.text), environ={})
            if where.registry is None
            else _registry_where(where.registry, where.text.split("/", 1)[1]).factory
        )
        try:
            publish_files(factory, path, created=CREATED)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=one, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    index = read_index(where.store("racer"), "2.0")
    assert index is not None
    names = {d.annotations["io.github.setuptools-ghcr.filename"] for d in index.manifests}
    assert names == {p.name for p in paths}


def test_bad_input_publishes_nothing(where: Where, tmp_path: Path) -> None:
    good = make_wheel(tmp_path, "solid", "1.0")
    bad = make_wheel(
        tmp_path,
        "solid",
        "1.0",
        tag="py2-none-any",
        metadata=b"Name: other\nVersion: 1.0\nMetadata-Version: 2.1\n",
    )
    with pytest.raises(InvalidDistributionError):
        publish_files(where.factory, good, bad, created=CREATED)
    store = where.store("solid")
    assert store.list_tags() == []
    assert not store.blob_exists(read_distribution(good).sha256)


def test_cli_push_json_and_errors(
    where: Where,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    paths = _dists(tmp_path, name="cli-pkg", version="0.1.0")
    status = cli.main(["push", *where.cli_args(), "--json", *map(str, paths)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads(captured.out)
    assert [f["status"] for f in report["files"]] == ["uploaded"] * 3
    assert report["files"][0]["reference"].endswith("cli_pkg:0.1.0")

    status = cli.main(["push", *where.cli_args(), str(paths[0])])
    captured = capsys.readouterr()
    assert status == 0
    assert "already there" in captured.out

    (tmp_path / "x").mkdir()
    changed = make_wheel(tmp_path / "x", "cli-pkg", "0.1.0", summary="changed")
    status = cli.main(["push", *where.cli_args(), str(changed)])
    captured = capsys.readouterr()
    assert status == 1
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("error: ")
    assert "Traceback" not in captured.err

    not_a_dist = tmp_path / "notes.txt"
    not_a_dist.write_text("hello")
    status = cli.main(["push", *where.cli_args(), str(not_a_dist)])
    captured = capsys.readouterr()
    assert status == 1 and "not a distribution" in captured.err


def _raw_get(registry: RunningRegistry, path: str, accept: str) -> requests.Response:
    return requests.get(f"{registry.url}{path}", headers={"Accept": accept}, timeout=10)


def test_skopeo_reads_and_copies_what_was_pushed(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    where = _registry_where(plain_registry, "skopeo")
    paths = _dists(tmp_path, name="copied", version="3.1")
    publish_files(where.factory, *paths, created=CREATED)
    ours = where.store("copied").get_manifest("3.1")
    assert ours is not None
    source = f"docker://{plain_registry.host}/skopeo/copied:3.1"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", source],
        check=True,
        capture_output=True,
    ).stdout
    assert raw == ours.raw

    # Registry -> registry, digests preserved, and the copy reads back the same.
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            source,
            f"docker://{plain_registry.host}/mirror/copied:3.1",
        ],
        check=True,
        capture_output=True,
    )
    mirror = _registry_where(plain_registry, "mirror").store("copied")
    copied = mirror.get_manifest("3.1")
    assert copied is not None and copied.raw == ours.raw

    # Registry -> oci: layout -> our layout store reads the same index and files.
    layout_root = tmp_path / "layouts"
    layout_root.mkdir()
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
            source,
            f"oci:{layout_root / 'copied'}:3.1",
        ],
        check=True,
        capture_output=True,
    )
    layout = StoreFactory(parse_target(f"oci:{layout_root}"), environ={}).open("copied")
    from_layout = layout.get_manifest("3.1")
    assert from_layout is not None and from_layout.raw == ours.raw
    index = Index.from_bytes(from_layout.raw)
    for entry in index.manifests:
        found = layout.get_manifest(str(entry.digest))
        assert found is not None
        manifest = Manifest.from_bytes(found.raw)
        assert layout.blob_exists(manifest.layers[0].digest)


def test_layout_published_with_skopeo_reads_back(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "oci"
    layout = Where(f"oci:{root}", StoreFactory(parse_target(f"oci:{root}"), environ={}), None)
    paths = _dists(tmp_path, name="from-layout", version="0.9")
    publish_files(layout.factory, *paths, created=CREATED)
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{root / 'from_layout'}:0.9",
            f"docker://{plain_registry.host}/copied/from_layout:0.9",
        ],
        check=True,
        capture_output=True,
    )
    remote = _registry_where(plain_registry, "copied").store("from-layout")
    pushed = layout.store("from-layout").get_manifest("0.9")
    fetched = remote.get_manifest("0.9")
    assert pushed is not None and fetched is not None
    assert fetched.raw == pushed.raw
    index = read_index(remote, "0.9")
    assert index is not None
    entries = file_entries(index, "from-layout", read_distribution(paths[0]).version)
    for entry in entries:
        target = tmp_path / "pulled" / entry.filename
        target.parent.mkdir(exist_ok=True)
        assert entry.sha256 is not None and entry.size is not None
        remote.download_blob(Descriptor(LAYER_MEDIA_TYPE, entry.sha256, entry.size), target)
        assert target.read_bytes() == (tmp_path / "dist" / entry.filename).read_bytes()


def test_oras_pulls_a_file_under_its_own_name(
    plain_registry: RunningRegistry, tmp_path: Path
) -> None:
    oras_client = pytest.importorskip("oras.client")
    where = _registry_where(plain_registry, "oras")
    (wheel,) = _dists(tmp_path, name="pulled-by-oras", version="1.2")[:1]
    publish_files(where.factory, wheel, created=CREATED)
    index = read_index(where.store("pulled-by-oras"), "1.2")
    assert index is not None
    digest = index.manifests[0].digest
    client = oras_client.OrasClient(hostname=plain_registry.host, insecure=True)
    out = tmp_path / "oras-out"
    files = client.pull(
        target=f"{plain_registry.host}/oras/pulled_by_oras@{digest}", outdir=str(out)
    )
    assert [Path(f).name for f in files] == [wheel.name]
    assert (out / wheel.name).read_bytes() == wheel.read_bytes()


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def test_setup_py_ghcr_upload_publishes(
    example_copy: Path, plain_registry: RunningRegistry
) -> None:
    target = f"{plain_registry.host}/setup-py"
    done = run_process(
        [
            sys.executable,
            "setup.py",
            "-q",
            "sdist",
            "bdist_wheel",
            "ghcr_upload",
            "--repository",
            target,
        ],
        example_copy,
        user_environment(),
    )
    assert done.returncode == 0, done.stderr
    store = _registry_where(plain_registry, "setup-py").store("hello-ghcr")
    index = read_index(store, "1.0.0")
    assert index is not None
    names = sorted(d.annotations["io.github.setuptools-ghcr.filename"] for d in index.manifests)
    assert names == sorted(p.name for p in (example_copy / "dist").iterdir())
    assert len(names) == 2
    # The config's `tags = ["latest"]` and annotations are applied.
    assert store.get_manifest("latest") is not None
    found = store.get_manifest(str(index.manifests[0].digest))
    assert found is not None
    manifest = Manifest.from_bytes(found.raw)
    assert manifest.annotations["com.example.team"] == "platform-tools"


def test_setup_py_ghcr_upload_alone_uses_dist_folder(example_copy: Path, tmp_path: Path) -> None:
    built = run_process(
        [sys.executable, "setup.py", "-q", "sdist"], example_copy, user_environment()
    )
    assert built.returncode == 0, built.stderr
    (example_copy / "dist" / "hello_ghcr-0.1-py3-none-any.whl").write_bytes(b"not this version")
    done = run_process(
        [sys.executable, "setup.py", "ghcr_upload"], example_copy, user_environment()
    )
    assert done.returncode == 0, done.stderr
    store = StoreFactory(parse_target(f"oci:{example_copy / 'dist-oci'}"), environ={}).open(
        "hello-ghcr"
    )
    assert store.list_tags() == ["1.0.0", "latest"]


def test_build_backend_publishes_only_when_asked(example_copy: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "from-build"
    plain = run_process(
        [sys.executable, "-m", "build", "--no-isolation"],
        example_copy,
        user_environment(SETUPTOOLS_GHCR_REPOSITORY=f"oci:{store_path}"),
    )
    assert plain.returncode == 0, plain.stderr
    assert not store_path.exists(), "a plain build published something"
    assert not (example_copy / "dist-oci").exists()

    asked = run_process(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "-C",
            "ghcr-upload=true",
            "-C",
            f"ghcr-repository=oci:{store_path}",
        ],
        example_copy,
        user_environment(),
    )
    assert asked.returncode == 0, asked.stderr
    store = StoreFactory(parse_target(f"oci:{store_path}"), environ={}).open("hello-ghcr")
    index = read_index(
        store,
        version_to_tag(read_distribution(next((example_copy / "dist").glob("*.whl"))).version),
    )
    assert index is not None and len(index.manifests) == 2

    # The environment variable asks too; the config's relative oci: folder counts from the
    # project even though the wheel is built from an unpacked sdist elsewhere.
    by_env = run_process(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", "dist2"],
        example_copy,
        user_environment(SETUPTOOLS_GHCR_UPLOAD="1"),
    )
    assert by_env.returncode == 0, by_env.stderr
    config_store = StoreFactory(parse_target(f"oci:{example_copy / 'dist-oci'}"), environ={}).open(
        "hello-ghcr"
    )
    assert "1.0.0" in config_store.list_tags()
