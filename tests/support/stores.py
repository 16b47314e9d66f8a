"""Stores over a given client, shortcuts to publish into them, and checks of what they hold."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Protocol

import requests

from setuptools_ghcr.core.dists import read_distribution
from setuptools_ghcr.core.oci import Manifest
from setuptools_ghcr.core.targets import RegistryTarget, parse_target
from setuptools_ghcr.core.wire_format import file_entries, layer_of, tag_to_version
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.repository import RegistryStore
from setuptools_ghcr.storage.registry.retry import RetryPolicy
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.publish import FileResult, PushOptions, publish
from setuptools_ghcr.usecases.versions import read_index

__all__ = [
    "ClientStores",
    "CountingSession",
    "CountingStores",
    "StoreOpener",
    "fast_client",
    "filenames",
    "missing_content",
    "publish_files",
    "unique_repository",
]


class StoreOpener(Protocol):
    """Opens the store of a project: a ``StoreFactory``, :class:`ClientStores`, ..."""

    def open(self, project: str) -> Store: ...


def publish_files(stores: StoreOpener, *paths: Path, **options: Any) -> list[FileResult]:
    """Publish files from disk (each read and checked in full first) with ``PushOptions``."""
    return publish(stores.open, [read_distribution(path) for path in paths], PushOptions(**options))


def unique_repository(prefix: str) -> str:
    """A repository name no other test uses, under ``prefix/``."""
    return f"{prefix}/test_{uuid.uuid4().hex[:12]}"


def fast_client(
    host: str,
    credentials: Credentials | None = None,
    *,
    timeout: float = 2.0,
    retries: int = 4,
) -> RegistryClient:
    """A client of a loopback registry that gives up and backs off quickly."""
    policy = RetryPolicy(retries=retries, base_delay=0.05, max_delay=0.4, max_retry_after=10)
    return RegistryClient(host, "http", credentials, timeout=timeout, retry_policy=policy)


class ClientStores:
    """The stores of a registry target over a given client (a ``StoreOpener``)."""

    def __init__(self, target: str | RegistryTarget, client: RegistryClient) -> None:
        parsed = parse_target(target) if isinstance(target, str) else target
        assert isinstance(parsed, RegistryTarget)
        self.target: RegistryTarget = parsed
        self.client = client

    def open(self, project: str) -> Store:
        return RegistryStore(self.client, self.target.repository(project))


class CountingSession(requests.Session):
    """A session that records every request it sends, redirects included."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append((str(request.method), str(request.url)))
        return super().send(request, **kwargs)

    def blob_gets(self) -> list[str]:
        return [url for method, url in self.sent if method == "GET" and "/blobs/" in url]


class CountingStores(ClientStores):
    """Stores of a registry target over a client of their own, whose session counts what
    goes over the wire."""

    def __init__(self, target: RegistryTarget, credentials: Credentials | None = None) -> None:
        self.session = CountingSession()
        client = RegistryClient(target.host, target.scheme, credentials, session=self.session)
        super().__init__(target, client)


def missing_content(store: Store, project: str) -> list[str]:
    """Everything a published index names that the store does not hold (empty when whole).

    Every tag that is a version is checked: its index, each file's manifest, and the
    manifest's config and layer blobs.
    """
    problems: list[str] = []
    for tag in store.list_tags():
        version = tag_to_version(tag)
        if version is None:
            continue
        index = read_index(store, tag)
        if index is None:
            problems.append(f"{tag}: listed but absent")
            continue
        for entry in file_entries(index, project, version):
            found = store.get_manifest(str(entry.manifest.digest))
            if found is None:
                problems.append(f"{tag}: manifest of {entry.filename} is missing")
                continue
            manifest = Manifest.from_bytes(found.raw)
            layer = layer_of(manifest, entry)
            for blob in (manifest.config, layer):
                if not store.blob_exists(blob.digest):
                    problems.append(f"{tag}: blob {blob.digest.short} of {entry.filename}")
    return problems


def filenames(store: Store, project: str, tag: str) -> list[str]:
    """The file names one version's index lists."""
    version = tag_to_version(tag)
    assert version is not None
    index = read_index(store, tag)
    return sorted(e.filename for e in file_entries(index, project, version)) if index else []
