"""HTTP to one registry: a session, retries, redirects, the challenge flow, decoded errors.

:class:`Transport` sends one API request the way a registry wants it sent: over one
``requests.Session`` (so connections are reused); retried with backoff after transport
failures and "try later" answers; with redirects followed by hand, so that ``Authorization``
never reaches another host; authenticated by an :class:`~.authenticate.Authenticator` (the
challenge flow, tokens per scope, the anonymous fast path); and with unwanted answers turned
into one-line errors without secrets. What the requests mean is the client's business.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests

from setuptools_ghcr import __version__
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
from setuptools_ghcr.storage.registry.authenticate import Authenticator, Traffic
from setuptools_ghcr.storage.registry.challenge import AnonymousAuth, parse_challenges
from setuptools_ghcr.storage.registry.credentials import Credentials
from setuptools_ghcr.storage.registry.redact import Redactor, redact_url
from setuptools_ghcr.storage.registry.responses import (
    MAX_ERROR_BODY,
    UNKNOWN_CODES,
    decode_errors,
    describe,
    discard,
    is_permanent,
    origin,
    read_limited,
    refusal_advice,
)
from setuptools_ghcr.storage.registry.retry import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    parse_retry_after,
    retry_after_in_message,
)
from setuptools_ghcr.storage.registry.streams import Body, open_body
from setuptools_ghcr.storage.store import ProgressCallback

__all__ = ["DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "HTTP_LOG", "Transport"]

#: Every request and its answer, at debug level (``--verbose``), with URLs redacted.
HTTP_LOG = logging.getLogger("setuptools_ghcr.http")

MAX_REDIRECTS = 10
DEFAULT_TIMEOUT = 120.0
DEFAULT_RETRIES = 4

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Connections kept open to one host (see _new_session).
POOL_SIZE = 32


@dataclass(frozen=True)
class _Call:
    """One request as the caller asked for it, before authentication and retries."""

    method: str
    url: str
    operation: str
    headers: Mapping[str, str]
    body: Body = None
    progress: ProgressCallback | None = None
    retry: bool = True


class _NoNetrc(requests.auth.AuthBase):
    """An explicit no-op auth, so that requests never adds ``~/.netrc`` credentials itself.

    The transport alone decides which host gets which ``Authorization`` header.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_NETRC = _NoNetrc()


class Transport:
    """Sends the requests of one registry host, with auth, retries and redirects."""

    def __init__(
        self,
        host: str,
        scheme: str,
        credentials: Credentials | None,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        anonymous_auth: AnonymousAuth | None = None,
        read_anonymously: bool = True,
    ) -> None:
        if scheme not in ("http", "https"):
            raise InvalidReferenceError(f"registry scheme must be http or https, not {scheme!r}")
        self.host = host.lower()
        self.scheme = scheme
        self.base_url = f"{scheme}://{self.host}"
        self._origin = origin(self.base_url)
        self._owns_session = session is None
        self._session = session if session is not None else _new_session()
        # Connecting should be quick; a read may wait for a registry finishing a big upload.
        self._timeout = (min(timeout, 30.0), timeout)
        self._policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._sleep = sleep
        # The Basic value too: a registry (or a proxy) may echo the header back in an error.
        self._redactor = Redactor(credentials.secrets if credentials is not None else [])
        self._auth = Authenticator(
            self.host,
            credentials,
            fetch_token=self._fetch_token,
            error_of=self._error,
            redactor=self._redactor,
            anonymous_auth=anonymous_auth,
            read_anonymously=read_anonymously,
            scheme=self.scheme,
        )

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    @property
    def credentials(self) -> Credentials | None:
        """The credentials the registry's challenges are answered with."""
        return self._auth.credentials

    @property
    def is_ghcr(self) -> bool:
        """Whether the registry is ghcr.io (see :attr:`.Authenticator.is_ghcr`)."""
        return self._auth.is_ghcr

    @property
    def traffic(self) -> Traffic:
        """How many requests were sent so far, token requests and fast-path reads among them."""
        return self._auth.counter.snapshot()

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``/v2/<name>/tags/list``."""
        return self.base_url + path

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is on this registry (scheme, host and port)."""
        return origin(url) == self._origin

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
        body: Body = None,
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
            discard(response)
            hops += 1
            if not location or hops > MAX_REDIRECTS:
                raise UnsafeResponseError(
                    f"{operation}: {self.host} redirected too often or without a location"
                )
            call = replace(call, url=urljoin(call.url, location))
            self.check_location(call.url, operation)
            response = self._send(call, scopes, write)
        if response.status_code in expected:
            return response
        raise self._error(response, operation)

    def check_location(self, url: str, operation: str, how: str = "redirected") -> None:
        """Refuse a URL the registry points us at that is not web, or drops https.

        No exception for loopback: an https registry sending us to ``http://127.0.0.1``
        would reach whatever listens there in plain text (a registry the user named on
        loopback is spoken to over http from the start, and stays so).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeResponseError(f"{operation}: {self.host} {how} to a non-HTTP URL")
        if parts.scheme == "http" and self.scheme == "https":
            raise UnsafeResponseError(
                f"{operation}: {self.host} {how} from https to plain http; refusing"
            )

    def _send(self, call: _Call, scopes: tuple[str, ...], write: bool) -> requests.Response:
        if self.same_origin(call.url):
            return self._auth.send(
                lambda authorization: self._transmit(call, authorization),
                scopes,
                write,
                call.operation,
            )
        # Another host (a CDN, a storage service): the registry's credentials stay home.
        return self._transmit(call)

    def _fetch_token(
        self, url: str, operation: str, authorization: str | None
    ) -> requests.Response:
        return self._transmit(
            _Call("GET", url, operation, {"Accept": "application/json"}), authorization
        )

    def _transmit(self, call: _Call, authorization: str | None = None) -> requests.Response:
        """Send a request as is, retrying transport failures and "try later" answers."""
        headers = dict(call.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        attempt = 0
        while True:
            try:
                response = self._transmit_once(call, headers)
            except requests.RequestException as error:
                attempt += 1
                if not call.retry or is_permanent(error) or not self.should_retry(attempt):
                    raise RegistryError(
                        f"{call.operation}: cannot reach {origin(call.url)[1]}: {describe(error)}"
                    ) from None
                self.pause(attempt)
                continue
            if response.status_code not in RETRYABLE_STATUSES or not call.retry:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if not self.should_retry(attempt + 1) or (
                retry_after is not None and retry_after > self._policy.max_retry_after
            ):
                return response
            if retry_after is None and response.status_code == 429:
                # ghcr.io says how long to wait in its error message, not in a header.
                retry_after = _retry_after_in_body(response)
            else:
                discard(response)
            if retry_after is not None and retry_after > self._policy.max_retry_after:
                raise RegistryError(
                    f"{call.operation}: {origin(call.url)[1]} asks to wait "
                    f"{retry_after:.0f} s before trying again",
                    status=429,
                    retry_after=retry_after,
                )
            attempt += 1
            self.pause(attempt, retry_after)

    def _transmit_once(self, call: _Call, headers: Mapping[str, str]) -> requests.Response:
        """One send of ``call``, logged; its body is opened afresh and closed after."""
        stream: BinaryIO | None = None
        started = time.monotonic()
        self._auth.counter.add(requests=1)
        try:
            stream, data = open_body(call.body, call.progress, call.operation)
            response = self._session.request(
                call.method,
                call.url,
                headers=headers,
                data=data,
                stream=True,
                allow_redirects=False,
                timeout=self._timeout,
                auth=_NO_NETRC,
            )
        except requests.RequestException as error:
            HTTP_LOG.debug("%s %s -> %s", call.method, redact_url(call.url), describe(error))
            raise
        finally:
            if stream is not None:
                stream.close()
        elapsed = (time.monotonic() - started) * 1000
        HTTP_LOG.debug(
            "%s %s -> %d (%.0f ms)",
            call.method,
            redact_url(call.url),
            response.status_code,
            elapsed,
        )
        return response

    # ------------------------------------------------------------------ errors

    def _error(self, response: requests.Response, operation: str) -> GhcrError:
        """Turn an unwanted answer into an error (closing the response)."""
        status = response.status_code
        answered_by = origin(response.url or self.base_url)[1]
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            body = read_limited(response, MAX_ERROR_BODY, "error body")
        except GhcrError:
            body = b""
        codes, messages = decode_errors(body)
        text = f"{operation}: {answered_by} answered {status} {response.reason or ''}".rstrip()
        if messages:
            text += " (" + "; ".join(messages) + ")"
        if status in (401, 403):
            challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
            advice = refusal_advice(status, codes, challenges, self.credentials, self.host)
            return AuthenticationError(
                self._redactor(f"{text}; {advice}"), status=status, codes=codes
            )
        text = self._redactor(text)
        # distribution answers 400 MANIFEST_BLOB_UNKNOWN to an index naming a missing
        # manifest: it is the same "not there" as a 404, and the layout store says so too.
        if status == 404 or set(codes) & UNKNOWN_CODES:
            return RegistryNotFoundError(text, status=status, codes=codes)
        if status == 413:
            return TooLargeError(text)
        if {"DIGEST_INVALID", "SIZE_INVALID"} & set(codes):
            return DigestMismatchError(text)
        return RegistryError(text, status=status, codes=codes, retry_after=retry_after)


def _retry_after_in_body(response: requests.Response) -> float | None:
    """The pause an error body asks for (``retry-after: 30s``); the response is consumed."""
    try:
        body = read_limited(response, MAX_ERROR_BODY, "error body")
    except GhcrError:
        return None
    _codes, messages = decode_errors(body)
    return retry_after_in_message(" ".join(messages) or body.decode("utf-8", "replace"))


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = (
        f"setuptools-ghcr/{__version__} {requests.utils.default_user_agent()}"
    )
    # Keep as many connections to a host as requests may be in flight at once (index reads
    # of a page, uploads of a push): beyond requests' default of 10, every further one
    # would open a connection, use it once and throw it away.
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
