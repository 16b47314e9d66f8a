"""GitHub's REST API client: names, URLs, and whose credentials may reach it."""

from __future__ import annotations

import pytest

from setuptools_ghcr.core.targets import parse_target
from setuptools_ghcr.errors import ConfigError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.registry.github import (
    GitHubPackages,
    package_settings_url,
    split_repository,
)


@pytest.mark.parametrize(
    ("repository", "owner", "name"),
    [("acme/mypkg", "acme", "mypkg"), ("acme/tools/my_pkg", "acme", "tools/my_pkg")],
)
def test_split_repository(repository: str, owner: str, name: str) -> None:
    assert split_repository(repository) == (owner, name)


def test_a_repository_without_an_owner_is_no_package() -> None:
    with pytest.raises(ConfigError, match="needs an owner"):
        split_repository("mypkg")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("orgs", "https://github.com/orgs/acme/packages/container/tools%2Fmy_pkg/settings"),
        ("users", "https://github.com/users/acme/packages/container/tools%2Fmy_pkg/settings"),
        (None, "https://github.com/acme?tab=packages"),
    ],
)
def test_package_settings_url(kind: str | None, expected: str) -> None:
    assert package_settings_url("https://github.com/", kind, "acme", "tools/my_pkg") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "ftp://api.github.com", "api.github.com", "https://"]
)
def test_the_api_must_be_https_unless_on_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="GITHUB_API_URL must be an https URL"):
        GitHubPackages(url, None)
    GitHubPackages("https://api.github.com", None).close()
    GitHubPackages("http://127.0.0.1:9/", None).close()


def test_no_other_registry_s_credentials_reach_github() -> None:
    target = parse_target("registry.example.com/acme")
    environ = {"SETUPTOOLS_GHCR_PASSWORD": "not-for-github", "GITHUB_API_URL": "https://x.test"}
    with (
        StoreFactory(target, environ=environ) as stores,
        pytest.raises(ConfigError, match=r"is not ghcr\.io"),
    ):
        stores.github()
