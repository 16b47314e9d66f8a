"""ghcr.io as it behaves, through the emulator: first that the emulator does what ghcr.io is
documented or reported to do, then what this tool does there (the anonymous fast path,
throttling, tokens that expire under a long upload, a whole push and pull).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.documents import EMPTY_DESCRIPTOR, EMPTY_JSON
from support.ghcr_emulator import CHUNK_LIMIT, GhcrRegistry
from support.github_api import GitHubApi
from support.registry_harness import RunningRegistry
from support.wheels import make_wheel

from setuptools_ghcr import cli
from setuptools_ghcr.core.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Digest,
    Index,
    Manifest,
)
from setuptools_ghcr.errors import AuthenticationError
from setuptools_ghcr.storage.registry.challenge import AnonymousAuth
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.repository import RegistryStore
from setuptools_ghcr.storage.store import BytesBlob

pytestmark = pytest.mark.integration


def unique(owner: str = "acme") -> str:
    return f"{owner}/pkg_{uuid.uuid4().hex[:10]}"


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def token(registry: GhcrRegistry, scope: str, headers: dict[str, str] | None = None) -> str:
    answer = requests.get(
        f"{registry.url}/token",
        params={"service": "ghcr.io", "scope": scope},
        headers=headers or {},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["token"]
    return value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def push_sample(store: RegistryStore, tag: str = "1.0") -> tuple[BytesBlob, Manifest]:
    layer = BytesBlob(os.urandom(700), "application/pyoci.package.v1")
    store.push_blob(BytesBlob(EMPTY_JSON, EMPTY_DESCRIPTOR.media_type))
    store.push_blob(layer)
    manifest = Manifest.build(EMPTY_DESCRIPTOR, (layer.descriptor,))
    store.put_manifest(manifest.raw, OCI_MANIFEST, tag)
    return layer, manifest


@pytest.fixture
def owner_client(ghcr_registry: GhcrRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(ghcr_registry.host, "http", ghcr_registry.credentials) as client:
        yield client


# -- the emulator is ghcr.io -------------------------------------------------------------------


def test_tokens_need_the_ghcr_service_and_any_user_name_goes_with_a_pat(
    ghcr_registry: GhcrRegistry,
) -> None:
    repository = unique()
    scope = f"repository:{repository}:pull,push"
    wrong_service = requests.get(
        f"{ghcr_registry.url}/token", params={"service": "other", "scope": scope}, timeout=10
    )
    assert wrong_service.status_code == 400
    assert ghcr_registry.password is not None
    for user in ("tester", "anyone-at-all", "x"):
        assert token(ghcr_registry, scope, basic(user, ghcr_registry.password))
    refused = requests.get(
        f"{ghcr_registry.url}/token",
        params={"service": "ghcr.io", "scope": scope},
        headers=basic("tester", "ghp_not-a-token"),
        timeout=10,
    )
    assert refused.status_code == 401


def test_new_packages_are_private_and_anonymous_tokens_only_read_public_ones(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient
) -> None:
    repository = unique()
    push_sample(owner_client.store(repository))
    assert ghcr_registry.state.packages[repository].public is False
    for name in (repository, unique()):  # private, and missing: the same answer
        answer = requests.get(
            f"{ghcr_registry.url}/token",
            params={"service": "ghcr.io", "scope": f"repository:{name}:pull"},
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["code"] == "DENIED"
    ghcr_registry.make_public(repository)
    anonymous = token(ghcr_registry, f"repository:{repository}:pull")
    manifest = requests.get(
        f"{ghcr_registry.url}/v2/{repository}/manifests/1.0",
        headers={**bearer(anonymous), "Accept": OCI_MANIFEST},
        timeout=10,
    )
    assert manifest.status_code == 200
    pushing = requests.get(
        f"{ghcr_registry.url}/token",
        params={"service": "ghcr.io", "scope": f"repository:{repository}:push"},
        timeout=10,
    )
    assert pushing.status_code == 401


def test_dummy_bearers_read_public_packages_only(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient
) -> None:
    repository = unique()
    push_sample(owner_client.store(repository))
    url = f"{ghcr_registry.url}/v2/{repository}/tags/list"
    private = requests.get(url, headers=bearer("QQ=="), timeout=10)
    assert private.status_code == 403
    assert private.json()["errors"][0]["code"] == "DENIED"
    empty = requests.get(url, headers={"Authorization": "Bearer "}, timeout=10)
    assert empty.status_code == 401
    assert 'service="ghcr.io"' in empty.headers["WWW-Authenticate"]
    assert f'scope="repository:{repository}:pull"' in empty.headers["WWW-Authenticate"]
    ghcr_registry.make_public(repository)
    public = requests.get(url, headers=bearer("QQ=="), timeout=10)
    assert public.status_code == 200
    assert public.json()["tags"] == ["1.0"]
    write = requests.post(
        f"{ghcr_registry.url}/v2/{repository}/blobs/uploads/", headers=bearer("QQ=="), timeout=10
    )
    assert write.status_code == 401


def test_the_base_endpoint_challenges_with_a_placeholder_scope(ghcr_registry: GhcrRegistry) -> None:
    answer = requests.get(f"{ghcr_registry.url}/v2/", timeout=10)
    assert answer.status_code == 401
    assert 'scope="repository:user/image:pull"' in answer.headers["WWW-Authenticate"]
    assert f'realm="{ghcr_registry.realm}"' in answer.headers["WWW-Authenticate"]


def test_limits_missing_apis_and_refused_deletes(ghcr_registry: GhcrRegistry) -> None:
    repository = unique()
    assert ghcr_registry.password is not None
    headers = bearer(
        token(
            ghcr_registry,
            f"repository:{repository}:pull,push",
            basic("tester", ghcr_registry.password),
        )
    )
    start = requests.post(
        f"{ghcr_registry.url}/v2/{repository}/blobs/uploads/", headers=headers, timeout=10
    )
    assert start.status_code == 202
    location = start.headers["Location"]
    assert f"/v2/{repository}/blobs/upload/" in location, "ghcr's singular upload path"
    big = os.urandom(CHUNK_LIMIT + 1)
    chunked = requests.patch(
        f"{ghcr_registry.url}{location}",
        data=big,
        headers={**headers, "Content-Range": f"0-{len(big) - 1}"},
        timeout=30,
    )
    assert chunked.status_code == 416
    # One PATCH without Content-Range takes it whole, and the commit stores it.
    whole = requests.patch(f"{ghcr_registry.url}{location}", data=big, headers=headers, timeout=30)
    assert whole.status_code == 202
    digest = Digest.of_bytes(big)
    committed = requests.put(
        f"{ghcr_registry.url}{whole.headers['Location']}",
        params={"digest": str(digest)},
        headers=headers,
        timeout=30,
    )
    assert committed.status_code == 201

    entries = tuple(
        Descriptor(
            OCI_MANIFEST, Digest.of_bytes(str(n).encode()), 100, annotations={"x": "y" * 400}
        )
        for n in range(9000)
    )
    huge = Index.build(entries)
    assert len(huge.raw) >= CHUNK_LIMIT
    refused = requests.put(
        f"{ghcr_registry.url}/v2/{repository}/manifests/big",
        data=huge.raw,
        headers={**headers, "Content-Type": OCI_INDEX},
        timeout=30,
    )
    assert refused.status_code == 500

    catalog = requests.get(f"{ghcr_registry.url}/v2/_catalog", headers=headers, timeout=10)
    assert catalog.status_code == 404
    referrers = requests.get(
        f"{ghcr_registry.url}/v2/{repository}/referrers/{digest}", headers=headers, timeout=10
    )
    assert referrers.status_code == 404
    for path in (f"blobs/{digest}", f"manifests/{digest}"):
        deleted = requests.delete(
            f"{ghcr_registry.url}/v2/{repository}/{path}", headers=headers, timeout=10
        )
        assert deleted.status_code == 405


def test_blobs_redirect_to_a_cdn_that_serves_ranges(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient
) -> None:
    repository = unique()
    layer, _manifest = push_sample(owner_client.store(repository))
    assert ghcr_registry.password is not None
    headers = bearer(
        token(ghcr_registry, f"repository:{repository}:pull", basic("x", ghcr_registry.password))
    )
    answer = requests.get(
        f"{ghcr_registry.url}/v2/{repository}/blobs/{layer.descriptor.digest}",
        headers=headers,
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 307
    where = answer.headers["Location"]
    assert where.startswith("http://localhost:")
    assert f":{ghcr_registry.port}/" not in where
    ranged = requests.get(where, headers={"Range": "bytes=100-"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == layer.data[100:]


def test_throttling_names_its_pause_in_the_message(ghcr_registry: GhcrRegistry) -> None:
    ghcr_registry.state.throttle(1, "3s")
    answer = requests.get(f"{ghcr_registry.url}/v2/", timeout=10)
    assert answer.status_code == 429
    assert "Retry-After" not in answer.headers
    assert answer.json()["errors"][0]["message"].startswith("retry-after: 3s")


def test_tokens_expire(ghcr_registry: GhcrRegistry, owner_client: RegistryClient) -> None:
    repository = unique()
    push_sample(owner_client.store(repository))
    assert ghcr_registry.password is not None
    headers = bearer(
        token(ghcr_registry, f"repository:{repository}:pull", basic("x", ghcr_registry.password))
    )
    url = f"{ghcr_registry.url}/v2/{repository}/tags/list"
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    ghcr_registry.state.expire_tokens()
    expired = requests.get(url, headers=headers, timeout=10)
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]


# -- this tool on ghcr.io ----------------------------------------------------------------------


def test_anonymous_reads_take_the_fast_path_once_the_registry_shows_it_is_ghcr(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient
) -> None:
    first, second = unique(), unique()
    for repository in (first, second):
        push_sample(owner_client.store(repository))
        ghcr_registry.make_public(repository)
    ghcr_registry.state.clear()
    with RegistryClient(ghcr_registry.host, "http", None) as anonymous:
        assert not anonymous.is_ghcr
        assert anonymous.store(first).list_tags() == ["1.0"]
        assert anonymous.is_ghcr, "its challenge names the service ghcr.io"
        assert anonymous.store(second).list_tags() == ["1.0"]
        assert anonymous.store(second).get_manifest("1.0") is not None
        traffic = anonymous.traffic
    seen = [(s.path.split("?")[0], s.auth, s.status) for s in ghcr_registry.state.requests]
    assert seen == [
        (f"/v2/{first}/tags/list", "none", 401),
        ("/token", "none", 200),
        (f"/v2/{first}/tags/list", "token", 200),
        (f"/v2/{second}/tags/list", "dummy", 200),
        (f"/v2/{second}/manifests/1.0", "dummy", 200),
    ]
    assert traffic.token_requests == 1
    assert traffic.fast_path_reads == 2


@pytest.mark.parametrize(
    ("setting", "token_requests", "first_auth"),
    [("Bearer QQ==", 0, "dummy"), ("none", 2, "none")],
)
def test_the_variable_sets_or_disables_the_fast_path(
    ghcr_registry: GhcrRegistry,
    owner_client: RegistryClient,
    setting: str,
    token_requests: int,
    first_auth: str,
) -> None:
    repositories = [unique(), unique()]
    for repository in repositories:
        push_sample(owner_client.store(repository))
        ghcr_registry.make_public(repository)
    ghcr_registry.state.clear()
    with RegistryClient(
        ghcr_registry.host, "http", None, anonymous_auth=AnonymousAuth.parse(setting)
    ) as anonymous:
        for repository in repositories:
            assert anonymous.store(repository).list_tags() == ["1.0"]
        assert anonymous.traffic.token_requests == token_requests
    assert ghcr_registry.state.requests[0].auth == first_auth


def test_private_packages_refuse_the_fast_path_and_say_why(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient
) -> None:
    repository = unique()
    push_sample(owner_client.store(repository))
    with RegistryClient(
        ghcr_registry.host, "http", None, anonymous_auth=AnonymousAuth.parse("Bearer QQ==")
    ) as anonymous:
        with pytest.raises(AuthenticationError) as caught:
            anonymous.store(repository).list_tags()
        assert anonymous.traffic.fast_path_refusals == 1
    assert "a private package, or none by that name" in str(caught.value)


def test_a_429_is_waited_out_as_long_as_its_message_says(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient
) -> None:
    repository = unique()
    push_sample(owner_client.store(repository))
    pauses: list[float] = []
    with RegistryClient(
        ghcr_registry.host, "http", ghcr_registry.credentials, sleep=pauses.append
    ) as client:
        store = client.store(repository)
        assert store.list_tags() == ["1.0"]
        ghcr_registry.state.throttle(2, "1.5s")
        assert store.list_tags() == ["1.0"]
    assert pauses == [1.5, 1.5]


def test_a_long_upload_gets_a_new_token_to_commit(
    ghcr_registry: GhcrRegistry, owner_client: RegistryClient, tmp_path: Path
) -> None:
    repository = unique()
    payload = tmp_path / "big.bin"
    payload.write_bytes(os.urandom(CHUNK_LIMIT + 12345))
    state, front = ghcr_registry.state, ghcr_registry.front
    lifetime = state.token_lifetime
    state.token_lifetime, front.patch_delay = 1.0, 1.5
    try:
        state.clear()
        digest = owner_client.store(repository).push_stream(
            lambda: payload.open("rb"), payload.stat().st_size
        )
    finally:
        state.token_lifetime, front.patch_delay = lifetime, 0.0
    assert digest == Digest.of_bytes(payload.read_bytes())
    commits = [(s.auth, s.status) for s in state.requests if s.method == "PUT"]
    assert commits == [("expired", 401), ("token", 201)]
    patches = [s for s in state.requests if s.method == "PATCH"]
    assert len(patches) == 1 and "content-range" not in patches[0].headers
    assert owner_client.store(repository).blob_exists(digest)


def test_push_then_pull_through_the_command_line(
    ghcr_registry: GhcrRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    namespace = f"team{uuid.uuid4().hex[:8]}"
    target = f"{ghcr_registry.host}/{namespace}"
    wheel = make_wheel(tmp_path, "ghcr-demo", "1.0", summary="Emulated.")
    for name in [n for n in os.environ if n.startswith(("SETUPTOOLS_GHCR_", "GITHUB_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SETUPTOOLS_GHCR_CACHE_DIR", str(tmp_path / "cache"))
    assert ghcr_registry.password is not None
    status = cli.main(
        ["push", "-r", target, "-u", "whoever", "-p", ghcr_registry.password, str(wheel)]
    )
    assert status == 0
    out = tmp_path / "out"
    refused = cli.main(["download", "-r", target, "-d", str(out), "ghcr-demo"])
    assert refused == 1
    assert "a private package, or none by that name" in capsys.readouterr().err
    ghcr_registry.make_public(f"{namespace}/ghcr_demo")
    monkeypatch.setenv("SETUPTOOLS_GHCR_ANONYMOUS_AUTH", "Bearer QQ==")
    with caplog.at_level(logging.DEBUG, "setuptools_ghcr.http"):
        assert cli.main(["download", "-r", target, "-d", str(out), "ghcr-demo", "-v"]) == 0
    assert (out / wheel.name).read_bytes() == wheel.read_bytes()
    assert "anonymous fast path: " in caplog.text
    assert "took 'Bearer ***'" in caplog.text
    assert ghcr_registry.cdn is not None
    assert all("authorization" not in seen for seen in ghcr_registry.cdn.requests)
    assert json.dumps(ghcr_registry.password) not in caplog.text


@pytest.mark.parametrize(
    ("namespace", "settings"),
    [
        ("tester", "https://github.com/users/tester/packages/container/{name}/settings"),
        ("org{n}", "https://github.com/orgs/org{n}/packages/container/{name}/settings"),
        (
            "org{n}/tools",
            "https://github.com/orgs/org{n}/packages/container/tools%2F{name}/settings",
        ),
    ],
)
def test_push_says_when_a_package_is_private_and_where_to_change_it(
    ghcr_registry: GhcrRegistry,
    github_api: GitHubApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    namespace: str,
    settings: str,
) -> None:
    unique_part = uuid.uuid4().hex[:8]
    namespace = namespace.format(n=unique_part)
    project = f"vis-{unique_part}"
    name = project.replace("-", "_")
    wheel = make_wheel(tmp_path, project, "1.0")
    for variable in [n for n in os.environ if n.startswith(("SETUPTOOLS_GHCR_", "GITHUB_"))]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GITHUB_API_URL", github_api.url)
    assert ghcr_registry.password is not None
    args = ["push", "-r", f"{ghcr_registry.host}/{namespace}", "-u", "me", "-p"]
    args += [ghcr_registry.password, str(wheel)]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("uploaded: ")
    assert lines[1] == (
        f"{ghcr_registry.host}/{namespace}/{name} is private: pip and uv without credentials "
        f"cannot install from it; make it public at {settings.format(n=unique_part, name=name)}"
    )
    assert len(lines) == 2

    ghcr_registry.make_public(f"{namespace}/{name}")
    assert cli.main([*args[:-1], "--json", str(wheel)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(f["status"], f["public"]) for f in report["files"]] == [("exists", True)]
    # GitHub's API got the registry's token only, and only to tell a user from an org.
    assert {r.path.split("/")[1] for r in github_api.requests} == {"users"}
    bearers = {r.headers.get("authorization") for r in github_api.requests}
    assert bearers == {f"Bearer {ghcr_registry.password}"}


def test_push_elsewhere_checks_no_visibility(
    token_registry: RunningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(tmp_path, "not-ghcr", "1.0")
    assert token_registry.password is not None
    args = ["push", "-r", f"{token_registry.host}/else", "-u", "tester", "-p"]
    assert cli.main([*args, token_registry.password, "--json", str(wheel)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["public"] for f in report["files"]] == [None]
