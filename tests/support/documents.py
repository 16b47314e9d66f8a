"""OCI documents this tool reads but never writes, as PyOCI and other tools write them."""

from __future__ import annotations

from typing import Any

from setuptools_ghcr.core.dists import Distribution
from setuptools_ghcr.core.oci import OCI_MANIFEST, Descriptor, Digest, Index, Manifest, Platform
from setuptools_ghcr.core.wire_format import version_to_tag
from setuptools_ghcr.storage.store import BytesBlob, FileBlob, Store

__all__ = [
    "EMPTY_DESCRIPTOR",
    "EMPTY_JSON",
    "METADATA",
    "OCI_EMPTY",
    "PACKAGE",
    "TITLE",
    "descriptor_of",
    "publish_like_pyoci",
    "push_artifact",
]

#: The wire format's names, spelled out here so that a change to them fails the tests.
PACKAGE = "application/pyoci.package.v1"
METADATA = "application/vnd.setuptools-ghcr.core-metadata.v1"
TITLE = "org.opencontainers.image.title"
PYOCI_SHA256 = "com.pyoci.sha256_digest"

#: The empty config of an artifact without one (PyOCI's manifests have it).
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor(OCI_EMPTY, Digest.of_bytes(EMPTY_JSON), len(EMPTY_JSON))


def descriptor_of(document: Manifest | Index, **extra: Any) -> Descriptor:
    """A descriptor of a manifest or index, with its artifact type (unlike the entries this
    tool writes); ``annotations`` and ``platform`` may be given."""
    return Descriptor(
        document.media_type,
        document.digest,
        len(document.raw),
        artifact_type=document.artifact_type,
        **extra,
    )


def push_artifact(
    store: Store, filename: str, payload: bytes, metadata: bytes = b"Metadata-Version: 2.1\n"
) -> Manifest:
    """Push one file's artifact the way publish does: config and layer blobs first, then the
    manifest (by digest, untagged)."""
    config = BytesBlob(metadata, METADATA)
    layer = BytesBlob(payload, PACKAGE)
    store.push_blob(config)
    store.push_blob(layer)
    manifest = Manifest.build(
        config.descriptor,
        (Descriptor(PACKAGE, layer.descriptor.digest, len(payload), {TITLE: filename}),),
        artifact_type=PACKAGE,
    )
    store.put_manifest(manifest.raw, OCI_MANIFEST)
    return manifest


def publish_like_pyoci(store: Store, dist: Distribution) -> None:
    """Publish ``dist`` as PyOCI does, through the store API: an empty config, one layer, and
    an index entry naming only a platform and the sha256 (no file name, size or metadata)."""
    layer = Descriptor(PACKAGE, dist.sha256, dist.size)
    store.push_blob(FileBlob(dist.path, layer))
    store.push_blob(BytesBlob(EMPTY_JSON, OCI_EMPTY))
    manifest = Manifest.build(EMPTY_DESCRIPTOR, (layer,), artifact_type=PACKAGE)
    store.put_manifest(manifest.raw, manifest.media_type)
    architecture = ".tar.gz" if dist.kind == "sdist" else dist.filename.split("-", 2)[2]
    entry = descriptor_of(
        manifest,
        annotations={PYOCI_SHA256: dist.sha256.hex},
        platform=Platform(architecture, "any"),
    )
    index = Index.build((entry,), artifact_type=PACKAGE)
    store.put_manifest(index.raw, index.media_type, version_to_tag(dist.version))
