"""What a resolve is asked for and what it answers: options, chosen files, written files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from setuptools_ghcr.core.dependencies import ProjectPatterns
from setuptools_ghcr.core.selection import TargetEnvironment
from setuptools_ghcr.core.wire_format import FileEntry
from setuptools_ghcr.storage.store import Store

__all__ = ["Downloaded", "ResolveOptions", "Selected", "StoreOpener"]


class StoreOpener(Protocol):
    """Opens the store of any project of one target (``stores.StoreFactory`` is one)."""

    @property
    def target(self) -> object: ...

    def open(self, project: str) -> Store: ...


@dataclass(frozen=True)
class ResolveOptions:
    """How to choose: pre-releases, dependencies, wheels only, and for which target."""

    pre: bool = False
    deps: bool = True
    only_binary: bool = False
    environment: TargetEnvironment = field(default_factory=TargetEnvironment.current)
    #: Projects that must come from the target, besides those the publisher recorded.
    internal_projects: ProjectPatterns = field(default_factory=ProjectPatterns)


@dataclass(frozen=True)
class Selected:
    """The file chosen for a project, and the dependencies it brings on the target."""

    entry: FileEntry
    location: str
    extras: frozenset[str]
    requires: tuple[Requirement, ...]

    @property
    def project(self) -> NormalizedName:
        return self.entry.project

    @property
    def version(self) -> Version:
        return self.entry.version


@dataclass(frozen=True)
class Downloaded:
    """A file written to the destination folder."""

    selected: Selected
    path: Path
    from_cache: bool
