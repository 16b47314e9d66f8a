"""How the index service is configured: from ``serve``'s options and from the environment.

``setuptools-ghcr serve`` and ``setuptools_ghcr.wsgi:application`` read the same variables:

- ``SETUPTOOLS_GHCR_SERVE_REGISTRIES``: registry hosts of pass-through routes, comma-separated
  (added to ``--registry``).
- ``SETUPTOOLS_GHCR_FALLBACK_INDEX``: the index of names the targets do not hold
  (``--fallback-index`` wins).
- ``SETUPTOOLS_GHCR_ALLOWED_HOSTS``: ``Host`` values answered besides loopback,
  comma-separated (added to ``--allowed-host``).
- ``SETUPTOOLS_GHCR_CACHE_DIR``: the disk cache of version indexes (shared with the download
  cache; default ``$XDG_CACHE_HOME/setuptools-ghcr``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from setuptools_ghcr.core.targets import is_loopback_host
from setuptools_ghcr.errors import ConfigError, GhcrError
from setuptools_ghcr.serve.hosts import HostPolicy
from setuptools_ghcr.serve.routes import parse_registry_host
from setuptools_ghcr.storage.cache import default_cache_root

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "FALLBACK_INDEX_ENV",
    "REGISTRIES_ENV",
    "ServeSettings",
    "parse_fallback_index",
    "serve_settings",
]

REGISTRIES_ENV = "SETUPTOOLS_GHCR_SERVE_REGISTRIES"
FALLBACK_INDEX_ENV = "SETUPTOOLS_GHCR_FALLBACK_INDEX"
ALLOWED_HOSTS_ENV = "SETUPTOOLS_GHCR_ALLOWED_HOSTS"


@dataclass(frozen=True)
class ServeSettings:
    """The service's settings besides its fixed target."""

    registries: tuple[str, ...] = ()
    fallback_index: str | None = None
    hosts: HostPolicy = field(default_factory=HostPolicy)
    cache_dir: Path | None = None


def _listed(given: Sequence[str], environ: Mapping[str, str], name: str) -> list[tuple[str, str]]:
    """Each entry with where it came from: the options first, then the variable's."""
    entries = [(entry, "") for entry in given]
    entries += [(entry, name) for entry in environ.get(name, "").split(",")]
    return [(entry.strip(), where) for entry, where in entries if entry.strip()]


def parse_fallback_index(url: str, where: str = "--fallback-index") -> str:
    """A fallback index URL: http(s), https unless on loopback, no credentials in it (every
    client would be sent them in a redirect). Returned with one trailing slash."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url[:80]!r} is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        # Never echoed: it holds a credential.
        raise ConfigError(f"{where}: the URL must not hold credentials; clients are sent it")
    if parts.scheme == "http" and not is_loopback_host(parts.netloc):
        raise ConfigError(f"{where}: use https (plain http only for a loopback index)")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: the URL must not have a query or a fragment")
    return url.rstrip("/") + "/"


def serve_settings(
    environ: Mapping[str, str],
    *,
    registries: Sequence[str] = (),
    fallback_index: str | None = None,
    allowed_hosts: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> ServeSettings:
    """The settings from the options given and the environment (see the module)."""
    hosts: list[str] = []
    for entry, where in _listed(registries, environ, REGISTRIES_ENV):
        try:
            host = parse_registry_host(entry, where or "--registry")
        except GhcrError as error:
            raise ConfigError(str(error)) from None
        if host not in hosts:
            hosts.append(host)
    fallback = fallback_index or environ.get(FALLBACK_INDEX_ENV, "").strip() or None
    if fallback is not None:
        fallback = parse_fallback_index(
            fallback, "--fallback-index" if fallback_index else FALLBACK_INDEX_ENV
        )
    policy = HostPolicy()
    for entry, where in _listed(allowed_hosts, environ, ALLOWED_HOSTS_ENV):
        found = HostPolicy.parse([entry], where or "--allowed-host")
        policy = HostPolicy(policy.allowed | found.allowed, policy.any_host or found.any_host)
    root = cache_dir if cache_dir is not None else default_cache_root(environ)
    return ServeSettings(tuple(hosts), fallback, policy, root)
