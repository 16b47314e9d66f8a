"""Targets: where packages live (a registry namespace or a folder of OCI layouts)."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from setuptools_ghcr.core.oci import is_valid_repository
from setuptools_ghcr.errors import InvalidReferenceError

__all__ = [
    "LayoutTarget",
    "RegistryTarget",
    "Target",
    "is_loopback_host",
    "parse_target",
    "repository_name",
]

_HOST_RE = re.compile(
    r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$"
)


def repository_name(project: str) -> str:
    """The OCI repository name of a project: normalized, with ``-`` as ``_`` (PyOCI's rule)."""
    name = canonicalize_name(project).replace("-", "_")
    # A '/' would pass as a valid repository path and nest the project under another one.
    if "/" in name or not is_valid_repository(name):
        raise InvalidReferenceError(f"project name {project!r} cannot name an OCI repository")
    return name


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (``name[:port]``) is on loopback, which is spoken to over plain http."""
    name = host
    if name.startswith("["):
        name = name[1 : name.index("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RegistryTarget:
    """A namespace in a registry, e.g. ``ghcr.io/acme`` or ``127.0.0.1:5000/team``."""

    host: str
    namespace: str

    @property
    def scheme(self) -> str:
        return "http" if is_loopback_host(self.host) else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def repository(self, project: str) -> str:
        name = repository_name(project)
        return f"{self.namespace}/{name}" if self.namespace else name

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}" if self.namespace else self.host


@dataclass(frozen=True)
class LayoutTarget:
    """A folder holding one OCI image layout per project: ``oci:PATH``."""

    path: Path

    def repository(self, project: str) -> str:
        return repository_name(project)

    def layout_path(self, project: str) -> Path:
        return self.path / repository_name(project)

    def __str__(self) -> str:
        return f"oci:{self.path}"


Target = RegistryTarget | LayoutTarget


def parse_target(text: str, *, base: Path | None = None) -> Target:
    """Parse ``oci:PATH`` or ``REGISTRY[/NAMESPACE]`` (a scheme prefix is tolerated)."""
    text = text.strip()
    if not text:
        raise InvalidReferenceError("the repository is empty; give oci:PATH or REGISTRY/NAMESPACE")
    if text.startswith("oci:"):
        raw_path = text[4:]
        if not raw_path:
            raise InvalidReferenceError("oci: needs a folder, e.g. oci:./packages")
        path = Path(os.path.expanduser(raw_path))
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        return LayoutTarget(Path(os.path.normpath(path)))
    for prefix in ("docker://", "oci://", "https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if "@" in text:
        # Never echoed: what precedes the '@' may be a password.
        raise InvalidReferenceError(
            "a target cannot hold credentials (user@host); use --username/--password, "
            "the SETUPTOOLS_GHCR_* variables or a docker login"
        )
    host, _, namespace = text.partition("/")
    namespace = namespace.strip("/")
    if not _HOST_RE.fullmatch(host):
        raise InvalidReferenceError(
            f"{text!r} is not a target; give oci:PATH or REGISTRY/NAMESPACE (e.g. ghcr.io/acme)"
        )
    if namespace and not is_valid_repository(namespace):
        raise InvalidReferenceError(
            f"namespace {namespace!r} is not a valid OCI repository path "
            "(lowercase letters, digits, '.', '_', '-', separated by '/')"
        )
    return RegistryTarget(host.lower(), namespace)
