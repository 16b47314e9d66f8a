"""Use case: can anyone read what was just published to ghcr.io?

ghcr.io creates packages private, and no API makes one public (its settings page does, or an
organization's default). So after a push there, each project's new version is read once
without credentials, exactly as pip or uv behind an index would read it; a refusal means the
package is private, and the user is pointed at the page that changes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.utils import NormalizedName
from packaging.version import Version

from setuptools_ghcr.core.targets import RegistryTarget
from setuptools_ghcr.core.wire_format import version_to_tag
from setuptools_ghcr.errors import AuthenticationError, GhcrError
from setuptools_ghcr.storage.factory import StoreFactory
from setuptools_ghcr.storage.registry.github import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    OwnerKind,
    package_settings_url,
    split_repository,
)

__all__ = ["Visibility", "check_visibility"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Visibility:
    """Whether a project's package can be read anonymously (None: could not tell)."""

    project: NormalizedName
    location: str
    public: bool | None
    settings_url: str | None

    def line(self) -> str | None:
        """What to tell the user, when there is something to tell."""
        if self.public is not False:
            return None
        return (
            f"{self.location} is private: pip and uv without credentials cannot install from "
            f"it; make it public at {self.settings_url}"
        )


def check_visibility(
    factory: StoreFactory,
    published: Iterable[tuple[NormalizedName, Version]],
    environ: Mapping[str, str],
) -> list[Visibility]:
    """Read each project's published version anonymously, on ghcr.io only (else nothing)."""
    target = factory.target
    if not isinstance(target, RegistryTarget) or not factory.client().is_ghcr:
        return []
    anonymous = factory.anonymous_client()
    found: list[Visibility] = []
    for project, version in dict(published).items():
        repository = target.repository(project)
        store = anonymous.store(repository)
        public: bool | None
        try:
            public = store.get_manifest(version_to_tag(version)) is not None or None
        except AuthenticationError:
            public = False
        except GhcrError as error:
            logger.info("could not check whether %s is public: %s", store.location, error)
            public = None
        url = _settings_url(factory, repository, environ) if public is False else None
        found.append(Visibility(project, store.location, public, url))
    return found


def _settings_url(factory: StoreFactory, repository: str, environ: Mapping[str, str]) -> str:
    server = environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL
    owner, _, name = repository.partition("/")
    kind: OwnerKind | None = None
    try:
        owner, name = split_repository(repository)
        kind = factory.github().owner_kind(owner)
    except GhcrError as error:
        logger.info("could not tell whether %s is a user or an organization: %s", owner, error)
    return package_settings_url(server, kind, owner, name)
