"""``[tool.setuptools-ghcr]`` in pyproject.toml, and where the target comes from."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setuptools_ghcr.core.targets import Target, parse_target
from setuptools_ghcr.core.wire_format import extra_tag_problem
from setuptools_ghcr.errors import ConfigError, GhcrError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "REPOSITORY_ENV",
    "Settings",
    "default_source",
    "load_settings",
    "parse_settings",
    "resolve_target",
]

TABLE = "tool.setuptools-ghcr"
REPOSITORY_ENV = "SETUPTOOLS_GHCR_REPOSITORY"
_RESERVED_PREFIXES = ("com.pyoci.", "io.github.setuptools-ghcr.")


@dataclass(frozen=True)
class Settings:
    """The project's publishing settings, validated."""

    repository: str | None = None
    source: str | None = None
    skip_existing: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    #: The folder the settings were read from; relative ``oci:`` paths are taken from there.
    base: Path | None = None


def _expect(value: Any, kind: type | tuple[type, ...], key: str, expected: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConfigError(
            f"[{TABLE}] {key} must be {expected}, not {type(value).__name__} ({value!r:.60})"
        )
    return value


def parse_settings(table: Mapping[str, Any], *, base: Path | None = None) -> Settings:
    """Validate the table; an unknown key or a wrong type is an error that names it."""
    known = {"repository", "source", "skip-existing", "annotations", "tags"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"[{TABLE}] has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}"
        )
    repository = table.get("repository")
    if repository is not None:
        _expect(repository, str, "repository", "a string such as 'ghcr.io/acme' or 'oci:dist'")
        try:
            parse_target(repository, base=base)
        except GhcrError as error:
            raise ConfigError(f"[{TABLE}] repository: {error}") from error
    source = table.get("source")
    if source is not None:
        _expect(source, str, "source", "a URL string")
    skip = table.get("skip-existing", False)
    _expect(skip, bool, "skip-existing", "true or false")
    annotations = table.get("annotations", {})
    _expect(annotations, dict, "annotations", "a table of strings")
    for key, value in annotations.items():
        _expect(value, str, f"annotations.{key}", "a string")
        if key.startswith(_RESERVED_PREFIXES):
            raise ConfigError(f"[{TABLE}] annotations.{key}: this prefix is set by the tool")
    tags = table.get("tags", [])
    _expect(tags, list, "tags", "a list of strings")
    for tag in tags:
        _expect(tag, str, "tags[]", "a string")
        problem = extra_tag_problem(tag)
        if problem:
            raise ConfigError(f"[{TABLE}] tags: {problem}")
    return Settings(
        repository=repository,
        source=source,
        skip_existing=skip,
        annotations=dict(annotations),
        tags=tuple(tags),
        base=base,
    )


def load_settings(pyproject: Path) -> Settings:
    """The settings of ``pyproject`` (defaults when the file or the table is absent)."""
    base = pyproject.parent.resolve()
    try:
        with pyproject.open("rb") as stream:
            document = tomllib.load(stream)
    except FileNotFoundError:
        return Settings(base=base)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{pyproject}: cannot read it ({error})") from error
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{pyproject}: [tool] must be a table")
    table = tool.get("setuptools-ghcr")
    if table is None:
        return Settings(base=base)
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [{TABLE}] must be a table")
    return parse_settings(table, base=base)


def default_source(environ: Mapping[str, str]) -> str | None:
    """In GitHub Actions, the URL of the workflow's repository."""
    server, repository = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
    if environ.get("GITHUB_ACTIONS") == "true" and server and repository:
        return f"{server.rstrip('/')}/{repository}"
    return None


def resolve_target(option: str | None, settings: Settings, environ: Mapping[str, str]) -> Target:
    """The target: ``--repository``, else the config's ``repository``, else the environment."""
    if option:
        return parse_target(option)
    if settings.repository:
        return parse_target(settings.repository, base=settings.base)
    from_env = environ.get(REPOSITORY_ENV)
    if from_env:
        return parse_target(from_env)
    raise ConfigError(
        "no repository given: pass --repository (e.g. ghcr.io/OWNER or oci:./packages), "
        f"set [{TABLE}] repository in pyproject.toml, or set {REPOSITORY_ENV}"
    )
