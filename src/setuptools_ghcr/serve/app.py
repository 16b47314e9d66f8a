"""A PEP 503 / 691 simple index over a target, as a WSGI application and a small server.

Routes (relative to the application's root):

- ``/simple/``: the projects the target can list (a layout's folders, a registry's catalog
  when it has one; ghcr.io has none, so its list is empty: pip and uv never need it).
- ``/simple/<project>/``: one project's files, in JSON or HTML as the ``Accept`` header asks.
- ``/files/<project>/<tag>/<filename>``: a file, streamed from the store and verified on the
  way (the last chunk is held back until the whole blob hashes right, so a client never
  receives a complete wrong file); ``<filename>.metadata`` is its core metadata (PEP 658).

A project page costs one tag listing and one index fetch per version, fetched concurrently
and kept for ``cache_ttl`` seconds on the application instance.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qs, quote, urljoin
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.util import application_uri

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from setuptools_ghcr.core.dists import MAX_METADATA_SIZE
from setuptools_ghcr.core.oci import Descriptor, Manifest
from setuptools_ghcr.core.targets import LayoutTarget, repository_name
from setuptools_ghcr.core.wire_format import (
    LAYER_MEDIA_TYPE,
    FileEntry,
    layer_of,
    tag_to_version,
    version_to_tag,
)
from setuptools_ghcr.errors import (
    DigestMismatchError,
    GhcrError,
    InvalidDistributionError,
    InvalidReferenceError,
    MalformedDocumentError,
    NotFoundError,
    TooLargeError,
)
from setuptools_ghcr.serve.pages import (
    SIMPLE_HTML,
    SIMPLE_JSON,
    TEXT_HTML,
    ProjectPage,
    negotiate,
    project_page,
    render_project,
    render_project_list,
)
from setuptools_ghcr.storage.store import Store
from setuptools_ghcr.usecases.versions import list_versions, read_version

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from setuptools_ghcr.storage.factory import StoreFactory
    from setuptools_ghcr.storage.registry.client import RegistryClient

__all__ = [
    "DEFAULT_CACHE_TTL",
    "IndexApp",
    "IndexServer",
    "StoreOpener",
    "layout_projects",
    "make_app",
    "make_server",
    "registry_projects",
]

logger = logging.getLogger(__name__)

#: Seconds a project page is reused: long enough for one pip run, short enough that a
#: version published a moment ago shows up without restarting the server.
DEFAULT_CACHE_TTL = 30.0
#: Index fetches in flight at once for one cold page.
DEFAULT_WORKERS = 8
#: Project pages kept at most; the oldest goes first.
MAX_CACHED_PROJECTS = 512

# Problems with what one version or file holds: that version or file is left out of the page,
# while transport and registry errors fail the whole page (a partial page must not be cached).
_CONTENT_ERRORS = (
    InvalidReferenceError,
    MalformedDocumentError,
    InvalidDistributionError,
    DigestMismatchError,
    TooLargeError,
)

T = TypeVar("T")


class StoreOpener(Protocol):
    """Opens the store of a project (a :class:`~setuptools_ghcr.storage.factory.StoreFactory`)."""

    def open(self, project: str) -> Store: ...


ProjectLister = Callable[[], Sequence[str]]


class _HTTPError(Exception):
    """Ends a request with ``status`` and a one-line text body."""

    def __init__(self, status: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


@dataclass(frozen=True)
class _Project:
    page: ProjectPage
    #: Files by (tag, filename).
    files: Mapping[tuple[str, str], FileEntry]
    #: The page rendered, by content type: rendering hundreds of files costs more than
    #: serving them, and a page is asked for again and again while it is cached.
    bodies: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def body(self, content_type: str) -> bytes:
        found = self.bodies.get(content_type)
        if found is None:
            # Two threads may render the same page at once; both get the same bytes.
            found = self.bodies[content_type] = render_project(self.page, content_type)
        return found


class _TTLCache(Generic[T]):
    """Values kept for ``ttl`` seconds; one load at a time per key (others wait and reuse it)."""

    def __init__(self, ttl: float, clock: Callable[[], float], max_entries: int) -> None:
        self._ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, T]] = {}
        self._loading: dict[str, threading.Lock] = {}

    def peek(self, key: str) -> T | None:
        with self._lock:
            found = self._values.get(key)
            if found is None:
                return None
            expires, value = found
            if expires <= self._clock():
                del self._values[key]
                return None
            return value

    def get(self, key: str, load: Callable[[], T | None]) -> T | None:
        """The cached value, else ``load()``'s (cached unless None)."""
        if self._ttl <= 0:
            return load()
        value = self.peek(key)
        if value is not None:
            return value
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            value = self.peek(key)
            if value is not None:
                return value
            try:
                value = load()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            if value is not None:
                self._put(key, value)
            return value

    def _put(self, key: str, value: T) -> None:
        with self._lock:
            now = self._clock()
            for old in [k for k, (expires, _) in self._values.items() if expires <= now]:
                del self._values[old]
            while len(self._values) >= self._max_entries:
                del self._values[next(iter(self._values))]
            self._values[key] = (now + self._ttl, value)


def _complete(store: Store, entry: FileEntry) -> FileEntry:
    """``entry`` with its sha256 and size, from its manifest when the index lacks them (PyOCI)."""
    if entry.sha256 is not None and entry.size is not None:
        return entry
    layer = layer_of(_file_manifest(store, entry), entry)
    return replace(entry, sha256=layer.digest, size=layer.size)


def _file_manifest(store: Store, entry: FileEntry) -> Manifest:
    found = store.get_manifest(str(entry.manifest.digest))
    if found is None:
        raise NotFoundError(f"{entry.filename}: its manifest is missing from {store.location}")
    return Manifest.from_bytes(found.raw, f"manifest of {entry.filename}")


def _load_version(store: Store, project: str, version: Version) -> list[FileEntry] | None:
    try:
        found = read_version(store, project, version)
    except _CONTENT_ERRORS as error:
        logger.warning("leaving %s %s out of its page: %s", project, version, error)
        return None
    if found is None:
        return None  # untagged between the listing and now
    entries = []
    for entry in found.files:
        try:
            entries.append(_complete(store, entry))
        except (*_CONTENT_ERRORS, NotFoundError) as error:
            logger.warning("leaving %s out of its page: %s", entry.filename, error)
    return entries


def _request_path(environ: WSGIEnvironment) -> str:
    # PEP 3333 hands the path over as latin-1 decoded bytes.
    raw = str(environ.get("PATH_INFO", "") or "")
    return raw.encode("latin-1").decode("utf-8", "replace")


def _query(environ: WSGIEnvironment) -> dict[str, list[str]]:
    return parse_qs(str(environ.get("QUERY_STRING", "") or ""))


class IndexApp:
    """The WSGI application of a simple index over the stores ``stores`` opens.

    ``list_projects`` feeds ``/simple/``; it may raise, and the list is then empty.
    """

    def __init__(
        self,
        stores: StoreOpener,
        *,
        list_projects: ProjectLister | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        workers: int = DEFAULT_WORKERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stores = stores
        self._list_projects = list_projects
        self._pages: _TTLCache[_Project] = _TTLCache(cache_ttl, clock, MAX_CACHED_PROJECTS)
        self._names: _TTLCache[tuple[str, ...]] = _TTLCache(cache_ttl, clock, 1)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="index-fetch")

    def close(self) -> None:
        """Stop the fetch threads (after the server stopped taking requests)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- WSGI ----------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            if method not in ("GET", "HEAD"):
                raise _HTTPError(
                    "405 Method Not Allowed", "only GET and HEAD", [("Allow", "GET, HEAD")]
                )
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

    def _route(
        self, environ: WSGIEnvironment
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
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

    def _project_list(
        self, environ: WSGIEnvironment
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
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

    def _project(
        self, environ: WSGIEnvironment, name: NormalizedName
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        content_type = self._content_type(environ)
        project = self._pages.get(name, lambda: self._load_project(name))
        if project is None:
            raise _HTTPError("404 Not Found", f"no project {name} in this index")
        body = project.body(content_type)
        return "200 OK", _page_headers(content_type, body), [body]

    def _open(self, name: str) -> Store | None:
        try:
            repository_name(name)
        except InvalidReferenceError:
            return None  # no OCI repository can hold it, so no store has it
        return self._stores.open(name)

    def _load_project(self, name: NormalizedName) -> _Project | None:
        started = time.monotonic()
        store = self._open(name)
        if store is None:
            return None
        versions = list_versions(store)
        if not versions:
            return None
        futures = [(v, self._pool.submit(_load_version, store, name, v)) for v in versions]
        loaded = {version: future.result() for version, future in futures}
        found = {version: files for version, files in loaded.items() if files is not None}
        if not found:
            return None
        files = {
            (version_to_tag(version), entry.filename): entry
            for version, entries in found.items()
            for entry in entries
        }
        logger.debug(
            "read %s: %d versions, %d files in %.2f s",
            store.location,
            len(found),
            len(files),
            time.monotonic() - started,
        )
        return _Project(project_page(name, found), files)

    # -- files ---------------------------------------------------------------------------------

    def _find_file(self, project: str, tag: str, filename: str) -> tuple[Store, FileEntry]:
        name = canonicalize_name(project)
        version = tag_to_version(tag)
        store = self._open(name) if version is not None else None
        if version is None or store is None:
            raise _HTTPError("404 Not Found", f"no file {filename} in this index")
        cached = self._pages.peek(name)
        entry = cached.files.get((tag, filename)) if cached is not None else None
        if entry is None:
            # A download needs one version only: do not load the whole page for it.
            files = _load_version(store, name, version) or []
            entry = next((item for item in files if item.filename == filename), None)
        if entry is None:
            raise _HTTPError("404 Not Found", f"no file {filename} in this index")
        return store, entry

    def _file(
        self, project: str, tag: str, filename: str, *, head: bool = False
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        if filename.endswith(".metadata"):
            return self._metadata(project, tag, filename.removesuffix(".metadata"))
        store, entry = self._find_file(project, tag, filename)
        if entry.sha256 is None or entry.size is None:  # _complete filled both
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

    def _metadata(
        self, project: str, tag: str, filename: str
    ) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
        store, entry = self._find_file(project, tag, filename)
        if entry.metadata is None:
            raise _HTTPError("404 Not Found", f"{filename} has no metadata file in this index")
        config = _file_manifest(store, entry).config
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


def _redirect(
    environ: WSGIEnvironment, location: str
) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
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


#: The catalog is read this many repositories a page, for at most this many pages.
CATALOG_PAGE = 1000
MAX_CATALOG_PAGES = 50
MAX_CATALOG_BODY = 8 << 20


def registry_projects(client: RegistryClient, namespace: str) -> list[str]:
    """The projects of a registry namespace, from ``/v2/_catalog``.

    distribution answers it (to anyone allowed ``registry:catalog:*``); ghcr.io and most
    hosted registries do not, and the error tells the caller to do without a list.
    """
    prefix = f"{namespace}/" if namespace else ""
    url = client.url(f"/v2/_catalog?n={CATALOG_PAGE}")
    names: list[str] = []
    seen: set[str] = set()
    while url and url not in seen and len(seen) < MAX_CATALOG_PAGES:
        seen.add(url)
        response = client.request(
            "GET", url, operation="listing the catalog", scopes=("registry:catalog:*",)
        )
        try:
            body = response.raw.read(MAX_CATALOG_BODY + 1, decode_content=True)
            next_link = response.links.get("next", {}).get("url")
        finally:
            response.close()
        if len(body) > MAX_CATALOG_BODY:
            raise TooLargeError(f"the catalog of {client.host} is too large to list")
        try:
            value = json.loads(body) if body else {}
        except ValueError:
            raise MalformedDocumentError(f"the catalog of {client.host} is not JSON") from None
        repositories = value.get("repositories") if isinstance(value, dict) else None
        if not isinstance(repositories, list):
            raise MalformedDocumentError(f"the catalog of {client.host} is malformed")
        for repository in repositories:
            if isinstance(repository, str) and repository.startswith(prefix):
                rest = repository[len(prefix) :]
                if rest and "/" not in rest:
                    names.append(rest)
        url = ""
        if next_link:
            candidate = urljoin(response.url, next_link)
            url = candidate if client.same_origin(candidate) else ""
    return sorted({canonicalize_name(name) for name in names})


def make_app(
    factory: StoreFactory,
    *,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    workers: int = DEFAULT_WORKERS,
) -> IndexApp:
    """The index of a target's projects."""
    target = factory.target
    lister: ProjectLister | None = None
    if isinstance(target, LayoutTarget):
        root = target.path

        def lister() -> Sequence[str]:
            return layout_projects(root)

    else:
        namespace = target.namespace

        def lister() -> Sequence[str]:
            return registry_projects(factory.client(), namespace)

    return IndexApp(factory, list_projects=lister, cache_ttl=cache_ttl, workers=workers)


# --- the server -----------------------------------------------------------------------------


class _RequestHandler(WSGIRequestHandler):
    """Access lines go to logging, not straight to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


class IndexServer(socketserver.ThreadingMixIn, WSGIServer):
    """A threaded WSGI server (a thread per connection, none kept alive at exit)."""

    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        # HTTPServer asks for the host's FQDN, a reverse DNS lookup that can stall for
        # seconds where there is no resolver; the numeric address serves as well.
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    @property
    def url(self) -> str:
        """The index URL, e.g. ``http://127.0.0.1:8000/simple/``."""
        host, port = self.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/simple/"


class _IndexServer6(IndexServer):
    address_family = socket.AF_INET6


def make_server(app: IndexApp, host: str = "127.0.0.1", port: int = 8000) -> IndexServer:
    """A server bound to ``host:port`` (port 0 picks a free one); call ``serve_forever()``."""
    host = host.strip("[]")
    server_class = _IndexServer6 if ":" in host else IndexServer
    server = server_class((host, port), _RequestHandler)
    server.set_app(app)
    return server
