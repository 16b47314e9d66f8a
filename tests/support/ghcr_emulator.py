"""A ghcr.io emulator for tests: ghcr.io's documented and reported behaviour in front of a real
``docker-registry``.

:func:`start_ghcr` starts a plain registry (the storage), a blob "CDN" on another host name
and port, and a front on loopback that speaks to clients the way ghcr.io does:

- the token endpoint ``/token`` (service ``ghcr.io``): any user name with a known personal
  access token gets what its owner may do (push to its own namespace and to organizations
  it belongs to); anonymous callers get ``pull`` for public packages only, and the same
  401 ``DENIED`` for a private package and for one that does not exist;
- ``/v2/`` challenges with a placeholder scope; a request without ``Authorization`` gets a
  challenge naming its own scope; a bearer that is not one of our tokens (``QQ==``) reads
  public packages, and private ones answer 403 ``DENIED``;
- packages are created private on their first push (an owner may default to public);
- a ``PATCH`` whose ``Content-Range`` spans over 4 MiB is refused with 416; an image index
  of 4 MiB or more with 500; there is no ``/v2/_catalog``, no referrers API, and ``DELETE``
  answers 405 (versions go through the REST API: see ``github_api``);
- blob ``GET``s answer 307 with a signed URL on the CDN, which honours ``Range``;
- upload locations look like ``/v2/<name>/blobs/upload/<uuid>`` (singular);
- :meth:`GhcrState.throttle` answers the next requests 429 with ``retry-after`` in the
  error message; tokens expire after ``token_lifetime`` seconds (a few minutes by default),
  so that a long upload must get a new one to commit;
- tag lists honour ``n`` and ``last`` and page with ``Link`` (distribution ignores them).

Every request is recorded (:attr:`GhcrState.requests`), so tests can count what a client
sent and check that no credential reached the CDN.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from support.registry_harness import (
    SECRET_MARKER,
    CdnServer,
    RunningRegistry,
    start_registry,
)

__all__ = [
    "GHCR_SERVICE",
    "GhcrRegistry",
    "GhcrState",
    "Owner",
    "Package",
    "PackageVersion",
    "Seen",
    "start_ghcr",
]

GHCR_SERVICE = "ghcr.io"
#: ghcr.io refuses chunked PATCH bodies over this, and image indexes this big or bigger.
CHUNK_LIMIT = 4 * 1024 * 1024
INDEX_LIMIT = 4 * 1024 * 1024
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
DEFAULT_TOKEN_LIFETIME = 300.0
_PIECE = 1 << 16

AuthKind = Literal["none", "token", "dummy", "basic", "expired"]


@dataclass
class Owner:
    """A GitHub account that owns packages: a user or an organization and its members."""

    login: str
    kind: Literal["User", "Organization"]
    members: set[str] = field(default_factory=set)
    #: Organizations may make new packages public by default.
    default_public: bool = False
    id: int = 0


@dataclass
class PackageVersion:
    """One manifest of a package, as GitHub lists it: an id, a digest, its tags."""

    id: int
    digest: str
    media_type: str
    tags: list[str]
    created_at: str
    updated_at: str
    downloads: int = 0


@dataclass
class Package:
    """A container package: ``owner/name``, its visibility and its versions."""

    owner: str
    name: str
    public: bool
    versions: dict[int, PackageVersion] = field(default_factory=dict)

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.name}"

    def version_of(self, digest: str) -> PackageVersion | None:
        return next((v for v in self.versions.values() if v.digest == digest), None)


@dataclass(frozen=True)
class _Token:
    user: str | None
    access: dict[str, frozenset[str]]
    expires_at: float


@dataclass(frozen=True)
class Seen:
    """A request the front received: method, path, what authorized it and the answer."""

    method: str
    path: str
    auth: AuthKind
    status: int
    headers: dict[str, str]


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class GhcrState:
    """Accounts, tokens and packages of the emulator, shared with the REST API double."""

    def __init__(self, *, token_lifetime: float = DEFAULT_TOKEN_LIFETIME) -> None:
        self.token_lifetime = token_lifetime
        self.lock = threading.RLock()
        self.owners: dict[str, Owner] = {}
        self.pats: dict[str, str] = {}
        self.packages: dict[str, Package] = {}
        self.default_user: str | None = None
        self._tokens: dict[str, _Token] = {}
        self._next_id = 1000
        self._seen: list[Seen] = []
        self._throttle: list[tuple[str, bool]] = []

    # -- accounts --------------------------------------------------------------------------

    def _new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def add_user(self, login: str, pat: str | None = None) -> str:
        """A user and its personal access token (made up when not given)."""
        token = pat or f"ghp_{SECRET_MARKER}{secrets.token_hex(10)}"
        with self.lock:
            self.owners[login] = Owner(login, "User", {login}, id=self._new_id())
            self.pats[token] = login
        return token

    def add_org(self, login: str, members: set[str], *, default_public: bool = False) -> None:
        with self.lock:
            self.owners[login] = Owner(
                login, "Organization", set(members), default_public, id=self._new_id()
            )

    def owner(self, login: str) -> Owner:
        """An owner; one never named before is an organization of the default user, so that
        tests may push under any namespace with the default user's token."""
        with self.lock:
            found = self.owners.get(login)
            if found is None:
                members = {self.default_user} if self.default_user else set()
                found = self.owners[login] = Owner(
                    login, "Organization", members, id=self._new_id()
                )
            return found

    def user_of(self, pat: str) -> str | None:
        with self.lock:
            return self.pats.get(pat)

    def may_write(self, user: str | None, repository: str) -> bool:
        if user is None:
            return False
        owner = self.owner(repository.split("/", 1)[0])
        return user in owner.members

    def is_public(self, repository: str) -> bool:
        with self.lock:
            package = self.packages.get(repository)
            return package is not None and package.public

    def set_public(self, repository: str, public: bool = True) -> None:
        """Change a package's visibility (the web UI's job on the real site)."""
        with self.lock:
            self.packages[repository].public = public

    def may_read(self, user: str | None, repository: str) -> bool:
        return self.is_public(repository) or self.may_write(user, repository)

    # -- tokens ----------------------------------------------------------------------------

    def issue(self, user: str | None, access: dict[str, frozenset[str]]) -> str:
        token = "ghcr_" + secrets.token_urlsafe(24)
        with self.lock:
            self._tokens[token] = _Token(user, access, time.monotonic() + self.token_lifetime)
        return token

    def token(self, value: str) -> _Token | None:
        with self.lock:
            return self._tokens.get(value)

    def expire_tokens(self) -> None:
        """Make every token issued so far expired."""
        with self.lock:
            for key, token in self._tokens.items():
                self._tokens[key] = _Token(token.user, token.access, 0.0)

    # -- packages --------------------------------------------------------------------------

    def package(self, repository: str, *, create: bool = False) -> Package | None:
        with self.lock:
            found = self.packages.get(repository)
            if found is None and create:
                owner_login, _, name = repository.partition("/")
                owner = self.owner(owner_login)
                found = self.packages[repository] = Package(
                    owner_login, name, public=owner.default_public
                )
            return found

    def record_manifest(
        self, repository: str, reference: str, digest: str, media_type: str
    ) -> None:
        """A manifest was pushed: a new version, or a tag moved onto an existing one."""
        with self.lock:
            package = self.package(repository, create=True)
            assert package is not None
            version = package.version_of(digest)
            now = _now_iso()
            if version is None:
                version = PackageVersion(self._new_id(), digest, media_type, [], now, now)
                package.versions[version.id] = version
            if not reference.startswith("sha256:"):
                for other in package.versions.values():
                    if reference in other.tags:
                        other.tags.remove(reference)
                version.tags.append(reference)
                version.updated_at = now

    def count_download(self, repository: str, digest: str) -> None:
        with self.lock:
            package = self.packages.get(repository)
            version = package.version_of(digest) if package else None
            if version is not None:
                version.downloads += 1

    # -- rate limits and the request log ---------------------------------------------------

    def throttle(self, count: int, retry_after: str = "1s", *, header: bool = False) -> None:
        """Answer the next ``count`` registry requests 429 ``retry-after: <retry_after>``;
        with ``header`` also as a ``Retry-After`` header (in whole seconds)."""
        with self.lock:
            self._throttle.extend([(retry_after, header)] * count)

    def take_throttle(self) -> tuple[str, bool] | None:
        with self.lock:
            return self._throttle.pop(0) if self._throttle else None

    def record(self, seen: Seen) -> None:
        with self.lock:
            self._seen.append(seen)

    @property
    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self._seen)

    def clear(self) -> None:
        with self.lock:
            self._seen.clear()


def _split_name(repository: str) -> tuple[str, str]:
    owner, _, name = repository.partition("/")
    return owner, name


_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("start", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")),
    ("session", re.compile(r"^/v2/(?P<name>.+)/blobs/upload/(?P<ref>[0-9a-f-]{36})$")),
    ("blob", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<ref>sha256:[0-9a-f]{64})$")),
    ("manifest", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")),
    ("tags", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("referrers", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<ref>[^/]+)$")),
)


class _Front:
    """The registry API in front of the backend: auth, ghcr's limits, uploads, redirects."""

    def __init__(self, state: GhcrState, backend: RunningRegistry, cdn: CdnServer) -> None:
        self.state = state
        self.backend = backend
        self.cdn = cdn
        self.sessions: dict[str, str] = {}
        #: Seconds each upload PATCH takes on top of its transfer (a slow link).
        self.patch_delay = 0.0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="ghcr-front", daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(_Exchange):
            pass

        Handler.front = front
        return Handler


class _Exchange(BaseHTTPRequestHandler):
    """One request to the front."""

    protocol_version = "HTTP/1.1"
    front: _Front
    auth_kind: AuthKind = "none"
    answered: int = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    # -- plumbing --------------------------------------------------------------------------

    @property
    def state(self) -> GhcrState:
        return self.front.state

    def _body(self) -> bytes:
        """The whole request body (tests send small ones, or big ones slowly)."""
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            # The client gave up in the middle of its body: nothing of it goes on.
            raise ConnectionError("the request body ended early")
        return data

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        length: int | None = None,
    ) -> None:
        """Answer; a HEAD gets the head only, with ``length`` as the announced size."""
        self.answered = status
        # Recorded before the client can read the answer and send its next request.
        self._record()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, headers)

    def _challenge(self, scope: str, error: str | None = None) -> dict[str, str]:
        value = f'Bearer realm="{self.front.realm}",service="{GHCR_SERVICE}",scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return {"WWW-Authenticate": value}

    def _record(self) -> None:
        self.state.record(
            Seen(
                self.command,
                self.path,
                self.auth_kind,
                self.answered,
                {k.lower(): v for k, v in self.headers.items()},
            )
        )

    # -- dispatch --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self.answered = 0
        try:
            self._route()
        except (ConnectionError, OSError):
            self.close_connection = True
        if not self.answered:
            self._record()

    def _route(self) -> None:
        path = urlsplit(self.path).path
        if path == "/token":
            self._token()
            return
        throttled = self.state.take_throttle()
        if throttled is not None:
            self._body()
            retry_after, header = throttled
            headers = {"Retry-After": str(int(float(retry_after.rstrip("s")) + 0.999))}
            self._error(
                429,
                "TOOMANYREQUESTS",
                f"retry-after: {retry_after}, allowed: 44000/minute",
                headers if header else None,
            )
            return
        if path in ("/v2", "/v2/"):
            self._base()
            return
        if path == "/v2/_catalog":
            self._body()
            self._error(404, "NOT_FOUND", "404 page not found")
            return
        for kind, pattern in _ROUTES:
            match = pattern.match(path)
            if match is not None:
                self._repository(kind, match)
                return
        self._error(404, "NOT_FOUND", "404 page not found")

    # -- authentication --------------------------------------------------------------------

    def _credential(self) -> tuple[AuthKind, _Token | None]:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "basic" and value:
            return "basic", None
        if scheme.lower() != "bearer" or not value:
            return "none", None
        token = self.state.token(value)
        if token is None:
            return "dummy", None
        if token.expires_at <= time.monotonic():
            return "expired", None
        return "token", token

    def _authorize(self, name: str, action: str) -> bool:
        """Whether the request may go on; answers it when not."""
        kind, token = self._credential()
        self.auth_kind = kind
        scope = f"repository:{name}:{'pull,push' if action == 'push' else 'pull'}"
        if kind in ("none", "basic"):
            self._body()
            self._error(401, "UNAUTHORIZED", "authentication required", self._challenge(scope))
            return False
        if kind == "expired":
            self._body()
            self._error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                self._challenge(scope, "invalid_token"),
            )
            return False
        if kind == "dummy":
            if action == "pull" and self.state.is_public(name):
                return True
            self._body()
            if action == "pull":
                self._error(403, "DENIED", "requested access to the resource is denied")
            else:
                self._error(401, "UNAUTHORIZED", "authentication required", self._challenge(scope))
            return False
        assert token is not None
        if action in token.access.get(name, frozenset()):
            return True
        self._body()
        self._error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            self._challenge(scope, "insufficient_scope"),
        )
        return False

    def _base(self) -> None:
        kind, _token = self._credential()
        self.auth_kind = kind
        if kind in ("token", "dummy"):
            self._send(200, b"{}")
            return
        # ghcr.io's /v2/ names a placeholder scope, not one of the caller's repositories.
        self._error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            self._challenge("repository:user/image:pull"),
        )

    def _token(self) -> None:
        query = parse_qsl(urlsplit(self.path).query, keep_blank_values=True)
        scopes = [s for key, value in query if key == "scope" for s in value.split()]
        service = next((value for key, value in query if key == "service"), None)
        if service != GHCR_SERVICE:
            self._error(400, "UNSUPPORTED", "service must be ghcr.io")
            return
        user: str | None = None
        header = self.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            self.auth_kind = "basic"
            try:
                name, _, pat = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                name, pat = "", ""
            user = self.state.user_of(pat)
            if not name or user is None:
                self._error(401, "UNAUTHORIZED", "bad credentials")
                return
        access: dict[str, frozenset[str]] = {}
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            if self.state.may_write(user, name):
                granted = {a for a in actions.split(",") if a in ("pull", "push")}
            elif self.state.is_public(name):
                granted = {"pull"} & set(actions.split(","))
            else:
                granted = set()
            if not granted:
                status = 401 if user is None else 403
                self._error(status, "DENIED", "requested access to the resource is denied")
                return
            access[name] = frozenset(granted)
        self._send(200, json.dumps({"token": self.state.issue(user, access)}).encode())

    # -- the repository API ----------------------------------------------------------------

    def _repository(self, kind: str, match: re.Match[str]) -> None:
        name = match.group("name")
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        if not self._authorize(name, action):
            return
        if self.command == "DELETE" and kind in ("blob", "manifest"):
            self._error(405, "UNSUPPORTED", "The operation is unsupported.")
            return
        if kind == "referrers":
            self._error(404, "NOT_FOUND", "404 page not found")
        elif kind == "start":
            self._start_upload(name)
        elif kind == "session":
            self._upload(name, match.group("ref"))
        elif kind == "blob":
            self._blob(name, match.group("ref"))
        elif kind == "manifest":
            self._manifest(name, match.group("ref"))
        else:
            self._tags(name)

    def _backend(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.front.backend.port, timeout=60)
        try:
            sent = dict(headers or {})
            sent["Host"] = self.headers.get("Host") or f"127.0.0.1:{self.front.port}"
            if body or method in ("PUT", "PATCH", "POST"):
                sent["Content-Length"] = str(len(body))
            connection.request(method, target, body=body or None, headers=sent)
            response = connection.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            connection.close()

    def _relay(
        self, status: int, headers: dict[str, str], data: bytes, keep: tuple[str, ...]
    ) -> None:
        kept = {k: v for k, v in headers.items() if k.lower() in keep}
        content_type = headers.get("Content-Type", "application/json")
        self._send(status, data, kept, content_type)

    def _start_upload(self, name: str) -> None:
        body = self._body()
        query = urlsplit(self.path).query
        target = f"/v2/{name}/blobs/uploads/" + (f"?{query}" if query else "")
        status, headers, data = self._backend("POST", target, body)
        if status != 202:
            self._relay(status, headers, data, ("location", "docker-content-digest"))
            return
        session = str(uuid.uuid4())
        with self.front.lock:
            self.front.sessions[session] = headers["Location"]
        self._send(
            202,
            b"",
            {
                "Location": f"/v2/{name}/blobs/upload/{session}",
                "Docker-Upload-UUID": session,
                "Range": "0-0",
            },
        )

    def _upload(self, name: str, session: str) -> None:
        with self.front.lock:
            location = self.front.sessions.get(session)
        if location is None:
            self._body()
            self._error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
            return
        content_range = self.headers.get("Content-Range")
        if self.command == "PATCH" and content_range:
            start, _, end = content_range.replace("bytes=", "").partition("-")
            if int(end) - int(start) + 1 > CHUNK_LIMIT:
                self._body()
                self._error(416, "RANGE_INVALID", "requested range not satisfiable")
                return
        body = self._body()
        if self.command == "PATCH" and self.front.patch_delay:
            time.sleep(self.front.patch_delay)
        parts = urlsplit(location)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        query = urlsplit(self.path).query
        if query:
            target += ("&" if parts.query else "?") + query
        headers = {"Content-Type": self.headers.get("Content-Type", "application/octet-stream")}
        if content_range:
            headers["Content-Range"] = content_range
        status, answer, data = self._backend(self.command, target, body, headers)
        if self.command == "PATCH" and status == 202:
            with self.front.lock:
                self.front.sessions[session] = answer["Location"]
            self._send(
                202,
                b"",
                {
                    "Location": f"/v2/{name}/blobs/upload/{session}",
                    "Range": answer.get("Range", "0-0"),
                    "Docker-Upload-UUID": session,
                },
            )
            return
        if self.command == "PUT" and status == 201:
            with self.front.lock:
                self.front.sessions.pop(session, None)
        self._relay(status, answer, data, ("location", "docker-content-digest", "range"))

    def _blob(self, name: str, digest: str) -> None:
        status, headers, _data = self._backend("HEAD", f"/v2/{name}/blobs/{digest}")
        if status != 200:
            self._relay(status, headers, b"", ())
            return
        if self.command == "HEAD":
            size = int(headers.get("Content-Length") or 0)
            self._send(
                200, b"", {"Docker-Content-Digest": digest}, "application/octet-stream", size
            )
            return
        hex_digest = digest.split(":", 1)[1]
        signature = urlencode({"sig": secrets.token_hex(16), "expires": int(time.time()) + 60})
        where = (
            f"http://localhost:{self.front.cdn.port}/docker/registry/v2/blobs/sha256/"
            f"{hex_digest[:2]}/{hex_digest}/data?{signature}"
        )
        self._send(307, b"", {"Location": where})

    def _manifest(self, name: str, reference: str) -> None:
        target = f"/v2/{name}/manifests/{quote(reference, safe=':')}"
        if self.command == "PUT":
            body = self._body()
            media_type = self.headers.get("Content-Type", "")
            if media_type in INDEX_TYPES and len(body) >= INDEX_LIMIT:
                self._error(500, "UNKNOWN", "unknown error")
                return
            status, headers, data = self._backend("PUT", target, body, {"Content-Type": media_type})
            if status == 201:
                self.state.record_manifest(
                    name, reference, headers["Docker-Content-Digest"], media_type
                )
            self._relay(status, headers, data, ("location", "docker-content-digest"))
            return
        accept = self.headers.get("Accept") or ", ".join(INDEX_TYPES)
        status, headers, data = self._backend(self.command, target, b"", {"Accept": accept})
        if status == 200 and self.command == "GET":
            self.state.count_download(name, headers.get("Docker-Content-Digest", ""))
        self._relay(status, headers, data, ("docker-content-digest", "etag"))

    def _tags(self, name: str) -> None:
        status, headers, data = self._backend("GET", f"/v2/{name}/tags/list")
        if status != 200:
            self._relay(status, headers, data, ())
            return
        tags = sorted(json.loads(data).get("tags") or [])
        query = dict(parse_qsl(urlsplit(self.path).query))
        last = query.get("last")
        if last:
            tags = [tag for tag in tags if tag > last]
        extra: dict[str, str] = {}
        size = query.get("n")
        if size and size.isdigit() and len(tags) > int(size):
            tags = tags[: int(size)]
            following = urlencode({"n": size, "last": tags[-1]})
            extra["Link"] = f'</v2/{name}/tags/list?{following}>; rel="next"'
        self._send(200, json.dumps({"name": name, "tags": tags}).encode(), extra)


class GhcrRegistry(RunningRegistry):
    """The emulator, shaped like the other test registries (``host``, ``credentials``...).

    ``storage`` and ``blob_data_path`` are the backend's; ``state`` holds accounts, tokens,
    packages and the request log; ``cdn`` records what reached the blob host.
    """

    backend: RunningRegistry
    state: GhcrState
    front: _Front

    def start(self) -> None:
        self.backend.start()

    def stop(self) -> None:
        self.backend.stop()

    def close(self) -> None:
        self.front.stop()
        self.backend.close()
        if self.cdn is not None:
            self.cdn.stop()
            self.cdn = None

    @property
    def storage(self) -> Path:
        return self.backend.storage

    @property
    def realm(self) -> str:
        return self.front.realm

    def make_public(self, repository: str) -> None:
        self.state.set_public(repository)

    def repository_requests(self, repository: str) -> list[Seen]:
        """The requests about one repository (the token endpoint's included)."""
        needle = f"/v2/{repository}/"
        scope = quote(f"repository:{repository}:", safe="")
        return [s for s in self.state.requests if needle in s.path or scope in s.path]


def start_ghcr(
    root: Path, *, token_lifetime: float = DEFAULT_TOKEN_LIFETIME, user: str = "tester"
) -> GhcrRegistry:
    """Start the backend registry, the CDN and the front; ``user`` holds a PAT."""
    backend = start_registry("plain", root / "backend")
    try:
        cdn = CdnServer(backend.storage)
    except BaseException:
        backend.close()
        raise
    state = GhcrState(token_lifetime=token_lifetime)
    pat = state.add_user(user)
    state.default_user = user
    front = _Front(state, backend, cdn)
    registry = GhcrRegistry(
        kind="ghcr",
        root=root,
        port=front.port,
        username=user,
        password=pat,
        cdn=cdn,
    )
    registry.backend = backend
    registry.state = state
    registry.front = front
    return registry


@contextlib.contextmanager
def ghcr(root: Path, **options: Any) -> Iterator[GhcrRegistry]:
    """:func:`start_ghcr` as a context manager."""
    registry = start_ghcr(root, **options)
    try:
        yield registry
    finally:
        registry.close()
