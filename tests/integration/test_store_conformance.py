"""One script of store operations, run on the layout store and on each real registry.

Every store must answer it the same way: the layout store is the embedded default, and a
user moving from ``oci:PATH`` to a registry (or back, with skopeo) must see no difference.
"""

from __future__ import annotations

import os
import random
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.documents import EMPTY_DESCRIPTOR, EMPTY_JSON, descriptor_of
from support.registry_harness import RunningRegistry

from setuptools_ghcr.core.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    Index,
    Manifest,
    Platform,
)
from setuptools_ghcr.errors import DigestMismatchError, GhcrError, NotFoundError
from setuptools_ghcr.storage.layout import LayoutStore
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.store import BytesBlob, FileBlob, Store

pytestmark = pytest.mark.integration

LAYER = "application/pyoci.package.v1"
KINDS = ["layout", "plain", "htpasswd", "token", "ghcr"]


def _outcome(action: Callable[[], Any]) -> Any:
    """What an operation gives, or the kind of error it raises (the comparable part)."""
    try:
        return action()
    except GhcrError as error:
        for kind in (NotFoundError, DigestMismatchError):
            if isinstance(error, kind):
                return kind.__name__
        return type(error).__name__


def _script(store: Store, work: Path, corrupt: Callable[[Digest], None]) -> dict[str, Any]:
    """Run the same operations on ``store``; returns what each gave."""
    payload = work / "payload.bin"
    # The same bytes everywhere, so that every digest can be compared across stores.
    payload.write_bytes(random.Random(20261128).randbytes(3 * 1024 * 1024 + 17))
    data = payload.read_bytes()
    layer = FileBlob(payload, Descriptor(LAYER, Digest.of_bytes(data), len(data)))
    config = BytesBlob(b"Metadata-Version: 2.1\nName: same\nVersion: 1\n", "text/plain")
    seen: dict[str, Any] = {}

    seen["tags of a new repository"] = store.list_tags()
    seen["absent manifest"] = store.get_manifest("1.0")
    seen["absent blob exists"] = store.blob_exists(layer.descriptor.digest)
    seen["absent blob read"] = _outcome(lambda: store.read_blob(config.descriptor))
    seen["absent blob download"] = _outcome(
        lambda: store.download_blob(layer.descriptor, work / "absent.bin")
    )
    seen["absent download left"] = (work / "absent.bin").exists()

    for blob in (layer, config, BytesBlob(EMPTY_JSON, EMPTY_DESCRIPTOR.media_type)):
        store.push_blob(blob)
    seen["blob exists"] = store.blob_exists(layer.descriptor.digest)
    seen["config read"] = store.read_blob(config.descriptor)
    landed = work / "landed"
    landed.mkdir()
    store.download_blob(layer.descriptor, landed / "down.bin")
    seen["download bytes equal"] = (landed / "down.bin").read_bytes() == data
    seen["download folder, mode"] = (
        sorted(os.listdir(landed)),
        stat.S_IMODE((landed / "down.bin").stat().st_mode),
    )
    seen["streamed bytes equal"] = b"".join(store.iter_blob(layer.descriptor)) == data

    manifest = Manifest.build(
        config.descriptor, (layer.descriptor,), {"k": "v"}, artifact_type=LAYER
    )
    seen["manifest by digest"] = str(store.put_manifest(manifest.raw, OCI_MANIFEST, None))
    index = Index.build((descriptor_of(manifest, platform=Platform("py3-none-any.whl", "any")),))
    orphan = Index.build(
        (Descriptor(OCI_MANIFEST, Digest.of_bytes(b"never pushed"), 12),), {"o": "1"}
    )
    seen["index naming a missing manifest"] = _outcome(
        lambda: store.put_manifest(orphan.raw, OCI_INDEX, "orphan")
    )
    seen["index by tag"] = str(store.put_manifest(index.raw, OCI_INDEX, "1.0"))
    store.put_manifest(index.raw, OCI_INDEX, "latest")
    found = store.get_manifest("1.0")
    assert found is not None
    seen["index bytes back"] = (found.raw == index.raw, found.media_type, str(found.digest))
    by_digest = store.get_manifest(str(manifest.digest))
    assert by_digest is not None
    seen["manifest bytes back"] = (by_digest.raw == manifest.raw, by_digest.media_type)
    seen["tags"] = sorted(store.list_tags())

    corrupt(layer.descriptor.digest)
    out = work / "refused"
    out.mkdir()
    seen["corrupted download"] = _outcome(
        lambda: store.download_blob(layer.descriptor, out / "file.whl")
    )
    seen["corrupted stream"] = _outcome(lambda: b"".join(store.iter_blob(layer.descriptor)))
    seen["files left after refusal"] = sorted(os.listdir(out))
    return seen


def _flip_file(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("layout-script")
    store = LayoutStore(work / "layout", "same")
    return _script(
        store, work, lambda digest: _flip_file(store.path / "blobs" / "sha256" / digest.hex)
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_store_answers_the_script_like_the_layout(
    kind: str, expected: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "layout":
        store: Store = LayoutStore(tmp_path / "layout", "same")
        corrupt: Callable[[Digest], None] = lambda digest: _flip_file(  # noqa: E731
            tmp_path / "layout" / "blobs" / "sha256" / digest.hex
        )
        seen = _script(store, tmp_path, corrupt)
    else:
        registry: RunningRegistry = request.getfixturevalue(f"{kind}_registry")
        with RegistryClient(registry.host, "http", registry.credentials) as client:
            store = client.store(f"conformance/{kind}_{uuid.uuid4().hex[:8]}")
            seen = _script(
                store, tmp_path, lambda digest: _flip_file(registry.blob_data_path(digest.hex))
            )
    # The script's answers are the same everywhere, and they are the right ones.
    assert seen == expected
    assert expected["absent manifest"] is None
    assert expected["absent blob read"] == NotFoundError.__name__
    assert expected["index naming a missing manifest"] == NotFoundError.__name__
    assert expected["absent blob download"] == NotFoundError.__name__
    assert expected["corrupted download"] == DigestMismatchError.__name__
    assert expected["files left after refusal"] == []
    assert expected["tags"] == ["1.0", "latest"]
    # A download lands alone (no temporary name left), with the mode the umask gives a new file.
    umask = os.umask(0)
    os.umask(umask)
    assert expected["download folder, mode"] == (["down.bin"], 0o666 & ~umask)
