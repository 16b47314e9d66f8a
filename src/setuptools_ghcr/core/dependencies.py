"""Which dependencies must come from the target, never from another index.

Pure policy. Two sources say so, and neither is a guess from a registry's answer (ghcr.io
refuses anonymous callers alike for a private package and for a name it does not have, so
"refused" can never be read as "absent"):

- the publisher's record: each file's index entry names those of its dependencies that the
  target held when it was published (see ``wire_format.TARGET_DEPENDENCIES``);
- name patterns the installing side gives (``[tool.setuptools-ghcr] internal-projects``,
  ``--internal-project``, ``SETUPTOOLS_GHCR_INTERNAL_PROJECTS``), e.g. ``acme-*``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from setuptools_ghcr.errors import ConfigError

__all__ = ["ProjectPatterns", "dependency_names", "normalize_pattern"]

_PATTERN = re.compile(r"[A-Za-z0-9._*?-]+")
_SEPARATORS = re.compile(r"[-_.]+")


def normalize_pattern(text: str, where: str) -> str:
    """A name pattern in normalized form (lower case, ``-_.`` runs as one ``-``).

    Patterns use ``*`` (any run of characters) and ``?`` (one character), and are matched
    against normalized project names, so ``Acme_*`` and ``acme-*`` are the same pattern.
    """
    stripped = text.strip()
    if not _PATTERN.fullmatch(stripped) or not stripped.strip("-_."):
        raise ConfigError(
            f"{where}: {text[:80]!r} is not a project name pattern "
            "(letters, digits, '-', '_', '.', and the wildcards '*' and '?')"
        )
    return _SEPARATORS.sub("-", stripped.lower())


@dataclass(frozen=True)
class ProjectPatterns:
    """Project name patterns, normalized; a project matches when any pattern does."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str], where: str) -> ProjectPatterns:
        return cls(tuple(dict.fromkeys(normalize_pattern(text, where) for text in texts)))

    def __or__(self, other: ProjectPatterns) -> ProjectPatterns:
        return ProjectPatterns(tuple(dict.fromkeys([*self.patterns, *other.patterns])))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, project: str) -> bool:
        name = canonicalize_name(project)
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)


def dependency_names(requires_dist: Iterable[str], project: str) -> list[NormalizedName]:
    """Every project a distribution may require, whatever the markers and extras.

    Direct URL requirements never come from an index and the project itself is left out.
    """
    own = canonicalize_name(project)
    names: dict[NormalizedName, None] = {}
    for text in requires_dist:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        if not requirement.url and name != own:
            names[name] = None
    return sorted(names)
