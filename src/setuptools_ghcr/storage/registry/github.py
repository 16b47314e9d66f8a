"""GitHub's REST API for container packages: what ghcr.io's registry API does not do.

ghcr.io answers the OCI ``DELETE`` with 405; a package's versions (one per manifest, each
with an ``id``, its digest as ``name`` and its tags) are listed and deleted through
``/{orgs|users}/{owner}/packages/container/{name}/versions``, the name URL-encoded (``/``
as ``%2F``). Only a ghcr.io registry's own credentials (a GitHub token) are ever sent here,
as ``Authorization: Bearer``; the factory makes sure of it. The API's base URL is
``GITHUB_API_URL`` (GitHub Actions sets it; ``https://api.github.com`` otherwise).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit

import requests

from setuptools_ghcr import __version__
from setuptools_ghcr.core.oci import Index
from setuptools_ghcr.core.targets import is_loopback_host
from setuptools_ghcr.errors import (
    AuthenticationError,
    ConfigError,
    GhcrError,
    MalformedDocumentError,
    NotFoundError,
    RegistryError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.redact import Redactor, redact_url
from setuptools_ghcr.storage.registry.responses import describe, discard, origin, read_limited
from setuptools_ghcr.storage.registry.retry import RETRYABLE_STATUSES, RetryPolicy
from setuptools_ghcr.storage.store import RawManifest

__all__ = [
    "API_URL_ENV",
    "DEFAULT_API_URL",
    "DEFAULT_SERVER_URL",
    "SERVER_URL_ENV",
    "GitHubPackages",
    "GitHubVersionDeleter",
    "OwnerKind",
    "PackageVersion",
    "package_settings_url",
    "split_repository",
]

API_URL_ENV = "GITHUB_API_URL"
DEFAULT_API_URL = "https://api.github.com"
#: Where GitHub's web pages are (GitHub Actions sets it; github.com otherwise).
SERVER_URL_ENV = "GITHUB_SERVER_URL"
DEFAULT_SERVER_URL = "https://github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 1000
MAX_BODY = 16 << 20
TIMEOUT = 60.0

#: The path segment of an owner: ``orgs`` for an organization, ``users`` for a user.
OwnerKind = Literal["orgs", "users"]


@dataclass(frozen=True)
class PackageVersion:
    """One version of a container package: a manifest, by id, with its tags."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: str | None = None


def split_repository(repository: str) -> tuple[str, str]:
    """A ghcr.io repository as GitHub names it: ``(owner, package name)``.

    ``acme/tools/mypkg`` is package ``tools/mypkg`` of ``acme``.
    """
    owner, _, name = repository.partition("/")
    if not name:
        raise ConfigError(
            f"{repository!r} is not a ghcr.io package: it needs an owner, as in ghcr.io/OWNER"
        )
    return owner, name


def package_settings_url(server_url: str, kind: OwnerKind | None, owner: str, name: str) -> str:
    """The web page where a package's visibility is changed (its owner's packages when the
    kind of owner is not known)."""
    base = server_url.rstrip("/")
    if kind is None:
        return f"{base}/{quote(owner, safe='')}?tab=packages"
    return (
        f"{base}/{kind}/{quote(owner, safe='')}/packages/container/{quote(name, safe='')}/settings"
    )


class _NoNetrc(requests.auth.AuthBase):
    """Keeps requests from adding ``~/.netrc`` credentials: this module decides what is sent."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class GitHubPackages:
    """Lists and deletes the versions of container packages through GitHub's REST API."""

    def __init__(
        self,
        api_url: str,
        credentials: Credentials | None,
        *,
        session: requests.Session | None = None,
        timeout: float = TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(api_url.strip())
        if not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.netloc))
        ):
            raise ConfigError(f"{API_URL_ENV} must be an https URL, such as {DEFAULT_API_URL}")
        self.api_url = api_url.strip().rstrip("/")
        self._origin = origin(self.api_url)
        self._credentials = credentials
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._session.headers["User-Agent"] = f"setuptools-ghcr/{__version__}"
        self._timeout = timeout
        self._policy = retry_policy if retry_policy is not None else RetryPolicy(3)
        self._sleep = sleep
        self._kinds: dict[str, OwnerKind] = {}
        self._redactor = Redactor([credentials.password] if credentials is not None else [])

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GitHubPackages:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the endpoints -----------------------------------------------------------------------

    def owner_kind(self, owner: str) -> OwnerKind:
        """Whether ``owner`` is an organization or a user (``GET /users/{owner}``)."""
        if owner not in self._kinds:
            operation = f"looking up {owner} on GitHub"
            value = self._json("GET", f"/users/{quote(owner, safe='')}", operation)
            kind = value.get("type") if isinstance(value, dict) else None
            self._kinds[owner] = "orgs" if kind == "Organization" else "users"
        return self._kinds[owner]

    def versions(self, owner: str, name: str) -> list[PackageVersion]:
        """Every version of the container package ``name`` of ``owner``, all pages."""
        operation = f"listing the versions of package {owner}/{name} on GitHub"
        path = f"{self._package_path(owner, name)}/versions?per_page={PER_PAGE}"
        found: list[PackageVersion] = []
        for page in self._pages(path, operation):
            if not isinstance(page, list):
                raise MalformedDocumentError(f"{operation}: the answer is not a list")
            found.extend(_version(item, operation) for item in page)
        return found

    def delete(self, owner: str, name: str, version_id: int) -> None:
        """Delete one version; refusals raise with GitHub's reason (last tagged version,
        a public version downloaded over 5,000 times, missing permission)."""
        operation = f"deleting version {version_id} of package {owner}/{name} on GitHub"
        response = self._request(
            "DELETE", f"{self._package_path(owner, name)}/versions/{version_id}", operation
        )
        if response.status_code != 204:
            raise self._error(response, operation)
        discard(response)

    def _package_path(self, owner: str, name: str) -> str:
        kind = self.owner_kind(owner)
        return f"/{kind}/{quote(owner, safe='')}/packages/container/{quote(name, safe='')}"

    # -- HTTP --------------------------------------------------------------------------------

    def _json(self, method: str, path: str, operation: str) -> Any:
        response = self._request(method, path, operation)
        if response.status_code != 200:
            raise self._error(response, operation)
        return _decode(read_limited(response, MAX_BODY, operation), operation)

    def _pages(self, path: str, operation: str) -> Iterator[Any]:
        url: str | None = self.api_url + path
        seen: set[str] = set()
        while url and len(seen) < MAX_PAGES:
            seen.add(url)
            response = self._request("GET", url, operation)
            if response.status_code != 200:
                raise self._error(response, operation)
            following = response.links.get("next", {}).get("url")
            yield _decode(read_limited(response, MAX_BODY, operation), operation)
            url = None
            if following:
                candidate = urljoin(self.api_url + "/", following)
                if origin(candidate) != self._origin:
                    raise UnsafeResponseError(
                        f"{operation}: the next page is on another host; refusing it"
                    )
                url = candidate if candidate not in seen else None

    def _request(self, method: str, path_or_url: str, operation: str) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self.api_url + path_or_url
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        }
        if self._credentials is not None:
            headers["Authorization"] = f"Bearer {self._credentials.password}"
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                    auth=_NoNetrc(),
                )
            except requests.RequestException as error:
                attempt += 1
                if not self._policy.should_retry(attempt):
                    raise RegistryError(
                        f"{operation}: cannot reach {origin(url)[1]}: {describe(error)}"
                    ) from None
                self._pause(attempt)
                continue
            if response.status_code in RETRYABLE_STATUSES and self._policy.should_retry(
                attempt + 1
            ):
                attempt += 1
                discard(response)
                self._pause(attempt)
                continue
            return response

    def _pause(self, attempt: int) -> None:
        self._sleep(self._policy.delay(attempt, None, random.random()))  # noqa: S311

    def _error(self, response: requests.Response, operation: str) -> GhcrError:
        status = response.status_code
        try:
            body = read_limited(response, 64 << 10, "error body")
        except GhcrError:
            body = b""
        message = _message(body)
        text = self._redactor(
            f"{operation}: GitHub answered {status}" + (f" ({message})" if message else "")
        )
        if status == 401:
            who = self._credentials.origin if self._credentials else "nowhere (no credentials)"
            return AuthenticationError(f"{text}; the token from {who} was refused", status=status)
        if status == 403:
            return AuthenticationError(
                f"{text}; the token needs the read:packages and delete:packages scopes "
                "(a classic personal access token, or GITHUB_TOKEN with packages: write) "
                "and admin rights on the package",
                status=status,
            )
        if status == 404:
            return NotFoundError(text)
        return RegistryError(text, status=status)

    def __repr__(self) -> str:
        return f"GitHubPackages({redact_url(self.api_url)!r})"


class GitHubVersionDeleter:
    """Deletes versions of one ghcr.io package through GitHub's REST API.

    The package's versions are listed once (each manifest is one, by digest); deleting a
    version deletes its index (with every tag on it), then the file manifests it lists.
    """

    def __init__(self, api: GitHubPackages, repository: str) -> None:
        self._api = api
        self._owner, self._name = split_repository(repository)
        self._by_digest: dict[str, PackageVersion] | None = None

    def delete_version(self, index: RawManifest) -> None:
        children = Index.from_bytes(index.raw, f"index {index.digest.short}").manifests
        listed = self._listed()
        top = listed.get(str(index.digest))
        if top is None:
            raise NotFoundError(
                f"GitHub lists no version of package {self._owner}/{self._name} with digest "
                f"{index.digest.short}"
            )
        self._api.delete(self._owner, self._name, top.id)
        listed.pop(top.digest, None)
        refused: list[str] = []
        for child in children:
            found = listed.get(str(child.digest))
            if found is None:
                continue
            try:
                self._api.delete(self._owner, self._name, found.id)
            except GhcrError as error:
                refused.append(str(error))
                continue
            listed.pop(found.digest, None)
        if refused:
            raise RegistryError(
                f"the version's index is deleted, but {len(refused)} file manifest(s) are not: "
                f"{refused[0]}"
            )

    def _listed(self) -> dict[str, PackageVersion]:
        if self._by_digest is None:
            versions = self._api.versions(self._owner, self._name)
            self._by_digest = {version.digest: version for version in versions}
        return self._by_digest


def _decode(body: bytes, operation: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise MalformedDocumentError(f"{operation}: the answer is not JSON") from None


def _message(body: bytes) -> str:
    try:
        value = json.loads(body)
    except ValueError:
        return ""
    message = value.get("message") if isinstance(value, dict) else None
    return " ".join(message.split())[:300] if isinstance(message, str) else ""


def _version(item: Any, operation: str) -> PackageVersion:
    if not isinstance(item, dict) or not isinstance(item.get("id"), int):
        raise MalformedDocumentError(f"{operation}: a version without an id")
    digest = item.get("name")
    container = (item.get("metadata") or {}).get("container") or {}
    tags = container.get("tags") if isinstance(container, dict) else None
    return PackageVersion(
        id=item["id"],
        digest=digest if isinstance(digest, str) else "",
        tags=tuple(tag for tag in (tags or []) if isinstance(tag, str)),
        created_at=item.get("created_at") if isinstance(item.get("created_at"), str) else None,
    )
