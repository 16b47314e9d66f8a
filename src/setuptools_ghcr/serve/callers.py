"""Who is asking: the caller's own credentials, and a registry client per caller.

pip, uv and poetry send Basic credentials (``user:token``; ``__token__`` as the user name
means "a token, no user name"); CI tools may send ``Authorization: Bearer``. Either is used
only for the registry's own challenge flow, on that caller's behalf: never logged, never
written anywhere, held in memory only by the caller's registry client, which goes once idle.

Each caller is known by a key: an HMAC of the credentials under a secret made at start-up,
so that the key says nothing of the secret and cannot be guessed from outside the process.
The key files what the caller proved it may read (see ``serve.access``) and the registry
tokens its credentials bought (each client holds its own).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from setuptools_ghcr.serve.upload_auth import caller_credentials
from setuptools_ghcr.storage.registry.client import RegistryClient
from setuptools_ghcr.storage.registry.credentials import Credentials

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "ANONYMOUS",
    "Caller",
    "ClientMaker",
    "ClientPool",
    "caller_of",
    "new_secret",
]

logger = logging.getLogger(__name__)

#: The key of a caller who sent no credentials.
ANONYMOUS = "anonymous"
#: Registry clients kept at most (each holds a connection pool and its tokens).
MAX_CLIENTS = 256
#: Seconds a caller's client is kept unused before it goes, credentials and tokens with it.
CLIENT_IDLE = 300.0


@dataclass(frozen=True)
class Caller:
    """The credentials a request came with (None: anonymous) and the key they are known by."""

    credentials: Credentials | None = field(repr=False)
    key: str = ANONYMOUS

    @property
    def anonymous(self) -> bool:
        return self.credentials is None


def caller_of(environ: WSGIEnvironment, secret: bytes) -> Caller:
    """The caller of a WSGI request, from its ``Authorization`` header (read as uploads read
    it, see ``serve.upload_auth``: anything unusable counts as no credentials)."""
    credentials = caller_credentials(environ)
    if credentials is None:
        return Caller(None)
    return Caller(credentials, _key(credentials, secret))


def _key(credentials: Credentials, secret: bytes) -> str:
    kind = b"bearer" if credentials.bearer else b"basic"
    material = b"\0".join(
        (kind, credentials.username.encode("utf-8"), credentials.password.encode("utf-8"))
    )
    return hmac.new(secret, material, hashlib.sha256).hexdigest()


def new_secret() -> bytes:
    """A key for :func:`caller_of`'s HMAC, made afresh by each process."""
    return secrets.token_bytes(32)


#: Makes the client of one registry host for one caller's credentials (None: anonymous).
ClientMaker = Callable[[str, Credentials | None], RegistryClient]


class ClientPool:
    """A registry client per (registry host, caller), kept while in use.

    Anonymous callers share one client per host: they have nothing to keep apart. A client
    is made on a caller's first request and keeps the registry tokens its
    credentials bought, so a caller's next requests cost no token request. The least
    recently used goes when there are ``max_clients``; one unused for ``idle`` seconds goes
    on the next request, and its credentials with it.
    """

    def __init__(
        self,
        make: ClientMaker,
        *,
        max_clients: int = MAX_CLIENTS,
        idle: float = CLIENT_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = make
        self._max = max(1, max_clients)
        self._idle = idle
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[str, str], tuple[float, RegistryClient]] = OrderedDict()

    def client(self, host: str, caller: Caller) -> RegistryClient:
        """The client that reads ``host`` with ``caller``'s credentials."""
        key = (host, caller.key)
        now = self._clock()
        gone: list[RegistryClient] = []
        with self._lock:
            found = self._clients.pop(key, None)
            while self._clients:
                oldest_key, (used, oldest) = next(iter(self._clients.items()))
                if now - used <= self._idle and len(self._clients) < self._max:
                    break
                del self._clients[oldest_key]
                gone.append(oldest)
            client = self._make(host, caller.credentials) if found is None else found[1]
            self._clients[key] = (now, client)
        for old in gone:
            _close_quietly(old)
        return client

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        """Close every client (after the server stopped taking requests)."""
        with self._lock:
            clients = [client for _, client in self._clients.values()]
            self._clients.clear()
        for client in clients:
            _close_quietly(client)


def _close_quietly(client: RegistryClient) -> None:
    try:
        client.close()
    except Exception as error:  # closing idle connections must not fail a request
        logger.debug("closing an idle registry client: %s", error)
