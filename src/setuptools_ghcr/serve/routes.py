"""Where a request goes: the fixed target at the root, or a registry namespace named in the path.

Pure: paths in, routes out. The fixed target (``--repository``) answers under ``/``; each
registry host the operator listed (``--registry``) adds pass-through routes under
``/<HOST>/<NAMESPACE...>/``. Below either prefix, the same pages::

    simple/                         the projects the target can list
    simple/<project>/               a project page (PEP 503 / 691)
    files/<project>/<tag>/<file>    a file, and <file>.metadata (PEP 658)
    pypi/<project>/json             Warehouse's JSON API (and pypi/<project>/<version>/json)
    (POST) ./ and legacy/           the upload API, when a handler is plugged in

A namespace ends at the first of those reserved names (``simple``, ``files``, ``pypi``,
``legacy``), so a namespace with a path segment of that name cannot be served. A host that
is not listed is never a route, so nothing a caller writes in a path makes the service
contact a registry the operator did not name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from setuptools_ghcr.core.oci import is_valid_repository
from setuptools_ghcr.core.targets import RegistryTarget, Target, parse_target
from setuptools_ghcr.errors import InvalidReferenceError

__all__ = [
    "RESERVED",
    "Mount",
    "Route",
    "Router",
    "looks_like_host",
    "parse_registry_host",
]

#: Path segments that end a namespace: the pages below a mount.
RESERVED = frozenset({"simple", "files", "pypi", "legacy"})

_HOST_RE = re.compile(
    r"^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(?::[0-9]{1,5})?$"
)


def parse_registry_host(text: str, where: str = "--registry") -> str:
    """A registry host as listed by the operator: ``NAME`` or ``NAME:PORT``, lowercased."""
    host = text.strip().lower()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.rstrip("/")
    if not _HOST_RE.fullmatch(host) or "/" in host:
        raise InvalidReferenceError(
            f"{where}: {text.strip()[:80]!r} is not a registry host (NAME or NAME:PORT, "
            "e.g. ghcr.io or 127.0.0.1:5000)"
        )
    return host


def looks_like_host(segment: str) -> bool:
    """Whether a first path segment names a registry (``ghcr.io``, ``127.0.0.1:5000``)."""
    lowered = segment.lower()
    return ("." in lowered or ":" in lowered) and bool(_HOST_RE.fullmatch(lowered))


@dataclass(frozen=True)
class Mount:
    """A target and the URL prefix it is served under.

    ``prefix`` is ``""`` for the fixed target and ``/<host>/<namespace>`` for a pass-through
    route, which reads only with the caller's own credentials (``passthrough``).
    """

    prefix: str
    #: None only for a fixed target given as bare stores (tests, embedding).
    target: Target | None
    passthrough: bool

    @property
    def label(self) -> str:
        """The target's name, which pages read through this mount are kept under."""
        return "(fixed target)" if self.target is None else str(self.target)

    def path(self, *segments: str) -> str:
        """The absolute path of a page below this mount, each segment quoted."""
        return self.prefix + "/" + "/".join(quote(part, safe="") for part in segments)


@dataclass(frozen=True)
class Route:
    """A request's mount and the path segments below it (``["simple", "demo", ""]``)."""

    mount: Mount
    rest: tuple[str, ...]


class Router:
    """Maps request paths to mounts: the fixed target, and the listed registries' namespaces."""

    def __init__(
        self,
        fixed: Target | None,
        registries: Iterable[str] = (),
        *,
        has_fixed: bool = True,
        insecure: Iterable[str] = (),
    ) -> None:
        self.fixed = Mount("", fixed, passthrough=False) if has_fixed else None
        self.registries = frozenset(parse_registry_host(host) for host in registries)
        #: Listed registries spoken to over plain http although not on loopback.
        self.insecure = tuple(insecure)

    def route(self, path: str) -> Route | None:
        """The route of an (unquoted) request path; None when nothing here serves it."""
        segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
        first = segments[0].lower() if segments else ""
        if first in self.registries:
            return self._passthrough(first, segments[1:])
        if self.fixed is None:
            return None
        if looks_like_host(first):
            # Not a listed registry, and no project page is named like a host: refused
            # here rather than read as a path of the fixed target.
            return None
        return Route(self.fixed, tuple(segments))

    def unlisted_host(self, path: str) -> str | None:
        """The registry a path names when that registry is not served here, else None."""
        first = path.lstrip("/").split("/", 1)[0]
        if looks_like_host(first) and first.lower() not in self.registries:
            return first
        return None

    def _passthrough(self, host: str, segments: Sequence[str]) -> Route | None:
        cut = next((i for i, part in enumerate(segments) if part in RESERVED), None)
        names = segments if cut is None else segments[:cut]
        rest = () if cut is None else tuple(segments[cut:])
        if cut is None and names and names[-1] == "":
            # ``/<host>/<namespace>/``: the mount's root (where uploads are posted).
            names, rest = names[:-1], ("",)
        namespace = "/".join(names)
        if namespace and not is_valid_repository(namespace):
            return None
        try:
            target = parse_target(
                f"{host}/{namespace}" if namespace else host, insecure=self.insecure
            )
        except InvalidReferenceError:
            return None
        assert isinstance(target, RegistryTarget)  # a host/namespace is never a folder
        prefix = "/" + host + ("/" + namespace if namespace else "")
        return Route(Mount(prefix, target, passthrough=True), rest)
