"""``[tool.setuptools-ghcr]`` in pyproject.toml, and where the target comes from."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setuptools_ghcr.core.dependencies import ProjectPatterns
from setuptools_ghcr.core.targets import (
    LayoutTarget,
    RegistryTarget,
    Target,
    parse_host,
    parse_target,
)
from setuptools_ghcr.core.wire_format import extra_tag_problem
from setuptools_ghcr.errors import ConfigError, GhcrError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "INSECURE_ENV",
    "REGISTRY_ENV",
    "INTERNAL_PROJECTS_ENV",
    "REPOSITORY_ENV",
    "Settings",
    "TargetChoice",
    "choose_target",
    "default_source",
    "default_target",
    "insecure_registries",
    "internal_projects",
    "load_settings",
    "parse_settings",
    "resolve_target",
]

TABLE = "tool.setuptools-ghcr"
REPOSITORY_ENV = "SETUPTOOLS_GHCR_REPOSITORY"
#: The registry that credentials from the command line or the environment may go to when
#: the target comes from a project's configuration (see :class:`TargetChoice`).
REGISTRY_ENV = "SETUPTOOLS_GHCR_REGISTRY"
#: Comma-separated registry hosts spoken to over plain http (``--insecure-registry``).
INSECURE_ENV = "SETUPTOOLS_GHCR_INSECURE_REGISTRIES"
INTERNAL_PROJECTS_ENV = "SETUPTOOLS_GHCR_INTERNAL_PROJECTS"
_RESERVED_PREFIXES = ("com.pyoci.", "io.github.setuptools-ghcr.")


@dataclass(frozen=True)
class Settings:
    """The project's publishing settings, validated."""

    repository: str | None = None
    source: str | None = None
    skip_existing: bool = False
    annotations: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    #: Projects that must come from the target, never from another index (name patterns).
    internal_projects: ProjectPatterns = field(default_factory=ProjectPatterns)
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
    known = {"repository", "source", "skip-existing", "annotations", "tags", "internal-projects"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"[{TABLE}] has unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}"
        )
    repository = table.get("repository")
    if repository is not None:
        _expect(repository, str, "repository", "a string such as 'ghcr.io/acme' or 'oci:dist'")
        try:
            # Whether plain http is allowed depends on the user's --insecure-registry, not
            # on the project: here only the spelling is checked.
            parse_target(repository.removeprefix("http://"), base=base)
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
    internal = table.get("internal-projects", [])
    _expect(internal, list, "internal-projects", "a list of project name patterns")
    for pattern in internal:
        _expect(pattern, str, "internal-projects[]", "a string such as 'acme-*'")
    return Settings(
        repository=repository,
        source=source,
        skip_existing=skip,
        annotations=dict(annotations),
        tags=tuple(tags),
        internal_projects=ProjectPatterns.parse(internal, f"[{TABLE}] internal-projects"),
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


def internal_projects(
    settings: Settings, environ: Mapping[str, str], given: Sequence[str] = ()
) -> ProjectPatterns:
    """Every pattern of projects that must come from the target: the config's, the
    environment's (comma-separated) and those given on the command line, together.

    Each source can only add names, so a checkout's config can make an install stricter,
    never looser.
    """
    from_env = [part for part in environ.get(INTERNAL_PROJECTS_ENV, "").split(",") if part.strip()]
    return (
        settings.internal_projects
        | ProjectPatterns.parse(from_env, INTERNAL_PROJECTS_ENV)
        | ProjectPatterns.parse(given, "--internal-project")
    )


def insecure_registries(given: Sequence[str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """The hosts named with ``--insecure-registry`` and in ``SETUPTOOLS_GHCR_INSECURE_REGISTRIES``.

    Only the command line and the environment name them, never a project's configuration:
    a checkout must not be able to turn https off.
    """
    listed = [*given, *environ.get(INSECURE_ENV, "").split(",")]
    return tuple(
        parse_host(entry, "--insecure-registry" if i < len(given) else INSECURE_ENV)
        for i, entry in enumerate(listed)
        if entry.strip()
    )


def resolve_target(
    option: str | None,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
) -> Target:
    """The target: ``--repository``, else the config's ``repository``, else the environment."""
    return _given_target(option, settings, environ, insecure)[0]


def _given_target(
    option: str | None, settings: Settings, environ: Mapping[str, str], insecure: Sequence[str]
) -> tuple[Target, str]:
    if option:
        return parse_target(option, insecure=insecure), "option"
    if settings.repository:
        try:
            target = parse_target(settings.repository, base=settings.base, insecure=insecure)
        except GhcrError as error:
            raise ConfigError(f"[{TABLE}] repository: {error}") from error
        return target, "config"
    from_env = environ.get(REPOSITORY_ENV)
    if from_env:
        try:
            return parse_target(from_env, insecure=insecure), "environment"
        except GhcrError as error:
            raise ConfigError(f"{REPOSITORY_ENV}: {error}") from error
    raise ConfigError(
        "no repository given: pass --repository (e.g. ghcr.io/OWNER or oci:./packages), "
        f"set [{TABLE}] repository in pyproject.toml, or set {REPOSITORY_ENV}"
    )


def default_target(environ: Mapping[str, str]) -> LayoutTarget:
    """The embedded default: ``oci:$XDG_DATA_HOME/setuptools-ghcr/packages``, on this machine."""
    data = environ.get("XDG_DATA_HOME", "")
    if not Path(data).is_absolute():  # unset, empty or relative: ignored, as the spec says
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        data = str(home / ".local" / "share")
    return LayoutTarget(Path(data) / "setuptools-ghcr" / "packages")


@dataclass(frozen=True)
class TargetChoice:
    """The target, where it came from, and whether given credentials may go to it.

    Credentials from the command line or the environment (``--username``/``--password``,
    ``SETUPTOOLS_GHCR_USERNAME``/``SETUPTOOLS_GHCR_PASSWORD``) name no registry. They go
    only to a registry the user named: with ``--repository``, in
    ``SETUPTOOLS_GHCR_REPOSITORY``, or in ``SETUPTOOLS_GHCR_REGISTRY``; never to one that
    only a project's ``pyproject.toml`` names, which a checkout of anyone's code may set.
    """

    target: Target
    #: "option", "config", "environment" or "default".
    origin: str
    #: The pyproject.toml that named the target (origin "config").
    config_path: Path | None = None
    #: Whether credentials from the command line or the environment may be sent to it.
    credentials_allowed: bool = False

    @property
    def explicit(self) -> bool:
        return self.origin == "option"

    def announcement(self) -> str | None:
        """What to say on stderr about a target that was not given on the command line."""
        if self.origin == "option":
            return None
        if self.origin == "config":
            where = self.config_path or "pyproject.toml"
            return f"using {self.target} (from [{TABLE}] repository in {where})"
        if self.origin == "environment":
            return f"using {self.target} (from {REPOSITORY_ENV})"
        return f"using {self.target} (the default target; choose another with --repository)"


def choose_target(
    option: str | None,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
) -> TargetChoice:
    """Like :func:`resolve_target`, with the embedded default when nothing names a target.

    ``insecure`` holds the hosts given with ``--insecure-registry``; those of
    ``SETUPTOOLS_GHCR_INSECURE_REGISTRIES`` are added here.
    """
    hosts = insecure_registries(insecure, environ)
    try:
        target, origin = _given_target(option, settings, environ, hosts)
    except ConfigError:
        if option or settings.repository or environ.get(REPOSITORY_ENV):
            raise
        return TargetChoice(default_target(environ), "default")
    allowed = isinstance(target, RegistryTarget) and (
        origin != "config" or target.host in _named_hosts(environ, hosts)
    )
    config_path = settings.base / "pyproject.toml" if settings.base is not None else None
    return TargetChoice(target, origin, config_path if origin == "config" else None, allowed)


def _named_hosts(environ: Mapping[str, str], insecure: Sequence[str]) -> set[str]:
    """The registry hosts the environment names: ``SETUPTOOLS_GHCR_REGISTRY`` and the host of
    ``SETUPTOOLS_GHCR_REPOSITORY``."""
    hosts = set()
    if environ.get(REGISTRY_ENV, "").strip():
        hosts.add(parse_host(environ[REGISTRY_ENV], REGISTRY_ENV))
    if environ.get(REPOSITORY_ENV, "").strip():
        named = parse_target(environ[REPOSITORY_ENV], insecure=insecure)
        if isinstance(named, RegistryTarget):
            hosts.add(named.host)
    return hosts
