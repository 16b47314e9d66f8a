"""The WSGI application of the index service: PEP 503 / 691 pages over OCI targets.

Mounts (see ``serve.routes``): the fixed target at ``/``, and ``/<HOST>/<NAMESPACE...>/``
for each registry the operator listed. Below each mount:

- ``simple/``: the projects the target can list (a layout's folders, a registry's catalog
  when the caller may read it; ghcr.io has none, so its list is empty: pip and uv never
  need it).
- ``simple/<project>/``: one project's files, in JSON or HTML as the ``Accept`` header asks;
  a project the target does not hold redirects to the fallback index, when there is one.
- ``files/<project>/<tag>/<filename>``: a file, streamed from the store with the caller's
  credentials and verified on the way (the last chunk is held back until the whole blob
  hashes right, so a client never receives a complete wrong file); ``<filename>.metadata``
  is its core metadata (PEP 658).
- ``pypi/<project>/json`` and ``pypi/<project>/<version>/json``: Warehouse's JSON API.
- ``POST`` to the mount's root or ``legacy/``: the upload handler, when one is plugged in.

``GET /health`` answers without reading any target. Requests with a ``Host`` the service
does not answer for get ``421`` (see ``serve.hosts``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, quote

from packaging.utils import NormalizedName, canonicalize_name

from setuptools_ghcr.core.oci import Descriptor
from setuptools_ghcr.core.wire_format import LAYER_MEDIA_TYPE, FileEntry
from setuptools_ghcr.errors import (
    AuthenticationError,
    GhcrError,
    NotFoundError,
)
from setuptools_ghcr.serve.callers import (
    Caller,
    ClientPool,
    caller_of,
    new_secret,
)
from setuptools_ghcr.serve.hosts import HostPolicy
from setuptools_ghcr.serve.http import (
    HTTPError,
    Response,
    close_body,
    found_elsewhere,
    health,
    page_headers,
    redirect,
    refused,
    request_path,
    stream_verified,
    text,
)
from setuptools_ghcr.serve.index_cache import IndexCache
from setuptools_ghcr.serve.json_api import json_api
from setuptools_ghcr.serve.pages import (
    SIMPLE_HTML,
    SIMPLE_JSON,
    TEXT_HTML,
    negotiate,
    render_project_list,
)
from setuptools_ghcr.serve.projects import (
    DEFAULT_CACHE_TTL,
    DEFAULT_WORKERS,
    ProjectReader,
    StoreOpener,
)
from setuptools_ghcr.serve.routes import Route, Router
from setuptools_ghcr.serve.views import (
    FixedTarget,
    ProjectLister,
    View,
    Views,
    client_maker,
    factory_lister,
    layout_projects,
)
from setuptools_ghcr.storage.store import Store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from setuptools_ghcr.core.targets import Target
    from setuptools_ghcr.serve.upload import Uploads
    from setuptools_ghcr.storage.factory import StoreFactory

__all__ = [
    "IndexApp",
    "PostHandler",
    "PostRequest",
    "layout_projects",
    "make_app",
]

logger = logging.getLogger(__name__)

#: Paths below a mount that take uploads.
_UPLOAD_PATHS = ((), ("",), ("legacy",), ("legacy", ""))


@dataclass(frozen=True)
class PostRequest:
    """A ``POST`` to a mount's upload paths, handed to the plugged-in handler.

    ``view.caller.credentials`` are the caller's own (None: anonymous), ``view.source.stores``
    opens the target's stores with them (or, on the fixed target of an anonymous caller,
    with the server's), and ``forget(project)`` drops the kept page of a changed project.
    """

    environ: WSGIEnvironment
    view: View
    rest: tuple[str, ...]
    forget: Callable[[str], None]


class PostHandler(Protocol):
    """Answers uploads (the PyPI upload API); may raise :class:`~.http.HTTPError`."""

    def __call__(self, request: PostRequest) -> Response: ...


def _query(environ: WSGIEnvironment) -> dict[str, list[str]]:
    return parse_qs(str(environ.get("QUERY_STRING", "") or ""))


class IndexApp:
    """The WSGI application of the index service.

    ``stores`` opens the fixed target's stores with the server's credentials (None: no
    fixed target, only pass-through routes); ``list_projects`` feeds its ``/simple/`` and
    may raise (the list is then empty). ``registries`` are the hosts of pass-through
    routes, read through ``pool``'s per-caller clients. ``post`` (or ``uploads``, the
    upload API) answers ``POST`` to each mount's upload paths.
    """

    def __init__(
        self,
        stores: StoreOpener | None = None,
        *,
        target: Target | None = None,
        list_projects: ProjectLister | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
        registries: Iterable[str] = (),
        pool: ClientPool | None = None,
        hosts: HostPolicy | None = None,
        fallback_index: str | None = None,
        disk: IndexCache | None = None,
        post: PostHandler | None = None,
        uploads: Uploads | None = None,
        insecure: Iterable[str] = (),
    ) -> None:
        fixed = None if stores is None else FixedTarget(target, stores, list_projects)
        self.router = Router(target, registries, has_fixed=fixed is not None, insecure=insecure)
        if self.router.registries and pool is None:
            raise ValueError("pass-through routes need a client pool")
        self._views = Views(fixed, pool)
        self._pool = pool
        self._projects = ProjectReader(cache_ttl=cache_ttl, workers=workers, clock=clock, disk=disk)
        self._ttl = cache_ttl
        self._clock = clock
        self._lists: dict[str, tuple[float, tuple[str, ...]]] = {}
        self.hosts = hosts if hosts is not None else HostPolicy()
        self._fallback = fallback_index.rstrip("/") + "/" if fallback_index else None
        # ``uploads`` is the upload API's handler: the one to plug in unless another is.
        self._post = post if post is not None or uploads is None else _upload_handler(uploads)
        self._secret = new_secret()

    def close(self) -> None:
        """Stop the fetch threads and close the callers' clients (after the server stopped)."""
        self._projects.close()
        if self._pool is not None:
            self._pool.close()

    # -- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            status, headers, body = self._answer(environ, method)
        except HTTPError as error:
            status, headers = error.status, list(error.headers)
            body = text(error.message, headers)
        except AuthenticationError as error:
            status, headers, body = refused(error, environ)
        except NotFoundError as error:
            status, headers = "404 Not Found", []
            body = text(str(error), headers)
        except GhcrError as error:
            logger.warning("%s", error)
            status, headers = "502 Bad Gateway", []
            body = text(str(error), headers)
        except OSError as error:
            logger.warning("%s", error)
            status, headers = "500 Internal Server Error", []
            body = text(f"the target could not be read: {error.strerror or error}", headers)
        # Answers are package files and pages, never something a browser should sniff.
        headers.append(("X-Content-Type-Options", "nosniff"))
        start_response(status, headers)
        if method == "HEAD":
            close_body(body)
            return []
        return body

    def _answer(self, environ: WSGIEnvironment, method: str) -> Response:
        path = request_path(environ)
        if path == "/health":
            return health(method)
        host = environ.get("HTTP_HOST")
        if not self.hosts.allows(None if host is None else str(host)):
            raise HTTPError(
                "421 Misdirected Request",
                f"this index does not answer for the host {str(host)[:100]!r}; its operator "
                "can allow it with --allowed-host or SETUPTOOLS_GHCR_ALLOWED_HOSTS",
            )
        route = self.router.route(path)
        if route is None:
            unlisted = self.router.unlisted_host(path)
            if unlisted is not None:
                raise HTTPError(
                    "404 Not Found", f"this index does not serve the registry {unlisted[:100]}"
                )
            raise HTTPError("404 Not Found", "not found")
        caller = caller_of(environ, self._secret)
        if method == "POST" and self._post is not None and route.rest in _UPLOAD_PATHS:
            view = self._views.view(route.mount, caller)
            return self._post(PostRequest(environ, view, route.rest, self._forgetter(view)))
        if method not in ("GET", "HEAD"):
            raise HTTPError("405 Method Not Allowed", "only GET and HEAD", [("Allow", "GET, HEAD")])
        return self._route(environ, route, caller, head=method == "HEAD")

    def _forgetter(self, view: View) -> Callable[[str], None]:
        def forget(project: str) -> None:
            self._projects.forget(view.source, canonicalize_name(project))

        return forget

    def _route(
        self, environ: WSGIEnvironment, route: Route, caller: Caller, *, head: bool
    ) -> Response:
        mount, rest = route.mount, route.rest
        if rest in ((), ("",), ("simple",)):
            return redirect(environ, mount.path("simple", ""))
        kind = rest[0]
        if kind == "simple" and rest == ("simple", ""):
            return self._project_list(environ, self._views.view(mount, caller))
        if kind == "simple" and len(rest) in (2, 3) and rest[1]:
            name = canonicalize_name(rest[1])
            if len(rest) == 2 or rest[1] != name or rest[2]:
                return redirect(environ, mount.path("simple", name, ""))
            return self._project(environ, self._views.view(mount, caller), name)
        if kind == "files" and len(rest) == 4 and all(rest[1:]):
            view = self._views.view(mount, caller)
            return self._file(view, rest[1], rest[2], rest[3], head=head)
        if kind == "pypi" and len(rest) in (3, 4) and rest[-1] == "json" and all(rest[1:]):
            version = rest[2] if len(rest) == 4 else None
            view = self._views.view(mount, caller)
            return json_api(environ, self._projects, view, rest[1], version)
        raise HTTPError("404 Not Found", "not found")

    # -- pages ---------------------------------------------------------------------------------

    def _content_type(self, environ: WSGIEnvironment) -> str:
        requested = _query(environ).get("format", [None])[-1]
        if requested is not None:
            # Typed by hand, "+json" arrives as " json" (a "+" in a query is a space).
            requested = requested.replace(" ", "+")
        chosen = negotiate(environ.get("HTTP_ACCEPT"), requested)
        if chosen is None:
            raise HTTPError(
                "406 Not Acceptable",
                f"this index serves {SIMPLE_JSON}, {SIMPLE_HTML} and {TEXT_HTML}",
            )
        return chosen

    def _project_list(self, environ: WSGIEnvironment, view: View) -> Response:
        content_type = self._content_type(environ)
        names: Sequence[str] = ()
        note = "this target cannot list its projects; ask for simple/<project>/"
        if view.list_projects is not None:
            try:
                names = self._listed(view.list_key, view.list_projects)
                note = ""
            except AuthenticationError:
                if view.caller.anonymous:
                    raise
                logger.info("the caller may not list the projects of %s", view.source.target)
            except (GhcrError, OSError) as error:
                logger.info("cannot list the projects of %s: %s", view.source.target, error)
        body = render_project_list(names, content_type, note=note or None)
        return "200 OK", page_headers(content_type, body), [body]

    def _listed(self, key: str, lister: ProjectLister) -> tuple[str, ...]:
        found = self._lists.get(key)
        now = self._clock()
        if found is not None and now - found[0] < self._ttl:
            return found[1]
        names = tuple(lister())
        if self._ttl > 0:
            if len(self._lists) >= 1024:
                self._lists.clear()
            self._lists[key] = (now, names)
        return names

    def _project(self, environ: WSGIEnvironment, view: View, name: NormalizedName) -> Response:
        content_type = self._content_type(environ)
        project = self._projects.project(view.source, name)
        if project is None:
            if self._fallback is not None:
                # The caller's own request found no such repository: the name is not the
                # target's, so another index may serve it (see docs/serving.md).
                return found_elsewhere(self._fallback + quote(name, safe="") + "/")
            raise HTTPError("404 Not Found", f"no project {name} in this index")
        body = project.body(content_type)
        return "200 OK", page_headers(content_type, body), [body]

    # -- files ---------------------------------------------------------------------------------

    def _find_file(
        self, view: View, project: str, tag: str, filename: str
    ) -> tuple[Store, FileEntry]:
        found = self._projects.find_file(view.source, project, tag, filename)
        if found is None:
            raise HTTPError("404 Not Found", f"no file {filename} in this index")
        return found

    def _file(
        self, view: View, project: str, tag: str, filename: str, *, head: bool = False
    ) -> Response:
        if filename.endswith(".metadata"):
            return self._metadata(view, project, tag, filename.removesuffix(".metadata"))
        store, entry = self._find_file(view, project, tag, filename)
        if entry.sha256 is None or entry.size is None:  # the reader filled both
            raise HTTPError("404 Not Found", f"no file {filename} in this index")
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(entry.size)),
            ("ETag", f'"{entry.sha256.hex}"'),
        ]
        if head:
            return "200 OK", headers, []
        chunks = store.iter_blob(Descriptor(LAYER_MEDIA_TYPE, entry.sha256, entry.size))
        # Pull the first chunk before answering, so that a missing blob or a refusal becomes
        # an error status rather than a cut-short 200.
        first = next(chunks, b"")
        return "200 OK", headers, stream_verified(first, chunks, f"{store.location} {filename}")

    def _metadata(self, view: View, project: str, tag: str, filename: str) -> Response:
        _, entry = self._find_file(view, project, tag, filename)
        if entry.metadata is None:
            raise HTTPError("404 Not Found", f"{filename} has no metadata file in this index")
        # Only bytes that hash to the digest the page advertised (checked on the way).
        data = self._projects.metadata(view.source, project, entry)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(data))),
        ]
        return "200 OK", headers, [data]


def make_app(
    factory: StoreFactory | None,
    *,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    workers: int = DEFAULT_WORKERS,
    registries: Iterable[str] = (),
    hosts: HostPolicy | None = None,
    fallback_index: str | None = None,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    uploads: Uploads | None = None,
    insecure: Iterable[str] = (),
) -> IndexApp:
    """The index service: ``factory``'s target at ``/`` (None: none), and pass-through
    routes to ``registries``, read with each caller's own credentials (over plain http for
    loopback registries and those in ``insecure``); with ``uploads``, each mount takes
    uploads too (as the caller)."""
    lister: ProjectLister | None = None
    target: Target | None = None
    if factory is not None:
        target = factory.target
        lister = factory_lister(factory)
    registries = tuple(registries)
    insecure = tuple(host.lower() for host in insecure)
    maker = client_maker(environ or {}, frozenset(insecure))
    pool = ClientPool(maker) if registries or factory else None
    return IndexApp(
        factory,
        target=target,
        list_projects=lister,
        cache_ttl=cache_ttl,
        workers=workers,
        registries=registries,
        pool=pool,
        hosts=hosts,
        fallback_index=fallback_index,
        disk=IndexCache(cache_dir) if cache_dir is not None else None,
        uploads=uploads,
        insecure=insecure,
    )


def _upload_handler(uploads: Uploads) -> PostHandler:
    """Uploads to the target of the mount they were posted to."""

    def handle(request: PostRequest) -> Response:
        target = request.view.mount.target
        if target is None:
            raise HTTPError("405 Method Not Allowed", "this index takes no uploads")
        return uploads.handle(request.environ, target, request.forget)

    return handle
