"""The OCI distribution API over HTTP: one client per registry, and a store per repository.

:class:`RegistryClient` owns the transport concerns: one ``requests.Session`` (so connections
are reused), the ``WWW-Authenticate``-driven Basic or Bearer flow with one token per scope,
retries with backoff, redirects followed by hand so that ``Authorization`` never reaches
another host, and OCI error bodies decoded into one-line errors without secrets.
:class:`RegistryStore` implements ``store.Store`` for one repository on top of it: blobs
stream both ways (never held whole in memory), downloads resume, and everything read is
verified against its digest.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import mmap
import os
import queue
import random
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, cast, overload
from urllib.parse import quote, urljoin, urlsplit

import requests

from setuptools_ghcr import __version__
from setuptools_ghcr.core.oci import (
    MANIFEST_ACCEPT,
    MAX_MANIFEST_SIZE,
    Descriptor,
    Digest,
    DigestWriter,
    is_valid_tag,
    media_type_of,
    page_buffer,
    verified_chunks,
)
from setuptools_ghcr.core.targets import RegistryTarget, is_loopback_host
from setuptools_ghcr.errors import (
    AuthenticationError,
    DigestMismatchError,
    GhcrError,
    InvalidReferenceError,
    RegistryError,
    RegistryNotFoundError,
    TooLargeError,
    UnsafeResponseError,
)
from setuptools_ghcr.storage.registry.auth import (
    Challenge,
    Credentials,
    Redactor,
    TokenCache,
    TokenKey,
    mount_scopes,
    parse_challenges,
    parse_token_response,
    pull_scope,
    push_scope,
    redact_url,
)
from setuptools_ghcr.storage.registry.retry import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
)
from setuptools_ghcr.storage.store import BlobSource, ProgressCallback, RawManifest

if TYPE_CHECKING:
    from _typeshed import SupportsRead

__all__ = ["RegistryClient", "RegistryStore"]

_http_log = logging.getLogger("setuptools_ghcr.http")

#: Blobs move in chunks this big: small chunks cost a Python round trip each, and at a MiB
#: the per-chunk overhead is lost in the noise of hashing and copying. A download that
#: breaks loses at most the chunk being read, so it is not bigger.
CHUNK_SIZE = 1 << 20
#: Error bodies, token answers and other small documents are read only up to these sizes.
MAX_ERROR_BODY = 64 << 10
MAX_TOKEN_BODY = 1 << 20
MAX_TAG_PAGE = 16 << 20
MAX_TAG_PAGES = 10_000
MAX_REDIRECTS = 10
#: Resumes of one download that received nothing new before giving up.
MAX_STALLED_RESUMES = 5
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 4

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class _Call:
    """One request as the caller asked for it, before authentication and retries."""

    method: str
    url: str
    operation: str
    headers: Mapping[str, str]
    body: _Body = None
    progress: ProgressCallback | None = None
    retry: bool = True


class _NoNetrc(requests.auth.AuthBase):
    """An explicit no-op auth, so that requests never adds ``~/.netrc`` credentials itself.

    This client alone decides which host gets which ``Authorization`` header.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_NETRC = _NoNetrc()


class _HashedStream:
    """A request body of known length whose digest is computed as it is sent.

    Each send opens the source afresh and starts a new hash (a body refused with a 401 is
    sent again), so :attr:`hasher` always holds what the last send read.
    """

    def __init__(self, open_source: Callable[[], BinaryIO], size: int) -> None:
        self._open = open_source
        self.size = size
        self.hasher = DigestWriter()

    def start(self) -> BinaryIO:
        self.hasher = DigestWriter()
        return self._open()


_Body = bytes | BlobSource | _HashedStream | None


class _UploadBody:
    """A request body of known length read from a stream in big chunks, counting progress.

    Having ``__len__`` makes requests send ``Content-Length`` and hand this object to the
    connection, which then calls ``read`` until it is drained: the file is streamed, never
    loaded. The connection asks for small blocks (16 KiB); ``read`` deliberately returns
    bigger ones, read into one reused buffer, so that Python-level reads, socket writes and
    allocations stay few. Reusing the buffer is safe because the connection sends each block
    before it asks for the next.
    """

    def __init__(
        self,
        stream: BinaryIO,
        size: int,
        progress: ProgressCallback | None,
        what: str,
        hasher: DigestWriter | None = None,
    ) -> None:
        self._stream = stream
        self._size = size
        self._left = size
        self._progress = progress
        self._what = what
        self._hasher = hasher
        self._view = memoryview(page_buffer(min(CHUNK_SIZE, size)))[: min(CHUNK_SIZE, size)]

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes | memoryview:
        if self._left <= 0:
            return b""
        view = self._view[: min(len(self._view), self._left)]
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            count = readinto(view) or 0
            data: bytes | memoryview = view[:count]
        else:
            data = self._stream.read(len(view))
            count = len(data)
        if not count:
            raise DigestMismatchError(
                f"{self._what}: the file ended {self._left} bytes early; did it change?"
            )
        self._left -= count
        if self._hasher is not None:
            # Hashing here, between reading a block and sending it, costs no extra pass
            # over the file: the registry is slower to take the block than this is to hash it.
            self._hasher.update(data)
        if self._progress is not None:
            self._progress(count)
        return data


class _ShortBody(Exception):
    """The connection ended before the announced ``Content-Length`` arrived."""


#: How a body stream breaks: requests' wrappers, or socket and http.client errors when the
#: body is read straight from the connection.
_BROKEN_BODY = (
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    http.client.HTTPException,
    OSError,
    _ShortBody,
)


class _Buffers:
    """A few reused receive buffers for one download.

    A buffer is taken before a chunk is read into it and released once the chunk has been
    written and hashed; waiting for a free one is the back-pressure that bounds memory.
    Reusing buffers spares a fresh allocation (and its page faults) per chunk, which is most
    of what a download costs beyond the copies themselves.
    """

    def __init__(self, count: int = 8, size: int = CHUNK_SIZE) -> None:
        # Page-aligned (see oci.page_buffer): a socket read into them is a cheaper copy.
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._count = count
        self._size = size
        self._created = 0

    def take(self) -> mmap.mmap:
        """A free buffer; only one thread (the receiving one) takes."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            # Created on demand, so that a small download allocates one buffer, not all.
            if self._created < self._count:
                self._created += 1
                return page_buffer(self._size)
        return self._free.get()

    def give_back(self, buffer: mmap.mmap) -> None:
        self._free.put(buffer)

    def release(self, chunk: bytes | memoryview) -> None:
        """Return the buffer behind a chunk (chunks that are plain bytes have none)."""
        if isinstance(chunk, memoryview) and isinstance(chunk.obj, mmap.mmap):
            self._free.put(chunk.obj)


_Chunk = bytes | memoryview


class _Worker:
    """Does one step to every chunk of a download, in order, on its own thread.

    A download receives, writes and hashes; socket reads, file writes and hashlib all
    release the GIL, so with each step on its own thread they overlap on several cores and
    the download takes about as long as its slowest step rather than the sum of the three.
    Each chunk is handed on (``then``) once done, even after a failure, so that buffers
    always flow back; the failure is raised by :meth:`check` or :meth:`finish`.
    """

    def __init__(self, work: Callable[[_Chunk], object], then: Callable[[_Chunk], None]) -> None:
        self._work = work
        self._then = then
        self._queue: queue.SimpleQueue[_Chunk | None] = queue.SimpleQueue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="blob-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            try:
                if self._failure is None:
                    self._work(chunk)
            except BaseException as error:  # raised again in the caller's thread
                self._failure = error
            finally:
                self._then(chunk)

    def submit(self, chunk: _Chunk) -> None:
        self._queue.put(chunk)

    def check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def finish(self) -> None:
        """Wait until every submitted chunk is done; raise the step's failure if any."""
        self._queue.put(None)
        self._thread.join()
        self.check()


def _body_chunks(
    response: requests.Response, buffers: _Buffers | None
) -> Iterator[bytes | memoryview]:
    """The chunks of a streamed body: views of pooled buffers when it can be read into them.

    Reading into a buffer needs the standard library response under urllib3's (present in
    urllib3 1 and 2); without it, or for an encoded body, requests' own iteration is used.
    """
    raw = getattr(response.raw, "_fp", None)
    if (
        buffers is None
        or not isinstance(raw, http.client.HTTPResponse)
        or response.headers.get("Content-Encoding", "identity").lower() != "identity"
    ):
        yield from response.iter_content(CHUNK_SIZE)
        return
    declared = response.headers.get("Content-Length", "")
    expected = int(declared) if declared.isdigit() else None
    received = 0
    while True:
        buffer = buffers.take()
        try:
            count = raw.readinto(buffer)
        except BaseException:
            buffers.give_back(buffer)
            raise
        if not count:
            buffers.give_back(buffer)
            break
        received += count
        yield memoryview(buffer)[:count]
    # http.client reports a connection that closed early as a plain end of body.
    if expected is not None and received < expected:
        raise _ShortBody(f"got {received} of {expected} bytes")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, host if port in (None, default) else f"{host}:{port}"


def _discard(response: requests.Response, limit: int = MAX_ERROR_BODY) -> None:
    """Finish with a response so that its connection goes back to the pool when cheap."""
    try:
        read = 0
        for chunk in response.iter_content(64 << 10):
            read += len(chunk)
            if read > limit:
                break
    except requests.RequestException:
        pass
    finally:
        response.close()


def _read_limited(response: requests.Response, limit: int, what: str) -> bytes:
    """The whole body of a small response; TooLargeError beyond ``limit`` bytes."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise TooLargeError(f"{what} is {declared} bytes, over the {limit} accepted")
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(64 << 10):
            total += len(chunk)
            if total > limit:
                raise TooLargeError(f"{what} is over the {limit} bytes accepted")
            chunks.append(chunk)
    except requests.RequestException as error:
        raise RegistryError(f"{what}: {_describe(error)}") from None
    finally:
        response.close()
    return b"".join(chunks)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception behind it (cause, context, urllib3's ``reason``, args)."""
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested.extend(current.args)
        stack.extend(item for item in nested if isinstance(item, BaseException))


def _describe(error: BaseException) -> str:
    """A short, secret-free reason for a transport failure (no URLs, which carry state)."""
    for current in _causes(error):
        if isinstance(current, requests.exceptions.SSLError):
            return "TLS handshake or certificate verification failed"
        if isinstance(current, (requests.Timeout, TimeoutError)):
            return "timed out"
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
    return "connection failed"


def _permanent(error: BaseException) -> bool:
    """Whether a transport failure cannot heal by itself: a name that does not resolve, or
    a certificate that does not verify. Those are reported at once instead of retried."""
    return any(
        isinstance(current, (socket.gaierror, requests.exceptions.SSLError))
        for current in _causes(error)
    )


def _decode_errors(body: bytes) -> tuple[list[str], list[str]]:
    """The OCI error codes and their messages from an error body (best effort)."""
    try:
        value = json.loads(body)
    except ValueError:
        return [], []
    errors = value.get("errors") if isinstance(value, dict) else None
    codes: list[str] = []
    messages: list[str] = []
    if isinstance(errors, list):
        for item in errors[:10]:
            if not isinstance(item, dict):
                continue
            code, message = item.get("code"), item.get("message")
            if isinstance(code, str):
                codes.append(code[:64])
                text = f"{code[:64]}: {message[:200]}" if isinstance(message, str) else code[:64]
                messages.append(text)
    return codes, messages


_UNKNOWN_CODES = frozenset(
    {"BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_UNKNOWN"}
)


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
    ) -> None:
        if scheme not in ("http", "https"):
            raise InvalidReferenceError(f"registry scheme must be http or https, not {scheme!r}")
        self.host = target_host.lower()
        self.scheme = scheme
        self.base_url = f"{scheme}://{self.host}"
        self._origin = _origin(self.base_url)
        self._credentials = credentials
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        # Connecting should be quick; a read may wait for a registry finishing a big upload.
        self._timeout = (min(timeout, 30.0), timeout)
        self._policy = retry_policy if retry_policy is not None else RetryPolicy(retries=retries)
        self._sleep = sleep
        self._challenge: Challenge | None = None
        self._tokens = TokenCache()
        self._anonymous_pulls: set[tuple[str, ...]] = set()
        # The Basic value too: a registry (or a proxy) may echo the header back in an error.
        self._redactor = Redactor(
            [credentials.password, credentials.basic_header().split(" ", 1)[1]]
            if credentials is not None
            else []
        )

    @classmethod
    def for_target(
        cls,
        target: RegistryTarget,
        credentials: Credentials | None,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> RegistryClient:
        """A client for a parsed ``REGISTRY/NAMESPACE`` target (http on loopback only)."""
        return cls(
            target.host,
            target.scheme,
            credentials,
            session=session,
            timeout=timeout,
            retries=retries,
        )

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = (
            f"setuptools-ghcr/{__version__} {requests.utils.default_user_agent()}"
        )
        return session

    @property
    def credentials(self) -> Credentials | None:
        return self._credentials

    def store(self, repository: str) -> RegistryStore:
        """A store for one repository of this registry."""
        return RegistryStore(self, repository)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``/v2/<name>/tags/list``."""
        return self.base_url + path

    def redact(self, text: str) -> str:
        """``text`` with every secret this client knows of (and secret-like parts) hidden.

        Tokens join the redactor as they are fetched (see ``_bearer``).
        """
        return self._redactor(text)

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on this registry (scheme, host and port)."""
        return _origin(url) == self._origin

    def should_retry(self, retry_number: int) -> bool:
        """Whether the retry policy allows retry number ``retry_number`` (from 1)."""
        return self._policy.should_retry(retry_number)

    def pause(self, retry_number: int, retry_after: float | None = None) -> None:
        """Sleep before retry number ``retry_number``: backoff with jitter, or Retry-After."""
        self._sleep(self._policy.delay(retry_number, retry_after, random.random()))  # noqa: S311

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        scopes: tuple[str, ...],
        write: bool = False,
        expected: Collection[int] = (200,),
        headers: Mapping[str, str] | None = None,
        body: _Body = None,
        progress: ProgressCallback | None = None,
        follow_redirects: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send one API request; return the (streamed) response if its status is expected.

        ``scopes`` are the token scopes the request needs and ``write`` says whether it
        changes the repository (a refused read is retried anonymously, a write is not).
        Any other status raises the decoded error. The caller must close the response.
        A URL on another host (an upload location may be one) gets no ``Authorization``.
        """
        call = _Call(method, url, operation, dict(headers or {}), body, progress, retry)
        response = self._send(call, scopes, write)
        hops = 0
        while follow_redirects and response.status_code in _REDIRECTS:
            location = response.headers.get("Location")
            _discard(response)
            hops += 1
            if not location or hops > MAX_REDIRECTS:
                raise UnsafeResponseError(
                    f"{operation}: {self.host} redirected too often or without a location"
                )
            call = replace(call, url=urljoin(call.url, location))
            self._check_redirect(call.url, operation)
            response = self._send(call, scopes, write)
        if response.status_code in expected:
            return response
        raise self.error(response, operation)

    def _check_redirect(self, url: str, operation: str, how: str = "redirected") -> None:
        """Refuse a URL the registry points us at that is not web, or drops https."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeResponseError(f"{operation}: {self.host} {how} to a non-HTTP URL")
        if (
            parts.scheme == "http"
            and self.scheme == "https"
            and not is_loopback_host(parts.netloc.rpartition("@")[2])
        ):
            raise UnsafeResponseError(
                f"{operation}: {self.host} {how} from https to plain http; refusing"
            )

    def _send(self, call: _Call, scopes: tuple[str, ...], write: bool) -> requests.Response:
        if self.same_origin(call.url):
            return self._authorized(call, scopes, write)
        # Another host (a CDN, a storage service): the registry's credentials stay home.
        return self._transmit(call)

    def _transmit(self, call: _Call, authorization: str | None = None) -> requests.Response:
        """Send a request as is, retrying transport failures and "try later" answers."""
        method, url, body, operation = call.method, call.url, call.body, call.operation
        headers = dict(call.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        attempt = 0
        while True:
            stream: BinaryIO | None = None
            data: bytes | SupportsRead[bytes] | None = None
            if isinstance(body, bytes):
                data = body
            elif isinstance(body, _HashedStream):
                stream = body.start()
                data = cast(
                    "SupportsRead[bytes]",
                    _UploadBody(stream, body.size, call.progress, operation, body.hasher),
                )
            elif body is not None:
                # Each attempt reads the source again from its start; nothing is buffered.
                stream = body.open()
                # Blocks may be memoryviews: the connection sends any buffer as is.
                data = cast(
                    "SupportsRead[bytes]",
                    _UploadBody(stream, body.descriptor.size, call.progress, operation),
                )
            started = time.monotonic()
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    stream=True,
                    allow_redirects=False,
                    timeout=self._timeout,
                    auth=_NO_NETRC,
                )
            except requests.RequestException as error:
                reason = _describe(error)
                _http_log.debug("%s %s -> %s", method, redact_url(url), reason)
                attempt += 1
                if not call.retry or _permanent(error) or not self._policy.should_retry(attempt):
                    raise RegistryError(
                        f"{operation}: cannot reach {_origin(url)[1]}: {reason}"
                    ) from None
                self.pause(attempt)
                continue
            finally:
                if stream is not None:
                    stream.close()
            elapsed = (time.monotonic() - started) * 1000
            _http_log.debug(
                "%s %s -> %d (%.0f ms)", method, redact_url(url), response.status_code, elapsed
            )
            if response.status_code not in RETRYABLE_STATUSES or not call.retry:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if not self._policy.should_retry(attempt + 1) or (
                retry_after is not None and retry_after > self._policy.max_retry_after
            ):
                return response
            attempt += 1
            _discard(response)
            self.pause(attempt, retry_after)

    # ------------------------------------------------------------------ authentication

    def _authorized(self, call: _Call, scopes: tuple[str, ...], write: bool) -> requests.Response:
        """Send to the registry itself, answering its challenges (at most once each way)."""
        operation = call.operation

        def send(authorization: str | None) -> requests.Response:
            return self._transmit(call, authorization)

        key = tuple(sorted(scopes))
        anonymous = self._credentials is None or (not write and key in self._anonymous_pulls)
        authorization, anonymous = self._authorization(scopes, write, anonymous, operation)
        response = send(authorization)
        if response.status_code == 401:
            challenge = self._pick_challenge(response)
            if challenge is not None:
                wanted = scopes
                if challenge.error == "insufficient_scope":
                    wanted = tuple(sorted(set(scopes) | set(challenge.scopes)))
                self._challenge = challenge
                # What was sent was refused: a cached token must not be offered again.
                retried, anonymous = self._authorization(
                    wanted, write, anonymous, operation, refresh=authorization is not None
                )
                if retried is not None and retried != authorization:
                    _discard(response)
                    authorization = retried
                    response = send(authorization)
        if (
            response.status_code in (401, 403)
            and not write
            and not anonymous
            and self._challenge is not None
        ):
            # Stale stored credentials must not stop reading public content (ghcr answers
            # 403 to expired ones even where anonymous reading is allowed).
            fallback, _ = self._authorization(scopes, write, True, operation)
            if fallback != authorization:
                _discard(response)
                response = send(fallback)
                if response.status_code < 400:
                    _http_log.debug("credentials refused for reading; reading anonymously")
                    self._anonymous_pulls.add(key)
        return response

    @staticmethod
    def _pick_challenge(response: requests.Response) -> Challenge | None:
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        for scheme in ("bearer", "basic"):
            for challenge in challenges:
                if challenge.scheme == scheme and (scheme == "basic" or challenge.realm):
                    return challenge
        return None

    def _authorization(
        self,
        scopes: tuple[str, ...],
        write: bool,
        anonymous: bool,
        operation: str,
        refresh: bool = False,
    ) -> tuple[str | None, bool]:
        """The ``Authorization`` value for a request and whether it ended up anonymous.

        Only once the registry has challenged is anything sent. A read whose credentials the
        token service refuses goes on with an anonymous token.
        """
        challenge = self._challenge
        if challenge is None:
            return None, anonymous
        if challenge.scheme == "basic":
            if anonymous or self._credentials is None:
                return None, True
            return self._credentials.basic_header(), False
        try:
            token = self._bearer(challenge, scopes, anonymous, operation, refresh)
        except AuthenticationError:
            if write or anonymous:
                raise
            anonymous = True
            token = self._bearer(challenge, scopes, anonymous, operation, refresh)
        return f"Bearer {token}", anonymous

    def _bearer(
        self,
        challenge: Challenge,
        scopes: tuple[str, ...],
        anonymous: bool,
        operation: str,
        refresh: bool,
    ) -> str:
        realm = challenge.realm or ""
        parts = urlsplit(realm)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and is_loopback_host(parts.netloc.rpartition("@")[2])
        ):
            raise UnsafeResponseError(
                f"{operation}: {self.host} sends credentials to a token service that is not "
                "https; refusing"
            )
        service = challenge.service or ""
        key = TokenKey.of(realm, service, scopes, anonymous)
        if refresh:
            self._tokens.discard(key)
        cached = self._tokens.get(key)
        if cached is not None:
            return cached.value
        params = [("service", service)] if service else []
        params.extend(("scope", scope) for scope in key.scopes)
        query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
        url = realm + ("&" if parts.query else "?") + query if query else realm
        credentials = None if anonymous else self._credentials
        # The realm is where the registry told us to log in, so Basic credentials go there.
        response = self._transmit(
            _Call("GET", url, operation, {"Accept": "application/json"}),
            None if credentials is None else credentials.basic_header(),
        )
        if response.status_code in (401, 403):
            _discard(response)
            if credentials is not None:
                raise AuthenticationError(
                    f"{operation}: the token service of {self.host} refused the credentials "
                    f"from {credentials.source or 'the command line'} "
                    f"(user {credentials.username!r})",
                    status=response.status_code,
                )
            raise AuthenticationError(
                f"{operation}: {self.host} requires credentials; log in with "
                f"'docker login {self.host}' or pass --username/--password",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise self.error(response, f"{operation} (getting a token)")
        body = _read_limited(response, MAX_TOKEN_BODY, f"{operation}: token answer")
        token = parse_token_response(body, time.monotonic(), operation)
        self._redactor.add(token.value)
        self._tokens.put(key, token)
        return token.value

    # ------------------------------------------------------------------ errors

    def error(self, response: requests.Response, operation: str) -> GhcrError:
        """Turn an unwanted answer into an error (closing the response)."""
        status = response.status_code
        answered_by = _origin(response.url or self.base_url)[1]
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            body = _read_limited(response, MAX_ERROR_BODY, "error body")
        except GhcrError:
            body = b""
        codes, messages = _decode_errors(body)
        text = f"{operation}: {answered_by} answered {status} {response.reason or ''}".rstrip()
        if messages:
            text += " (" + "; ".join(messages) + ")"
        if status in (401, 403):
            credentials = self._credentials
            challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
            denied = (
                status == 403
                or "DENIED" in codes
                or any(c.error == "insufficient_scope" for c in challenges)
            )
            if credentials is None:
                text += f"; log in with 'docker login {self.host}' or pass --username/--password"
            elif denied:
                text += f"; user {credentials.username!r} is not allowed to do this"
            else:
                text += f"; the credentials from {credentials.source or 'the command line'} "
                text += "were refused"
            return AuthenticationError(self.redact(text), status=status, codes=codes)
        text = self.redact(text)
        # distribution answers 400 MANIFEST_BLOB_UNKNOWN to an index naming a missing
        # manifest: it is the same "not there" as a 404, and the layout store says so too.
        if status == 404 or set(codes) & _UNKNOWN_CODES:
            return RegistryNotFoundError(text, status=status, codes=codes)
        if status == 413:
            return TooLargeError(text)
        if {"DIGEST_INVALID", "SIZE_INVALID"} & set(codes):
            return DigestMismatchError(text)
        return RegistryError(text, status=status, codes=codes, retry_after=retry_after)


class RegistryStore:
    """One repository of a registry, behind the ``store.Store`` interface."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self._repository = repository
        self._base = client.url(f"/v2/{repository}")

    @property
    def location(self) -> str:
        return f"{self._client.host}/{self._repository}"

    @property
    def repository(self) -> str:
        return self._repository

    @property
    def client(self) -> RegistryClient:
        return self._client

    def _pull(self) -> tuple[str, ...]:
        return (pull_scope(self._repository),)

    def _push(self) -> tuple[str, ...]:
        return (push_scope(self._repository),)

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, digest: Digest) -> bool:
        response = self._client.request(
            "HEAD",
            f"{self._base}/blobs/{digest}",
            operation=f"checking blob {digest.short} in {self.location}",
            scopes=self._pull(),
            expected=(200, 404),
            follow_redirects=True,
        )
        _discard(response)
        return response.status_code == 200

    def mount_blob(self, digest: Digest, source_repository: str) -> bool:
        operation = f"mounting blob {digest.short} from {source_repository} into {self.location}"
        response = self._client.request(
            "POST",
            f"{self._base}/blobs/uploads/?mount={digest}&from={quote(source_repository, safe='/')}",
            operation=operation,
            scopes=mount_scopes(self._repository, source_repository),
            write=True,
            expected=(201, 202),
        )
        _discard(response)
        if response.status_code == 201:
            return True
        # 202: the registry opened an ordinary upload instead; close it rather than leave it.
        location = response.headers.get("Location")
        if location:
            self._cancel_upload(urljoin(response.url, location), operation)
        return False

    def _cancel_upload(self, url: str, operation: str) -> None:
        with contextlib.suppress(GhcrError):
            response = self._client.request(
                "DELETE",
                url,
                operation=f"{operation} (cancelling the upload)",
                scopes=self._push(),
                write=True,
                expected=range(200, 500),
                retry=False,
            )
            _discard(response)

    def push_blob(self, blob: BlobSource, progress: ProgressCallback | None = None) -> None:
        descriptor = blob.descriptor
        operation = f"pushing blob {descriptor.digest.short} to {self.location}"
        failures = 0
        while True:
            try:
                self._upload(blob, progress, operation)
                return
            except RegistryError as error:
                failures += 1
                if not error.temporary or not self._client.should_retry(failures):
                    raise
                _http_log.debug("%s failed (%s); starting the upload again", operation, error)
                self._client.pause(failures, error.retry_after)
                # The lost answer may have been the success: do not upload twice.
                if self.blob_exists(descriptor.digest):
                    return

    def _upload(self, blob: BlobSource, progress: ProgressCallback | None, operation: str) -> None:
        """POST for an upload location, then one monolithic PUT streaming the whole blob.

        A failed PUT leaves the upload session in an unknown state (some bytes may have
        been appended), so a retry starts over from the POST (see ``push_blob``).
        """
        descriptor = blob.descriptor
        url = _with_digest(self._start_upload(operation), descriptor.digest)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(descriptor.size),
        }
        response = self._client.request(
            "PUT",
            url,
            operation=operation,
            scopes=self._push(),
            write=True,
            expected=(201, 204),
            headers=headers,
            body=blob,
            progress=progress,
            retry=False,
        )
        _discard(response)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != str(descriptor.digest):
            raise DigestMismatchError(
                f"{operation}: the registry stored it as {stored[:80]}, not {descriptor.digest}"
            )

    def _start_upload(self, operation: str) -> str:
        """POST for an upload session; its location as an absolute URL, checked."""
        response = self._client.request(
            "POST",
            f"{self._base}/blobs/uploads/",
            operation=operation,
            scopes=self._push(),
            write=True,
            expected=(202,),
            retry=False,  # the callers retry the whole upload
        )
        _discard(response)
        return self._next_location(response, operation)

    def _next_location(self, response: requests.Response, operation: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise UnsafeResponseError(f"{operation}: {self._client.host} gave no upload location")
        # The location is used exactly as given: it may be relative, absolute, on another
        # host, and may already carry a query string (ghcr's and distribution's do).
        url = urljoin(response.url, location)
        # The body must not go to a file:, ftp: ... URL, nor leave https for plain http.
        self._client._check_redirect(url, operation, "sent the upload")
        return url

    def push_stream(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None = None,
        before_commit: Callable[[Digest], None] | None = None,
    ) -> Digest:
        operation = f"pushing a blob of {size} bytes to {self.location}"
        failures = 0
        sent: Digest | None = None
        while True:
            try:
                return self._stream_upload(open_source, size, progress, before_commit, operation)
            except _Sent as done:
                sent = done.digest
                error = done.error
            except RegistryError as failure:
                error = failure
            failures += 1
            if not error.temporary or not self._client.should_retry(failures):
                raise error
            _http_log.debug("%s failed (%s); starting the upload again", operation, error)
            self._client.pause(failures, error.retry_after)
            # The lost answer to the commit may have been the success: do not upload twice.
            if sent is not None and self.blob_exists(sent):
                return sent

    def _stream_upload(
        self,
        open_source: Callable[[], BinaryIO],
        size: int,
        progress: ProgressCallback | None,
        before_commit: Callable[[Digest], None] | None,
        operation: str,
    ) -> Digest:
        """POST, one PATCH streaming the whole blob while hashing it, then the commit.

        The commit (``PUT ?digest=`` with an empty body) names the digest computed over the
        bytes sent, and the registry checks it against the bytes it received. ``ghcr.io``
        refuses chunked PATCHes over 4 MiB, but takes one PATCH without ``Content-Range``.
        """
        url = self._start_upload(operation)
        body = _HashedStream(open_source, size)
        try:
            response = self._client.request(
                "PATCH",
                url,
                operation=operation,
                scopes=self._push(),
                write=True,
                expected=(202, 204),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=body,
                progress=progress,
                retry=False,
            )
            _discard(response)
            url = self._next_location(response, operation)
            if body.hasher.size != size:
                raise DigestMismatchError(f"{operation}: sent {body.hasher.size} bytes")
            digest = body.hasher.digest()
            if before_commit is not None:
                before_commit(digest)
        except BaseException:
            self._cancel_upload(url, operation)
            raise
        try:
            response = self._client.request(
                "PUT",
                _with_digest(url, digest),
                operation=operation,
                scopes=self._push(),
                write=True,
                expected=(201, 204),
                headers={"Content-Length": "0"},
                body=b"",
                retry=False,
            )
        except RegistryError as error:
            raise _Sent(digest, error) from error
        _discard(response)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != str(digest):
            raise DigestMismatchError(
                f"{operation}: the registry stored it as {stored[:80]}, not {digest}"
            )
        return digest

    @overload
    def _blob_chunks(
        self, descriptor: Descriptor, operation: str, buffers: None = None
    ) -> Iterator[bytes]: ...

    @overload
    def _blob_chunks(
        self, descriptor: Descriptor, operation: str, buffers: _Buffers
    ) -> Iterator[bytes | memoryview]: ...

    def _blob_chunks(
        self, descriptor: Descriptor, operation: str, buffers: _Buffers | None = None
    ) -> Iterator[bytes | memoryview]:
        """A blob's bytes, unverified, resuming with ``Range`` after a dropped connection.

        With ``buffers``, chunks may be views of pooled buffers, which the consumer must
        release once done with each.
        """
        url = f"{self._base}/blobs/{descriptor.digest}"
        offset = 0
        stalls = 0
        while True:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            response = self._client.request(
                "GET",
                url,
                operation=operation,
                scopes=self._pull(),
                expected=(200, 206) if offset else (200,),
                headers=headers,
                follow_redirects=True,
            )
            try:
                skip = 0
                if offset and response.status_code == 206:
                    content_range = response.headers.get("Content-Range", "")
                    if not content_range.startswith(f"bytes {offset}-"):
                        raise UnsafeResponseError(
                            f"{operation}: asked to resume at byte {offset}, got "
                            f"{content_range[:60]!r}"
                        )
                elif offset:
                    # The server ignored the range and sends everything again: drop what
                    # was already received (equivalent to starting over, with less disk I/O).
                    skip = offset
                received_before = offset
                try:
                    for chunk in _body_chunks(response, buffers):
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                if buffers is not None:
                                    buffers.release(chunk)
                                continue
                            chunk = chunk[skip:]  # noqa: PLW2901
                            skip = 0
                        offset += len(chunk)
                        yield chunk
                    return
                except _BROKEN_BODY as error:
                    if offset >= descriptor.size:
                        return  # everything announced arrived; verification has the last word
                    stalls = 0 if offset > received_before else stalls + 1
                    # The retry policy bounds resumes as it bounds every other request.
                    if stalls >= MAX_STALLED_RESUMES or not self._client.should_retry(stalls):
                        raise RegistryError(
                            f"{operation}: connection lost after {offset} bytes "
                            f"({_describe(error)})"
                        ) from None
                    _http_log.debug("%s: connection lost at byte %d; resuming", operation, offset)
                    self._client.pause(stalls + 1)
            finally:
                response.close()

    def iter_blob(self, descriptor: Descriptor) -> Iterator[bytes]:
        what = f"blob {descriptor.digest.short} of {self.location}"
        return verified_chunks(
            self._blob_chunks(descriptor, f"reading {what}"),
            descriptor.digest,
            descriptor.size,
            what,
        )

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        if descriptor.size > limit:
            raise TooLargeError(
                f"blob {descriptor.digest.short} of {self.location} is {descriptor.size} bytes, "
                f"over the {limit} accepted"
            )
        return b"".join(self.iter_blob(descriptor))

    def download_blob(
        self, descriptor: Descriptor, destination: Path, progress: ProgressCallback | None = None
    ) -> None:
        destination = Path(destination)
        what = f"blob {descriptor.digest.short} of {self.location}"
        fd, temp_name = tempfile.mkstemp(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
        )
        try:
            with os.fdopen(fd, "wb") as out:
                # Receive here, write and hash on two more threads (see _Worker).
                buffers = _Buffers()
                writer = descriptor.digest.hasher()
                hashing = _Worker(writer.update, buffers.release)
                writing = _Worker(out.write, hashing.submit)
                try:
                    received = 0
                    for chunk in self._blob_chunks(descriptor, f"downloading {what}", buffers):
                        writing.check()
                        received += len(chunk)
                        if received > descriptor.size:
                            raise DigestMismatchError(
                                f"{what}: more than the expected {descriptor.size} bytes"
                            )
                        writing.submit(chunk)
                        if progress is not None:
                            progress(len(chunk))
                finally:
                    writing.finish()
                    hashing.finish()
            writer.verify(descriptor.digest, descriptor.size, what)
            os.replace(temp_name, destination)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise

    # ------------------------------------------------------------------ manifests and tags

    def put_manifest(self, raw: bytes, media_type: str, reference: str | None = None) -> Digest:
        digest = Digest.of_bytes(raw)
        if len(raw) > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"manifest for {self.location} is {len(raw)} bytes, over the "
                f"{MAX_MANIFEST_SIZE} registries accept"
            )
        if reference is None:
            reference = str(digest)
        elif not is_valid_tag(reference) and Digest.parse(reference) != digest:
            raise DigestMismatchError(
                f"manifest bytes hash to {digest}, not to the reference {reference[:80]}"
            )
        operation = f"pushing manifest {reference} to {self.location}"
        response = self._client.request(
            "PUT",
            f"{self._base}/manifests/{reference}",
            operation=operation,
            scopes=self._push(),
            write=True,
            expected=(201, 200, 204),
            headers={"Content-Type": media_type},
            body=raw,
        )
        _discard(response)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored.startswith("sha256:") and stored != str(digest):
            raise DigestMismatchError(
                f"{operation}: the registry stored it as {stored[:80]}, not {digest}"
            )
        return digest

    def get_manifest(self, reference: str) -> RawManifest | None:
        by_digest = not is_valid_tag(reference)
        expected_digest = Digest.parse(reference) if by_digest else None
        what = f"manifest {reference} of {self.location}"
        response = self._client.request(
            "GET",
            f"{self._base}/manifests/{reference}",
            operation=f"reading {what}",
            scopes=self._pull(),
            expected=(200, 404),
            headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
            follow_redirects=True,
        )
        if response.status_code == 404:
            _discard(response)
            return None
        raw = _read_limited(response, MAX_MANIFEST_SIZE, what)
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

    def list_tags(self) -> list[str]:
        url = f"{self._base}/tags/list"
        seen: set[str] = set()
        tags: list[str] = []
        operation = f"listing tags of {self.location}"
        while url and len(seen) < MAX_TAG_PAGES:
            seen.add(url)
            response = self._client.request(
                "GET", url, operation=operation, scopes=self._pull(), expected=(200, 404)
            )
            if response.status_code == 404:
                # NAME_UNKNOWN: the repository does not exist yet, so it has no tags.
                _discard(response)
                return tags
            links = response.links
            body = _read_limited(response, MAX_TAG_PAGE, f"{operation}: tag list")
            tags.extend(_parse_tags(body, operation))
            next_link = links.get("next", {}).get("url")
            url = ""
            if next_link:
                candidate = urljoin(response.url, next_link)
                # A next page elsewhere is a request the user never asked for (SSRF), and
                # dropping it would hide versions: refuse rather than follow or truncate.
                if not self._client.same_origin(candidate):
                    raise UnsafeResponseError(
                        f"{operation}: the next page of tags is on another host; refusing it"
                    )
                if candidate not in seen:
                    url = candidate
        return list(dict.fromkeys(tags))


class _Sent(Exception):
    """A streamed upload whose commit failed: what was sent, and why it failed."""

    def __init__(self, digest: Digest, error: RegistryError) -> None:
        super().__init__(str(error))
        self.digest = digest
        self.error = error


def _with_digest(url: str, digest: Digest) -> str:
    """An upload location with ``digest=`` added to its query (it may already have one)."""
    separator = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
    return url + separator + f"digest={quote(str(digest), safe=':')}"


def _parse_tags(body: bytes, operation: str) -> Iterable[str]:
    try:
        value = json.loads(body)
    except ValueError:
        raise UnsafeResponseError(f"{operation}: the tag list is not JSON") from None
    tags = value.get("tags") if isinstance(value, dict) else None
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise UnsafeResponseError(f"{operation}: the tag list is malformed")
    return [tag for tag in tags if isinstance(tag, str)]
