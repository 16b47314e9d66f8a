"""skopeo reads what LayoutStore writes, and LayoutStore reads what skopeo copies."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.documents import PACKAGE, push_artifact

from setuptools_ghcr.core.oci import OCI_INDEX, OCI_MANIFEST, Descriptor, Index, Manifest, Platform
from setuptools_ghcr.storage.layout import LayoutStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo"),
]

FILES = {
    "demo-1.0.0-py3-none-any.whl": ("py3-none-any.whl", b"PK\x03\x04 pretend wheel" * 1000),
    "demo-1.0.0.tar.gz": (".tar.gz", b"\x1f\x8b pretend sdist" * 1000),
}


def _skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    # --insecure-policy: local layouts only, and CI machines may lack a policy.json.
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, timeout=120, check=False
    )


def _skopeo_version() -> tuple[int, ...]:
    output = _skopeo("--version").stdout.decode()
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", output)
    assert match is not None, output
    return tuple(int(part) for part in match.groups())


def _publish(
    store: LayoutStore, *, entry_artifact_type: bool = False
) -> tuple[Index, list[Manifest]]:
    """One version as publish writes it: an index of one artifact manifest per file."""
    manifests: list[Manifest] = []
    entries: list[Descriptor] = []
    for filename, (architecture, payload) in FILES.items():
        metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0.0\n"
        manifest = push_artifact(store, filename, payload, metadata)
        manifests.append(manifest)
        entries.append(
            Descriptor(
                OCI_MANIFEST,
                manifest.digest,
                len(manifest.raw),
                annotations={"com.pyoci.sha256_digest": manifest.layers[0].digest.hex},
                artifact_type=PACKAGE if entry_artifact_type else None,
                platform=Platform(architecture, "any"),
            )
        )
    index = Index.build(tuple(entries), artifact_type=PACKAGE)
    store.put_manifest(index.raw, OCI_INDEX, "1.0.0")
    return index, manifests


def _blob_names(store: LayoutStore) -> set[str]:
    return {path.name for path in (store.path / "blobs" / "sha256").iterdir()}


def test_skopeo_reads_our_index_byte_for_byte(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "demo", "demo")
    index, _ = _publish(store)
    result = _skopeo("inspect", "--raw", f"oci:{store.path}:1.0.0")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == index.raw


def test_skopeo_copy_preserves_everything_we_wrote(tmp_path: Path) -> None:
    source = LayoutStore(tmp_path / "source", "source")
    index, manifests = _publish(source)
    target = LayoutStore(tmp_path / "target", "target")
    result = _skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        f"oci:{source.path}:1.0.0",
        f"oci:{target.path}:1.0.0",
    )
    assert result.returncode == 0, result.stderr.decode()

    assert target.list_tags() == ["1.0.0"]
    copied = target.get_manifest("1.0.0")
    assert copied is not None
    assert (copied.raw, copied.media_type, copied.digest) == (index.raw, OCI_INDEX, index.digest)
    for manifest in manifests:
        found = target.get_manifest(str(manifest.digest))
        assert found is not None
        assert (found.raw, found.media_type) == (manifest.raw, OCI_MANIFEST)
        for blob in (manifest.config, *manifest.layers):
            assert target.read_blob(blob) == source.read_blob(blob)
    assert _blob_names(target) == _blob_names(source)

    # And the other way round: we add a tag to skopeo's layout, and skopeo still reads both.
    target.put_manifest(index.raw, OCI_INDEX, "latest")
    for tag in ("1.0.0", "latest"):
        result = _skopeo("inspect", "--raw", f"oci:{target.path}:{tag}")
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == index.raw


@pytest.mark.skipif(
    _skopeo_version() >= (1, 15) if shutil.which("skopeo") else True,
    reason="containers/image >= 5.30 (skopeo 1.15) keeps artifactType in index entries",
)
def test_old_skopeo_cannot_copy_index_entries_with_artifact_type(tmp_path: Path) -> None:
    """Why index entries carry no ``artifactType``: skopeo before 1.15 drops it when it
    clones an index, so ``--preserve-digests`` refuses the copy."""
    source = LayoutStore(tmp_path / "source", "source")
    _publish(source, entry_artifact_type=True)
    result = _skopeo(
        "copy",
        "--all",
        "--preserve-digests",
        f"oci:{source.path}:1.0.0",
        f"oci:{tmp_path / 'target'}:1.0.0",
    )
    assert result.returncode != 0
    assert b"we cannot modify it" in result.stderr
