"""Answering one registry's challenges: Basic, bearer tokens per scope, the anonymous fast path.

:class:`Authenticator` decides what ``Authorization`` each request to the registry carries
and sends it again when the registry asks for something else: after a 401 it answers the
challenge (Basic credentials, or a token for the scopes asked), a read refused to stored
credentials goes on anonymously, and an anonymous read first tries the fast path (see
``challenge.AnonymousAuth``), falling back to the token flow when refused. Sending is the
transport's job: it hands in one function that sends the request with a given header.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import requests

from setuptools_ghcr.core.targets import is_loopback_host
from setuptools_ghcr.errors import AuthenticationError, GhcrError, UnsafeResponseError
from setuptools_ghcr.storage.registry.challenge import (
    GHCR_SERVICE,
    AnonymousAuth,
    Challenge,
    TokenCache,
    TokenKey,
    parse_token_response,
    pick_challenge,
    token_url,
)
from setuptools_ghcr.storage.registry.credentials import Credentials, login_hint
from setuptools_ghcr.storage.registry.redact import Redactor
from setuptools_ghcr.storage.registry.responses import discard, read_limited, settle

__all__ = ["GHCR_HOST", "Authenticator", "Traffic"]

HTTP_LOG = logging.getLogger("setuptools_ghcr.http")
GHCR_HOST = "ghcr.io"
MAX_TOKEN_BODY = 1 << 20

#: Sends the request being authenticated with this ``Authorization`` value (None: none).
Send = Callable[[str | None], requests.Response]
#: Sends ``GET url`` to a token service with this ``Authorization`` value, for ``operation``.
FetchToken = Callable[[str, str, str | None], requests.Response]
#: Turns an unwanted answer into an error, for ``operation``.
ErrorOf = Callable[[requests.Response, str], GhcrError]


@dataclass
class Traffic:
    """What one registry client sent: every request, the token requests among them, and how
    the anonymous fast path fared (each read it served spared a token request, the first
    one also the unauthenticated request that fetches the challenge)."""

    requests: int = 0
    token_requests: int = 0
    fast_path_reads: int = 0
    fast_path_refusals: int = 0


class _Counter:
    """A :class:`Traffic` shared by the threads of one client."""

    def __init__(self) -> None:
        self._traffic = Traffic()
        self._lock = threading.Lock()

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self._traffic, name, getattr(self._traffic, name) + amount)

    def snapshot(self) -> Traffic:
        with self._lock:
            return replace(self._traffic)


class Authenticator:
    """The ``Authorization`` of every request to one registry, and the answers to its challenges."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None,
        *,
        fetch_token: FetchToken,
        error_of: ErrorOf,
        redactor: Redactor,
        anonymous_auth: AnonymousAuth | None = None,
        read_anonymously: bool = True,
        scheme: str = "https",
    ) -> None:
        self.host = host
        # A realm over plain http is taken only from a registry the user named on loopback
        # (spoken to over http itself), and only on loopback: an https registry's never.
        self._plain_realm_allowed = scheme == "http"
        self.credentials = credentials
        # Whether a read refused to the credentials is tried again anonymously; an index
        # service reading on a caller's behalf answers the refusal to the caller instead.
        self._read_anonymously_allowed = read_anonymously
        self._fetch_token = fetch_token
        self._error_of = error_of
        self._redactor = redactor
        self._anonymous_auth = anonymous_auth if anonymous_auth is not None else AnonymousAuth()
        if self._anonymous_auth.value is not None:
            # A configured value may be a credential of its own.
            redactor.add(self._anonymous_auth.value.split(" ", 1)[1])
        self._challenge: Challenge | None = None
        self._tokens = TokenCache()
        self._anonymous_pulls: set[tuple[str, ...]] = set()
        # Scopes whose reads the registry refused the fast path for: not offered again.
        self._fast_refused: set[tuple[str, ...]] = set()
        self._fast_taken: set[tuple[str, ...]] = set()
        self.counter = _Counter()

    @property
    def is_ghcr(self) -> bool:
        """Whether this is ghcr.io: the host itself, or a registry whose token challenge
        names the service ``ghcr.io`` (known once it has challenged a request)."""
        challenge = self._challenge
        return self.host == GHCR_HOST or (
            challenge is not None and challenge.service == GHCR_SERVICE
        )

    def send(
        self, send: Send, scopes: tuple[str, ...], write: bool, operation: str
    ) -> requests.Response:
        """Send a request to the registry, answering its challenges (at most once each way)."""
        key = tuple(sorted(scopes))
        anonymous = self.credentials is None or (not write and key in self._anonymous_pulls)
        if anonymous and not write:
            fast = self._fast_path(send, key)
            if fast is not None:
                return fast
        authorization, anonymous = self._authorization(scopes, write, anonymous, operation)
        response = send(authorization)
        if response.status_code == 401:
            challenge = pick_challenge(response.headers.get("WWW-Authenticate", ""))
            if challenge is not None:
                settle(response)
                wanted = scopes
                if challenge.error == "insufficient_scope":
                    wanted = tuple(sorted(set(scopes) | set(challenge.scopes)))
                self._challenge = challenge
                # What was sent was refused: a cached token must not be offered again.
                retried, anonymous = self._authorization(
                    wanted, write, anonymous, operation, refresh=authorization is not None
                )
                if retried is not None and retried != authorization:
                    discard(response)
                    authorization = retried
                    response = send(authorization)
        if (
            response.status_code in (401, 403)
            and not write
            and not anonymous
            and self._read_anonymously_allowed
            and self._challenge is not None
        ):
            return self._read_anonymously(send, scopes, response, authorization, operation)
        return response

    def _read_anonymously(
        self,
        send: Send,
        scopes: tuple[str, ...],
        refused: requests.Response,
        authorization: str | None,
        operation: str,
    ) -> requests.Response:
        """A read refused to stored credentials, sent again anonymously.

        Stale stored credentials must not stop reading public content (ghcr answers 403 to
        expired ones even where anonymous reading is allowed).
        """
        key = tuple(sorted(scopes))
        fast = self._fast_path(send, key)
        if fast is not None:
            discard(refused)
            self._anonymous_pulls.add(key)
            return fast
        fallback, _ = self._authorization(scopes, False, True, operation)
        if fallback == authorization:
            return refused
        discard(refused)
        response = send(fallback)
        if response.status_code < 400:
            HTTP_LOG.debug("credentials refused for reading; reading anonymously")
            self._anonymous_pulls.add(key)
        return response

    def _fast_path(self, send: Send, key: tuple[str, ...]) -> requests.Response | None:
        """An anonymous read sent with the fast-path ``Authorization``.

        None when this registry gets none, when it refused it for these scopes before, or
        when a token for them is at hand anyway; None as well when refused now, and the
        caller goes through the challenge flow (a 401's challenge is kept, so that the flow
        needs no request of its own to learn it).
        """
        value = self._anonymous_auth.value_for(self.is_ghcr)
        if value is None or key in self._fast_refused or self._has_anonymous_token(key):
            return None
        response = send(value)
        what = " ".join(key)
        if response.status_code not in (401, 403):
            self.counter.add(fast_path_reads=1)
            if key not in self._fast_taken:
                self._fast_taken.add(key)
                HTTP_LOG.debug(
                    "anonymous fast path: %s took '%s ***' for %s; no token needed",
                    self.host,
                    value.split(" ", 1)[0],
                    what,
                )
            return response
        self.counter.add(fast_path_refusals=1)
        self._fast_refused.add(key)
        challenge = pick_challenge(response.headers.get("WWW-Authenticate", ""))
        if response.status_code == 401 and challenge is not None:
            self._challenge = challenge
        HTTP_LOG.debug(
            "anonymous fast path: %s refused it (%d) for %s; asking for a token instead",
            self.host,
            response.status_code,
            what,
        )
        discard(response)
        return None

    def _has_anonymous_token(self, key: tuple[str, ...]) -> bool:
        challenge = self._challenge
        if challenge is None or challenge.scheme != "bearer":
            return False
        token_key = TokenKey.of(challenge.realm or "", challenge.service or "", key, True)
        return self._tokens.get(token_key) is not None

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
        if anonymous or self.credentials is None:
            if challenge.scheme == "basic":
                return None, True
        elif challenge.scheme == "basic" or self.credentials.bearer:
            # A caller's bearer token goes to the registry as it is, whatever it challenged.
            return self.credentials.authorization(), False
        try:
            token = self._bearer(challenge, scopes, anonymous, operation, refresh)
        except AuthenticationError:
            if write or anonymous or not self._read_anonymously_allowed:
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
        if not anonymous and self.credentials is not None and self.credentials.bearer:
            return self.credentials.password  # a token already: nothing to exchange
        realm = challenge.realm or ""
        parts = urlsplit(realm)
        if parts.scheme != "https" and not (
            parts.scheme == "http"
            and self._plain_realm_allowed
            and is_loopback_host(parts.netloc.rpartition("@")[2])
        ):
            raise UnsafeResponseError(
                f"{operation}: {self.host} sends credentials to a token service that is not "
                "https; refusing"
            )
        key = TokenKey.of(realm, challenge.service or "", scopes, anonymous)
        if refresh:
            self._tokens.discard(key)
        cached = self._tokens.get(key)
        if cached is not None:
            return cached.value
        credentials = None if anonymous else self.credentials
        self.counter.add(token_requests=1)
        # The realm is where the registry told us to log in, so Basic credentials go there.
        response = self._fetch_token(
            token_url(key), operation, None if credentials is None else credentials.basic_header()
        )
        if response.status_code in (401, 403):
            discard(response)
            if credentials is not None:
                raise AuthenticationError(
                    f"{operation}: the token service of {self.host} refused the credentials "
                    f"from {credentials.origin} (user {credentials.username!r})",
                    status=response.status_code,
                )
            # ghcr.io refuses anonymous readers alike whether a package is private or absent.
            why = " (a private package, or none by that name)" if self.is_ghcr else ""
            raise AuthenticationError(
                f"{operation}: {self.host} requires credentials{why}; {login_hint(self.host)}",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise self._error_of(response, f"{operation} (getting a token)")
        body = read_limited(response, MAX_TOKEN_BODY, f"{operation}: token answer")
        token = parse_token_response(body, time.monotonic(), operation)
        self._redactor.add(token.value)
        self._tokens.put(key, token)
        return token.value
