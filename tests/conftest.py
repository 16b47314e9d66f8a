"""Shared fixtures: real ``docker-registry`` processes, one per flavour, for the session.

A registry that cannot start fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ghcr_emulator import GhcrRegistry, start_ghcr
from support.github_api import GitHubApi
from support.registry_harness import (
    RegistryKind,
    RegistryStartError,
    RunningRegistry,
    start_registry,
)
from support.token_server import Access


def _serve(
    kind: RegistryKind, root: Path, users: tuple[str, ...] = (), access: Access | None = None
) -> Iterator[RunningRegistry]:
    try:
        registry = start_registry(kind, root, users=users, access=access)
    except RegistryStartError as error:
        pytest.fail(f"cannot start the {kind} test registry: {error}", pytrace=False)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry without authentication."""
    yield from _serve("plain", tmp_path_factory.mktemp("plain-registry"))


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry with Basic authentication (bcrypt htpasswd) for one known user."""
    yield from _serve("htpasswd", tmp_path_factory.mktemp("htpasswd-registry"))


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry with Bearer token auth; ``.token_server`` records every token request."""
    yield from _serve("token", tmp_path_factory.mktemp("token-registry"))


def team_access(user: str | None, repository: str, action: str) -> bool:
    """A team's registry: ``team/public/*`` readable by anyone, ``team/private/*`` by every
    user, ``team/alice/*`` and ``team/bob/*`` by that user only; ``tester`` may do anything,
    and other repositories follow the default (anonymous pull, users pull and push)."""
    if user == "tester":
        return True
    parts = repository.split("/")
    if parts[0] != "team" or len(parts) < 3:
        return action == "pull" or user is not None
    if action != "pull":
        return False
    area = parts[1]
    if area == "public":
        return True
    if area == "private":
        return user is not None
    return user == area


@pytest.fixture(scope="session")
def team_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A token registry with a team's rules (see :func:`team_access`): users ``tester``
    (everything), ``alice`` and ``bob``; anonymous callers read ``team/public/*`` only."""
    yield from _serve(
        "token", tmp_path_factory.mktemp("team-registry"), ("alice", "bob"), team_access
    )


@pytest.fixture(scope="session")
def redirect_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A Basic-auth registry whose blob downloads redirect to ``.cdn`` on another host name."""
    yield from _serve("redirect", tmp_path_factory.mktemp("redirect-registry"))


@pytest.fixture(scope="session")
def ghcr_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GhcrRegistry]:
    """The ghcr.io emulator (see ``ghcr_emulator``) in front of its own registry; its user
    ``tester`` may push under any namespace no one else owns, and new packages are private."""
    try:
        registry = start_ghcr(tmp_path_factory.mktemp("ghcr"))
    except RegistryStartError as error:
        pytest.fail(f"cannot start the ghcr.io emulator: {error}", pytrace=False)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def github_api(ghcr_registry: GhcrRegistry) -> Iterator[GitHubApi]:
    """GitHub's REST endpoints for the emulator's packages (see ``github_api``)."""
    with GitHubApi(ghcr_registry) as api:
        yield api


@pytest.fixture(params=["plain_registry", "htpasswd_registry", "token_registry", "ghcr_registry"])
def any_registry(request: pytest.FixtureRequest) -> RunningRegistry:
    """Each of the registry flavours in turn, the ghcr.io emulator last."""
    registry: RunningRegistry = request.getfixturevalue(request.param)
    return registry


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What ``os.fsync`` flushes from now on, in order: ``"file"`` or ``"folder"``."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced
