"""A project with many versions on a registry: the input of the resolve and serve scenarios.

Thousands of versions are written straight through the registry API, as this tool's push
writes them (the same manifests and indexes, built by the same functions), but quickly:

- the files of every version but the newest share one set of blobs and manifests (four
  files, their metadata, and one manifest each, uploaded once): what these scenarios read of
  an old version is its index, which names the file, its version, digest and size, never its
  manifest or bytes; a registry stores identical content once anyway;
- so each version costs one request (its index, by tag), sent by many threads at once over
  one client.

The newest version has files of its own (real wheels and an sdist of that version, written
by the same functions as a push), so resolving, serving and installing it meets what a
user's push leaves. Versions are dated an hour apart, as per-commit builds leave them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from packaging.version import Version
from support.registry_harness import RunningRegistry
from support.wheels import make_sdist, make_wheel

from setuptools_ghcr.core.dists import Distribution, read_distribution
from setuptools_ghcr.core.oci import OCI_INDEX, OCI_MANIFEST, Manifest
from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.core.wire_format import (
    METADATA_MEDIA_TYPE,
    build_index,
    file_layer,
    file_manifest,
    index_entry,
    utc_timestamp,
    version_to_tag,
)
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.store import BytesBlob, FileBlob, Store
from setuptools_ghcr.usecases.publish import PushOptions, publish

__all__ = [
    "DEEP_PROJECT",
    "NAMESPACE",
    "WHEEL_TAGS",
    "credentials_env",
    "populate",
    "publish_version",
    "version_of",
]

DEEP_PROJECT = "bench-deep"
NAMESPACE = "deep"
#: Three wheels and the sdist make four files a version.
WHEEL_TAGS = ("py3-none-any", "cp311-cp311-manylinux_2_17_x86_64", "cp312-abi3-win_amd64")
#: The files whose blobs the bulk versions share: a version that is never tagged.
TEMPLATE_VERSION = "0.0.1"
#: Version indexes written at once.
THREADS = 16
#: Versions published an hour apart, the newest HISTORY - n hours ago for version n.
HISTORY = 10_000


def version_of(number: int) -> str:
    return f"1.{number // 10}.{number % 10}"


def credentials_env(registry: RunningRegistry) -> dict[str, str]:
    """The environment that gives a child process the registry's credentials."""
    assert registry.username is not None
    assert registry.password is not None
    return {
        "SETUPTOOLS_GHCR_USERNAME": registry.username,
        "SETUPTOOLS_GHCR_PASSWORD": registry.password,
    }


def _files(folder: Path, project: str, version: str) -> list[Path]:
    """A version's four real files (three wheels and the sdist)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        make_wheel(
            folder,
            project,
            version,
            tag=tag,
            requires_python=">=3.8",
            summary="a project with many versions",
        )
        for tag in WHEEL_TAGS
    ]
    paths.append(make_sdist(folder, project, version, requires_python=">=3.8"))
    return paths


@contextmanager
def _stores(registry: RunningRegistry) -> Iterator[StoreFactory]:
    with StoreFactory(
        parse_target(f"{registry.host}/{NAMESPACE}"),
        username=registry.username,
        password=registry.password,
        environ={},
    ) as stores:
        yield stores


def publish_version(registry: RunningRegistry, folder: Path, project: str, version: str) -> None:
    """Push one version of four real files with the tool's own publish."""
    paths = _files(folder / version, project, version)
    with _stores(registry) as stores:
        publish(stores.open, [read_distribution(p) for p in paths], PushOptions(workers=4))


def _as_version(template: Distribution, version: str) -> Distribution:
    """The template file under another version's name (its bytes and metadata unchanged)."""
    old = f"-{TEMPLATE_VERSION}"
    return replace(
        template,
        filename=template.filename.replace(old, f"-{version}", 1),
        version=Version(version),
    )


def _created(number: int) -> str:
    """When version ``number`` was published: one an hour, the last of HISTORY an hour ago,
    as per-commit builds leave them (and as a service's re-check schedule expects)."""
    moment = datetime.now(timezone.utc) - timedelta(hours=HISTORY - number)
    return utc_timestamp(moment)


def _upload(store: Store, dist: Distribution, created: str) -> Manifest:
    """A file's blob, metadata blob and manifest; returns the manifest."""
    store.push_blob(FileBlob(dist.path, file_layer(dist)))
    store.push_blob(BytesBlob(dist.metadata, METADATA_MEDIA_TYPE))
    manifest = file_manifest(dist, created=created)
    store.put_manifest(manifest.raw, OCI_MANIFEST, str(manifest.digest))
    return manifest


def _write_index(
    store: Store, files: list[tuple[Distribution, Manifest]], version: str, created: str
) -> None:
    entries = [index_entry(dist, manifest, created=created) for dist, manifest in files]
    index = build_index(entries, version=Version(version))
    store.put_manifest(index.raw, OCI_INDEX, version_to_tag(Version(version)))


def populate(
    registry: RunningRegistry,
    folder: Path,
    versions: int,
    *,
    start: int = 0,
    project: str = DEEP_PROJECT,
) -> str:
    """Versions ``start`` to ``versions - 1`` of four files each; returns the target.

    All but the newest share the template's blobs and manifests; the newest has files of
    its own (real wheels and sdist of that version, which a resolve or pip can use).
    """
    target = f"{registry.host}/{NAMESPACE}"
    started = time.monotonic()
    template_files = _files(folder / project / "template", project, TEMPLATE_VERSION)
    newest = version_of(versions - 1)
    newest_files = _files(folder / project / newest, project, newest)
    with _stores(registry) as stores:
        store = stores.open(project)
        created = _created(0)
        templates = [
            (dist, _upload(store, dist, created)) for dist in map(read_distribution, template_files)
        ]

        def write(number: int) -> None:
            version = version_of(number)
            files = [(_as_version(dist, version), manifest) for dist, manifest in templates]
            _write_index(store, files, version, _created(number))

        with ThreadPoolExecutor(THREADS) as pool:
            for _ in pool.map(write, range(start, versions - 1)):
                pass
        created = _created(versions - 1)
        real = [
            (dist, _upload(store, dist, created)) for dist in map(read_distribution, newest_files)
        ]
        _write_index(store, real, newest, created)
    print(
        f"  wrote versions {start} to {versions - 1} of {project} (4 files each) "
        f"in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return target
