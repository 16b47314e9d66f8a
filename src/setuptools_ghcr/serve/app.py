"""The WSGI application of a PEP 503 / 691 simple index over a target.

Routes (relative to the application's root):

- ``/simple/``: the projects the target can list (a layout's folders, a registry's catalog
  when it has one; ghcr.io has none, so its list is empty: pip and uv never need it).
- ``/simple/<project>/``: one project's files, in JSON or HTML as the ``Accept`` header asks.
- ``/files/<project>/<tag>/<filename>``: a file, streamed from the store and verified on the
  way (the last chunk is held back until the whole blob hashes right, so a client never
  receives a complete wrong file); ``<filename>.metadata`` is its core metadata (PEP 658).
- ``POST /`` and ``POST /legacy/``: the PyPI upload API (see ``serve.upload``).

What a project holds is read by :class:`~setuptools_ghcr.serve.projects.ProjectReader`, which
keeps each project for ``cache_ttl`` seconds; ``serve.server`` runs the application.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote
from wsgiref.util import application_uri

from packaging.utils import NormalizedName, canonicalize_name

from setuptools_ghcr.core.dists import MAX_METADATA_SIZE
from setuptools_ghcr.core.oci import Descriptor
from setuptools_ghcr.core.targets import LayoutTarget, Target
from setuptools_ghcr.core.wire_format import LAYER_MEDIA_TYPE, FileEntry
from setuptools_ghcr.errors import (
    DigestMismatchError,
    GhcrError,
    NotFoundError,
)
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
    TTLCache,
)
from setuptools_ghcr.serve.upload import UPLOAD_PATHS, Uploads
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import read_file_manifest

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from setuptools_ghcr.storage.factory import StoreFactory

__all__ = [
    "IndexApp",
    "layout_projects",
    "make_app",
]

logger = logging.getLogger(__name__)

ProjectLister = Callable[[], Sequence[str]]
#: What a route answers: status, headers, body.
Response = tuple[str, list[tuple[str, str]], Iterable[bytes]]


class _HTTPError(Exception):
    """Ends a request with ``status`` and a one-line text body."""

    def __init__(self, status: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


def _request_path(environ: WSGIEnvironment) -> str:
    # PEP 3333 hands the path over as latin-1 decoded bytes.
    raw = str(environ.get("PATH_INFO", "") or "")
    return raw.encode("latin-1").decode("utf-8", "replace")


def _query(environ: WSGIEnvironment) -> dict[str, list[str]]:
    return parse_qs(str(environ.get("QUERY_STRING", "") or ""))


class IndexApp:
    """The WSGI application of a simple index over the stores ``stores`` opens.

    ``list_projects`` feeds ``/simple/``; it may raise, and the list is then empty.
    ``uploads`` takes the uploads ``POST``ed for ``target`` (none are taken without both).
    """

    def __init__(
        self,
        stores: StoreOpener,
        *,
        list_projects: ProjectLister | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
        uploads: Uploads | None = None,
        target: Target | None = None,
    ) -> None:
        self._projects = ProjectReader(stores, cache_ttl=cache_ttl, workers=workers, clock=clock)
        self._list_projects = list_projects
        self._uploads = uploads
        self._target = target
        self._names: TTLCache[tuple[str, ...]] = TTLCache(cache_ttl, clock, 1)

    def close(self) -> None:
        """Stop the fetch threads (after the server stopped taking requests)."""
        self._projects.close()

    # -- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            if method == "POST" and self._uploads is not None and self._target is not None:
                status, headers, body = self._post(environ, self._uploads, self._target)
            elif method not in ("GET", "HEAD"):
                raise _HTTPError(
                    "405 Method Not Allowed", "only GET and HEAD", [("Allow", "GET, HEAD")]
                )
            else:
                status, headers, body = self._route(environ)
        except _HTTPError as error:
            status, headers = error.status, list(error.headers)
            body = _text(error.message, headers)
        except NotFoundError as error:
            status, headers = "404 Not Found", []
            body = _text(str(error), headers)
        except GhcrError as error:
            logger.warning("%s", error)
            status, headers = "502 Bad Gateway", []
            body = _text(str(error), headers)
        except OSError as error:
            logger.warning("%s", error)
            status, headers = "500 Internal Server Error", []
            body = _text(f"the target could not be read: {error.strerror or error}", headers)
        start_response(status, headers)
        if method == "HEAD":
            _close(body)
            return []
        return body

    def _route(self, environ: WSGIEnvironment) -> Response:
        path = _request_path(environ)
        parts = path.split("/")
        # parts[0] is "" for a path starting with "/".
        if path in ("", "/", "/simple"):
            return _redirect(environ, "simple/")
        if path == "/simple/":
            return self._project_list(environ)
        if len(parts) in (3, 4) and parts[1] == "simple" and parts[2]:
            name = canonicalize_name(parts[2])
            if len(parts) == 3 or parts[2] != name or parts[3]:
                return _redirect(environ, f"simple/{quote(name, safe='')}/")
            return self._project(environ, name)
        if len(parts) == 5 and parts[1] == "files" and all(parts[2:]):
            head = str(environ.get("REQUEST_METHOD", "GET")).upper() == "HEAD"
            return self._file(parts[2], parts[3], parts[4], head=head)
        raise _HTTPError("404 Not Found", "not found")

    def _post(self, environ: WSGIEnvironment, uploads: Uploads, target: Target) -> Response:
        path = _request_path(environ)
        if path.lstrip("/") not in UPLOAD_PATHS:
            raise _HTTPError(
                "405 Method Not Allowed",
                "uploads go to / or /legacy/; this path takes GET and HEAD",
                [("Allow", "GET, HEAD")],
            )
        return uploads.handle(environ, target)

    # -- pages ---------------------------------------------------------------------------------

    def _content_type(self, environ: WSGIEnvironment) -> str:
        requested = _query(environ).get("format", [None])[-1]
        if requested is not None:
            # Typed by hand, "+json" arrives as " json" (a "+" in a query is a space).
            requested = requested.replace(" ", "+")
        chosen = negotiate(environ.get("HTTP_ACCEPT"), requested)
        if chosen is None:
            raise _HTTPError(
                "406 Not Acceptable",
                f"this index serves {SIMPLE_JSON}, {SIMPLE_HTML} and {TEXT_HTML}",
            )
        return chosen

    def _project_list(self, environ: WSGIEnvironment) -> Response:
        content_type = self._content_type(environ)
        names: Sequence[str] = ()
        note = None
        if self._list_projects is None:
            note = "this target cannot list its projects; ask for /simple/<project>/"
        else:
            lister = self._list_projects
            try:
                names = self._names.get("", lambda: tuple(lister())) or ()
            except (GhcrError, OSError) as error:
                logger.info("cannot list the target's projects: %s", error)
                note = "this target cannot list its projects; ask for /simple/<project>/"
        body = render_project_list(names, content_type, note=note)
        return "200 OK", _page_headers(content_type, body), [body]

    def _project(self, environ: WSGIEnvironment, name: NormalizedName) -> Response:
        content_type = self._content_type(environ)
        project = self._projects.project(name)
        if project is None:
            raise _HTTPError("404 Not Found", f"no project {name} in this index")
        body = project.body(content_type)
        return "200 OK", _page_headers(content_type, body), [body]

    # -- files ---------------------------------------------------------------------------------

    def _find_file(self, project: str, tag: str, filename: str) -> tuple[Store, FileEntry]:
        found = self._projects.find_file(project, tag, filename)
        if found is None:
            raise _HTTPError("404 Not Found", f"no file {filename} in this index")
        return found

    def _file(self, project: str, tag: str, filename: str, *, head: bool = False) -> Response:
        if filename.endswith(".metadata"):
            return self._metadata(project, tag, filename.removesuffix(".metadata"))
        store, entry = self._find_file(project, tag, filename)
        if entry.sha256 is None or entry.size is None:  # the reader filled both
            raise _HTTPError("404 Not Found", f"no file {filename} in this index")
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
        return "200 OK", headers, _stream(first, chunks, f"{store.location} {filename}")

    def _metadata(self, project: str, tag: str, filename: str) -> Response:
        store, entry = self._find_file(project, tag, filename)
        if entry.metadata is None:
            raise _HTTPError("404 Not Found", f"{filename} has no metadata file in this index")
        config = read_file_manifest(store, entry).config
        # The page advertised the index's digest: serve only bytes that hash to it.
        if config.digest != entry.metadata.digest:
            raise DigestMismatchError(
                f"{entry.filename}: the manifest's metadata disagrees with the index's digest"
            )
        data = store.read_blob(config, limit=MAX_METADATA_SIZE)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(data))),
        ]
        return "200 OK", headers, [data]


def _stream(first: bytes, chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """Yield a verified blob; on failure stop short of its ``Content-Length``, so the client
    sees an incomplete download, never a complete wrong file."""
    try:
        if first:
            yield first
        yield from chunks
    except (GhcrError, OSError) as error:
        logger.warning("%s: %s; the download was cut short", what, error)
    finally:
        _close(chunks)


def _close(body: object) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()


def _text(message: str, headers: list[tuple[str, str]]) -> list[bytes]:
    body = (message + "\n").encode("utf-8")
    headers.append(("Content-Type", "text/plain; charset=utf-8"))
    headers.append(("Content-Length", str(len(body))))
    return [body]


def _page_headers(content_type: str, body: bytes) -> list[tuple[str, str]]:
    header = f"{content_type}; charset=utf-8" if content_type == TEXT_HTML else content_type
    return [
        ("Content-Type", header),
        ("Content-Length", str(len(body))),
        ("Vary", "Accept"),
    ]


def _redirect(environ: WSGIEnvironment, location: str) -> Response:
    url = application_uri(environ) + location  # application_uri ends with "/"
    query = str(environ.get("QUERY_STRING", "") or "")
    if query:
        url += "?" + query
    headers = [("Location", url)]
    return "301 Moved Permanently", headers, _text(f"see {url}", headers)


# --- listing projects -----------------------------------------------------------------------


def layout_projects(root: Path) -> list[str]:
    """The projects of an ``oci:`` folder: its sub-folders that are image layouts."""
    if not root.is_dir():
        return []
    return sorted(
        canonicalize_name(child.name)
        for child in root.iterdir()
        if child.is_dir() and (child / "oci-layout").is_file()
    )


def make_app(
    factory: StoreFactory,
    *,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    workers: int = DEFAULT_WORKERS,
    uploads: Uploads | None = None,
) -> IndexApp:
    """The index of a target's projects; with ``uploads``, it takes uploads to it too."""
    target = factory.target
    lister: ProjectLister | None = None
    if isinstance(target, LayoutTarget):
        root = target.path

        def lister() -> Sequence[str]:
            return layout_projects(root)

    else:
        namespace = target.namespace

        def lister() -> Sequence[str]:
            names = factory.client().list_repositories(namespace)
            return sorted({canonicalize_name(name) for name in names})

    return IndexApp(
        factory,
        list_projects=lister,
        cache_ttl=cache_ttl,
        workers=workers,
        uploads=uploads,
        target=target,
    )
