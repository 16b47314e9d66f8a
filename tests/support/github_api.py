"""A test double of GitHub's REST endpoints for container packages, over the emulator's state.

Built from GitHub's documented schema (REST API version 2022-11-28, "Packages"):

- ``GET /users/{username}``: the account, whose ``type`` is ``User`` or ``Organization``;
- ``GET /orgs/{org}/packages/container/{package_name}/versions``, and the same under
  ``/user/packages/...`` (the authenticated user's) and ``/users/{username}/packages/...``:
  a page (``per_page`` up to 100, default 30; ``page`` from 1) of package versions, newest
  first, each ``{"id", "name": <manifest digest>, "url", "package_html_url", "html_url",
  "created_at", "updated_at", "metadata": {"package_type": "container", "container":
  {"tags": [...]}}}``, with ``Link: <...>; rel="next"`` while more follow;
- ``DELETE .../versions/{package_version_id}``: 204, or 400 with GitHub's message for the
  last tagged version of a package and for a public version downloaded over 5,000 times.

Package names travel URL-encoded (``tools%2Fpkg``); a raw ``/`` in a name reaches another
route and answers 404, as on GitHub. Tokens go as ``Authorization: Bearer <token>`` (or
``token <token>``); answers are JSON with a ``message`` on errors. Deleting a version deletes
its manifest in the emulator's backend registry. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from support.ghcr_emulator import GhcrRegistry, GhcrState, Package, PackageVersion

__all__ = ["ApiRequest", "GitHubApi", "LAST_VERSION", "POPULAR_VERSION"]

DOCS = "https://docs.github.com/rest/packages/packages"
LAST_VERSION = (
    "You cannot delete the last tagged version of a package. You must delete the package instead."
)
POPULAR_VERSION = (
    "Publicly visible package versions with more than 5000 downloads cannot be deleted. "
    "Contact GitHub support for further assistance."
)
DOWNLOAD_LIMIT = 5000


@dataclass(frozen=True)
class ApiRequest:
    """One request the double received (header names lowercased) and its status."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


class GitHubApi:
    """The REST double on loopback; ``url`` is what ``GITHUB_API_URL`` should say."""

    def __init__(self, registry: GhcrRegistry) -> None:
        self.registry = registry
        self.state: GhcrState = registry.state
        #: GitHub pages at most 100 versions; a test may page sooner, to page a short list.
        self.max_per_page = 100
        self._lock = threading.Lock()
        self._seen: list[ApiRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="github-api", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> GitHubApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _record(self, seen: ApiRequest) -> None:
        with self._lock:
            self._seen.append(seen)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(_Exchange):
            pass

        Handler.api = api
        return Handler

    # -- what the routes do ------------------------------------------------------------------

    def version_json(self, package: Package, version: PackageVersion, base: str) -> dict[str, Any]:
        name = quote(package.name, safe="")
        owner = self.state.owner(package.owner)
        kind = "orgs" if owner.kind == "Organization" else "users"
        return {
            "id": version.id,
            "name": version.digest,
            "url": f"{base}/{kind}/{package.owner}/packages/container/{name}/versions/{version.id}",
            "package_html_url": f"https://github.com/{kind}/{package.owner}/packages/container/"
            f"package/{name}",
            "html_url": f"https://github.com/{kind}/{package.owner}/packages/container/{name}/"
            f"{version.id}",
            "license": None,
            "description": None,
            "created_at": version.created_at,
            "updated_at": version.updated_at,
            "metadata": {"package_type": "container", "container": {"tags": list(version.tags)}},
        }

    def delete_version(self, package: Package, version: PackageVersion) -> None:
        """Remove the manifest from the backend and the version from the package."""
        target = f"{self.registry.backend.url}/v2/{package.repository}/manifests/{version.digest}"
        request = urllib.request.Request(target, method="DELETE")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202, answer.status
        with self.state.lock:
            package.versions.pop(version.id, None)


class _Exchange(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: GitHubApi
    status: int = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._route()

    def _record(self) -> None:
        self.api._record(
            ApiRequest(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.status,
            )
        )

    def _answer(
        self, status: int, value: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        # Recorded before the client can read the answer and send its next request.
        self._record()
        body = b"" if value is None else json.dumps(value).encode()
        self.send_response(status)
        for name, text in (headers or {}).items():
            self.send_header(name, text)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
        self.end_headers()
        self.wfile.write(body)

    def _message(self, status: int, message: str) -> None:
        self._answer(status, {"message": message, "documentation_url": DOCS, "status": str(status)})

    def _user(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            return None
        return self.api.state.user_of(token.strip())

    def _route(self) -> None:
        parts = urlsplit(self.path)
        # Split the path as sent: an encoded "/" stays inside its segment.
        segments = parts.path.strip("/").split("/")
        if len(segments) == 2 and segments[0] == "users":
            self._account(unquote(segments[1]))
            return
        user = self._user()
        if user is None:
            self._message(
                401,
                "Requires authentication"
                if not self.headers.get("Authorization")
                else "Bad credentials",
            )
            return
        if segments[:1] == ["user"]:
            owner, rest = user, segments[1:]
        elif segments[:1] in (["orgs"], ["users"]) and len(segments) > 1:
            owner, rest = unquote(segments[1]), segments[2:]
            account = self.api.state.owners.get(owner)
            wanted = "Organization" if segments[0] == "orgs" else "User"
            if account is None or account.kind != wanted:
                self._message(404, "Not Found")
                return
        else:
            self._message(404, "Not Found")
            return
        if (
            len(rest) not in (4, 5)
            or rest[:2] != ["packages", "container"]
            or rest[3] != "versions"
        ):
            self._message(404, "Not Found")
            return
        package = self.api.state.packages.get(f"{owner}/{unquote(rest[2])}")
        if package is None or not self.api.state.may_read(user, package.repository):
            self._message(404, "Package not found.")
            return
        if len(rest) == 4 and self.command == "GET":
            self._list(package, dict(parse_qsl(parts.query)))
        elif len(rest) == 5 and self.command == "DELETE" and rest[4].isdigit():
            self._delete(package, int(rest[4]), user)
        else:
            self._message(404, "Not Found")

    def _account(self, login: str) -> None:
        owner = self.api.state.owners.get(login)
        if owner is None:
            self._message(404, "Not Found")
            return
        self._answer(200, {"login": owner.login, "id": owner.id, "type": owner.kind})

    def _list(self, package: Package, query: dict[str, str]) -> None:
        try:
            per_page = min(int(query.get("per_page", "30")), self.api.max_per_page)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            self._message(400, "Invalid request.")
            return
        with self.api.state.lock:
            versions = sorted(package.versions.values(), key=lambda v: v.id, reverse=True)
        chosen = versions[(page - 1) * per_page : page * per_page]
        base = f"http://{self.headers.get('Host')}"
        headers = {}
        pages = max(1, -(-len(versions) // per_page))
        if page < pages:
            path = urlsplit(self.path).path

            def link(number: int) -> str:
                return f"{base}{path}?{urlencode({'per_page': per_page, 'page': number})}"

            headers["Link"] = f'<{link(page + 1)}>; rel="next", <{link(pages)}>; rel="last"'
        self._answer(200, [self.api.version_json(package, v, base) for v in chosen], headers)

    def _delete(self, package: Package, version_id: int, user: str) -> None:
        version = package.versions.get(version_id)
        if version is None:
            self._message(404, "Package version not found.")
            return
        if not self.api.state.may_write(user, package.repository):
            self._message(403, "You must have admin permissions to delete this package version.")
            return
        tagged = [v for v in package.versions.values() if v.tags]
        if version.tags and len(tagged) == 1:
            self._message(400, LAST_VERSION)
            return
        if package.public and version.downloads > DOWNLOAD_LIMIT:
            self._message(400, POPULAR_VERSION)
            return
        self.api.delete_version(package, version)
        self._answer(204)
