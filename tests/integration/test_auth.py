"""Authentication against real registries: Basic, Bearer scopes, anonymous, redirects."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.documents import EMPTY_DESCRIPTOR, EMPTY_JSON
from support.registry_harness import SECRET_MARKER, RunningRegistry, start_registry
from support.stores import unique_repository
from support.token_server import TokenServer
from support.wheels import make_wheel

from setuptools_ghcr import cli
from setuptools_ghcr.core.oci import OCI_MANIFEST, Descriptor, Manifest
from setuptools_ghcr.errors import AuthenticationError, DigestMismatchError, UnsafeResponseError
from setuptools_ghcr.storage.registry.challenge import pull_scope, push_scope
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.repository import RegistryStore
from setuptools_ghcr.storage.store import BytesBlob

pytestmark = pytest.mark.integration

HTTP_LOGGER = "setuptools_ghcr.http"


def wrong_credentials() -> Credentials:
    return Credentials("tester", f"{SECRET_MARKER}wrong-{uuid.uuid4().hex}", "test")


def token_server_of(registry: RunningRegistry) -> TokenServer:
    assert registry.token_server is not None
    return registry.token_server


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the HTTP debug log, to check that it names requests and hides secrets."""
    with caplog.at_level(logging.DEBUG, logger=HTTP_LOGGER):
        yield caplog


def assert_no_secret(text: str, registry: RunningRegistry, *extra: str) -> None:
    assert registry.password is not None
    for secret in (registry.password, *extra):
        assert secret not in text
    assert SECRET_MARKER not in text
    assert "eyJ" not in text, "a JWT leaked"


def test_scope_upgrade_and_per_scope_tokens(
    token_registry: RunningRegistry, logged: pytest.LogCaptureFixture
) -> None:
    server = token_server_of(token_registry)
    repository = unique_repository("auth")
    blob = BytesBlob(os.urandom(100), "application/octet-stream")
    with RegistryClient(token_registry.host, "http", token_registry.credentials) as client:
        store = client.store(repository)
        server.clear()
        assert not store.blob_exists(blob.descriptor.digest)
        store.push_blob(blob)
        assert list(server.scopes_requested()) == [
            ((pull_scope(repository),), True),
            ((push_scope(repository),), True),
        ]
        # Both tokens are cached: more reads and writes need no new token.
        store.push_blob(BytesBlob(EMPTY_JSON, EMPTY_DESCRIPTOR.media_type))
        assert store.read_blob(blob.descriptor) == blob.data
        assert store.list_tags() == []
        assert len(server.requests) == 2
    assert "/token?" in logged.text
    assert_no_secret(logged.text, token_registry)


def push_sample(store: RegistryStore) -> tuple[BytesBlob, Manifest]:
    layer = BytesBlob(os.urandom(500), "application/pyoci.package.v1")
    store.push_blob(BytesBlob(EMPTY_JSON, EMPTY_DESCRIPTOR.media_type))
    store.push_blob(layer)
    manifest = Manifest.build(EMPTY_DESCRIPTOR, (layer.descriptor,))
    store.put_manifest(manifest.raw, OCI_MANIFEST, "1.0")
    return layer, manifest


def test_anonymous_pull_of_what_the_user_pushed(token_registry: RunningRegistry) -> None:
    server = token_server_of(token_registry)
    repository = unique_repository("auth")
    with RegistryClient(token_registry.host, "http", token_registry.credentials) as client:
        layer, manifest = push_sample(client.store(repository))
    server.clear()
    with RegistryClient(token_registry.host, "http", None) as anonymous:
        store = anonymous.store(repository)
        fetched = store.get_manifest("1.0")
        assert fetched is not None
        assert fetched.raw == manifest.raw
        assert store.read_blob(layer.descriptor) == layer.data
        assert store.list_tags() == ["1.0"]
        assert [r.authenticated for r in server.requests] == [False]
        assert all(r.username is None for r in server.requests)

        with pytest.raises(AuthenticationError) as caught:
            store.push_blob(BytesBlob(b"not allowed", "application/octet-stream"))
    message = str(caught.value)
    assert f"docker login {token_registry.host}" in message
    assert repository in message


def test_wrong_password_is_refused_without_leaking_it(
    token_registry: RunningRegistry, logged: pytest.LogCaptureFixture
) -> None:
    credentials = wrong_credentials()
    blob = BytesBlob(b"refused", "application/octet-stream")
    with (
        RegistryClient(token_registry.host, "http", credentials) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.store(unique_repository("auth")).push_blob(blob)
    message = str(caught.value)
    assert "refused" in message and "tester" in message
    assert_no_secret(message, token_registry, credentials.password)
    assert_no_secret(logged.text, token_registry, credentials.password)
    assert credentials.password not in repr(credentials)


def test_stored_credentials_refused_for_a_pull_fall_back_to_anonymous(
    token_registry: RunningRegistry,
) -> None:
    server = token_server_of(token_registry)
    repository = unique_repository("auth")
    with RegistryClient(token_registry.host, "http", token_registry.credentials) as client:
        layer, _ = push_sample(client.store(repository))
    server.clear()
    with RegistryClient(token_registry.host, "http", wrong_credentials()) as client:
        store = client.store(repository)
        assert store.read_blob(layer.descriptor) == layer.data
        assert store.get_manifest("1.0") is not None
    statuses = [(r.username, r.status) for r in server.requests]
    assert statuses[0] == ("tester", 401)
    assert (None, 200) in statuses


@pytest.mark.parametrize("operation", ["pull", "push"])
def test_htpasswd_wrong_password(
    htpasswd_registry: RunningRegistry, logged: pytest.LogCaptureFixture, operation: str
) -> None:
    credentials = wrong_credentials()
    blob = BytesBlob(b"basic", "application/octet-stream")
    with RegistryClient(htpasswd_registry.host, "http", credentials) as client:
        store = client.store(unique_repository("auth"))
        action = (
            (lambda: store.blob_exists(blob.descriptor.digest))
            if operation == "pull"
            else (lambda: store.push_blob(blob))
        )
        with pytest.raises(AuthenticationError) as caught:
            action()
    assert caught.value.status == 401
    assert "were refused" in str(caught.value)
    assert_no_secret(str(caught.value), htpasswd_registry, credentials.password)
    assert_no_secret(logged.text, htpasswd_registry, credentials.password)


def test_htpasswd_anonymous_is_told_to_log_in(htpasswd_registry: RunningRegistry) -> None:
    with (
        RegistryClient(htpasswd_registry.host, "http", None) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.store(unique_repository("auth")).list_tags()
    assert f"docker login {htpasswd_registry.host}" in str(caught.value)


#: Where the user gave credentials -> what a refusal must name, and what it must not.
_GIVEN = {
    "environment": ("SETUPTOOLS_GHCR_USERNAME/SETUPTOOLS_GHCR_PASSWORD", "--"),
    "options": ("--username/--password", "SETUPTOOLS_GHCR_"),
    "option-and-environment": ("--username/SETUPTOOLS_GHCR_PASSWORD", "--password"),
}


@pytest.mark.parametrize("given", sorted(_GIVEN))
@pytest.mark.parametrize("verb", ["push", "download"])
def test_refused_credentials_are_blamed_on_where_they_came_from(
    htpasswd_registry: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verb: str,
    given: str,
) -> None:
    password = f"{SECRET_MARKER}wrong-{uuid.uuid4().hex}"
    for name in ("SETUPTOOLS_GHCR_USERNAME", "SETUPTOOLS_GHCR_PASSWORD", "DOCKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SETUPTOOLS_GHCR_RETRIES", "0")
    monkeypatch.setenv("SETUPTOOLS_GHCR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = [verb, "--repository", f"{htpasswd_registry.host}/refused"]
    if given == "options":
        args += ["--username", "tester", "--password", password]
    else:
        if given == "environment":
            monkeypatch.setenv("SETUPTOOLS_GHCR_USERNAME", "tester")
        else:
            args += ["--username", "tester"]
        monkeypatch.setenv("SETUPTOOLS_GHCR_PASSWORD", password)
    args.append(str(make_wheel(tmp_path, "refused-pkg", "1.0")) if verb == "push" else "refused")

    status = cli.main(args)

    error = capsys.readouterr().err
    named, not_named = _GIVEN[given]
    assert status == 1
    assert error.count("\n") == 1, error
    assert "refused" in error and named in error, error
    assert not_named not in error, error
    assert password not in error and SECRET_MARKER not in error


def test_htpasswd_round_trip_sends_basic_only_after_the_challenge(
    htpasswd_registry: RunningRegistry, logged: pytest.LogCaptureFixture
) -> None:
    with RegistryClient(htpasswd_registry.host, "http", htpasswd_registry.credentials) as client:
        store = client.store(unique_repository("auth"))
        layer, manifest = push_sample(store)
        fetched = store.get_manifest(str(manifest.digest))
        assert fetched is not None and fetched.raw == manifest.raw
        assert store.read_blob(layer.descriptor) == layer.data
    statuses = [record.getMessage().split(" -> ")[1][:3] for record in logged.records]
    assert statuses.count("401") == 1, "one challenge, then credentials are sent up front"
    assert_no_secret(logged.text, htpasswd_registry)


def test_mount_asks_for_push_on_target_and_pull_on_source(
    token_registry: RunningRegistry,
) -> None:
    server = token_server_of(token_registry)
    source, target = unique_repository("source"), unique_repository("target")
    blob = BytesBlob(os.urandom(300), "application/octet-stream")
    with RegistryClient(token_registry.host, "http", token_registry.credentials) as client:
        client.store(source).push_blob(blob)
        server.clear()
        assert client.store(target).mount_blob(blob.descriptor.digest, source)
        assert client.store(target).blob_exists(blob.descriptor.digest)
    requested = [set(scopes) for scopes, _ in server.scopes_requested()]
    assert {push_scope(target), pull_scope(source)} in requested


def test_token_realm_over_plain_http_elsewhere_is_refused(tmp_path: Path) -> None:
    registry = start_registry("token", tmp_path / "registry", token_realm="http://example.com/t")
    try:
        with (
            RegistryClient(registry.host, "http", registry.credentials) as client,
            pytest.raises(UnsafeResponseError) as caught,
        ):
            client.store(unique_repository("auth")).list_tags()
        assert "not https" in str(caught.value)
        assert token_server_of(registry).requests == []
    finally:
        registry.close()


def test_redirects_to_another_host_carry_no_authorization(
    redirect_registry: RunningRegistry, tmp_path: Path
) -> None:
    assert redirect_registry.cdn is not None
    data = os.urandom(3 << 20)
    blob = BytesBlob(data, "application/octet-stream")
    with RegistryClient(redirect_registry.host, "http", redirect_registry.credentials) as client:
        store = client.store(unique_repository("auth"))
        store.push_blob(blob)
        before = len(redirect_registry.cdn.requests)
        store.download_blob(blob.descriptor, tmp_path / "file")
    assert (tmp_path / "file").read_bytes() == data
    seen = redirect_registry.cdn.requests[before:]
    assert len(seen) == 1, "the blob came from the CDN"
    assert all("authorization" not in headers for headers in seen)


def test_download_resumes_with_range_after_a_cut(
    redirect_registry: RunningRegistry, tmp_path: Path
) -> None:
    cdn = redirect_registry.cdn
    assert cdn is not None
    data = os.urandom(5 << 20)
    blob = BytesBlob(data, "application/octet-stream")
    with RegistryClient(redirect_registry.host, "http", redirect_registry.credentials) as client:
        store = client.store(unique_repository("auth"))
        store.push_blob(blob)
        before = len(cdn.requests)
        cdn.cut_next_after = (5 << 20) // 2
        store.download_blob(blob.descriptor, tmp_path / "file")
    assert (tmp_path / "file").read_bytes() == data
    ranges = [headers.get("range") for headers in cdn.requests[before:]]
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:].rstrip("-")) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_download_starts_over_when_range_is_ignored(
    redirect_registry: RunningRegistry, tmp_path: Path
) -> None:
    cdn = redirect_registry.cdn
    assert cdn is not None
    data = os.urandom(5 << 20)
    blob = BytesBlob(data, "application/octet-stream")
    with RegistryClient(redirect_registry.host, "http", redirect_registry.credentials) as client:
        store = client.store(unique_repository("auth"))
        store.push_blob(blob)
        cdn.ignore_range = True
        try:
            cdn.cut_next_after = (5 << 20) // 2
            chunks = list(store.iter_blob(blob.descriptor))
            cdn.cut_next_after = (5 << 20) // 2
            store.download_blob(blob.descriptor, tmp_path / "file")
        finally:
            cdn.ignore_range = False
    assert b"".join(chunks) == data
    assert (tmp_path / "file").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_descriptor_size_lie_is_caught(redirect_registry: RunningRegistry, tmp_path: Path) -> None:
    data = os.urandom(1000)
    blob = BytesBlob(data, "application/octet-stream")
    with RegistryClient(redirect_registry.host, "http", redirect_registry.credentials) as client:
        store = client.store(unique_repository("auth"))
        store.push_blob(blob)
        short = Descriptor(blob.descriptor.media_type, blob.descriptor.digest, 999)
        with pytest.raises(DigestMismatchError) as caught:
            store.download_blob(short, tmp_path / "file")
    assert "999" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
