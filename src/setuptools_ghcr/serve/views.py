"""A request's target as its caller sees it: stores opened with the right credentials.

- A pass-through route reads with the caller's own credentials, or anonymously: never with
  the server's.
- The fixed target reads with the caller's credentials when the caller sent some (and the
  target is a registry), else with the server's own.

Each view names its caller by a key (see ``serve.callers``): the server's own credentials
are a caller of their own, so nothing they read is handed to anyone who has not proved
access through the same route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from setuptools_ghcr.core.targets import LayoutTarget, RegistryTarget, Target
from setuptools_ghcr.serve.callers import Caller, ClientMaker, ClientPool
from setuptools_ghcr.serve.projects import Source, StoreOpener
from setuptools_ghcr.serve.routes import Mount
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.store import Store

if TYPE_CHECKING:
    from setuptools_ghcr.storage.factory import StoreFactory

__all__ = [
    "SERVER",
    "FixedTarget",
    "ProjectLister",
    "View",
    "Views",
    "client_maker",
    "factory_lister",
    "layout_projects",
]

#: The key of the server's own credentials (the fixed target read for anonymous callers).
SERVER = "server"

#: The names of the projects a target holds (for ``/simple/``); may raise.
ProjectLister = Callable[[], Sequence[str]]


@dataclass(frozen=True)
class FixedTarget:
    """The target served at ``/``, with the server's own stores and project list."""

    target: Target | None
    stores: StoreOpener
    list_projects: ProjectLister | None = None


@dataclass(frozen=True)
class View:
    """One mount as one caller sees it."""

    mount: Mount
    caller: Caller
    source: Source
    #: The project list for ``/simple/``; None when the target cannot list.
    list_projects: ProjectLister | None

    @property
    def list_key(self) -> str:
        """What the project list is kept under: it is the caller's own."""
        return f"{self.source.target}\0{self.source.caller}"


class _ClientStores:
    """The stores of a registry namespace, opened through one caller's client."""

    def __init__(self, client: RegistryClient, target: RegistryTarget) -> None:
        self._client = client
        self._target = target

    def open(self, project: str) -> Store:
        return self._client.store(self._target.repository(project))

    def list_projects(self) -> Sequence[str]:
        names = self._client.list_repositories(self._target.namespace)
        return sorted({canonicalize_name(name) for name in names})


class Views:
    """Makes the :class:`View` of a mount for a caller."""

    def __init__(self, fixed: FixedTarget | None, pool: ClientPool | None) -> None:
        self.fixed = fixed
        self._pool = pool

    def view(self, mount: Mount, caller: Caller) -> View:
        label = mount.label
        target = mount.target
        if mount.passthrough or (
            caller.credentials is not None
            and isinstance(target, RegistryTarget)
            and self._pool is not None
        ):
            assert isinstance(target, RegistryTarget)
            if self._pool is None:
                raise RuntimeError("pass-through routes need a client pool")
            stores = _ClientStores(self._pool.client(target.host, caller), target)
            return View(mount, caller, Source(label, caller.key, stores), stores.list_projects)
        if self.fixed is None:
            raise RuntimeError("no fixed target is served")
        persistent = not isinstance(target, LayoutTarget)
        source = Source(label, SERVER, self.fixed.stores, persistent=persistent)
        return View(mount, caller, source, self.fixed.list_projects)


def layout_projects(root: Path) -> list[str]:
    """The projects of an ``oci:`` folder: its sub-folders that are image layouts."""
    if not root.is_dir():
        return []
    return sorted(
        canonicalize_name(child.name)
        for child in root.iterdir()
        if child.is_dir() and (child / "oci-layout").is_file()
    )


def factory_lister(factory: StoreFactory) -> ProjectLister:
    target = factory.target
    if isinstance(target, LayoutTarget):
        root = target.path
        return lambda: layout_projects(root)
    namespace = target.namespace

    def lister() -> Sequence[str]:
        names = factory.client().list_repositories(namespace)
        return sorted({canonicalize_name(name) for name in names})

    return lister


def client_maker(environ: Mapping[str, str], insecure: frozenset[str]) -> ClientMaker:
    """Makes a caller's registry client: its credentials only, refusals answered, not
    retried anonymously (the caller is told, and its keyring or prompt can step in)."""
    from setuptools_ghcr.storage.factory import registry_limits

    timeout, retries = registry_limits(environ)

    def make(host: str, credentials: Credentials | None) -> RegistryClient:
        return RegistryClient(
            host,
            RegistryTarget(host, "", insecure=host in insecure).scheme,
            credentials,
            timeout=timeout,
            retries=retries,
            read_anonymously=False,
        )

    return make
