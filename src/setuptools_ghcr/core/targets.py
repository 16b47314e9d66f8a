"""Targets: where packages live (a registry namespace or a folder of OCI layouts)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from setuptools_ghcr.core.oci import is_valid_repository
from setuptools_ghcr.errors import InvalidReferenceError

__all__ = [
    "LayoutTarget",
    "RegistryTarget",
    "Target",
    "host_listed",
    "is_loopback_host",
    "nested_project_warning",
    "parse_host",
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


def _host_name(host: str) -> str:
    """``host`` without its port (``[::1]:5000`` -> ``[::1]``)."""
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]


def host_listed(host: str, listed: Iterable[str]) -> bool:
    """Whether ``host`` (``name[:port]``) is one of ``listed``.

    An entry with a port names that port only; an entry without one names every port.
    """
    host = host.lower()
    name = _host_name(host)
    return any(entry.lower() in (host, name) for entry in listed if entry)


def parse_host(text: str, what: str) -> str:
    """A registry host (``name[:port]``) given on its own, lowercased; ``what`` names it."""
    host = text.strip()
    if not _HOST_RE.fullmatch(host):
        raise InvalidReferenceError(
            f"{what}: {host[:80]!r} is not a registry host (NAME or NAME:PORT, e.g. "
            "registry.internal:5000)"
        )
    return host.lower()


@dataclass(frozen=True)
class RegistryTarget:
    """A namespace in a registry, e.g. ``ghcr.io/acme`` or ``127.0.0.1:5000/team``.

    Registries on loopback, and those the user named as insecure (``--insecure-registry``),
    are spoken to over plain http; all others over https.
    """

    host: str
    namespace: str
    insecure: bool = False

    @property
    def scheme(self) -> str:
        return "http" if self.insecure or is_loopback_host(self.host) else "https"

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


def nested_project_warning(target: Target, project: str) -> str | None:
    """A warning when ``target`` already ends in ``project``'s repository name.

    ``ghcr.io/acme/mypkg`` as the target of project mypkg is an image name given where a
    namespace belongs: the project would live at ``ghcr.io/acme/mypkg/mypkg``.
    """
    name = repository_name(project)
    if isinstance(target, RegistryTarget):
        last = target.namespace.rsplit("/", 1)[-1]
        parent = f"{target.host}/{target.namespace.rpartition('/')[0]}".rstrip("/")
    else:
        last = target.path.name
        parent = f"oci:{target.path.parent}"
    if last != name:
        return None
    return (
        f"the target {target} ends in the project's own name, so {project} goes to "
        f"{target}/{name}; give {parent} as the target unless that is meant"
    )


def parse_target(text: str, *, base: Path | None = None, insecure: Iterable[str] = ()) -> Target:
    """Parse ``oci:PATH`` or ``REGISTRY[/NAMESPACE]``.

    A ``docker://`` or ``https://`` prefix is tolerated; ``http://`` only for a registry
    spoken to over plain http anyway: one on loopback, or one of the ``insecure`` hosts
    (``name`` or ``name:port``), which are then spoken to over plain http.
    """
    text = text.strip()
    if not text:
        raise InvalidReferenceError("the repository is empty; give oci:PATH or REGISTRY/NAMESPACE")
    if text.startswith("oci://"):
        # Read as a path, oci://x is the folder /x at the root of the file system; other
        # tools spell registries that way. Neither is what a user of this tool means.
        rest = text[len("oci://") :]
        raise InvalidReferenceError(
            f"{text[:80]!r} is not a target: write oci:{rest[:60]} for a folder (oci:/PATH for "
            "an absolute one), or REGISTRY/NAMESPACE without a scheme for a registry"
        )
    if text.startswith("oci:"):
        return LayoutTarget(_layout_path(text[4:], base))
    scheme = None
    for prefix in ("docker://", "https://", "http://"):
        if text.startswith(prefix):
            scheme, text = prefix[:-3], text[len(prefix) :]
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
    host = host.lower()
    listed = host_listed(host, insecure)
    _check_host(text, host, listed)
    if namespace and not is_valid_repository(namespace):
        raise InvalidReferenceError(
            f"namespace {namespace!r} is not a valid OCI repository path "
            "(lowercase letters, digits, '.', '_', '-', separated by '/')"
        )
    target = RegistryTarget(host, namespace, insecure=listed and not is_loopback_host(host))
    if scheme is not None and scheme not in ("docker", target.scheme):
        raise InvalidReferenceError(_scheme_refusal(scheme, target))
    return target


def _layout_path(raw_path: str, base: Path | None) -> Path:
    if not raw_path:
        raise InvalidReferenceError("oci: needs a folder, e.g. oci:./packages")
    path = Path(os.path.expanduser(raw_path))
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return Path(os.path.normpath(path))


def _check_host(text: str, host: str, listed: bool) -> None:
    """Refuse a first component that cannot be a registry: ``oci/packages``, ``acme/tools``.

    As for docker, a registry host has a dot or a port, or is ``localhost`` (or an address);
    hosts named with ``--insecure-registry`` are taken as given.
    """
    name = _host_name(host)
    if listed or "." in name or ":" in host or name == "localhost" or name.startswith("["):
        return
    if name == "oci":
        hint = f"for a folder write oci:{text.partition('/')[2]}"
    else:
        hint = f"for a folder write oci:{text}, for a registry REGISTRY/NAMESPACE (ghcr.io/acme)"
    raise InvalidReferenceError(
        f"{text!r} names no registry ({name!r} has no dot and no port, and is not localhost); "
        + hint
    )


def _scheme_refusal(scheme: str, target: RegistryTarget) -> str:
    host = target.host
    if scheme == "https":
        why = "named as an insecure registry" if target.insecure else "on loopback"
        return f"{host} is {why}, which is spoken to over plain http: drop 'https://'"
    return (
        f"plain http to {host} is refused: registries other than loopback ones are spoken "
        f"to over https. For a registry without TLS on a private network, name it with "
        f"--insecure-registry {host} (or SETUPTOOLS_GHCR_INSECURE_REGISTRIES), or drop "
        "'http://' to use https"
    )
