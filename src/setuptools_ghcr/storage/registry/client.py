"""The distribution API verbs of one registry: blobs, uploads, manifests, tags, the catalog.

:class:`RegistryClient` names each request the API defines and checks its answer; sending
it (auth, retries, redirects, error decoding) is the transport's job. Reads hand back what
the registry sent, unverified where it streams (the store verifies as it consumes); what is
small enough to hold (a manifest) is checked here. ``store(repository)`` binds the verbs to
one repository behind the ``Store`` interface.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import BinaryIO, overload
from urllib.parse import urljoin

import requests

from setuptools_ghcr.core.oci import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_SIZE,
    Descriptor,
    Digest,
    is_valid_tag,
    load_json,
    media_type_of,
)
from setuptools_ghcr.errors import (
    DigestMismatchError,
    MalformedDocumentError,
    RegistryError,
    TooLargeError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.registry.authenticate import Traffic
from setuptools_ghcr.storage.registry.challenge import (
    AnonymousAuth,
    delete_scope,
    pull_scope,
    push_scope,
)
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.repository import RegistryStore
from setuptools_ghcr.storage.registry.responses import (
    check_stored_digest,
    describe,
    discard,
    read_limited,
)
from setuptools_ghcr.storage.registry.retry import RetryPolicy
from setuptools_ghcr.storage.registry.streams import BROKEN_BODY, Buffers, resumed_chunks
from setuptools_ghcr.storage.registry.transport import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    HTTP_LOG,
    Transport,
)
from setuptools_ghcr.storage.registry.uploads import Uploads
from setuptools_ghcr.storage.store import BlobSource, ProgressCallback, RawManifest

__all__ = ["RegistryClient"]

#: A tag list is read up to this many bytes and tags in all, whatever the number of pages:
#: a registry must not make a listing hold more (128-character tags, 100,000 versions).
MAX_TAG_BYTES = 16 << 20
MAX_TAGS = 100_000
#: Tags asked for a page: a project with thousands of per-commit versions comes in pages
#: the registry can answer quickly, rather than one answer it has to build whole.
TAGS_PER_PAGE = 1000
MAX_TAG_PAGES = 10_000
#: The catalog is read this many repositories a page (a page up to 1 MiB, far more than
#: a thousand names need), for at most this many pages and bytes in all.
CATALOG_PAGE = 1000
MAX_CATALOG_PAGES = 50
MAX_CATALOG_PAGE_BODY = 1 << 20
MAX_CATALOG_BYTES = 8 << 20
#: Resumes of one download that received nothing new before giving up.
MAX_STALLED_RESUMES = 5


class RegistryClient:
    """Speaks the distribution API to one registry host, with auth, retries and redirects."""

    def __init__(
        self,
        target_host: str,
        scheme: str,
        credentials: Credentials | None,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        anonymous_auth: AnonymousAuth | None = None,
        read_anonymously: bool = True,
    ) -> None:
        """``read_anonymously``: a read refused to ``credentials`` is tried again without."""
        self._transport = Transport(
            target_host,
            scheme,
            credentials,
            session=session,
            timeout=timeout,
            retry_policy=retry_policy if retry_policy is not None else RetryPolicy(retries),
            sleep=sleep,
            anonymous_auth=anonymous_auth,
            read_anonymously=read_anonymously,
        )

    @property
    def host(self) -> str:
        """The registry's ``host[:port]``, lowercased."""
        return self._transport.host

    @property
    def credentials(self) -> Credentials | None:
        """The credentials this client answers the registry's challenges with."""
        return self._transport.credentials

    @property
    def is_ghcr(self) -> bool:
        """Whether the registry is ghcr.io: the host, or one whose token challenge names the
        service ``ghcr.io`` (known once it has challenged a request)."""
        return self._transport.is_ghcr

    @property
    def traffic(self) -> Traffic:
        """How many requests were sent so far, token requests and fast-path reads among them."""
        return self._transport.traffic

    def location(self, repository: str) -> str:
        """Where ``repository`` is, for messages: ``host/repository``."""
        return f"{self.host}/{repository}"

    def store(self, repository: str) -> RegistryStore:
        """A store for one repository of this registry."""
        return RegistryStore(self, repository)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _url(self, repository: str, path: str) -> str:
        return self._transport.url(f"/v2/{repository}/{path}")

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        """Whether ``repository`` holds the blob ``digest``."""
        response = self._transport.request(
            "HEAD",
            self._url(repository, f"blobs/{digest}"),
            operation=f"checking blob {digest.short} in {self.location(repository)}",
            scopes=(pull_scope(repository),),
            expected=(200, 404),
            follow_redirects=True,
        )
        discard(response)
        return response.status_code == 200

    def mount_blob(self, repository: str, digest: Digest, source_repository: str) -> bool:
        """Link a blob of ``source_repository`` into ``repository``; False when refused."""
        operation = (
            f"mounting blob {digest.short} from {source_repository} "
            f"into {self.location(repository)}"
        )
        return Uploads(self._transport, repository).mount(digest, source_repository, operation)

    def push_blob(
        self, repository: str, blob: BlobSource, progress: ProgressCallback | None = None
    ) -> None:
        """Upload a blob whose digest is known, in one monolithic ``PUT``."""
        descriptor = blob.descriptor
        operation = f"pushing blob {descriptor.digest.short} to {self.location(repository)}"
        self._retrying(
            repository,
            operation,
            lambda: Uploads(self._transport, repository).put(blob, progress, operation),
        )

    def push_stream(
        self,
        repository: str,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None = None,
        before_commit: Callable[[Digest], None] | None = None,
    ) -> Digest:
        """Upload a blob while hashing it; commit it only once ``before_commit`` passed."""
        operation = f"pushing a blob of {size} bytes to {self.location(repository)}"
        return self._retrying(
            repository,
            operation,
            lambda: Uploads(self._transport, repository).stream(
                open_source, size, progress, before_commit, operation
            ),
        )

    def _retrying(self, repository: str, operation: str, upload: Callable[[], Digest]) -> Digest:
        """Run ``upload`` until it succeeds, a failure is permanent, or retries run out.

        A failed upload leaves its session in an unknown state, so each try starts over.
        """
        failures = 0
        sent: Digest | None = None
        while True:
            try:
                return upload()
            except Uploads.Sent as done:
                sent = done.digest
                error = done.error
            except RegistryError as failure:
                error = failure
            failures += 1
            if not error.temporary or not self._transport.should_retry(failures):
                raise error
            HTTP_LOG.debug("%s failed (%s); starting the upload again", operation, error)
            self._transport.pause(failures, error.retry_after)
            # The lost answer to the commit may have been the success: do not upload twice.
            if sent is not None and self.blob_exists(repository, sent):
                return sent

    @overload
    def blob_chunks(
        self, repository: str, descriptor: Descriptor, operation: str, buffers: None = None
    ) -> Iterator[bytes]: ...

    @overload
    def blob_chunks(
        self, repository: str, descriptor: Descriptor, operation: str, buffers: Buffers
    ) -> Iterator[bytes | memoryview]: ...

    def blob_chunks(
        self,
        repository: str,
        descriptor: Descriptor,
        operation: str,
        buffers: Buffers | None = None,
    ) -> Iterator[bytes | memoryview]:
        """A blob's bytes, unverified, resuming with ``Range`` after a dropped connection.

        With ``buffers``, chunks may be views of pooled buffers, which the consumer must
        release once done with each.
        """
        url = self._url(repository, f"blobs/{descriptor.digest}")
        offset = 0
        stalls = 0
        while True:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            response = self._transport.request(
                "GET",
                url,
                operation=operation,
                scopes=(pull_scope(repository),),
                expected=(200, 206) if offset else (200,),
                headers=headers,
                follow_redirects=True,
            )
            received_before = offset
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                # A compressed body would be inflated before it is verified: a small answer
                # could fill memory. Blobs are stored as they are; nothing else is accepted.
                response.close()
                raise UnsafeResponseError(
                    f"{operation}: the blob came with Content-Encoding {encoding[:40]!r}; "
                    "refusing it"
                )
            try:
                for chunk in resumed_chunks(response, offset, operation, buffers):
                    offset += len(chunk)
                    yield chunk
                return
            except BROKEN_BODY as error:
                if offset >= descriptor.size:
                    return  # everything announced arrived; verification has the last word
                stalls = 0 if offset > received_before else stalls + 1
                # The retry policy bounds resumes as it bounds every other request.
                if stalls >= MAX_STALLED_RESUMES or not self._transport.should_retry(stalls):
                    raise RegistryError(
                        f"{operation}: connection lost after {offset} bytes ({describe(error)})"
                    ) from None
                HTTP_LOG.debug("%s: connection lost at byte %d; resuming", operation, offset)
                self._transport.pause(stalls + 1)
            finally:
                response.close()

    # ------------------------------------------------------------------ manifests and tags

    def put_manifest(
        self, repository: str, raw: bytes, media_type: str, reference: str | None = None
    ) -> Digest:
        """Store a manifest or index under a tag, or by digest only; returns its digest.

        Only a write by digest is retried here: the same bytes under the same digest. A tag
        write that fails raises, and the caller decides what to write next.
        """
        digest = Digest.of_bytes(raw)
        # A tag write is never re-sent as is: after a pause, the body may be stale (an index
        # that others merged into meanwhile). The caller reads, merges and writes again.
        by_tag = reference is not None and is_valid_tag(reference)
        if len(raw) > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"manifest for {self.location(repository)} is {len(raw)} bytes, over the "
                f"{MAX_MANIFEST_SIZE} registries accept"
            )
        if reference is None:
            reference = str(digest)
        elif not is_valid_tag(reference) and Digest.parse(reference) != digest:
            raise DigestMismatchError(
                f"manifest bytes hash to {digest}, not to the reference {reference[:80]}"
            )
        operation = f"pushing manifest {reference} to {self.location(repository)}"
        response = self._transport.request(
            "PUT",
            self._url(repository, f"manifests/{reference}"),
            operation=operation,
            scopes=(push_scope(repository),),
            write=True,
            expected=(201, 200, 204),
            headers={"Content-Type": media_type},
            body=raw,
            retry=not by_tag,
        )
        discard(response)
        check_stored_digest(response, digest, operation)
        return digest

    def get_manifest(self, repository: str, reference: str) -> RawManifest | None:
        """A manifest or index by tag or digest (checked when by digest); None when absent."""
        by_digest = not is_valid_tag(reference)
        expected_digest = Digest.parse(reference) if by_digest else None
        what = f"manifest {reference} of {self.location(repository)}"
        response = self._transport.request(
            "GET",
            self._url(repository, f"manifests/{reference}"),
            operation=f"reading {what}",
            scopes=(pull_scope(repository),),
            expected=(200, 404),
            headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
            follow_redirects=True,
        )
        if response.status_code == 404:
            discard(response)
            return None
        raw = read_limited(response, MAX_MANIFEST_SIZE, what)
        if expected_digest is not None:
            actual = Digest.of_bytes(raw, expected_digest.algorithm)
            if actual != expected_digest:
                raise DigestMismatchError(
                    f"{what}: content hashes to {actual.short}..., refusing it"
                )
            digest = Digest.of_bytes(raw) if expected_digest.algorithm != "sha256" else actual
        else:
            # A tag can move at any time: the bytes received are what counts, not a header.
            digest = Digest.of_bytes(raw)
        header_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
        media_type = header_type if header_type in MANIFEST_ACCEPT else None
        media_type = media_type or media_type_of(raw) or header_type
        return RawManifest(raw, media_type, digest)

    def delete_manifest(self, repository: str, digest: Digest) -> bool:
        """Delete a manifest or index by digest (and every tag naming it); False when absent.

        Registries may refuse: distribution unless ``storage.delete.enabled``, ghcr.io always
        (405); the error says so.
        """
        operation = f"deleting manifest {digest.short} from {self.location(repository)}"
        response = self._transport.request(
            "DELETE",
            self._url(repository, f"manifests/{digest}"),
            operation=operation,
            scopes=(delete_scope(repository),),
            write=True,
            expected=(200, 202, 204, 404),
        )
        discard(response)
        return response.status_code != 404

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, all pages; empty when it does not exist."""
        operation = f"listing tags of {self.location(repository)}"
        tags: list[str] = []
        pages = self._pages(
            self._url(repository, f"tags/list?n={TAGS_PER_PAGE}"),
            operation,
            (pull_scope(repository),),
            limit=MAX_TAG_BYTES,
            total=MAX_TAG_BYTES,
            max_pages=MAX_TAG_PAGES,
            what=f"{operation}: tag list",
        )
        for body in pages:
            if body is None:
                # NAME_UNKNOWN: the repository does not exist yet, so it has no tags.
                return tags
            tags.extend(_parse_tags(body, operation))
            if len(tags) > MAX_TAGS:
                raise TooLargeError(f"{operation}: more than {MAX_TAGS} tags; refusing the list")
        return list(dict.fromkeys(tags))

    def list_repositories(self, namespace: str) -> list[str]:
        """The names of the repositories right under ``namespace``, from ``/v2/_catalog``.

        distribution answers it (to anyone allowed ``registry:catalog:*``); ghcr.io and most
        hosted registries do not, and the error tells the caller to do without a list.
        """
        prefix = f"{namespace}/" if namespace else ""
        names: list[str] = []
        pages = self._pages(
            self._transport.url(f"/v2/_catalog?n={CATALOG_PAGE}"),
            "listing the catalog",
            ("registry:catalog:*",),
            limit=MAX_CATALOG_PAGE_BODY,
            total=MAX_CATALOG_BYTES,
            max_pages=MAX_CATALOG_PAGES,
            what=f"the catalog of {self.host}",
            absent_is_empty=False,
            refuse_elsewhere=False,
        )
        for body in pages:
            for repository in _parse_catalog(body or b"", self.host):
                rest = repository[len(prefix) :]
                if repository.startswith(prefix) and rest and "/" not in rest:
                    names.append(rest)
        return names

    def _pages(
        self,
        url: str,
        operation: str,
        scopes: tuple[str, ...],
        *,
        limit: int,
        total: int,
        max_pages: int,
        what: str,
        absent_is_empty: bool = True,
        refuse_elsewhere: bool = True,
    ) -> Iterator[bytes | None]:
        """The bodies of a list the registry pages with ``Link: <...>; rel="next"``.

        A page is read up to ``limit`` bytes, and all pages together up to ``total``
        (:class:`TooLargeError` beyond either); the caller keeps what it needs of each page.

        With ``absent_is_empty``, a 404 yields None and ends the list. A next page on
        another host is a request the user never asked for (SSRF): with
        ``refuse_elsewhere`` it is an error (a list cut short would hide entries),
        otherwise the list ends there.
        """
        seen: set[str] = set()
        left = total
        while url and len(seen) < max_pages:
            seen.add(url)
            response = self._transport.request(
                "GET",
                url,
                operation=operation,
                scopes=scopes,
                expected=(200, 404) if absent_is_empty else (200,),
            )
            if response.status_code == 404:
                discard(response)
                yield None
                return
            links = response.links
            if left < limit:
                what = f"{what} (all pages together)"
            body = read_limited(response, min(limit, left), what)
            left -= len(body)
            yield body
            next_link = links.get("next", {}).get("url")
            url = ""
            if next_link:
                candidate = urljoin(response.url, next_link)
                if not self._transport.same_origin(candidate):
                    if refuse_elsewhere:
                        raise UnsafeResponseError(
                            f"{operation}: the next page is on another host; refusing it"
                        )
                    return
                if candidate not in seen:
                    url = candidate


def _parse_tags(body: bytes, operation: str) -> Iterable[str]:
    try:
        value = load_json(body)
    except ValueError:
        raise UnsafeResponseError(f"{operation}: the tag list is not JSON") from None
    tags = value.get("tags") if isinstance(value, dict) else None
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise UnsafeResponseError(f"{operation}: the tag list is malformed")
    return [tag for tag in tags if isinstance(tag, str)]


def _parse_catalog(body: bytes, host: str) -> list[str]:
    try:
        value = load_json(body) if body else {}
    except ValueError:
        raise MalformedDocumentError(f"the catalog of {host} is not JSON") from None
    repositories = value.get("repositories") if isinstance(value, dict) else None
    if not isinstance(repositories, list):
        raise MalformedDocumentError(f"the catalog of {host} is malformed")
    return [name for name in repositories if isinstance(name, str)]
