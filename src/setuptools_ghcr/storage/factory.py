"""Opening the store of a project on a target, with one registry client per registry."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from setuptools_ghcr.core.targets import (
    LayoutTarget,
    RegistryTarget,
    Target,
    nested_project_warning,
)
from setuptools_ghcr.errors import ConfigError
from setuptools_ghcr.storage.store import Store, VersionDeleter

if TYPE_CHECKING:
    from setuptools_ghcr.storage.registry.client import RegistryClient
    from setuptools_ghcr.storage.registry.credentials import Credentials
    from setuptools_ghcr.storage.registry.github import GitHubPackages

__all__ = ["RETRIES_ENV", "TIMEOUT_ENV", "StoreFactory", "registry_limits"]

_log = logging.getLogger(__name__)

#: Seconds a registry may stay silent before a request is given up (and retried).
TIMEOUT_ENV = "SETUPTOOLS_GHCR_TIMEOUT"
#: How many times a failed registry request is tried again (0: never).
RETRIES_ENV = "SETUPTOOLS_GHCR_RETRIES"


def _env_number(
    environ: Mapping[str, str], name: str, kind: type[float] | type[int], default: float
) -> float:
    """A positive number (a count may be 0) from the environment, else ``default``."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value: float = kind(text)
    except ValueError:
        value = -1
    lowest = 0 if kind is int else 1e-3
    if not lowest <= value <= 1e6:
        what = "a whole number, 0 or more" if kind is int else "a number of seconds above 0"
        raise ConfigError(f"{name} must be {what}, not {text[:40]!r}")
    return value


class StoreFactory:
    """Makes the :class:`Store` of any project on one target.

    Registry stores of one target share a client, hence one HTTP session, its connections
    and its tokens, which leaving the ``with`` block closes::

        with StoreFactory(target) as stores:
            store = stores.open("demo-pkg")

    A layout target on a platform that cannot hold one is refused here, in one line.
    ``given_credentials`` says whether ``username``/``password`` and their environment
    variables may be used for the target's registry (false for a registry only a project's
    configuration names).
    """

    def __init__(
        self,
        target: Target,
        *,
        username: str | None = None,
        password: str | None = None,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
        given_credentials: bool = True,
    ) -> None:
        self.target = target
        self._username = username
        self._password = password
        self._environ = dict(os.environ if environ is None else environ)
        self._home = home
        self._given_credentials = given_credentials
        self._client: RegistryClient | None = None
        self._anonymous: RegistryClient | None = None
        self._github: GitHubPackages | None = None
        self._warned: set[str] = set()
        self._caller: Credentials | None = None
        self._for_caller = False
        if isinstance(target, LayoutTarget):
            from setuptools_ghcr.storage.layout_folder import require_layout_support

            require_layout_support()

    @classmethod
    def for_caller(
        cls,
        target: RegistryTarget,
        credentials: Credentials | None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> StoreFactory:
        """Stores opened with exactly ``credentials`` (None: anonymous), never with anything
        the environment, a docker login or ``GITHUB_TOKEN`` would add: an index service
        acting for one caller must not lend them this server's own credentials."""
        factory = cls(target, environ=environ)
        factory._caller = credentials
        factory._for_caller = True
        return factory

    def __enter__(self) -> StoreFactory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def client(self) -> RegistryClient:
        """The registry client of a registry target (made on first use)."""
        target = self._registry_target()
        if self._client is None:
            from setuptools_ghcr.storage.registry.credentials import find_credentials

            credentials = (
                self._caller
                if self._for_caller
                else find_credentials(
                    target.host,
                    username=self._username,
                    password=self._password,
                    environ=self._environ,
                    home=self._home,
                    given_allowed=self._given_credentials,
                )
            )
            self._client = self._new_client(credentials)
        return self._client

    def anonymous_client(self) -> RegistryClient:
        """A client of the same registry without any credentials: what everyone else sees."""
        if self._anonymous is None:
            self._anonymous = self._new_client(None)
        return self._anonymous

    def github(self) -> GitHubPackages:
        """GitHub's REST API for the packages of this ghcr.io target, with the registry's
        credentials (see ``GITHUB_API_URL``).

        Refused for any other registry: its credentials must never reach GitHub.
        """
        target = self._registry_target()
        client = self.client()
        if not client.is_ghcr:
            raise ConfigError(f"{target.host} is not ghcr.io: GitHub's API has no say there")
        if self._github is None:
            from setuptools_ghcr.storage.registry.github import (
                API_URL_ENV,
                DEFAULT_API_URL,
                GitHubPackages,
            )

            self._github = GitHubPackages(
                self._environ.get(API_URL_ENV) or DEFAULT_API_URL, client.credentials
            )
        return self._github

    def deleter(self, project: str) -> VersionDeleter:
        """What deletes versions of ``project``: the layout itself, ghcr.io through GitHub's
        REST API (with the registry's own token), any other registry through its API.

        Ask after reading from the target: only its challenge tells a ghcr.io on another host.
        """
        if isinstance(self.target, LayoutTarget):
            from setuptools_ghcr.storage.layout import LayoutStore

            return LayoutStore.for_project(self.target, project)
        client = self.client()
        if not client.is_ghcr:
            return client.store(self.target.repository(project))
        if client.credentials is None:
            raise ConfigError(
                f"deleting from {self.target.host} goes through GitHub's API, which needs a "
                "token with delete:packages: pass --username/--password (or GITHUB_TOKEN)"
            )
        from setuptools_ghcr.storage.registry.github import GitHubVersionDeleter

        return GitHubVersionDeleter(self.github(), self.target.repository(project))

    def _registry_target(self) -> RegistryTarget:
        if not isinstance(self.target, RegistryTarget):
            raise TypeError("a layout target has no registry client")
        return self.target

    def _new_client(self, credentials: Credentials | None) -> RegistryClient:
        from setuptools_ghcr.storage.registry.challenge import ANONYMOUS_AUTH_ENV, AnonymousAuth
        from setuptools_ghcr.storage.registry.client import RegistryClient

        target = self._registry_target()
        timeout, retries = registry_limits(self._environ)
        return RegistryClient(
            target.host,
            target.scheme,
            credentials,
            timeout=timeout,
            retries=retries,
            anonymous_auth=AnonymousAuth.parse(self._environ.get(ANONYMOUS_AUTH_ENV)),
        )

    def open(self, project: str) -> Store:
        """The store holding ``project``."""
        if project not in self._warned:
            self._warned.add(project)
            warning = nested_project_warning(self.target, project)
            if warning:
                _log.warning("%s", warning)
        if isinstance(self.target, LayoutTarget):
            from setuptools_ghcr.storage.layout import LayoutStore

            return LayoutStore.for_project(self.target, project)
        return self.client().store(self.target.repository(project))

    def close(self) -> None:
        """Close the registry clients and the GitHub API client made (their connections)."""
        for made in (self._client, self._anonymous, self._github):
            if made is not None:
                made.close()


def registry_limits(environ: Mapping[str, str]) -> tuple[float, int]:
    """The timeout (seconds) and retry count for registry requests, from the environment."""
    from setuptools_ghcr.storage.registry.transport import DEFAULT_RETRIES, DEFAULT_TIMEOUT

    timeout = _env_number(environ, TIMEOUT_ENV, float, DEFAULT_TIMEOUT)
    return timeout, int(_env_number(environ, RETRIES_ENV, int, DEFAULT_RETRIES))
