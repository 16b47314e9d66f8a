"""Blob upload sessions: opened with a ``POST``, sent, committed by digest, or cancelled.

Two ways to send, both streaming from the source and never holding the blob:
a monolithic ``PUT ?digest=`` for a blob whose digest is known, and one ``PATCH`` hashing as
it goes, then an empty ``PUT ?digest=`` naming what was hashed, for one whose digest is not.
``ghcr.io`` refuses chunked ``PATCH`` requests over 4 MiB but takes one ``PATCH`` without
``Content-Range``. Each call is one try; the client decides whether to try again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping
from typing import BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import requests

from setuptools_ghcr.core.oci import Digest
from setuptools_ghcr.errors import (
    DigestMismatchError,
    GhcrError,
    RegistryError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.registry.challenge import mount_scopes, push_scope
from setuptools_ghcr.storage.registry.responses import check_stored_digest, discard
from setuptools_ghcr.storage.registry.streams import Body, HashedStream
from setuptools_ghcr.storage.registry.transport import Transport
from setuptools_ghcr.storage.store import BlobSource, ProgressCallback

__all__ = ["Uploads"]


class Uploads:
    """The blob uploads of one repository."""

    class Sent(Exception):
        """An upload whose commit failed: what was sent, and why it failed.

        The answer to the commit may have been lost after the registry stored the blob.
        """

        def __init__(self, digest: Digest, error: RegistryError) -> None:
            super().__init__(str(error))
            self.digest = digest
            self.error = error

    def __init__(self, transport: Transport, repository: str) -> None:
        self._transport = transport
        self._repository = repository
        self._url = transport.url(f"/v2/{repository}/blobs/uploads/")
        self._scopes = (push_scope(repository),)

    def mount(self, digest: Digest, source_repository: str, operation: str) -> bool:
        """Mount a blob from another repository; False when the registry declines."""
        response = self._transport.request(
            "POST",
            f"{self._url}?mount={digest}&from={quote(source_repository, safe='/')}",
            operation=operation,
            scopes=mount_scopes(self._repository, source_repository),
            write=True,
            expected=(201, 202),
        )
        discard(response)
        if response.status_code == 201:
            return True
        # 202: the registry opened an ordinary upload instead; close it rather than leave it.
        location = response.headers.get("Location")
        if location:
            self._cancel(urljoin(response.url, location), operation)
        return False

    def put(self, blob: BlobSource, progress: ProgressCallback | None, operation: str) -> Digest:
        """POST for an upload location, then one monolithic PUT streaming the whole blob.

        Any failure raises :class:`Sent`: a failed PUT leaves the session in an unknown
        state (some bytes, or all of them, may have been stored).
        """
        descriptor = blob.descriptor
        try:
            url = self._start(operation)
        except RegistryError as error:
            raise Uploads.Sent(descriptor.digest, error) from error
        return self._commit(
            url,
            descriptor.digest,
            operation,
            headers={"Content-Type": "application/octet-stream"},
            body=blob,
            size=descriptor.size,
            progress=progress,
        )

    def stream(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None,
        before_commit: Callable[[Digest], None] | None,
        operation: str,
    ) -> Digest:
        """POST, one PATCH streaming the whole blob while hashing it, then the commit.

        The commit (``PUT ?digest=`` with an empty body) names the digest computed over the
        bytes sent, and the registry checks it against the bytes it received.
        """
        url = self._start(operation)
        body = HashedStream(open_source, size)
        try:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            response = self._send(
                "PATCH", url, operation, (202, 204), headers=headers, body=body, progress=progress
            )
            url = self._next_location(response, operation)
            if body.hasher.size != size:
                raise DigestMismatchError(f"{operation}: sent {body.hasher.size} bytes")
            digest = body.hasher.digest()
            if before_commit is not None:
                before_commit(digest)
        except BaseException:
            self._cancel(url, operation)
            raise
        return self._commit(url, digest, operation)

    def _start(self, operation: str) -> str:
        """POST for an upload session; its location as an absolute URL, checked."""
        response = self._send("POST", self._url, operation, (202,))
        return self._next_location(response, operation)

    def _commit(
        self,
        url: str,
        digest: Digest,
        operation: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = b"",
        size: int = 0,
        progress: ProgressCallback | None = None,
    ) -> Digest:
        """``PUT ?digest=``: with the whole blob as ``body``, or empty after a ``PATCH``.

        A failure raises :class:`Sent`: it leaves the session in an unknown state, and
        the answer may have been lost after the registry stored the blob.
        """
        headers = {**(headers or {}), "Content-Length": str(size)}
        try:
            response = self._send(
                "PUT",
                _with_digest(url, digest),
                operation,
                (201, 204),
                headers=headers,
                body=body,
                progress=progress,
            )
        except RegistryError as error:
            raise Uploads.Sent(digest, error) from error
        check_stored_digest(response, digest, operation)
        return digest

    def _next_location(self, response: requests.Response, operation: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise UnsafeResponseError(
                f"{operation}: {self._transport.host} gave no upload location"
            )
        # The location is used exactly as given: it may be relative, absolute, on another
        # host, and may already carry a query string (ghcr's and distribution's do).
        url = urljoin(response.url, location)
        # The body must not go to a file:, ftp: ... URL, nor leave https for plain http.
        self._transport.check_location(url, operation, "sent the upload")
        return url

    def _cancel(self, url: str, operation: str) -> None:
        with contextlib.suppress(GhcrError):
            self._send("DELETE", url, f"{operation} (cancelling the upload)", range(200, 500))

    def _send(
        self,
        method: str,
        url: str,
        operation: str,
        expected: Collection[int],
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        progress: ProgressCallback | None = None,
    ) -> requests.Response:
        """One request of an upload session, its answer read to the end.

        Never retried alone: what a failed request left behind is unknown, so the client
        tries the whole upload again.
        """
        response = self._transport.request(
            method,
            url,
            operation=operation,
            scopes=self._scopes,
            write=True,
            expected=expected,
            headers=headers,
            body=body,
            progress=progress,
            retry=False,
        )
        discard(response)
        return response


def _with_digest(url: str, digest: Digest) -> str:
    """An upload location with ``digest=`` added to its query (it may already have one)."""
    separator = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
    return url + separator + f"digest={quote(str(digest), safe=':')}"
